"""Random views of images for self-supervised training: crop, flip, colour distortion, on the device.

Every image of a batch gets its own draw from a ``torch.Generator`` (a seed gives the same views);
a batch's crops are one ``F.affine_grid`` / ``F.grid_sample`` call, its colour distortion a few
element-wise operations: no per-sample loop, no host round trip.

**The SimCLR family's augmentation** (Chen et al. 2020, appendix A, and their ``data_util.py``;
Chen & He 2021 train SimSiam with the same list):

* *random resized crop*: an area of ``crop_min``..1 of the image with an aspect ratio log-uniform in
  3/4..4/3 at a uniform position, resized to the image's size (bilinear). Where sslzoo differs:
  torchvision (and ``distorted_bounding_box_crop``) draw again, up to ten times, when a crop does not
  fit the image, and fall back to the whole image; here a side that would exceed the image is cut to
  it (the same shapes, a little more area on the boundary of the range).
* *horizontal flip* with probability 1/2, for colour (3-channel) images only.
* *colour distortion* of strength ``s`` (``jitter``) on 3-channel images: with probability 0.8 the
  brightness (multiplied by a factor in 1 ± 0.8s, SimCLR v2's form), contrast (each channel moved
  towards its mean by a factor in 1 ± 0.8s), saturation (a blend with the grey image by a factor in
  1 ± 0.8s) and hue (a shift of ± 0.2s of a turn) change, each clipped to the pixel range; then the
  image turns grey with probability 0.2. Where sslzoo differs: the four run in that fixed order (the
  reference's ``color_jitter_nonrand``; its default shuffles the order per image); saturation is
  torchvision's blend with the grey image rather than TensorFlow's HSV scaling, and hue a rotation of
  the chroma in YIQ space rather than a shift in HSV (both approximations of the HSV forms, exact on
  grey pixels). No Gaussian blur: SimCLR leaves it out on CIFAR-10.
* *the pixel range*: the inputs a run holds are normalised by their dataset; the distortions work
  on pixels in [0, 1], taken here as the range each channel spans over the pool (``low`` .. ``high``,
  :func:`channel_range`), which is exact for a per-channel affine normalisation of images that reach
  black and white in every channel.

**Other images** (one channel, such as MNIST's digits, or any number but 3) get the random resized
crop and a rotation uniform in ± ``rotation`` degrees in the same resampling, and neither flip (a
mirrored digit is another symbol, or none) nor colour distortion (there is no colour).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sslzoo._ops.inference import chunk_rows

RATIO = (3 / 4, 4 / 3)
"""The aspect ratios of a random resized crop (width / height)."""
JITTER_PROBABILITY = 0.8
GRAYSCALE_PROBABILITY = 0.2
GRAY = (0.2989, 0.5870, 0.1140)
"""TensorFlow's ``rgb_to_grayscale`` weights of red, green and blue."""
YIQ = ((0.299, 0.587, 0.114), (0.596, -0.274, -0.322), (0.211, -0.523, 0.312))
"""RGB to YIQ (NTSC): luma and two chroma axes."""


def channel_range(x: Tensor, ids: Tensor) -> tuple[Tensor, Tensor]:
    """Each channel's smallest and largest value over the images ``x[ids]`` (N, C, H, W), read in
    chunks: two tensors of shape (C,), the pixel range that :func:`random_view` takes as [0, 1]."""
    step = chunk_rows(x)
    low = high = None
    for start in range(0, ids.numel(), step):
        rows = x[ids[start:start + step]].float().transpose(0, 1).flatten(1)
        low = rows.amin(1) if low is None else torch.minimum(low, rows.amin(1))
        high = rows.amax(1) if high is None else torch.maximum(high, rows.amax(1))
    assert low is not None and high is not None, "no image to read the range of"
    return low, torch.maximum(high, low + 1e-6)


