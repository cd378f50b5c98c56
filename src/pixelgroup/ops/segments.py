"""von Mises-Fisher clustering of unit pixel embeddings into segments (SegSort, Hwang et al. 2019).

Hard EM under a mixture of vMF distributions with one shared concentration is spherical k-means:
the E-step assigns each pixel to the prototype with the largest cosine similarity, the M-step sets
each prototype to the normalised mean of its pixels. As in the authors' code, the pixel feature is
the unit embedding concatenated with its normalised position ``(y / H, x / W)`` (each in [0, 1)),
re-normalised to unit length, so that clusters are compact in space as well as in embedding; the
clusters start from a regular ``grid[0] x grid[1]`` partition of the image, which makes the result
deterministic and spatially coherent.

Segments are label images ``(B, H, W)`` int64, ids ``0..S_b - 1`` per image, ``-1`` = not clustered.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .coords import pixel_grid
from .labels import consecutive_ids

_EPS = 1e-12


def location_features(height: int, width: int, *, device=None, dtype=torch.float32) -> Tensor:
    """``(2, H, W)`` pixel positions ``(y / H, x / W)``, each in [0, 1)."""
    return pixel_grid(height, width, scale=(1.0 / max(height, 1), 1.0 / max(width, 1)), device=device, dtype=dtype)


def grid_labels(height: int, width: int, grid: tuple[int, int], *, device=None) -> Tensor:
    """``(H, W)`` int64 regular partition into ``gy x gx`` cells, ids in row-major order.

    Cell ``(i, j)`` holds rows ``y`` with ``floor(y * gy / H) == i``, so every cell is non-empty
    when ``gy <= H`` and ``gx <= W`` (the grid is clipped to the image size otherwise).
    """
    gy, gx = min(grid[0], height), min(grid[1], width)
    rows = torch.arange(height, device=device) * gy // height
    cols = torch.arange(width, device=device) * gx // width
    return rows[:, None] * gx + cols[None, :]


def _features(embedding: Tensor, with_coords: bool, coord_weight: float) -> Tensor:
    """``(B, E, H, W)`` -> unit clustering features ``(B, H*W, E [+ 2])``."""
    b, _, h, w = embedding.shape
    x = F.normalize(embedding, dim=1, eps=_EPS)
    if with_coords:
        loc = location_features(h, w, device=x.device, dtype=x.dtype) * coord_weight
        x = torch.cat([x, loc.expand(b, -1, -1, -1)], dim=1)
        x = F.normalize(x, dim=1, eps=_EPS)
    return x.flatten(2).transpose(1, 2)  # (B, H*W, D)


def spherical_kmeans(
    embedding: Tensor,
    *,
    grid: tuple[int, int] = (5, 5),
    iterations: int = 10,
    with_coords: bool = True,
    coord_weight: float = 1.0,
    valid: Tensor | None = None,
) -> Tensor:
    """Cluster each image's pixel embeddings into at most ``grid[0] * grid[1]`` segments.

    Args:
        embedding: ``(B, E, H, W)`` or ``(E, H, W)`` raw embedding (L2-normalised here); no gradient
            flows through the clustering.
        grid: initial cluster centres per axis ``(gy, gx)``: the mean feature of each grid cell.
        iterations: EM (E-step + M-step) rounds.
        with_coords: append the pixel position ``(y / H, x / W)`` before re-normalising.
        coord_weight: scale of the position features (1 = the authors' setting; larger = more
            compact, superpixel-like segments).
        valid: optional ``(B, H, W)`` / ``(H, W)`` bool; other pixels get segment -1 and do not
            move the prototypes.

    Returns:
        ``(B, H, W)`` (or ``(H, W)``) int64 segments, consecutive ids from 0 per image (empty
        clusters dropped), -1 where ``valid`` is False.
    """
    if embedding.dim() not in (3, 4):
        raise ValueError(
            f"spherical_kmeans: embedding must be (B, E, H, W) or (E, H, W), got {tuple(embedding.shape)}"
        )
    if len(grid) != 2 or min(grid) < 1 or iterations < 0:
        raise ValueError(
            f"spherical_kmeans: grid must be two ints >= 1 and iterations >= 0, got {grid}, {iterations}"
        )
    single = embedding.dim() == 3
    emb = embedding.detach()[None] if single else embedding.detach()
    b, _, h, w = emb.shape
    if valid is None:
        valid = torch.ones(b, h, w, dtype=torch.bool, device=emb.device)
    valid = valid[None] if valid.dim() == 2 else valid
    if valid.shape != (b, h, w):
        raise ValueError(
            f"spherical_kmeans: valid {tuple(valid.shape)} does not match embedding {tuple(emb.shape)}"
        )
    feats = _features(emb.float(), with_coords, coord_weight)  # (B, N, D)
    mask = valid.reshape(b, -1)
    labels = grid_labels(h, w, grid, device=emb.device).reshape(1, -1).expand(b, -1)
    k = int(labels.max()) + 1
    masked = feats * mask.unsqueeze(-1).to(feats.dtype)  # ignored pixels do not move prototypes
    for _ in range(iterations):
        labels = _assign(feats, _m_step(masked, labels, k))
    labels = torch.where(mask, labels, torch.full_like(labels, -1))
    out = consecutive_ids(labels, k).reshape(b, h, w)
    return out[0] if single else out


def _m_step(feats: Tensor, labels: Tensor, k: int) -> Tensor:
    """Prototypes ``(B, K, D)``: normalised sums of each cluster's (masked) features; empty -> 0."""
    b, _, d = feats.shape
    sums = feats.new_zeros(b, k, d).scatter_add_(1, labels.unsqueeze(-1).expand(-1, -1, d), feats)
    return F.normalize(sums, dim=-1, eps=_EPS)


