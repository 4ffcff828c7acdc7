"""Model builders. Every model is an ``nn.Sequential`` so that the engine can find its first
dropout layer: the layers before it are deterministic and MC-dropout computes them once."""

from __future__ import annotations

import math

from torch import nn

from sslzoo._ops.features import PcaPolynomial
from sslzoo._ops.layers import HintonDropout


def cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Two 5x5 conv layers (20, 40 filters; Dropout2d on the second), max-pool, fc 150, dropout 0.5."""
    channels, height, width = input_shape

    def side(n: int) -> int:  # k5 conv, pool 2, k5 conv, pool 2
        return ((n - 4) // 2 - 4) // 2

    flat = 40 * side(height) * side(width)
    return nn.Sequential(
        nn.Conv2d(channels, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(20, 40, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(flat, 150), nn.ReLU(), nn.Dropout(0.5), nn.Linear(150, num_classes))


def cnn_relu_logits(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """``cnn`` with a ReLU on its output logits before the softmax, as the reference code of the
    pl-cnn-mnist1000 protocol has it (its ``F.relu(self.fc2(x))`` before ``log_softmax``)."""
    model = cnn(input_shape, num_classes)
    model.append(nn.ReLU())
    return model


def gal_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Gal, Islam & Ghahramani 2017 (Keras mnist_cnn): two 3x3 conv layers of 32 filters, max-pool 2,
    dropout 0.25, dense 128, dropout 0.5 (the paper's weight decay is the optimizer's ``weight_decay``)."""
    channels, height, width = input_shape
    flat = 32 * ((height - 4) // 2) * ((width - 4) // 2)
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3), nn.ReLU(), nn.Conv2d(32, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, num_classes))


def gal_cnn_keras(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Gal, Islam & Ghahramani 2017 as the paper describes the network and Keras initialises it: two
    4x4 conv layers of 32 filters (the paper's kernel size; its published script sets ``nb_conv = 3``),
    max-pool 2, dropout 0.25, dense 128, dropout 0.5, with Keras's default initialisation
    (``glorot_uniform`` weights: uniform on ±sqrt(6 / (fan_in + fan_out)), fans counted as
    ``nn.init.xavier_uniform_`` counts them; zero biases) instead of PyTorch's Kaiming-uniform one."""
    channels, height, width = input_shape
    flat = 32 * ((height - 6) // 2) * ((width - 6) // 2)  # two k4 valid convs, pool 2
    model = nn.Sequential(
        nn.Conv2d(channels, 32, 4), nn.ReLU(), nn.Conv2d(32, 32, 4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, num_classes))
    for name, parameter in model.named_parameters():  # the weights and biases of its conv and dense layers
        if name.endswith("weight"):
            nn.init.xavier_uniform_(parameter)
        else:
            nn.init.zeros_(parameter)
    return model


def batchbald_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Kirsch, van Amersfoort & Gal 2019 (BatchBALD; ``src/mnist_model.py`` of github.com/BlackHC/BatchBALD):
    5x5 conv 32, Dropout2d 0.5, max-pool 2, ReLU; 5x5 conv 64, Dropout2d 0.5, max-pool 2, ReLU; dense 128,
    dropout 0.5, ReLU; dense C (no weight decay in their training). Where sslzoo differs: torch's dropout
    layers, one mask per sample in training as the authors' ``MCDropout``; their inference masks are
    sslzoo's MC-dropout's concern (:mod:`sslzoo._ops.dropout`), and their log-softmax output is the loss's."""
    channels, height, width = input_shape

    def side(n: int) -> int:  # k5 conv, pool 2, k5 conv, pool 2
        return ((n - 4) // 2 - 4) // 2

    return nn.Sequential(
        nn.Conv2d(channels, 32, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(32, 64, 5), nn.Dropout2d(0.5), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * side(height) * side(width), 128), nn.Dropout(0.5), nn.ReLU(),
        nn.Linear(128, num_classes))


def mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """784-512-256-C with ReLU and dropout 0.3."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), 512), nn.ReLU(), nn.Dropout(0.3),
        nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.3), nn.Linear(256, num_classes))


def linear(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Softmax regression."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))


def linear_zero(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Softmax regression with zero-initialised weights and bias (a deterministic start)."""
    layer = nn.Linear(math.prod(input_shape), num_classes)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return nn.Sequential(nn.Flatten(), layer)


def pca_poly_logreg(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Conventional-ML logistic regression: L2-normalised pixels, PCA to 50 dimensions fitted on the
    training set, degree-2 polynomial features (1326), softmax regression (its L2 penalty is the
    optimizer's ``weight_decay``)."""
    features = PcaPolynomial(math.prod(input_shape), components=50)
    return nn.Sequential(features, nn.Linear(features.out_features, num_classes))


def pca_poly_std_logreg(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """``pca_poly_logreg`` with its polynomial features standardized (mean 0, variance 1 on the inputs
    the PCA is fitted on), so that SGD converges in the source's few epochs."""
    features = PcaPolynomial(math.prod(input_shape), components=50, standardize=True)
    return nn.Sequential(features, nn.Linear(features.out_features, num_classes))


def lee_mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Lee (2013)'s dropout net: one hidden layer of 5000 ReLU units, dropout 0.5 on it in the original
    form of Hinton et al. (2012) (:class:`~sslzoo._ops.layers.HintonDropout`: units dropped unscaled in
    training, halved at test time), and one sigmoid output unit per class (``output_activation =
    "sigmoid"``: the loss sums the units' binary cross-entropies)."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 5000), nn.ReLU(), HintonDropout(0.5),
                          nn.Linear(5000, num_classes))
    model.output_activation = "sigmoid"  # type: ignore[assignment]  # torch types module attributes as tensors or modules
    return model


def lee_mlp_input_dropout(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """``lee_mlp`` that also drops 0.2 of the input pixels (in the same original form), as the common
    re-implementation does (Hinton et al. 2012's MNIST recipe)."""
    model = lee_mlp(input_shape, num_classes)
    model.insert(1, HintonDropout(0.2))
    return model


def moons_mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """Three hidden layers of 10 ReLU units (Oliver et al. 2018), dropout 0.1 before the output."""
    width = 10
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(),
        nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
        nn.Dropout(0.1), nn.Linear(width, num_classes))
