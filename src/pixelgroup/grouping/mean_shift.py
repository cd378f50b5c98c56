"""Fast mean-shift clustering of pixel embeddings (the algorithm; the grouper is :mod:`.meanshift_grouper`).

The cost of classic mean shift (scikit-learn's ``MeanShift``) is one radius query per seed per
iteration against all ``N`` points. Here the modes are found against a fixed uniform random sample
of the points, and only the final assignment touches every point:

1. **Reference sample**: ``sample_size`` points drawn uniformly without replacement (all if fewer).
2. **Seeds**: the sample is binned on a grid of cell ``bandwidth`` (scikit-learn's ``bin_seeding``);
   bins holding at least ``min_bin_freq`` sample points seed at their centroid, most populated
   first, thinned so that no two seeds are closer than ``bandwidth`` (they would climb to the same
   mode), and capped at ``max_seeds``.
3. **Mode seeking**: every seed moves to the kernel-weighted mean of the sample, all seeds at once
   (a ``(S, M)`` weight matrix per step) until every shift is below ``1e-3 * bandwidth`` or after
   ``iterations`` steps. Kernels, with ``d`` the Euclidean distance and ``h`` the bandwidth:
   ``gaussian`` ``exp(-d^2 / (2 h^2))``; ``flat`` ``[d <= h]``; ``vmf`` ``exp((cos - 1) / h^2)`` on
   L2-normalised points, the mode re-normalised after every step. (Weights below 3x the smallest
   normal float are taken as 0: they vanish in every sum, and ``exp`` is 50-100x slower there.)
4. **Merging**: modes are ranked by their kernel density on the sample; a mode closer than
   ``bandwidth`` to a denser kept mode is dropped (as scikit-learn does).
5. **Assignment**: every point goes to its nearest mode, exactly, in chunks (bounded memory):
   see :func:`assign_to_modes` for the triangle-inequality shortcut that makes this ``O(N E)``
   for pixels in raster order instead of ``O(N K E)``.
6. **Residual rounds**: the points farther than ``3 * bandwidth`` from every mode (a cluster too
   small to be seen in the sample) get modes of their own by steps 1-4; a new mode closer than
   ``bandwidth`` to an old one is dropped, and every point moves to a new mode if that is nearer.
   At most two rounds.

Time is linear in ``N``: steps 1-4 cost ``O(M + S M E)`` per step whatever ``N``, the assignment
``O(N E)`` (raster order) to ``O(N K E)`` (worst case). Memory is ``O(N + S M + chunk K)``.
Results are deterministic given ``seed``. Seeds are found against a sample, so a cluster holding
less than about ``1 / sample_size`` of the points is found only by the residual rounds (if it lies
farther than ``3 * bandwidth`` from the others) or else merges with its nearest neighbour.
"""

from __future__ import annotations

import logging
import math
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..ops.labels import consecutive_ids

log = logging.getLogger(__name__)

Kernel = Literal["gaussian", "vmf", "flat"]
_KERNELS = ("gaussian", "vmf", "flat")
_RESIDUAL_ROUNDS = 2
_RESIDUAL_FACTOR = 3.0
_TOL = 1e-3
_CHUNK_ELEMENTS = 1 << 22  # entries of one (chunk, K) score matrix


def _as_points(points: Tensor | np.ndarray) -> Tensor:
    if isinstance(points, torch.Tensor):
        x = points.detach()
        x = x if x.dtype in (torch.float32, torch.float64) else x.float()
        return x.contiguous()
    return torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32))


class _Reference:
    """The reference sample ``(M, E)`` and its squared norms, computed once for all the steps."""

    def __init__(self, ref: Tensor, bandwidth: float, kernel: Kernel) -> None:
        self.ref = ref  # (M, E)
        self.kernel = kernel
        self.h2 = bandwidth**2
        self.sq = (ref * ref).sum(dim=1)  # (M,)

    def weights(self, seeds: Tensor, *, relative: bool) -> Tensor:
        """``(S, M)`` kernel weights of the sample seen from ``seeds`` ``(S, E)``; with ``relative``
        each row is scaled so its largest entry is 1.

        ``d^2 = ||s||^2 + ||r||^2 - 2 s.r`` (clamped at 0); every step after the product is done in
        place, in the order of the plain expression (so with its rounding), the sample's squared
        norms once for all the steps.
        """
        cross = torch.mm(seeds, self.ref.T)  # (S, M)
        if self.kernel == "vmf":
            logits = cross.sub_(1.0).div_(self.h2)  # (cos - 1) / h^2
        else:
            d2 = ((seeds * seeds).sum(1)[:, None] + self.sq[None, :]).sub_(cross.mul_(2.0)).clamp_min_(0.0)
            if self.kernel == "flat":
                return d2.le_(self.h2)  # in place: 1.0 / 0.0 in the points' dtype
            logits = d2.div_(-2.0 * self.h2)  # -d^2 / (2 h^2): the negation is exact
        if relative:
            logits = logits.sub_(logits.amax(dim=1, keepdim=True))
        return _exp_flushed(logits)