def crop_matrices(n: int, generator: torch.Generator, crop_min: float, flip: bool, rotation: float,
                  device: torch.device) -> Tensor:
    """(n, 2, 3) ``affine_grid`` matrices of random resized crops (area ``crop_min``..1, aspect ratio in
    :data:`RATIO`), mirrored half the time with ``flip``, rotated by up to ± ``rotation`` degrees."""
    u = torch.rand(n, 5, generator=generator, device=device)
    area = crop_min + (1 - crop_min) * u[:, 0]
    log_ratio = math.log(RATIO[0]) + (math.log(RATIO[1]) - math.log(RATIO[0])) * u[:, 1]
    width = (area * log_ratio.exp()).sqrt().clamp(max=1.0)  # half-sides in grid units: the image spans 2
    height = (area / log_ratio.exp()).sqrt().clamp(max=1.0)
    cx, cy = (2 * u[:, 2] - 1) * (1 - width), (2 * u[:, 3] - 1) * (1 - height)
    mirror = torch.where(u[:, 4] < 0.5, -1.0, 1.0) if flip else torch.ones(n, device=device)
    angle = (2 * torch.rand(n, generator=generator, device=device) - 1) * math.radians(rotation)
    cos, sin = angle.cos(), angle.sin()
    return torch.stack([torch.stack([cos * width * mirror, -sin * height, cx], dim=1),
                        torch.stack([sin * width * mirror, cos * height, cy], dim=1)], dim=1)


def _grey(u: Tensor) -> Tensor:
    weights = torch.tensor(GRAY, device=u.device, dtype=u.dtype).view(1, 3, 1, 1)
    return (u * weights).sum(dim=1, keepdim=True)


def _factor(n: int, spread: float, generator: torch.Generator, device: torch.device) -> Tensor:
    """Per-image factors uniform in [max(0, 1 - spread), 1 + spread], shaped (n, 1, 1, 1)."""
    low = max(0.0, 1.0 - spread)
    return (low + (1 + spread - low) * torch.rand(n, generator=generator, device=device)).view(n, 1, 1, 1)


def colour_distortion(u: Tensor, generator: torch.Generator, strength: float) -> Tensor:
    """RGB images ``u`` (N, 3, H, W) with pixels in [0, 1], distorted as the module's docstring says."""
    n, device = u.shape[0], u.device
    spread = 0.8 * strength
    out = (u * _factor(n, spread, generator, device)).clamp(0, 1)
    mean = out.mean(dim=(2, 3), keepdim=True)
    out = ((out - mean) * _factor(n, spread, generator, device) + mean).clamp(0, 1)
    grey = _grey(out)
    out = (grey + (out - grey) * _factor(n, spread, generator, device)).clamp(0, 1)
    yiq = torch.tensor(YIQ, device=device, dtype=out.dtype)
    angle = (2 * torch.rand(n, generator=generator, device=device) - 1) * 0.2 * strength * 2 * math.pi
    y, i, q = torch.einsum("rc,nchw->nrhw", yiq, out).unbind(1)
    cos, sin = angle.cos().view(n, 1, 1), angle.sin().view(n, 1, 1)
    rotated = torch.stack([y, cos * i - sin * q, sin * i + cos * q], dim=1)
    out = torch.einsum("rc,nchw->nrhw", torch.linalg.inv(yiq), rotated).clamp(0, 1)
    jittered = torch.rand(n, generator=generator, device=device) < JITTER_PROBABILITY
    out = torch.where(jittered.view(n, 1, 1, 1), out, u)
    greyed = torch.rand(n, generator=generator, device=device) < GRAYSCALE_PROBABILITY
    return torch.where(greyed.view(n, 1, 1, 1), _grey(out).expand_as(out), out)


def random_view(x: Tensor, generator: torch.Generator, pixels: tuple[Tensor, Tensor], crop_min: float,
                jitter: float, rotation: float) -> Tensor:
    """One random view of each image of ``x`` (N, C, H, W), normalised as ``x`` is: a random resized
    crop, and for 3-channel images a flip and a colour distortion of strength ``jitter`` (in the pixel
    range ``pixels``, each channel's low and high), for others a rotation of up to ± ``rotation``
    degrees (see the module's docstring)."""
    n, channels = x.shape[0], x.shape[1]
    colour = channels == 3
    theta = crop_matrices(n, generator, crop_min, colour, 0.0 if colour else rotation, x.device)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    view = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if not colour or jitter <= 0:
        return view
    low, high = (p.to(x.device, x.dtype).view(1, channels, 1, 1) for p in pixels)
    u = ((view - low) / (high - low)).clamp(0, 1)
    return colour_distortion(u, generator, jitter) * (high - low) + low
