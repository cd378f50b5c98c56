"""Pixel coordinate grids and the spatial-embedding activations shared by loss and grouping.

Coordinates are in *units*: pixel ``(i, j)`` sits at ``(y, x) = (i, j) * scale``. A spatial
embedding is ``e = coords + tanh(offset)``, so a pixel can point at most ``1 / scale`` pixels away.
The clustering bandwidth is a precision ``exp(SIGMA_GAIN * sigma)`` per axis (Neven et al. 2019).

``DEFAULT_COORD_SCALE = 1 / 256``: ``tanh`` offsets reach 256 px, far beyond the radius of nuclei
(5-30 px) and of large cells (~100 px), while a typical nucleus offset (< 30 px = 0.12 units) stays
in the linear part of ``tanh``. The authors use 1/1023 units per pixel (Cityscapes, EmbedSeg), which
reaches 1023 px but makes one pixel only 0.001 units of network output.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DEFAULT_COORD_SCALE = 1.0 / 256.0
"""Units per pixel used by the ``spatial`` loss and the ``seeded`` grouper (the one default)."""

SIGMA_GAIN = 10.0
"""Raw sigma ``s`` becomes the precision ``exp(SIGMA_GAIN * s)`` (the authors' ``exp(10 s)``)."""

SIGMA_MAX = 8.0
"""Raw sigma is clamped here before ``exp`` so that float32 never overflows (precision ~5e34)."""


def check_coord_scale(coord_scale: float) -> float:
    """Return ``coord_scale`` as float; raise ``ValueError`` unless it is a finite positive number."""
    value = float(coord_scale)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"coord_scale must be a positive number of units per pixel, got {coord_scale!r}")
    return value


def pixel_grid(
    height: int,
    width: int,
    *,
    scale: float | tuple[float, float] = 1.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The ``(2, H, W)`` grid of pixel positions, channel order ``(y, x)``: ``(i * sy, j * sx)``.

    The one place coordinate grids are built (loss, groupers, SegSort features, the network's
    semi-convolutional embedding), from the input's shape and on its device.
    """
    if height < 0 or width < 0:
        raise ValueError(f"pixel_grid: sizes must be >= 0, got ({height}, {width})")
    sy, sx = (scale, scale) if isinstance(scale, (int, float)) else scale
    ys = torch.arange(height, device=device, dtype=dtype)
    xs = torch.arange(width, device=device, dtype=dtype)
    if (sy, sx) != (1, 1):  # an integer grid of scale 1 keeps its dtype
        ys, xs = ys * sy, xs * sx
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"))  # (2, H, W)


def coordinate_grid(
    height: int,
    width: int,
    *,
    scale: float = DEFAULT_COORD_SCALE,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The ``(2, H, W)`` grid of spatial-embedding coordinates, channel order ``(y, x)``, ``index * scale``."""
    if height < 0 or width < 0:
        raise ValueError(f"coordinate_grid: sizes must be >= 0, got ({height}, {width})")
    return pixel_grid(height, width, scale=check_coord_scale(scale), device=device, dtype=dtype)


def spatial_embedding(offset: Tensor, *, scale: float = DEFAULT_COORD_SCALE) -> Tensor:
    """``coords + tanh(offset)`` for raw offsets ``(..., 2, H, W)`` (channel order (y, x))."""
    if offset.dim() < 3 or offset.shape[-3] != 2:
        raise ValueError(f"spatial_embedding: offset must be (..., 2, H, W), got {tuple(offset.shape)}")
    h, w = offset.shape[-2:]
    grid = coordinate_grid(h, w, scale=scale, device=offset.device, dtype=offset.dtype)
    return grid + torch.tanh(offset)


def sigma_precision(sigma: Tensor) -> Tensor:
    """Bandwidth precision ``exp(SIGMA_GAIN * sigma)`` of raw sigma (any shape).

    Membership of an embedding ``e`` to a centre ``c`` is ``exp(-sum_d precision_d (e_d - c_d)^2)``;
    in the paper's notation ``precision = 1 / (2 sigma_paper^2)``.
    """
    return torch.exp(SIGMA_GAIN * sigma.clamp(max=SIGMA_MAX))


def raw_sigma_for_radius(radius_px: float, *, scale: float = DEFAULT_COORD_SCALE) -> float:
    """The raw sigma whose membership falls to 0.5 at ``radius_px`` pixels from the centre.

    ``exp(-p r^2) = 0.5`` gives ``p = ln 2 / r^2`` with ``r = radius_px * scale`` units.
    """
    if radius_px <= 0:
        raise ValueError(f"raw_sigma_for_radius: radius_px must be > 0, got {radius_px}")
    r = radius_px * check_coord_scale(scale)
    return math.log(math.log(2.0) / (r * r)) / SIGMA_GAIN