def _exp_flushed(logits: Tensor) -> Tensor:
    """``exp(logits)`` in place, with 0 where it would be below 3x the smallest normal float.

    Those weights (< 3.6e-38 for float32, next to a largest weight of 1 in a mean-shift step) are
    rounded away in every sum they enter, but the CPU's vectorised ``exp`` takes a scalar path for
    results below the normal range that is 50-100x slower, and with a small bandwidth most of the
    ``(S, M)`` matrix lies there. So the logits are clamped to ``log(2 tiny)`` first.
    """
    tiny = torch.finfo(logits.dtype).tiny
    return F.threshold_(logits.clamp_min_(math.log(2.0 * tiny)).exp_(), 3.0 * tiny, 0.0)


_COVER_BLOCK = 256  # candidates whose rows of the distance matrix are formed at once


def _greedy_cover(points: Tensor, radius: float) -> Tensor:
    """Indices of a subset of ``points`` (taken in order) such that every point lies within
    ``radius`` of a chosen one, none of the chosen lying within ``radius`` of an earlier one.

    Only the rows of the ``(S, S)`` distance matrix of candidates still uncovered are formed,
    ``_COVER_BLOCK`` at a time (the seeds of a few clusters spread over many bins need one block
    instead of ``S`` rows), as squared distances ``||a||^2 + ||b||^2 - 2 a.b`` of centred points.
    """
    p = points - points.mean(dim=0) if points.shape[0] else points  # (S, E)
    sq = (p * p).sum(dim=1)  # (S,)
    covered = np.zeros(p.shape[0], dtype=bool)
    chosen: list[int] = []
    start = 0
    while start < p.shape[0]:
        cand = start + np.flatnonzero(~covered[start:])[:_COVER_BLOCK]  # (B,)
        if cand.size == 0:
            break
        rows = torch.from_numpy(cand).to(p.device)
        d2 = torch.addmm(sq[None, :], p[rows], p.T, alpha=-2.0).add_(sq[rows, None])  # (B, S)
        close = (d2 < radius**2).cpu().numpy()
        close[np.arange(cand.size), cand] = True  # a point covers itself, whatever the rounding
        for j, i in enumerate(cand.tolist()):
            if not covered[i]:
                chosen.append(i)
                covered |= close[j]
        start = int(cand[-1]) + 1
    return torch.as_tensor(chosen, dtype=torch.int64, device=points.device)


def _row_keys(cells: np.ndarray) -> np.ndarray | None:
    """``(M,)`` int64 keys of the rows of ``cells`` ``(M, E)`` int64 whose order is the rows'
    lexicographic order (mixed radix over the columns' ranges); None if they do not fit in 63 bits."""
    low = cells.min(axis=0)
    span = [hi - lo + 1 for lo, hi in zip(low.tolist(), cells.max(axis=0).tolist())]  # Python ints
    if math.prod(span) >= 1 << 62:
        return None
    keys = np.zeros(len(cells), dtype=np.int64)  # every partial key is below prod(span)
    for j, s in enumerate(span):
        keys = keys * s + (cells[:, j] - low[j])
    return keys


