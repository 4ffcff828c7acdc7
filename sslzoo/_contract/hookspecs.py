"""The pluggy hook specifications: registration hooks, observer hooks and the report hook.

Registration hooks are broadcast: every plugin that implements one is called with a
``register`` callable. The four Strategy hooks (``select``, ``label``, ``weight``, ``loss``)
are *not* pluggy hooks: they are methods of the one strategy a run uses, looked up by name
in the registry, so that no other strategy's hook runs in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("sslzoo")
hookimpl = pluggy.HookimplMarker("sslzoo")


@hookspec
def register_strategies(register: Callable[[type], None]) -> None:
    """Register Strategy subclasses: call ``register(MyStrategy)`` once per class."""


@hookspec
def register_datasets(register: Callable[[type], None]) -> None:
    """Register Dataset subclasses: call ``register(MyDataset)`` once per class."""


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register model builders: call ``register(name, build, summary="")``.

    ``build(input_shape: tuple[int, ...], num_classes: int) -> torch.nn.Module``.
    """


@hookspec
def register_recipes(register: Callable[[Any], None]) -> None:
    """Register training recipes: call ``register(sslzoo.Recipe(name, summary, ...))`` once per recipe."""


@hookspec
def register_stopping_criteria(register: Callable[[type], None]) -> None:
    """Register stopping criteria: call ``register(MyCriterion)`` once per
    :class:`~sslzoo._contract.stopping.StoppingCriterion` subclass."""


@hookspec
def register_pretrainers(register: Callable[[type], None]) -> None:
    """Register pretraining methods: call ``register(MyMethod)`` once per
    :class:`~sslzoo._contract.pretraining.Pretrainer` subclass."""


@hookspec
def run_started(run: dict[str, Any]) -> None:
    """Observe the start of one run (one strategy, dataset and seed).

    ``run`` holds ``strategy``, ``dataset``, ``model``, ``seed``, ``options`` and ``device``.
    """


@hookspec
def round_ended(run: dict[str, Any], entry: dict[str, Any]) -> None:
    """Observe the end of a round: ``entry`` is the curve entry just appended to the record."""


@hookspec
def run_ended(record: dict[str, Any]) -> None:
    """Observe a finished run: ``record`` is its complete result record."""


@hookspec
def report_series(record: dict[str, Any]) -> dict[str, Any] | None:
    """A figure of the strategy's own for ``sslzoo report``: a series to draw beside the test accuracy
    of ``record`` against the epochs it trained (on a second axis), or None (most records).

    Return ``{"name": FILE, "title": TITLE, "label": LABEL, "points": [[epoch, value], ...]}``: the
    figure ``FILE_<dataset>_<strategy>.png`` titled ``TITLE: accuracy and LABEL``, drawn for the first
    seed's record of each strategy; with ``"note": WHY`` in place of ``points`` the figure shows the
    accuracy alone and the report's notes say why the series is not drawn.
    """


HOOK_NAMES = tuple(name for name, spec in list(globals().items()) if hasattr(spec, "sslzoo_spec"))
"""Every hook's name, in the order above."""
REGISTRATION_HOOKS = tuple(name for name in HOOK_NAMES if name.startswith("register_"))
