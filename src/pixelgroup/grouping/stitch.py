"""Stitching block-wise groupings into one label image (StarDist ``predict_instances_big`` rule).

An image is cut into blocks (cores) on a grid; each block is grouped together with a halo of
context around it (the *window*). An object found in a window is kept by that block only if its
**centroid** (mean pixel position, exact in integer arithmetic, so every window that sees the
object whole computes the same point) lies inside the block's core; every other object is dropped
and found by the neighbour that owns it. The cores tile the image, so an object seen whole by its
neighbours gets exactly one id.

Limit: an object whose extent exceeds the halo can be cut by the window's outer edge; its centroid
then moves and it may be split or duplicated. :func:`owned_objects` reports kept objects that touch
the window's outer edge (not the image border) so the caller can warn: raise the halo.

Coordinates are ``(y, x)``; windows and cores are ``(y0, y1, x0, x1)`` half-open, in image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Box = tuple[int, int, int, int]
"""``(y0, y1, x0, x1)`` half-open pixel box."""

MIN_FREE_SHARE = 0.5
"""A kept object is painted only if at least this share of its pixels is still unlabelled."""


@dataclass
class Owned:
    """The objects of one window that its block owns.

    Attributes:
        keep: ``(N + 1,)`` bool, ``keep[i]`` for window label ``i`` (``keep[0]`` is False).
        touching: number of kept objects touching the window's outer edge (inside the image).
    """

    keep: np.ndarray
    touching: int


def centroids(labels: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer pixel sums and areas of labels ``1..n``: ``(sums (n + 1, 2) int64 (y, x), area (n + 1,))``.

    Sums are integers, so the centroid ``sums / area`` of the same pixel set is bit-identical in
    every window that contains it (after adding the window origin times the area).
    """
    h, w = labels.shape
    flat = labels.reshape(-1).astype(np.int64)
    area = np.bincount(flat, minlength=n + 1)
    ys = np.repeat(np.arange(h, dtype=np.int64), w)
    xs = np.tile(np.arange(w, dtype=np.int64), h)
    sy = np.bincount(flat, weights=ys, minlength=n + 1).round().astype(np.int64)
    sx = np.bincount(flat, weights=xs, minlength=n + 1).round().astype(np.int64)
    return np.stack([sy, sx], axis=1), area


def owned_objects(labels: np.ndarray, n: int, *, window: Box, core: Box, image_shape: tuple[int, int]) -> Owned:
    """Which of the window's objects ``1..n`` belong to ``core`` (centroid inside it).

    Args:
        labels: ``(h, w)`` int labels of the window, ``0`` background.
        n: number of labels (``labels.max()``).
        window: the window's box in the image (``labels`` covers it).
        core: the block's core box, inside ``window``.
        image_shape: ``(H, W)``, to tell the image border from a window edge.
    """
    sums, area = centroids(labels, n)
    wy0, wy1, wx0, wx1 = window
    cy0, cy1, cx0, cx1 = core
    safe = np.maximum(area, 1)
    # centroid in image pixels, floor((sum + origin * area) / area) with exact integers
    gy = (sums[:, 0] + wy0 * area) // safe
    gx = (sums[:, 1] + wx0 * area) // safe
    keep = (area > 0) & (gy >= cy0) & (gy < cy1) & (gx >= cx0) & (gx < cx1)
    keep[0] = False
    edge = np.zeros(n + 1, bool)
    h, w = labels.shape
    for inside, line in ((wy0 > 0, labels[0]), (wy1 < image_shape[0], labels[h - 1]),
                         (wx0 > 0, labels[:, 0]), (wx1 < image_shape[1], labels[:, w - 1])):
        if inside:
            edge[np.unique(line)] = True
    edge[0] = False
    return Owned(keep=keep, touching=int((keep & edge).sum()))


def paint_owned(region: np.ndarray, labels: np.ndarray, keep: np.ndarray,
                next_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Paint the kept window labels into ``region`` (the current global labels under the window).

    Pixels already labelled (by an earlier block) keep their id; a kept object with less than
    :data:`MIN_FREE_SHARE` of its pixels free is dropped (it would be a duplicate). Accepted objects
    get ids ``next_id, next_id + 1, ...`` in increasing window-label order (the grouper's score order).

    Args:
        region: ``(h, w)`` int global labels under the window; modified in place and returned.
        labels: ``(h, w)`` window labels ``0..N``.
        keep: ``(N + 1,)`` bool from :func:`owned_objects`.
        next_id: the first free global id.

    Returns:
        ``(region, accepted)``: ``accepted`` the window labels painted, in id order.
    """
    n = keep.shape[0] - 1
    cand = keep[labels]
    free = region == 0
    area = np.bincount(labels[cand], minlength=n + 1)
    free_area = np.bincount(labels[cand & free], minlength=n + 1)
    ok = keep & (free_area >= MIN_FREE_SHARE * np.maximum(area, 1)) & (free_area > 0)
    accepted = np.flatnonzero(ok)
    lut = np.zeros(n + 1, np.int64)
    lut[accepted] = np.arange(next_id, next_id + accepted.size)
    paint = ok[labels] & free
    region[paint] = lut[labels[paint]]
    return region, accepted