def _bin_seeds(ref: Tensor, bandwidth: float, min_bin_freq: int, max_seeds: int) -> Tensor:
    """``(S, E)`` seeds: centroids of the grid bins (cell ``bandwidth``) of ``ref``.

    Bins are taken most populated first and thinned to a cover of radius ``bandwidth`` (a bin
    centroid within ``bandwidth`` of a more populated kept one is redundant: both climb to the same
    mode), so that a cluster spread over many bins still gets a seed; then capped at ``max_seeds``.
    Bins of equal population are taken in the lexicographic order of their cells.
    """
    cells = torch.floor(ref / bandwidth).to(torch.int64).cpu().numpy()  # (M, E), small
    keys = _row_keys(cells)
    if keys is None:  # a huge spread of cells: rows compared as rows (about 20x slower)
        _, inverse, counts = np.unique(cells, axis=0, return_inverse=True, return_counts=True)
    else:
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    inverse = torch.from_numpy(inverse.reshape(-1)).to(ref.device)
    counts = torch.from_numpy(counts).to(ref.device)
    sums = ref.new_zeros(counts.numel(), ref.shape[1]).index_add_(0, inverse, ref)
    centroids = sums / counts[:, None].to(ref.dtype)
    keep = counts >= min_bin_freq
    if not bool(keep.any()):
        log.debug("mean_shift: no bin holds %d sample points; seeding from every bin", min_bin_freq)
        keep = torch.ones_like(keep)
    centroids, counts = centroids[keep], counts[keep]
    centroids = centroids[torch.sort(counts, descending=True, stable=True).indices]
    return centroids[_greedy_cover(centroids, bandwidth)][:max_seeds]


def _seek_modes(seeds: Tensor, ref: Tensor, bandwidth: float, kernel: Kernel, iterations: int) -> Tensor:
    """Move every seed to a local maximum of the kernel density of ``ref``; ``(S, E)``."""
    modes = F.normalize(seeds, dim=1) if kernel == "vmf" else seeds.clone()
    reference = _Reference(ref, bandwidth, kernel)  # (M, E)
    active = torch.arange(modes.shape[0], device=modes.device)
    for _ in range(iterations):
        current = modes[active]
        w = reference.weights(current, relative=True)  # (A, M)
        mass = w.sum(dim=1, keepdim=True)
        moved = (w @ ref) / mass.clamp_min(1e-30)
        if kernel == "flat":  # a flat kernel with no neighbour stays (the others' rows hold a 1)
            moved = torch.where(mass > 0, moved, current)
        if kernel == "vmf":
            moved = F.normalize(moved, dim=1)
        modes[active] = moved
        shift = (moved - current).norm(dim=1)
        active = active[shift >= _TOL * bandwidth]
        if active.numel() == 0:
            break
    return modes


def _merge_modes(modes: Tensor, ref: Tensor, bandwidth: float, kernel: Kernel) -> Tensor:
    """Keep the densest modes, dropping any closer than ``bandwidth`` to a denser kept one; ``(K, E)``."""
    density = _Reference(ref, bandwidth, kernel).weights(modes, relative=False).sum(dim=1)  # (S,)
    if bool((density > 0).any()):  # a flat-kernel seed with no sample point in reach is no mode
        modes, density = modes[density > 0], density[density > 0]
    modes = modes[torch.sort(density, descending=True, stable=True).indices]
    return modes[_greedy_cover(modes, bandwidth)]


def find_modes(
    points: Tensor,
    *,
    bandwidth: float,
    kernel: Kernel = "gaussian",
    sample_size: int = 4096,
    max_seeds: int = 1024,
    iterations: int = 50,
    min_bin_freq: int = 1,
    rng: np.random.Generator,
) -> Tensor:
    """Modes ``(K, E)`` of the kernel density of ``points`` ``(N, E)`` (steps 1-4 of the module doc).

    For ``"vmf"`` the points must already be L2-normalised. ``K >= 1`` when ``N >= 1``.
    """
    n = points.shape[0]
    if n > sample_size:
        idx = np.sort(rng.choice(n, size=sample_size, replace=False))
        ref = points[torch.from_numpy(idx).to(points.device)]
    else:
        ref = points
    seeds = _bin_seeds(ref, bandwidth, min_bin_freq, max_seeds)
    modes = _seek_modes(seeds, ref, bandwidth, kernel, iterations)
    return _merge_modes(modes, ref, bandwidth, kernel)


def _argmax_rows(score: Tensor) -> Tensor:
    """``score.argmax(dim=1)``; through numpy on the CPU, whose row argmax is about 3x faster."""
    if score.device.type == "cpu":
        return torch.from_numpy(score.numpy().argmax(axis=1))
    return score.argmax(dim=1)


