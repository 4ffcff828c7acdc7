"""The Dataset base class: what a dataset plugin provides to the engine."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from sslzoo._contract.options import describe_options, make_options

UNLABELED = -1
"""The label of a sample whose class nobody has given yet (a training sample for a person to label,
or a test sample of a split without labels)."""


@dataclass
class Arrays:
    """A dataset's tensors on the CPU: raw training and test inputs with integer labels.

    A label is a class index in ``[0, num_classes)`` or :data:`UNLABELED` (``-1``). ``classes``
    names the classes in index order (empty: the dataset's ``num_classes``, named by their index);
    ``train_names`` and ``test_names`` say where each sample came from (an image's path, a row of a
    file; empty for generated data).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...] = ()
    train_names: tuple[str, ...] = ()
    test_names: tuple[str, ...] = ()

    def class_names(self, num_classes: int) -> list[str]:
        """The class names: ``classes``, or the indices ``"0" .. "C-1"`` for ``num_classes`` C."""
        return list(self.classes) or [str(c) for c in range(num_classes)]

    def has_test_labels(self) -> bool:
        """Whether the test split is there and every test sample has its label (accuracy can be measured)."""
        return self.y_test.numel() > 0 and bool((self.y_test >= 0).all())


@dataclass
class NoOptions:
    """A dataset without options."""


class Dataset(ABC):
    """Base class of every dataset.

    ``default_model`` names the registered model used when ``--model`` is not given;
    ``train_defaults`` fills the strategy's :class:`~sslzoo._contract.strategy.TrainOptions` left at ``None``.
    ``num_classes`` is 0 for a dataset whose classes come from its files (its ``Arrays.classes``).
    ``test_help`` tells a user how to give the dataset a labeled test split when it has none.
    ``labels_given`` says whose the training labels are: a benchmark's hidden ground truth (False:
    read only by the engine's oracle and by a labeling session's simulated labeler) or labels a
    person gave (True, a user's own data: a labeling session starts from those that are not
    :data:`UNLABELED`).
    """

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    num_classes: ClassVar[int] = 0
    default_model: ClassVar[str] = ""
    train_defaults: ClassVar[dict[str, Any]] = {}
    test_help: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    labels_given: ClassVar[bool] = False

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
        """Name, summary, classes (None: from the files), default model, training defaults and options,
        for listings."""
        return {"name": cls.name, "summary": cls.summary, "num_classes": cls.num_classes or None,
                "default_model": cls.default_model, "train_defaults": dict(cls.train_defaults),
                "options": describe_options(cls.Options)}
