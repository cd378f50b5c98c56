"""Boundaries from a pixel embedding (the boundary demo of Kong & Fowlkes 2018).

With ``x`` the unit embedding and ``s(p, q) = (1 + cos(x_p, x_q)) / 2`` the similarity the
hypersphere loss trains, the boundary strength of pixel ``p`` at scale ``d`` is the largest
dissimilarity to its four neighbours at distance ``d`` (right, left, down, up; neighbours outside
the image are ignored), and the map is the mean over the scales:

    B_d(p) = max_{q in {p +- (0, d), p +- (d, 0)}} (1 - s(p, q))
    B(p)   = mean_{d in scales} B_d(p)                               in [0, 1]

Inside an instance ``B`` is about 0; across a border between two instances trained to the margin
``s <= 0.5`` it is at least 0.5 on both sides (1 for antipodal embeddings). Larger scales widen
the response (a band of ``2 d`` pixels), so the mean over scales peaks on the border itself and
decays away from it. The map is differentiable (no thinning / non-maximum suppression).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-12


def embedding_boundaries(embedding: Tensor, *, scales: tuple[int, ...] = (1, 2, 4)) -> Tensor:
    """Boundary strength of every pixel from its embedding (formula in the module doc).

    Args:
        embedding: ``(E, H, W)`` embedding (L2-normalised here), on any device.
        scales: neighbour distances ``d`` in pixels, each >= 1.

    Returns:
        ``(H, W)`` float map in ``[0, 1]`` on the embedding's device.
    """
    if embedding.dim() != 3 or not embedding.is_floating_point():
        raise ValueError(
            f"embedding_boundaries: embedding must be a float (E, H, W) tensor, got {tuple(embedding.shape)} "
            f"{embedding.dtype}"
        )
    if not scales or any(int(d) != d or d < 1 for d in scales):
        raise ValueError(f"embedding_boundaries: scales must be positive integers, got {scales}")
    x = F.normalize(embedding, dim=0, eps=_EPS)
    _, h, w = x.shape
    total = x.new_zeros(h, w)
    for d in scales:
        d = int(d)
        best = x.new_zeros(h, w)
        if d < w:
            across = 0.5 * (1.0 - (x[:, :, :-d] * x[:, :, d:]).sum(0))  # (H, W - d): p vs p + (0, d)
            best = _max_into(best, across, (slice(None), slice(None, -d)), (slice(None), slice(d, None)))
        if d < h:
            across = 0.5 * (1.0 - (x[:, :-d] * x[:, d:]).sum(0))  # (H - d, W): p vs p + (d, 0)
            best = _max_into(best, across, (slice(None, -d), slice(None)), (slice(d, None), slice(None)))
        total = total + best
    return (total / len(scales)).clamp(0.0, 1.0)


def _max_into(
    best: Tensor, values: Tensor, first: tuple[slice, slice], second: tuple[slice, slice]
) -> Tensor:
    """``best`` with ``values`` max-ed into both pixels of each pair (out of place, autograd-safe)."""
    a = F.pad(values, _pad_for(first, best.shape))
    b = F.pad(values, _pad_for(second, best.shape))
    return torch.maximum(best, torch.maximum(a, b))


def _pad_for(where: tuple[slice, slice], shape: torch.Size) -> tuple[int, int, int, int]:
    """``F.pad`` widths (left, right, top, bottom) placing a block at ``where`` in ``shape``."""
    pads = []
    for sl, size in zip(reversed(where), reversed(shape)):
        start, stop, _ = sl.indices(size)
        pads += [start, size - stop]
    return tuple(pads)