def _assign(feats: Tensor, protos: Tensor) -> Tensor:
    """E-step: ``(B, N)`` index of the most similar non-empty prototype."""
    empty = (protos.abs().sum(-1) == 0).unsqueeze(1)  # (B, 1, K)
    bias = torch.zeros_like(empty, dtype=feats.dtype).masked_fill(empty, -10.0)  # unit features: sim >= -1
    return torch.baddbmm(bias, feats, protos.transpose(1, 2)).argmax(-1)  # (B, N, K) -> (B, N)


def segment_index(segments: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Global segment index of each pixel (``-1`` where ``segments < 0``), image and id of each.

    Segments are ordered by (image, id). Returns ``(inverse (B*H*W,), image (S,), segment (S,))``.
    """
    b = segments.shape[0]
    flat = segments.reshape(b, -1).long()
    span = int(flat.max().clamp_min(0)) + 1
    key = flat + span * torch.arange(b, device=flat.device)[:, None]
    key = torch.where(flat >= 0, key, torch.full_like(key, b * span)).reshape(-1)  # b*span = ignored
    present = torch.bincount(key, minlength=b * span + 1)[: b * span] > 0
    new_id = torch.cumsum(present.long(), 0) - 1
    new_id = torch.cat([new_id, new_id.new_full((1,), -1)])
    uniq = torch.nonzero(present).squeeze(1)
    return new_id[key], uniq // span, uniq % span


def segment_prototypes(embedding: Tensor, segments: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Unit mean direction of every segment of every image (differentiable).

    Args:
        embedding: ``(B, E, H, W)`` raw embedding (L2-normalised per pixel here).
        segments: ``(B, H, W)`` int segment ids, ``< 0`` = ignored pixel.

    Returns:
        ``prototypes (S, E)`` unit vectors, ``image (S,)`` batch index and ``segment (S,)`` id of
        each, ordered by (image, id).
    """
    if embedding.dim() != 4 or segments.shape != (embedding.shape[0], *embedding.shape[2:]):
        raise ValueError(
            f"segment_prototypes: need embedding (B, E, H, W) and segments (B, H, W), "
            f"got {tuple(embedding.shape)} and {tuple(segments.shape)}"
        )
    e = embedding.shape[1]
    x = F.normalize(embedding, dim=1, eps=_EPS).permute(0, 2, 3, 1).reshape(-1, e)  # (B*H*W, E)
    inverse, image, seg = segment_index(segments)
    keep = inverse >= 0
    sums = x.new_zeros(image.numel(), e).index_add(0, inverse[keep], x[keep])
    return F.normalize(sums, dim=1, eps=_EPS), image, seg


def segment_labels(segments: Tensor, classes: Tensor, *, ignore: int = -1) -> Tensor:
    """Majority class of every segment, in the order of :func:`segment_prototypes`.

    Args:
        segments: ``(B, H, W)`` int segment ids, ``< 0`` = ignored pixel.
        classes: ``(B, H, W)`` int class per pixel; ``ignore`` and negative values do not vote.
        ignore: class value that does not vote (255 and -1 are the usual ones).

    Returns:
        ``(S,)`` int64 majority class (ties -> smallest class), -1 for a segment without votes.
    """
    if classes.shape != segments.shape:
        raise ValueError(
            f"segment_labels: classes {tuple(classes.shape)} do not match segments {tuple(segments.shape)}"
        )
    inverse, image, _ = segment_index(segments)
    cls = classes.reshape(-1).long()
    vote = (inverse >= 0) & (cls >= 0) & (cls != ignore)
    n_cls = int(cls[vote].max()) + 1 if vote.any() else 1
    counts = torch.zeros(image.numel() * n_cls, dtype=torch.long, device=cls.device)
    counts.index_add_(0, inverse[vote] * n_cls + cls[vote], torch.ones_like(cls[vote]))
    counts = counts.reshape(-1, n_cls)
    best = counts.argmax(1)
    return torch.where(counts.sum(1) > 0, best, torch.full_like(best, -1))


def refine_segments(segments: Tensor, classes: Tensor) -> Tensor:
    """Intersect segments with class regions: one new segment per (segment, class) pair.

    Args:
        segments: ``(B, H, W)`` int ids, ``< 0`` ignored.
        classes: ``(B, H, W)`` int classes, ``< 0`` ignored.

    Returns:
        ``(B, H, W)`` int64 consecutive ids per image (``-1`` where either input is negative), each
        segment pure in class — what the authors' supervised loss trains on.
    """
    b = segments.shape[0]
    valid = (segments >= 0) & (classes >= 0)
    n_cls = int(classes.max().clamp_min(0)) + 1
    key = (segments.long().clamp_min(0) * n_cls + classes.long().clamp_min(0)).reshape(b, -1)
    key = torch.where(valid.reshape(b, -1), key, torch.full_like(key, -1))
    span = int(key.max().clamp_min(0)) + 1
    return consecutive_ids(key, span).reshape(segments.shape)
