"""The control group: a strategy's protocol replayed with random queries.

The labeling-workflow guide judges active learning against a control group: as many labels, drawn
at random instead of chosen by the strategy, the model trained the same way; its "efficiency
boost" is how many times fewer labels the strategy needs for the control group's accuracy
(:func:`sslzoo._ops.metrics.efficiency_boost`). The control of an active learner ``A`` is ``random``
with A's protocol (starting labels, query size, budget, training); of a composition ``A+B`` or
``A>B`` it is ``random+B`` or ``random>B``, so the pseudo-labeling half is replayed too. A strategy
that queries nothing has no control group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sslzoo._contract.registry import Registry
from sslzoo._contract.strategy import Strategy
from sslzoo._engine.catalog import create_strategy, option_names
from sslzoo._results.store import canonical
from sslzoo._strategies.composite import SEPARATORS
from sslzoo.errors import OptionError

RANDOM = "random"
"""The strategy whose queries are random: the control group's."""


def control_of(strategy: str, family: str | None) -> str | None:
    """The name of ``strategy``'s control group (``family`` is its family): ``random`` for an active
    learner, ``random+B``/``random>B`` for ``A+B``/``A>B``; None for a strategy that queries nothing,
    a hybrid that is not a composition, and the controls themselves."""
    for separator in SEPARATORS:
        active, found, pseudo = strategy.partition(separator)
        if found:
            return None if active == RANDOM else f"{RANDOM}{separator}{pseudo}"
    return RANDOM if family == "al" and strategy != RANDOM else None


def protocol_of(strategy: Strategy, control: str, registry: Registry) -> dict[str, Any]:
    """The protocol the control group ``control`` replays: ``strategy``'s resolved options that it takes."""
    accepted = option_names(control, registry)
    return {k: v for k, v in strategy.resolved_options().items() if k in accepted}


def with_controls(names: Sequence[str], options: Mapping[str, Mapping[str, Any]],
                  registry: Registry) -> dict[str, dict[str, Any]]:
    """``options`` (strategy name → its options) with the control group of every strategy that queries
    labels added after them: its options are the strategy's resolved options that the control has,
    so it replays the same protocol. A control that is run already (``-s random``) must have that
    protocol; two strategies whose controls would differ under one name are an error."""
    out = {name: dict(options[name]) for name in names}
    replays: dict[str, tuple[str, dict[str, Any]]] = {}
    queried = False
    for name in names:
        strategy = create_strategy(name, registry, **options[name])
        control = control_of(name, strategy.family)
        if control is None:
            continue
        queried = True
        protocol = protocol_of(strategy, control, registry)
        if control in names:
            given = create_strategy(control, registry, **options[control]).resolved_options()
            differ = [k for k in protocol if canonical(given.get(k)) != canonical(protocol[k])]
            if differ:
                raise OptionError(f"--control: {control} is run with other options than the protocol of {name} "
                                  f"({', '.join(f'{k}={given.get(k)!r} vs {protocol[k]!r}' for k in differ)}); "
                                  f"give both the same options or leave -s {control} out")
            continue
        if control in replays and canonical(replays[control][1]) != canonical(protocol):
            first, other = replays[control]
            differ = [k for k in protocol if canonical(other.get(k)) != canonical(protocol[k])]
            raise OptionError(f"--control: {first} and {name} run different protocols ("
                              f"{', '.join(f'{k}={other.get(k)!r} vs {protocol[k]!r}' for k in differ)}), so one "
                              f"{control} control group cannot replay both; run them in separate benches")
        replays.setdefault(control, (name, protocol))
    if not queried:
        raise OptionError(f"--control: none of {', '.join(names)} queries labels; the control group replays an "
                          f"active-learning protocol with random queries")
    out.update({control: protocol for control, (_, protocol) in replays.items()})
    return out
