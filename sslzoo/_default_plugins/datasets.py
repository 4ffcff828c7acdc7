"""Built-in datasets: the bundled MNIST and generated two-moons."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch

from sslzoo._contract.dataset import Arrays, Dataset
from sslzoo._contract.hookspecs import hookimpl
from sslzoo._datasets.mnist import load_mnist
from sslzoo._datasets.moons import make_moons

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass
class MnistOptions:
    data_dir: str | None = field(default=None, metadata={
        "help": "a torchvision root holding MNIST/raw/ (default: the files bundled with sslzoo)"})
    n_train: int = field(default=0, metadata={"min": 0, "help": "keep only the first N training images (0: all)"})
    n_test: int = field(default=0, metadata={"min": 0, "help": "keep only the first N test images (0: all)"})
    scale: Literal["standardize", "unit", "l2"] = field(default="standardize", metadata={
        "help": "pixel scaling: standardize ((x/255 - mean)/std), unit (x/255) or l2 (each image divided by "
                "its L2 norm, as scikit-learn's Normalizer)"})


class Mnist(Dataset):
    """MNIST handwritten digits (LeCun, Cortes & Burges 1998), bundled and checksum-verified."""

    name = "mnist"
    summary = "MNIST digits, 60000 train / 10000 test, 28x28 grey (bundled, offline)"
    num_classes = 10
    default_model = "cnn"
    train_defaults = {"epochs": 30, "batch_size": 32, "lr": 1e-3, "optimizer": "adam",
                      "momentum": 0.9, "weight_decay": 0.0}
    Options = MnistOptions

    def load(self, seed: int) -> Arrays:
        x_train, y_train, x_test, y_test = load_mnist(self.options.data_dir)
        n_train, n_test = self.options.n_train or len(y_train), self.options.n_test or len(y_test)
        return Arrays(x_train[:n_train], y_train[:n_train], x_test[:n_test], y_test[:n_test])

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.options.scale == "unit":
            return x.float() / 255.0
        if self.options.scale == "l2":
            x = x.float()
            norms = x.flatten(1).norm(dim=1).clamp_min(1e-12)
            return x / norms.view(-1, *([1] * (x.dim() - 1)))
        return (x.float() / 255.0 - MNIST_MEAN) / MNIST_STD


MAX_MOONS = 10_000_000
"""The most two-moons samples of a split (160 MB as they are generated): a larger size is a typo."""


@dataclass
class MoonsOptions:
    n_train: int = field(default=1000, metadata={"min": 2, "max": MAX_MOONS, "help": "training samples"})
    n_test: int = field(default=1000, metadata={"min": 2, "max": MAX_MOONS, "help": "test samples"})
    noise: float = field(default=0.1, metadata={"min": 0.0, "max": 100.0, "help": "std of the gaussian noise (the "
                                                "moons span about 3: more than 100 leaves nothing to learn)"})


class TwoMoons(Dataset):
    """Two interleaving half-circles (the classic semi-supervised toy problem), generated."""

    name = "moons"
    summary = "two-moons, 2-D, 2 classes, generated per seed (n_train, n_test, noise)"
    num_classes = 2
    default_model = "moons_mlp"
    train_defaults = {"epochs": 200, "batch_size": 64, "lr": 1e-2, "optimizer": "adam",
                      "momentum": 0.9, "weight_decay": 0.0}
    Options = MoonsOptions

    def load(self, seed: int) -> Arrays:
        x_train, y_train = make_moons(self.options.n_train, self.options.noise, seed)
        # the test set is a separate draw: a seed the training draw never uses
        x_test, y_test = make_moons(self.options.n_test, self.options.noise, seed + 1_000_003)
        return Arrays(x_train, y_train, x_test, y_test)


@hookimpl
def register_datasets(register: Callable[[type], None]) -> None:
    register(Mnist)
    register(TwoMoons)