class _Modes:
    """Precomputed quantities of the modes for the nearest-mode search."""

    def __init__(self, modes: Tensor) -> None:
        k = modes.shape[0]
        self.modes = modes  # (K, E)
        self.mt = modes.T.contiguous()  # (E, K)
        self.sq = (modes * modes).sum(dim=1)  # (K,)
        self.half_sq = 0.5 * self.sq
        gap = torch.cdist(modes, modes) + torch.diag(modes.new_full((k,), float("inf")))
        # (K,) squared half-gap to the closest other mode (inf when K == 1), shrunk by 1e-3 so that
        # rounding in the expanded distance never accepts a point on the bisector
        self.radius2 = (0.5 * gap.min(dim=1).values) ** 2 * (1.0 - 1e-3)
        self.ones = modes.new_ones(modes.shape[1])  # (E,)
        self.chunk = max(1024, _CHUNK_ELEMENTS // k)

    def brute(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Nearest mode by ``argmax x.m - ||m||^2 / 2`` and the squared distance to it."""
        labels = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
        for start in range(0, x.shape[0], self.chunk):
            score = torch.addmm(-self.half_sq, x[start : start + self.chunk], self.mt)  # (c, K)
            labels[start : start + self.chunk] = _argmax_rows(score)
        diff = x - self.modes[labels]
        return labels, (diff * diff) @ self.ones


def _assign(x: Tensor, ms: _Modes, stride: int) -> tuple[Tensor, Tensor]:
    """Labels and squared distances of contiguous ``x`` ``(n, E)``: anchors every ``stride`` rows
    (recursively), their mode (else the next anchor's) verified for the rows in between, brute
    force for the rest."""
    m = x.shape[0] // stride
    if m < 64:
        return ms.brute(x)
    body = x[: m * stride]
    anchors, _ = _assign(body[::stride].contiguous(), ms, stride)  # (m,)
    # ||x - m_a||^2 = ||x||^2 - 2 x.m_a + ||m_a||^2 with a = the run's anchor, as (m, stride)
    xm = torch.bmm(body.view(m, stride, -1), ms.modes[anchors][:, :, None]).view(m, stride)
    d2 = ((body * body) @ ms.ones).view(m, stride).sub_(2.0 * xm).add_(ms.sq[anchors][:, None])
    bad = torch.nonzero((d2 >= ms.radius2[anchors][:, None]).view(-1)).squeeze(1)
    labels, d2 = anchors.repeat_interleave(stride), d2.view(-1).clamp_min_(0.0)
    if bad.numel() > 0:  # second guess: the next anchor's mode (a run that crosses a border)
        nxt = anchors[(bad // stride + 1).clamp_max(m - 1)]
        diff = body[bad] - ms.modes[nxt]
        d2_next = (diff * diff) @ ms.ones
        ok = d2_next < ms.radius2[nxt]
        labels[bad[ok]], d2[bad[ok]] = nxt[ok], d2_next[ok]
        bad = bad[~ok]
    if bad.numel() > 0:
        labels[bad], d2[bad] = ms.brute(body[bad])
    if m * stride < x.shape[0]:
        tail_labels, tail_d2 = ms.brute(x[m * stride :])
        labels, d2 = torch.cat([labels, tail_labels]), torch.cat([d2, tail_d2])
    return labels, d2


def assign_to_modes(
    points: Tensor, modes: Tensor, *, stride: int = 16, chunk_size: int = 1 << 18
) -> tuple[Tensor, Tensor]:
    """Exact nearest mode (Euclidean) of every point, in chunks of ``chunk_size`` rows.

    Shortcut, exact by the triangle inequality: if ``||x - m_a|| < r_a = min_b ||m_a - m_b|| / 2``
    then ``m_a`` is the nearest mode of ``x``. Every ``stride``-th point is assigned first (by the
    same procedure, recursively, down to a brute-force ``argmax x.m - ||m||^2 / 2``), the points in
    between take their anchor's mode as a guess (then the next anchor's), verified as above; only
    the points that fail both go to the ``(n, K)`` brute force. Pixels in raster order are spatially
    coherent, so almost every guess holds (cost ``O(N E)``); for shuffled points the cost falls back
    to ``O(N K E)``.

    Args:
        points: ``(N, E)``.
        modes: ``(K, E)``, ``K >= 1``.
        stride: spacing of the anchors.
        chunk_size: rows per chunk (bounds the memory).

    Returns:
        ``labels`` ``(N,)`` int64 in ``[0, K)`` and ``dist2`` ``(N,)`` squared distance to that mode.
    """
    if stride < 2:
        raise ValueError(f"assign_to_modes: stride must be >= 2, got {stride}")
    ms = _Modes(modes)
    labels = torch.empty(points.shape[0], dtype=torch.int64, device=points.device)
    dist2 = torch.empty(points.shape[0], dtype=points.dtype, device=points.device)
    for start in range(0, points.shape[0], chunk_size):
        stop = start + chunk_size
        labels[start:stop], dist2[start:stop] = _assign(points[start:stop].contiguous(), ms, stride)
    return labels, dist2


def _check_args(x: Tensor, bandwidth: float, kernel: str, sizes: dict[str, int]) -> None:
    if x.dim() != 2:
        raise ValueError(f"mean_shift: points must be (N, E), got shape {tuple(x.shape)}")
    if not bandwidth > 0:
        raise ValueError(f"mean_shift: bandwidth must be > 0, got {bandwidth}")
    if kernel not in _KERNELS:
        raise ValueError(f"mean_shift: kernel must be one of {_KERNELS}, got {kernel!r}")
    for name, value in sizes.items():
        if value < 1:
            raise ValueError(f"mean_shift: {name} must be >= 1, got {value}")


def mean_shift(
    points: Tensor | np.ndarray,
    *,
    bandwidth: float,
    kernel: Kernel = "gaussian",
    sample_size: int = 4096,
    max_seeds: int = 1024,
    iterations: int = 50,
    min_bin_freq: int = 1,
    seed: int = 0,
) -> Tensor | np.ndarray:
    """Cluster ``points`` by mean shift (see the module doc for the algorithm).

    Args:
        points: ``(N, E)`` tensor (any device) or array.
        bandwidth: kernel bandwidth (Gaussian sigma, flat radius, or vMF ``h`` with
            ``exp((cos - 1) / h^2)``), also the merge radius of modes and the seeding bin size.
        kernel: ``"gaussian"``, ``"flat"`` or ``"vmf"`` (points L2-normalised first).
        sample_size: reference points the modes are sought on.
        max_seeds: most seeds (most populated bins first).
        iterations: most mean-shift steps.
        min_bin_freq: sample points a bin needs to seed.
        seed: seed of the random sample.

    Returns:
        ``(N,)`` int64 labels ``0..K-1`` in order of decreasing mode density (modes of the residual
        rounds last), a tensor on the input's device for a tensor input, else a numpy array.
    """
    is_tensor = isinstance(points, torch.Tensor)
    x = _as_points(points)
    _check_args(x, bandwidth, kernel, {"sample_size": sample_size, "max_seeds": max_seeds,
                                       "iterations": iterations, "min_bin_freq": min_bin_freq})
    if kernel == "vmf":
        x = F.normalize(x, dim=1)
    if x.shape[0] == 0:
        labels = torch.zeros(0, dtype=torch.int64, device=x.device)
    else:
        opts = {"bandwidth": bandwidth, "kernel": kernel, "sample_size": sample_size, "max_seeds": max_seeds,
                "iterations": iterations, "min_bin_freq": min_bin_freq, "rng": np.random.default_rng(seed)}
        labels = _cluster(x, opts)
    return labels if is_tensor else labels.cpu().numpy()


def _cluster(x: Tensor, opts: dict) -> Tensor:
    """Modes of ``x`` ``(N, E)``, nearest-mode labels, and the residual rounds; ``(N,)`` ``0..K-1``."""
    bandwidth = opts["bandwidth"]
    modes = find_modes(x, **opts)
    labels, dist2 = assign_to_modes(x, modes)
    for _ in range(_RESIDUAL_ROUNDS):
        far = torch.nonzero(dist2 > (_RESIDUAL_FACTOR * bandwidth) ** 2).squeeze(1)
        if far.numel() == 0:
            break
        new = find_modes(x[far], **opts)
        keep = _greedy_cover(torch.cat([modes, new]), bandwidth)  # old modes first: all kept
        new = new[keep[keep >= modes.shape[0]] - modes.shape[0]]
        if new.shape[0] == 0:
            break
        # a point within half the distance from its mode to every new mode stays (triangle
        # inequality); the others are compared with the new modes
        reach2 = (0.5 * torch.cdist(modes, new).min(dim=1).values) ** 2  # (K_old,)
        check = torch.nonzero(dist2 >= reach2[labels]).squeeze(1)
        new_labels, new_dist2 = _Modes(new).brute(x[check])
        closer = new_dist2 < dist2[check]
        labels[check[closer]] = new_labels[closer] + modes.shape[0]
        dist2[check[closer]] = new_dist2[closer]
        modes = torch.cat([modes, new])
    return consecutive_ids(labels, modes.shape[0])
