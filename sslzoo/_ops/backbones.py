"""The standard backbones of the semi-supervised and active-learning literature, for small images.

**WRN-28-2** (Zagoruyko & Komodakis 2016, Wide Residual Networks, BMVC) in the variant the SSL papers
train on CIFAR-10 (Oliver et al. 2018; FixMatch, Sohn et al. 2020), ported from USB's
``semilearn/nets/wrn/wrn.py`` (github.com/microsoft/Semi-supervised-learning): a 3x3 stem conv of 16
filters (with bias), three groups of four pre-activation basic blocks (32, 64, 128 filters; strides
1, 2, 2), batch norm with momentum 0.001 (TensorFlow's decay 0.999), leaky ReLU with slope 0.1, the
first block activating its input before the residual split, a final batch norm (eps 0.001) and
leaky ReLU, global average pooling and a linear classifier; Kaiming-normal (fan-out) convolutions,
Xavier-normal classifier, zero biases. 1,467,626 parameters for 10 classes and 3 channels, as USB's. Like USB's,
the first block of the second and third groups keeps a batch norm whose output it never uses (its
parameters are counted and never trained). Where sslzoo differs: the stem takes any number of
input channels (USB's 3), the pooling adapts to any image size (USB's too), and the model is one
``nn.Sequential`` (stem, groups, norm, activation, pooling, classifier) so that the engine finds its
embedding (the 128 pooled features, the classifier's input) and its mode-free prefix (the stem);
the weights of a USB model load into it in order (``tests/test_backbones.py``).

**ResNet-18, CIFAR variant** (He, Zhang, Ren & Sun 2016, Deep Residual Learning for Image Recognition,
CVPR), as the active-learning benchmarks train it (Yoo & Kweon 2019; Munjal et al. 2022), ported
from the common ``models/resnet.py`` of github.com/kuangliu/pytorch-cifar: a 3x3 stem conv of 64
filters with stride 1 and no max-pool (ImageNet's ResNet has a 7x7 stride-2 stem and a max-pool),
four groups of two basic blocks (64, 128, 256, 512 filters; strides 1, 2, 2, 2; 1x1 conv + batch-norm
shortcuts where the shape changes), global average pooling and a linear classifier; PyTorch's
default initialisation. 11,173,962 parameters for 10 classes and 3 channels. Where sslzoo differs:
any number of input channels, and adaptive average pooling (the reference pools 4x4, which is global
only for 32x32 inputs).

Neither has dropout: MC-dropout strategies refuse them with a one-line error.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sslzoo.errors import OptionError

__all__ = ["resnet18_cifar", "wrn_28_2"]

BN_MOMENTUM = 0.001
"""USB's (and the TensorFlow reference's decay 0.999, in PyTorch's convention)."""
LEAKY_SLOPE = 0.1


def image_shape(input_shape: tuple[int, ...], model: str) -> tuple[int, int, int]:
    """``input_shape`` as (channels, height, width); anything else is a one-line :class:`OptionError`."""
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise OptionError(f"model {model!r} takes images (channels, height, width), but the dataset's inputs have "
                          f"shape {tuple(input_shape)}; choose another --model (sslzoo models)")
    channels, height, width = input_shape
    return channels, height, width


class WideBasicBlock(nn.Module):
    """USB's ``BasicBlock``: pre-activation (BN, leaky ReLU) 3x3 conv, BN, leaky ReLU, 3x3 conv, added to
    the input or to its 1x1 conv shortcut where the width changes.

    As USB's, a block that changes the width adds the shortcut of its *activated* input only when it
    activates before the residual (the first block of the network); otherwise both branches start from
    the raw input and the block's first batch norm is computed by no one (USB computes it and discards it).
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int, activate_before_residual: bool = False) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes, momentum=BN_MOMENTUM)
        self.relu1 = nn.LeakyReLU(LEAKY_SLOPE)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes, momentum=BN_MOMENTUM)
        self.relu2 = nn.LeakyReLU(LEAKY_SLOPE)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = in_planes == out_planes
        self.shortcut = None if self.equal_in_out else nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)
        self.activate_before_residual = activate_before_residual

    def forward(self, x: Tensor) -> Tensor:
        if self.shortcut is None:
            out = self.conv1(self.relu1(self.bn1(x)))
            return x + self.conv2(self.relu2(self.bn2(out)))
        if self.activate_before_residual:
            x = self.relu1(self.bn1(x))
        out = self.conv2(self.relu2(self.bn2(self.conv1(x))))
        return self.shortcut(x) + out


def wrn_28_2(input_shape: tuple[int, ...], num_classes: int, depth: int = 28, widen_factor: int = 2) -> nn.Sequential:
    """WRN-28-2 as the SSL papers train it (see the module docstring): 1.47 M parameters for 10 classes."""
    channels, _, _ = image_shape(input_shape, f"wrn_{depth}_{widen_factor}")
    widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
    per_group = (depth - 4) // 6

    def group(in_planes: int, out_planes: int, stride: int, activate_before_residual: bool = False) -> nn.Sequential:
        return nn.Sequential(*(WideBasicBlock(in_planes if i == 0 else out_planes, out_planes, stride if i == 0 else 1,
                                              activate_before_residual) for i in range(per_group)))

    model = nn.Sequential(
        nn.Conv2d(channels, widths[0], 3, padding=1, bias=True),
        group(widths[0], widths[1], 1, activate_before_residual=True),
        group(widths[1], widths[2], 2),
        group(widths[2], widths[3], 2),
        nn.BatchNorm2d(widths[3], momentum=BN_MOMENTUM, eps=0.001), nn.LeakyReLU(LEAKY_SLOPE),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[3], num_classes))
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="leaky_relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            nn.init.zeros_(module.bias)
    return model


class BasicBlock(nn.Module):
    """He et al. (2016)'s basic block: conv-BN-ReLU, conv-BN, plus the input (or its 1x1 conv + BN
    projection where the shape changes), ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


def resnet18_cifar(input_shape: tuple[int, ...], num_classes: int) -> nn.Sequential:
    """ResNet-18 with the CIFAR stem (see the module docstring): 11.17 M parameters for 10 classes."""
    channels, _, _ = image_shape(input_shape, "resnet18")
    widths, strides = (64, 128, 256, 512), (1, 2, 2, 2)
    groups, in_planes = [], 64
    for planes, stride in zip(widths, strides, strict=True):
        groups.append(nn.Sequential(BasicBlock(in_planes, planes, stride), BasicBlock(planes, planes, 1)))
        in_planes = planes
    return nn.Sequential(
        nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        *groups, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes))
