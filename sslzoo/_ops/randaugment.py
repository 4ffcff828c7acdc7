"""Batched RandAugment with Cutout on the device: FixMatch's strong augmentation as tensor ops.

RandAugment (Cubuk et al. 2020) applies ``ops`` operations chosen at random to each image;
FixMatch (Sohn et al. 2020, section 2.3 and Table 12) draws, per image, each operation and its
magnitude uniformly, then applies Cutout. The operations here are those of FixMatch's table that
mean something for grey digits as well as colour images (the colour-saturation one is left out):

=============  ==============================================================
identity       the image unchanged
autocontrast   each channel stretched to span [0, 1]
brightness     blended with black, factor in [0.05, 0.95]
contrast       blended with its mean grey, factor in [0.05, 0.95]
equalize       histogram equalization of each channel (256 levels)
posterize      4 to 8 bits kept
rotate         ±30 degrees
sharpness      blended with its smoothed self (PIL's 3x3 kernel), factor in [0.05, 0.95]
shear_x/y      ±0.3
solarize       pixels above a threshold in [0, 1] inverted
translate_x/y  ±30 % of the size
=============  ==============================================================

then Cutout: a square of side up to half the image, filled with grey (0.5).

Every image of the batch gets its own draws from a ``torch.Generator`` (a seed gives the same
augmentation). The pixel operations are computed for the whole batch and each image keeps the
result of the one it drew; the geometric ones are one affine resampling per round: no per-image
Python loop and no host round trip. Pixel values are mapped to [0, 1] by the range ``low, high``
(by default the batch's minimum and maximum), augmented there and mapped back, so the operations
apply to normalised inputs too.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

PIXEL_OPS = ("identity", "autocontrast", "brightness", "contrast", "equalize", "posterize", "sharpness", "solarize")
GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
OPS = PIXEL_OPS + GEOMETRIC_OPS

FACTOR = (0.05, 0.95)  # brightness, contrast and sharpness factors
ROTATE_DEGREES = 30.0
SHEAR = 0.3
TRANSLATE = 0.3  # of the image size
POSTERIZE_BITS = (4, 8)
CUTOUT_FILL = 0.5

PixelOp = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _per_image(m: torch.Tensor) -> torch.Tensor:
    return m.view(-1, 1, 1, 1)


def _factor(m: torch.Tensor) -> torch.Tensor:
    low, high = FACTOR
    return _per_image(low + (high - low) * m)


def _blend(u: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance: ``other + factor (u - other)``, clipped to [0, 1]."""
    return (other + factor * (u - other)).clamp(0.0, 1.0)


