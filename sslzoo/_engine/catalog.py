"""The Python API over the registry: list, get and create strategies, datasets and models."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from sslzoo._contract.dataset import Dataset
from sslzoo._contract.registry import QUALIFIER, ModelSpec, Registry, default_registry
from sslzoo._contract.strategy import Strategy, TrainOptions
from sslzoo._strategies.composite import SEPARATOR, SEPARATORS, THEN, Chain, Composite
from sslzoo.errors import OptionError


def _reg(registry: Registry | None) -> Registry:
    return registry or default_registry()


def list_strategies(pattern: str = "*", registry: Registry | None = None) -> list[str]:
    """Names of the registered strategies matching the glob ``pattern``."""
    return _reg(registry).strategies.names(pattern)


def get_strategy(name: str, registry: Registry | None = None) -> type[Strategy]:
    """The strategy class registered as ``name`` (``UnknownNameError`` lists close matches)."""
    return _reg(registry).strategies.get(name).obj


def _fields(cls: type[Strategy]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls.Options)}


def _resolve(name: str, registry: Registry | None) -> tuple[str, type[Strategy]]:
    """(the name the strategy goes by, its class): a bare name as given, a qualified name ``DIST:NAME``
    as the registry spells it."""
    entry = _reg(registry).strategies.get(name)
    return (entry.qualified_name if QUALIFIER in name else entry.name), entry.obj


def _named(strategy: Strategy, name: str) -> Strategy:
    """``strategy``, going by ``name``: its qualified name, when it was asked for by that, is what the
    record and every message call it."""
    if strategy.name != name:
        strategy.name = name  # type: ignore[misc]
    return strategy


NamedClass = tuple[str, type[Strategy]]


def _parts(name: str, registry: Registry | None) -> tuple[NamedClass, NamedClass] | None:
    """The two parts (name, class) of a composite name ``A+B`` or ``A>B``, or None for a plain name.
    Either part may be qualified (``sslzoo:margin+sslzoo:self_training``)."""
    found = [sep for sep in SEPARATORS if sep in name]
    if not found:
        return None
    pieces = name.split(found[0])
    if len(found) != 1 or len(pieces) != 2 or not all(pieces):
        raise OptionError(f"strategy {name!r}: a composition is exactly two names, ACTIVE{SEPARATOR}PSEUDO "
                          f"(both every round) or ACTIVE{THEN}PSEUDO (one after the other), e.g. "
                          f"least_confidence{SEPARATOR}self_training")
    return _resolve(pieces[0], registry), _resolve(pieces[1], registry)


def option_names(name: str, registry: Registry | None = None) -> set[str]:
    """The option keys strategy ``name`` (plain or composite) accepts."""
    parts = _parts(name, registry)
    if parts is None:
        return _fields(get_strategy(name, registry))
    (_, active), (pseudo_name, pseudo) = parts
    return _fields(active) | _fields(pseudo) | {f"{pseudo_name}.{k}" for k in _fields(pseudo)}


def create_strategy(name: str, registry: Registry | None = None, **options: Any) -> Strategy:
    """A strategy instance with ``options`` checked and coerced (strings are parsed).

    ``A+B`` and ``A>B`` compose active learner A with pseudo-labeler B (:mod:`sslzoo._strategies.composite`): training
    options go to A; B's own options (or ``B.key``) go to B; a key both have goes to both. A strategy
    asked for by its qualified name ``DIST:NAME`` goes by that name (``B.key`` is then ``DIST:NAME.key``).
    """
    parts = _parts(name, registry)
    if parts is None:
        own, cls = _resolve(name, registry)
        return _named(cls(**options), own)
    (active_name, active), (pseudo_name, pseudo) = parts
    training = {f.name for f in dataclasses.fields(TrainOptions)}
    to_active: dict[str, Any] = {}
    to_pseudo: dict[str, Any] = {}
    for key, value in options.items():
        scope, dot, bare = key.rpartition(".")
        if dot and scope == pseudo_name:
            to_pseudo[bare] = value
            continue
        if key in _fields(active):
            to_active[key] = value
        if key in _fields(pseudo) and key not in training:
            to_pseudo[key] = value
        if key not in _fields(active) and key not in _fields(pseudo):
            raise OptionError(f"strategy {name!r} has no option {key!r}; valid options: "
                              f"{', '.join(sorted(option_names(name, registry)))}")
    kind = Chain if THEN in name else Composite
    return kind(_named(active(**to_active), active_name), _named(pseudo(**to_pseudo), pseudo_name))


def list_datasets(pattern: str = "*", registry: Registry | None = None) -> list[str]:
    """Names of the registered datasets matching ``pattern``."""
    return _reg(registry).datasets.names(pattern)


def get_dataset(name: str, registry: Registry | None = None) -> type[Dataset]:
    """The dataset class registered as ``name``."""
    return _reg(registry).datasets.get(name).obj


def create_dataset(name: str, registry: Registry | None = None, **options: Any) -> Dataset:
    """A dataset instance with ``options`` checked and coerced."""
    return get_dataset(name, registry)(**options)


def list_models(pattern: str = "*", registry: Registry | None = None) -> list[str]:
    """Names of the registered models matching ``pattern``."""
    return _reg(registry).models.names(pattern)


def get_model(name: str, registry: Registry | None = None) -> ModelSpec:
    """The model builder registered as ``name``."""
    return _reg(registry).models.get(name).obj


def create_model(name: str, input_shape: tuple[int, ...], num_classes: int,
                 registry: Registry | None = None) -> nn.Module:
    """A freshly initialised model ``name`` for inputs of ``input_shape`` and ``num_classes`` classes."""
    return get_model(name, registry).build(input_shape, num_classes)
