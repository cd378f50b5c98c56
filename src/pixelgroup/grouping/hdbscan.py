"""HDBSCAN grouping of foreground pixel embeddings (scikit-learn >= 1.3 ``sklearn.cluster.HDBSCAN``).

Density-based and bandwidth-free: unlike mean shift it needs no radius in embedding units, only a
minimum cluster size, so it also works on embeddings whose scale drifts from the loss margins.

Pipeline on one image:
    1. foreground = ``sigmoid(output.foreground) > fg_threshold`` (every pixel when there is no
       foreground head);
    2. HDBSCAN on a deterministic random subsample of at most ``max_points`` foreground embeddings
       (HDBSCAN is roughly O(N log N) but with a large constant: ~0.1 s for 2 000 points, ~1 s for
       8 000 points of dimension 8 on one CPU core);
    3. every foreground pixel takes the label of its nearest subsample point (exact 1-nearest
       neighbour in embedding space, ``sklearn.neighbors.NearestNeighbors``), which also spreads
       the clusters to the pixels that were not subsampled;
    4. instances smaller than ``min_size`` pixels are dropped, the rest numbered 1..N.

HDBSCAN runs with ``allow_single_cluster=True`` by default (``single_cluster``): without it an
image holding ONE instance comes out as all noise, i.e. no instance at all. The price: on poorly
separated embeddings the root may win over a split, merging instances.

Noise points (HDBSCAN label -1): with ``noise="nearest"`` (default) they are left out of the
reference set of step 3, so every foreground pixel joins its nearest *clustered* point; with
``noise="background"`` they stay in the reference set and pixels nearest to a noise point become
background. Score of an instance = mean HDBSCAN membership probability of its clustered subsample
points (in [0, 1]).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from sklearn.cluster import HDBSCAN
from sklearn.neighbors import NearestNeighbors

from ..types import Instances, ModelOutput, as_numpy
from .base import GROUPERS
from .classes import assign_classes

Noise = Literal["nearest", "background"]


def _foreground_points(output: ModelOutput, fg_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """``(N, E)`` float64 embeddings of the foreground pixels and their ``(N,)`` flat indices."""
    emb = output.embedding
    if emb is None or emb.dim() != 3:
        shape = None if emb is None else tuple(emb.shape)
        raise ValueError(
            f"hdbscan_grouping: needs output.embedding of shape (E, H, W) for ONE image, got {shape}"
        )
    e, h, w = emb.shape
    if output.foreground is None:
        mask = torch.ones(h * w, dtype=torch.bool, device=emb.device)
    else:
        if output.foreground.shape != (1, h, w):
            raise ValueError(
                f"hdbscan_grouping: foreground must be (1, {h}, {w}), got {tuple(output.foreground.shape)}"
            )
        mask = (torch.sigmoid(output.foreground.float()) > fg_threshold).reshape(-1)
    index = as_numpy(torch.nonzero(mask).reshape(-1))
    points = as_numpy(emb.reshape(e, -1)[:, mask].T).astype(np.float64)  # (N, E)
    return points, index


def _cluster_subsample(
    points: np.ndarray,
    *,
    min_cluster_size: int,
    min_samples: int | None,
    max_points: int,
    single_cluster: bool,
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices into ``points`` of the subsample, its HDBSCAN labels (-1 noise) and probabilities."""
    n = len(points)
    if n > max_points:
        sub = np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))
    else:
        sub = np.arange(n)
    # min_cluster_size is given in image pixels; express it in subsample points.
    mcs = max(2, int(round(min_cluster_size * len(sub) / n)))
    ms = None if min_samples is None else max(1, min(min_samples, len(sub) - 1))
    model = HDBSCAN(min_cluster_size=mcs, min_samples=ms, allow_single_cluster=single_cluster, copy=True)
    model.fit(points[sub])
    return sub, model.labels_, model.probabilities_


