"""Per-instance medoids of pixel sets (EmbedSeg's instance centres), batched over instances.

The medoid of an instance is the pixel with the smallest summed Euclidean distance to its other
pixels: unlike the centroid it always lies on the instance (an L or a crescent included).
"""

from __future__ import annotations

import torch
from torch import Tensor

MEDOID_MAX_POINTS = 64
"""Medoids are exact up to this many pixels; a larger instance scores each of its pixels against an
evenly strided subset of this many of its pixels."""

_CHUNK_ELEMENTS = 1 << 24
"""Budget of candidate x reference distances per vectorised chunk."""


def medoids(pix: Tensor, owner: Tensor, counts: Tensor) -> Tensor:
    """Per-instance medoid: the pixel minimising the summed Euclidean distance to the others.

    Every pixel is a candidate; its summed distance is taken over at most ``MEDOID_MAX_POINTS``
    reference pixels of its instance (all of them for smaller instances, so the medoid is exact;
    an evenly strided subset in raster order otherwise). Ties go to the first pixel in raster
    order; integer coordinates keep the result deterministic and translation invariant. Work is
    ``sum_k n_k * min(n_k, M)``, batched over instances of similar size.

    Args:
        pix: ``(F, 2)`` integer pixel positions (y, x) in raster order; ``owner``: ``(F,)``
            instance index in ``[0, N)``; ``counts``: ``(N,)`` pixels per instance.

    Returns:
        ``(N, 2)`` float32 pixel positions.
    """
    # float32: integer differences and squared distances below 2^24 are exact (any device).
    pts = pix.to(torch.float32)[torch.sort(owner, stable=True).indices]  # grouped, raster order kept
    starts = torch.cumsum(counts, 0) - counts  # (N,)
    by_size = torch.argsort(counts, stable=True)
    sizes = counts[by_size].tolist()
    out = pts.new_empty(counts.numel(), 2)
    a = 0
    while a < len(sizes):
        b = a + 1  # grow the chunk of similar-sized instances within the element budget
        while b < len(sizes) and (b + 1 - a) * sizes[b] * min(sizes[b], MEDOID_MAX_POINTS) <= _CHUNK_ELEMENTS:
            b += 1
        ks = by_size[a:b]
        out[ks] = _medoid_chunk(pts, starts[ks], counts[ks])
        a = b
    return out


def _medoid_chunk(pts: Tensor, starts: Tensor, counts: Tensor) -> Tensor:
    """Medoids of ``c`` instances stored at ``pts[start : start + count]`` -> ``(c, 2)``."""
    def gather(n_cols: int, pos: Tensor) -> Tensor:  # (c, n_cols) positions -> (c, n_cols, 2)
        return pts[starts[:, None] + torch.minimum(pos, counts[:, None] - 1)]

    j = torch.arange(int(counts.max()), device=pts.device)
    candidates = gather(j.numel(), j[None].expand(counts.numel(), -1))  # (c, n, 2)
    m = counts.clamp(max=MEDOID_MAX_POINTS)  # (c,) references per instance
    r = torch.arange(int(m.max()), device=pts.device)
    refs = gather(r.numel(), (2 * r[None] + 1) * counts[:, None] // (2 * m[:, None]))  # (c, m, 2)
    dist = torch.cdist(candidates, refs, compute_mode="donot_use_mm_for_euclid_dist")  # (c, n, m)
    cost = (dist * (r[None] < m[:, None])[:, None, :]).sum(dim=-1)  # (c, n)
    cost = cost.masked_fill(j[None] >= counts[:, None], float("inf"))
    best = cost.argmin(dim=1)  # first minimum on ties = first in raster order
    return candidates[torch.arange(counts.numel(), device=pts.device), best]