def autocontrast(u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Each channel of each image stretched to span [0, 1] (a flat channel is left as it is)."""
    low = u.amin(dim=(2, 3), keepdim=True)
    high = u.amax(dim=(2, 3), keepdim=True)
    span = high - low
    return torch.where(span > 0, (u - low) / span.clamp_min(1e-12), u)


def brightness(u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _blend(u, torch.zeros_like(u), _factor(m))


def contrast(u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return _blend(u, u.mean(dim=(1, 2, 3), keepdim=True).expand_as(u), _factor(m))


def equalize(u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Histogram equalization of each channel over 256 levels: a level maps to the fraction of the
    channel's pixels at or below it, above its lowest level."""
    n, c, h, w = u.shape
    levels = (u * 255).round().long().clamp(0, 255).view(n * c, h * w)
    counts = torch.zeros(n * c, 256, device=u.device, dtype=u.dtype).scatter_add_(1, levels, torch.ones_like(
        levels, dtype=u.dtype))
    cdf = counts.cumsum(dim=1)
    first = cdf.gather(1, levels.amin(dim=1, keepdim=True))  # pixels at the lowest level
    span = (h * w - first).clamp_min(1.0)
    mapped = ((cdf - first) / span).clamp(0.0, 1.0)
    return mapped.gather(1, levels).view(n, c, h, w)


def posterize(u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    low, high = POSTERIZE_BITS
    bits = (low + torch.round(m * (high - low))).clamp(low, high)
    step = _per_image(2.0 ** (8 - bits))
    return torch.floor((u * 255).round() / step) * step / 255


def sharpness(u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Blend with the image smoothed by PIL's kernel [[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13."""
    c = u.shape[1]
    kernel = torch.ones(3, 3, device=u.device, dtype=u.dtype)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(c, 1, 3, 3)
    smooth = F.conv2d(F.pad(u, (1, 1, 1, 1), mode="replicate"), kernel, groups=c)
    return _blend(u, smooth, _factor(m))


def solarize(u: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.where(u >= _per_image(m), 1.0 - u, u)


PIXEL_FUNCTIONS: dict[str, PixelOp] = {
    "autocontrast": autocontrast, "brightness": brightness, "contrast": contrast, "equalize": equalize,
    "posterize": posterize, "sharpness": sharpness, "solarize": solarize}


def geometric_matrices(op: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """(n, 2, 3) ``affine_grid`` matrices of each image's geometric operation (the identity for a
    pixel operation), from its index ``op`` into ``OPS`` and its magnitude ``m`` in [0, 1]."""
    signed = 2 * m - 1
    angle = torch.where(op == OPS.index("rotate"), signed * math.radians(ROTATE_DEGREES), 0.0)
    shear_x = torch.where(op == OPS.index("shear_x"), signed * SHEAR, 0.0)
    shear_y = torch.where(op == OPS.index("shear_y"), signed * SHEAR, 0.0)
    # affine_grid maps output to input coordinates in [-1, 1]: a shift of 2t moves by t of the size
    tx = torch.where(op == OPS.index("translate_x"), signed * 2 * TRANSLATE, 0.0)
    ty = torch.where(op == OPS.index("translate_y"), signed * 2 * TRANSLATE, 0.0)
    cos, sin = torch.cos(angle), torch.sin(angle)
    row_x = torch.stack([cos + shear_x * sin, -sin + shear_x * cos, tx], dim=1)
    row_y = torch.stack([sin + shear_y * cos, cos - shear_y * sin, ty], dim=1)
    return torch.stack([row_x, row_y], dim=1)


def apply_ops(u: torch.Tensor, op: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    """Images ``u`` (n, C, H, W) in [0, 1], image i transformed by operation ``OPS[op[i]]`` with
    magnitude ``m[i]`` in [0, 1]."""
    out = u
    for name, fn in PIXEL_FUNCTIONS.items():
        out = torch.where(_per_image(op == OPS.index(name)), fn(u, m), out)
    theta = geometric_matrices(op, m).to(u.dtype)
    grid = F.affine_grid(theta, list(u.shape), align_corners=False)
    moved = F.grid_sample(out, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return torch.where(_per_image(op >= len(PIXEL_OPS)), moved, out)


def cutout(u: torch.Tensor, generator: torch.Generator, size: float) -> torch.Tensor:
    """Each image with a square of side uniform in [0, ``size``] of its height, centred at a uniform
    position (clipped at the border), filled with grey."""
    n, _, h, w = u.shape
    draws = torch.rand(n, 3, generator=generator, device=u.device)
    half = _per_image(draws[:, 0] * size * h / 2)
    cy, cx = _per_image(draws[:, 1] * h), _per_image(draws[:, 2] * w)
    rows = torch.arange(h, device=u.device, dtype=u.dtype).view(1, 1, h, 1) + 0.5
    cols = torch.arange(w, device=u.device, dtype=u.dtype).view(1, 1, 1, w) + 0.5
    inside = ((rows - cy).abs() < half) & ((cols - cx).abs() < half)
    return torch.where(inside, torch.full_like(u, CUTOUT_FILL), u)


def rand_augment(x: torch.Tensor, generator: torch.Generator, ops: int = 2, cutout_size: float = 0.5,
                 low: float | None = None, high: float | None = None) -> torch.Tensor:
    """``x`` (N, C, H, W) with ``ops`` random operations of ``OPS`` per image, each with a uniform
    random magnitude, then Cutout of side up to ``cutout_size`` of the image (0: none); other shapes
    unchanged. Pixel values map to [0, 1] by ``low``, ``high`` (default: the batch's extremes)."""
    if x.dim() != 4 or x.shape[0] == 0:
        return x
    lo = x.amin() if low is None else torch.tensor(low, device=x.device, dtype=x.dtype)
    hi = x.amax() if high is None else torch.tensor(high, device=x.device, dtype=x.dtype)
    span = (hi - lo).clamp_min(1e-12)
    u = ((x - lo) / span).clamp(0.0, 1.0)
    n = x.shape[0]
    for _ in range(ops):
        op = torch.randint(len(OPS), (n,), generator=generator, device=x.device)
        m = torch.rand(n, generator=generator, device=x.device, dtype=x.dtype)
        u = apply_ops(u, op, m)
    if cutout_size > 0:
        u = cutout(u, generator, cutout_size)
    return u * span + lo
