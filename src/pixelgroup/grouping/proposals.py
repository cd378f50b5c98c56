"""Ranked object proposals from a pixel embedding (the proposal demo of Kong & Fowlkes 2018).

The authors released no ranking, so this one is ours:

1. **Candidates**: the unit embedding of every pixel is clustered by :func:`mean_shift` (vMF kernel)
   at each bandwidth of ``bandwidths`` (small: parts, large: merged objects; the defaults 0.2-0.4
   bracket 0.25, the grouping bandwidth for the default margin 0.5, see
   :mod:`pixelgroup.methods.hypersphere`). Every
   8-connected component of a cluster is a candidate, and so is the whole cluster when it has
   several components (an object cut in two by an occluder). Candidates below ``min_size`` pixels
   are dropped.
2. **Score** (each factor in [0, 1]) of a mask ``M`` of area ``|M|`` in an ``H x W`` image:

       score = f(M) * c(M) * b(M) * (1 - |M| / (H W))

   ``f`` the mean foreground probability over ``M`` (1 without a foreground map); ``c`` the
   compactness ``(1 + ||mean_{p in M} x_p||) / 2``, the mean similarity ``(1 + cos) / 2`` of the
   unit embeddings ``x_p`` to their mean direction (1 when all agree); ``b`` the contour contrast,
   the mean of :func:`embedding_boundaries` over the pixels of ``M`` that have a 4-neighbour outside
   ``M`` (the image frame does not count; 0 when ``M`` has no such pixel): a good object is
   uniform inside and differs from its surroundings all along its outline; the last factor
   penalises masks that cover the whole image (the background).
3. **Ranking**: by decreasing score, greedily dropping a candidate whose IoU with a kept one is
   at least ``nms_iou`` (duplicates found at several bandwidths), until ``top_k`` are kept.
"""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F
from skimage import measure
from torch import Tensor

from .boundaries import embedding_boundaries
from .mean_shift import mean_shift


def _contour(components: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels with a 4-neighbour (inside the image) of another component."""
    edge = np.zeros(components.shape, dtype=bool)
    dy = components[1:] != components[:-1]
    dx = components[:, 1:] != components[:, :-1]
    edge[1:] |= dy
    edge[:-1] |= dy
    edge[:, 1:] |= dx
    edge[:, :-1] |= dx
    return edge


def _components(clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """8-connected components of a cluster label image: ``(H, W)`` ids ``0..C-1`` and the
    ``(C,)`` cluster of each component."""
    comp = measure.label(clusters + 1, background=0, connectivity=2) - 1  # equal values connect
    owner = np.zeros(int(comp.max()) + 1, dtype=np.int64)
    owner[comp.ravel()] = clusters.ravel()
    return comp, owner


def _level_candidates(
    x: np.ndarray, clusters: np.ndarray, fg: np.ndarray, boundary: np.ndarray, min_size: int
) -> list[tuple[float, np.ndarray]]:
    """``(score, mask)`` of the components and multi-component clusters of one clustering."""
    h, w = clusters.shape
    comp, owner = _components(clusters)
    flat, n_comp = comp.ravel(), len(owner)
    contour = _contour(comp).ravel()
    sums = {  # per component: area, embedding sum, foreground sum, contour count, boundary sum
        "area": np.bincount(flat, minlength=n_comp).astype(np.float64),
        "emb": np.stack([np.bincount(flat, weights=x[:, e], minlength=n_comp) for e in range(x.shape[1])], 1),
        "fg": np.bincount(flat, weights=fg, minlength=n_comp),
        "edge": np.bincount(flat, weights=contour, minlength=n_comp),
        "bnd": np.bincount(flat, weights=boundary * contour, minlength=n_comp),
    }
    groups = [[i] for i in range(n_comp)]
    for k in np.unique(owner):
        members = np.nonzero(owner == k)[0]
        if len(members) > 1:
            groups.append(list(members))
    out = []
    for members in groups:
        area = sums["area"][members].sum()
        if area < min_size:
            continue
        compact = 0.5 * (1.0 + np.linalg.norm(sums["emb"][members].sum(0)) / area)
        edges = sums["edge"][members].sum()
        contrast = sums["bnd"][members].sum() / edges if edges > 0 else 0.0
        score = sums["fg"][members].sum() / area * compact * contrast * (1.0 - area / (h * w))
        out.append((float(score), np.isin(comp, members)))
    return out


def _nms(
    candidates: list[tuple[float, np.ndarray]], iou: float, top_k: int
) -> list[tuple[np.ndarray, float]]:
    """Greedy suppression by mask IoU in order of decreasing score."""
    kept: list[tuple[np.ndarray, float]] = []
    for score, mask in sorted(candidates, key=lambda c: -c[0]):
        area = mask.sum()
        if all((m & mask).sum() / (area + m.sum() - (m & mask).sum()) < iou for m, _ in kept):
            kept.append((mask, score))
            if len(kept) == top_k:
                break
    return kept


def embedding_proposals(
    embedding: Tensor,
    *,
    foreground: Tensor | None = None,
    bandwidths: tuple[float, ...] = (0.2, 0.3, 0.4),
    top_k: int = 100,
    min_size: int = 16,
    nms_iou: float = 0.9,
    seed: int = 0,
) -> list[tuple[np.ndarray, float]]:
    """Ranked object proposals of one image (algorithm and score in the module doc).

    Args:
        embedding: ``(E, H, W)`` embedding (L2-normalised here), any device.
        foreground: optional ``(H, W)`` foreground probability in [0, 1] (apply the sigmoid to
            logits first).
        bandwidths: vMF mean-shift bandwidths, one clustering each.
        top_k: most proposals returned.
        min_size: smallest proposal, pixels.
        nms_iou: IoU at or above which the lower-scored of two proposals is dropped.
        seed: mean-shift seed.

    Returns:
        Up to ``top_k`` ``(mask (H, W) bool ndarray, score)`` pairs, best first.
    """
    if embedding.dim() != 3:
        raise ValueError(f"embedding_proposals: embedding must be (E, H, W), got {tuple(embedding.shape)}")
    e, h, w = embedding.shape
    if foreground is not None and tuple(foreground.shape) != (h, w):
        raise ValueError(
            f"embedding_proposals: foreground must be (H, W) = {(h, w)}, got {tuple(foreground.shape)}"
        )
    if not bandwidths or min(bandwidths) <= 0 or top_k < 1 or not 0.0 < nms_iou <= 1.0:
        raise ValueError(
            f"embedding_proposals: need positive bandwidths, top_k >= 1 and nms_iou in (0, 1], got "
            f"bandwidths={bandwidths}, top_k={top_k}, nms_iou={nms_iou}"
        )
    emb = embedding.detach().float()
    points = F.normalize(emb.reshape(e, h * w), dim=0).T.contiguous()  # (H*W, E)
    boundary = embedding_boundaries(emb).cpu().numpy().ravel().astype(np.float64)
    fg = np.ones(h * w) if foreground is None else foreground.detach().float().cpu().numpy().ravel()
    x = points.cpu().numpy().astype(np.float64)
    candidates = []
    for bw in bandwidths:
        clusters = mean_shift(points, bandwidth=bw, kernel="vmf", seed=seed).cpu().numpy().reshape(h, w)
        candidates += _level_candidates(x, clusters, fg, boundary, min_size)
    return _nms(candidates, nms_iou, top_k)

