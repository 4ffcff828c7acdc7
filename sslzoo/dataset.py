"""The Dataset base class: what a dataset plugin provides to the engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from sslzoo.options import make_options


@dataclass
class Arrays:
    """A dataset's tensors on the CPU: raw training and test inputs with integer labels."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass
class NoOptions:
    """A dataset without options."""


class Dataset(ABC):
    """Base class of every dataset.

    ``default_model`` names the registered model used when ``--model`` is not given;
    ``train_defaults`` fills the strategy's :class:`~sslzoo.strategy.TrainOptions` left at ``None``.
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    num_classes: ClassVar[int] = 0
    default_model: ClassVar[str] = ""
    train_defaults: ClassVar[dict[str, Any]] = {}
    Options: ClassVar[type] = NoOptions

    def __init__(self, **options: Any) -> None:
        self.options: Any = make_options(self.Options, options, f"dataset {self.name!r}")

    @abstractmethod
    def load(self, seed: int) -> Arrays:
        """The tensors, on the CPU. ``seed`` matters only to generated datasets."""

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs (already on the run's device) → float model inputs. Default: float as is."""
        return x.float()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """Name, summary, classes, default model, training defaults and options, for listings."""
        from sslzoo.options import describe_options

        return {"name": cls.name, "summary": cls.summary, "num_classes": cls.num_classes,
                "default_model": cls.default_model, "train_defaults": dict(cls.train_defaults),
                "options": describe_options(cls.Options)}
