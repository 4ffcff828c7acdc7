"""The Python API over the registry: list, get and create strategies, datasets and models."""

from __future__ import annotations

from typing import Any

from torch import nn

from sslzoo.dataset import Dataset
from sslzoo.registry import ModelSpec, Registry, default_registry
from sslzoo.strategy import Strategy


def _reg(registry: Registry | None) -> Registry:
    return registry or default_registry()


def list_strategies(pattern: str = "*", registry: Registry | None = None) -> list[str]:
    """Names of the registered strategies matching the glob ``pattern``."""
    return _reg(registry).strategies.names(pattern)


def get_strategy(name: str, registry: Registry | None = None) -> type[Strategy]:
    """The strategy class registered as ``name`` (``UnknownNameError`` lists close matches)."""
    return _reg(registry).strategies.get(name).obj


def create_strategy(name: str, registry: Registry | None = None, **options: Any) -> Strategy:
    """A strategy instance with ``options`` checked and coerced (strings are parsed)."""
    return get_strategy(name, registry)(**options)


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
