"""Batched random affine augmentation on the device: rotation, zoom and shift in one resampling.

Every image of a batch gets its own transform, drawn from a ``torch.Generator`` (so a seed gives
the same augmentation), built as one (N, 2, 3) matrix and applied with ``F.affine_grid`` and
``F.grid_sample`` in a single call: no per-sample loop, no host round trip.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ROTATION_DEGREES = 10.0
ZOOM = 0.1
SHIFT = 0.1


def affine_matrices(n: int, generator: torch.Generator, rotation: float = ROTATION_DEGREES,
                    zoom: float = ZOOM, shift: float = SHIFT, device: torch.device | None = None) -> torch.Tensor:
    """(n, 2, 3) ``affine_grid`` matrices: rotation uniform in ±``rotation`` degrees, zoom in
    1 ± ``zoom``, and a shift of up to ±``shift`` of the width and of the height."""
    u = torch.rand(n, 4, generator=generator, device=device or generator.device) * 2 - 1
    angle = u[:, 0] * math.radians(rotation)
    scale = 1 + u[:, 1] * zoom
    # affine_grid maps output to input coordinates in [-1, 1] (a span of 2 per side): sampling the
    # input at R·p / scale shows the content rotated and zoomed by ``scale``
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    tx, ty = u[:, 2] * 2 * shift, u[:, 3] * 2 * shift
    return torch.stack([torch.stack([cos, -sin, tx], dim=1), torch.stack([sin, cos, ty], dim=1)], dim=1)


def random_affine(x: torch.Tensor, generator: torch.Generator, rotation: float = ROTATION_DEGREES,
                  zoom: float = ZOOM, shift: float = SHIFT) -> torch.Tensor:
    """``x`` (N, C, H, W) with a random rotation, zoom and shift per image; other shapes unchanged.

    Pixels that come from outside the image repeat its border (the background on digit images,
    whatever the normalisation).
    """
    if x.dim() != 4 or x.shape[0] == 0:
        return x
    theta = affine_matrices(x.shape[0], generator, rotation, zoom, shift, device=x.device)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """``x`` (N, C, H, W) with each image mirrored left to right with probability 1/2; other shapes
    unchanged."""
    if x.dim() != 4 or x.shape[0] == 0:
        return x
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


def gaussian_noise(x: torch.Tensor, generator: torch.Generator, std: float) -> torch.Tensor:
    """``x`` plus independent Gaussian noise of standard deviation ``std`` (inputs of any shape)."""
    if std <= 0 or x.numel() == 0:
        return x
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def shift_and_noise(x: torch.Tensor, generator: torch.Generator, shift: float, noise: float = 0.0,
                    flip: bool = False) -> torch.Tensor:
    """The light augmentation of the consistency methods: images shifted by up to ±``shift`` of their
    size (and with ``flip`` mirrored half the time), then Gaussian input noise of std ``noise`` on any
    input (the Π-model's and the mean teacher's "translation + noise"; FixMatch's weak "flip-and-shift"
    without noise)."""
    if shift > 0:
        x = random_affine(x, generator, rotation=0.0, zoom=0.0, shift=shift)
    if flip:
        x = random_flip(x, generator)
    return gaussian_noise(x, generator, noise)