def _relabel(assigned: np.ndarray, probs: np.ndarray, ref_labels: np.ndarray, min_size: int):
    """Drop clusters under ``min_size`` pixels; number the rest 1..N by decreasing size."""
    ids, counts = np.unique(assigned[assigned >= 0], return_counts=True)
    keep = ids[counts >= min_size][np.argsort(-counts[counts >= min_size], kind="stable")]
    lut = np.zeros(int(ids.max()) + 2 if ids.size else 1, np.int32)  # lut[label + 1], noise -> 0
    lut[keep + 1] = np.arange(1, keep.size + 1, dtype=np.int32)
    scores = np.array([probs[ref_labels == k].mean() for k in keep], np.float32)
    return lut[assigned + 1], scores


@GROUPERS.register("hdbscan")
def hdbscan_grouping(
    output: ModelOutput,
    *,
    min_cluster_size: int = 16,
    min_samples: int | None = None,
    fg_threshold: float = 0.5,
    max_points: int = 4000,
    min_size: int = 16,
    noise: Noise = "nearest",
    single_cluster: bool = True,
    seed: int = 0,
) -> Instances:
    """Group one image's foreground embeddings with HDBSCAN (see the module docstring).

    Args:
        output: one image's raw outputs; ``embedding`` ``(E, H, W)``, optional ``foreground``
            ``(1, H, W)`` logits.
        min_cluster_size: smallest cluster HDBSCAN keeps, in image pixels (scaled to the subsample
            by ``points clustered / foreground pixels``). An instance smaller than this is not a
            cluster: with ``noise="nearest"`` its pixels join a neighbouring instance.
        min_samples: HDBSCAN density smoothing, in subsample points (not scaled); ``None`` = the
            scaled ``min_cluster_size``.
        fg_threshold: foreground probability threshold.
        max_points: at most this many foreground pixels are clustered (seeded subsample).
        min_size: instances with fewer pixels become background.
        noise: ``"nearest"`` = noise pixels join the nearest cluster; ``"background"`` = pixels whose
            nearest subsample point is noise become background.
        single_cluster: let HDBSCAN return one cluster (``allow_single_cluster``); see module doc.
        seed: seed of the subsample.

    Returns:
        :class:`Instances` with ``(H, W)`` labels numbered ``1..N`` by decreasing size and ``(N,)``
        scores (mean HDBSCAN probability); with a ``semantic`` head (``(K + 1, H, W)`` logits)
        classes ``1..K`` and scores x class probability (:func:`.classes.assign_classes`).
    """
    if min_cluster_size < 2:
        raise ValueError(f"hdbscan_grouping: min_cluster_size must be >= 2, got {min_cluster_size}")
    if max_points < 2:
        raise ValueError(f"hdbscan_grouping: max_points must be >= 2, got {max_points}")
    if not 0.0 <= fg_threshold < 1.0:
        raise ValueError(f"hdbscan_grouping: fg_threshold must be in [0, 1), got {fg_threshold}")
    if min_size < 1:
        raise ValueError(f"hdbscan_grouping: min_size must be >= 1, got {min_size}")
    if noise not in ("nearest", "background"):
        raise ValueError(f"hdbscan_grouping: noise must be 'nearest' or 'background', got {noise!r}")
    points, index = _foreground_points(output, fg_threshold)
    h, w = output.embedding.shape[1:]
    labels = np.zeros(h * w, np.int32)
    if len(points) < max(min_cluster_size, 2):
        return Instances(labels.reshape(h, w))
    sub, sub_labels, probs = _cluster_subsample(
        points,
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        max_points=max_points,
        single_cluster=single_cluster,
        seed=seed,
    )
    ref = sub_labels >= 0 if noise == "nearest" else np.ones(len(sub), bool)
    if not (sub_labels >= 0).any():
        return Instances(labels.reshape(h, w))
    nn_index = NearestNeighbors(n_neighbors=1).fit(points[sub[ref]])
    nearest = nn_index.kneighbors(points, return_distance=False)[:, 0]
    assigned = sub_labels[ref][nearest]  # (N,), -1 = noise
    relabelled, scores = _relabel(assigned, probs, sub_labels, min_size)
    labels[index] = relabelled
    inst = Instances(labels.reshape(h, w), scores)
    return inst if output.semantic is None else assign_classes(inst, output.semantic)
