"""Built-in backbones: WRN-28-2 and the CIFAR ResNet-18 (:mod:`sslzoo._ops.backbones`). The models of
torchvision and timm by name (``--model torchvision:resnet50``) need no registration: the registry
builds them on demand (:mod:`sslzoo._ops.model_zoos`)."""

from __future__ import annotations

from collections.abc import Callable

from sslzoo._contract.hookspecs import hookimpl
from sslzoo._ops import backbones


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    register("wrn_28_2", backbones.wrn_28_2, "WRN-28-2 as the SSL papers train it (USB's; leaky ReLU 0.1, batch norm "
                                             "momentum 0.001), any channels and image size, 1.47 M parameters")
    register("resnet18", backbones.resnet18_cifar, "ResNet-18, CIFAR variant (3x3 stem, no max-pool; He et al. 2016), "
                                                   "any channels and image size, 11.2 M parameters")
