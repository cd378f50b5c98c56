"""Percentile normalisation in torch, TorchScript-able: the one implementation behind
:func:`pixelgroup.data.io.normalize_percentile` and the exported TorchScript pipeline, so both agree
bit for bit."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _order_statistics(values: Tensor, lo: int, hi: int) -> tuple[Tensor, Tensor]:
    """The ``lo``-th and ``hi``-th smallest (0-based, ``lo <= hi``) of every column of ``values (N, C)``.

    A partial sort (``topk``) from the nearer end: ``k = hi + 1`` smallest or ``N - lo`` largest
    values, sorted. For the usual 1 % and 99.8 % percentiles ``k`` is a few percent of ``N`` and this
    is ~2.5x faster than two ``kthvalue`` calls; the values are the same order statistics, exactly.
    """
    n = values.shape[0]
    if hi + 1 <= n - lo:
        part = torch.topk(values, hi + 1, dim=0, largest=False, sorted=True).values  # (hi + 1, C) ascending
        return part[lo], part[hi]
    part = torch.topk(values, n - lo, dim=0, largest=True, sorted=True).values  # (N - lo, C) descending
    return part[n - 1 - lo], part[n - 1 - hi]


def _percentile(values: Tensor, q: float) -> Tensor:
    """The ``q``-th percentile (``0 <= q <= 100``) of every column of ``values (N, C)``, float64,
    with numpy's default rule (linear interpolation between the order statistics at ``q/100 (N-1)``)."""
    n = values.shape[0]
    pos = q / 100.0 * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    a, b = _order_statistics(values, lo, hi)
    a, b = a.double(), b.double()  # (C,)
    return a + (b - a) * frac


def percentile_normalize(image: Tensor, low: float, high: float) -> Tensor:
    """Map each channel's ``low`` and ``high`` percentiles to 0 and 1, without clipping.

    ``x' = (x - p_low) / (p_high - p_low + 1e-20)``, percentiles and scale computed in float64 and
    applied in float32.

    Args:
        image: ``(H, W, C)`` float32 tensor, finite, at least one pixel.

    Returns:
        ``(H, W, C)`` float32.
    """
    c = image.shape[-1]
    flat = image.reshape(-1, c)  # (H*W, C)
    p_low, p_high = _percentile(flat, low), _percentile(flat, high)
    scale = (1.0 / (p_high - p_low + 1e-20)).float()
    return (image - p_low.float()) * scale
