"""Tests of pixelgroup.metrics.boundary (BSDS ODS / OIS / AP, pixel correspondence)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter
from skimage.morphology import thin

from pixelgroup.metrics.boundary import (
    BoundaryEvaluator,
    correspond_pixels,
    label_boundaries,
    thin_boundaries,
)


def _ring(size: int = 96, lo: int = 20, hi: int = 80) -> np.ndarray:
    """One-pixel-wide boundary of the square [lo:hi, lo:hi] (inner mode)."""
    labels = np.zeros((size, size), np.int64)
    labels[lo:hi, lo:hi] = 1
    return label_boundaries(labels)


def test_label_boundaries_inner_ring():
    labels = np.zeros((8, 8), np.int64)
    labels[2:6, 2:6] = 3
    raw = label_boundaries(labels, thinned=False)
    # inner mode: the 4x4 square's own border pixels, 16 - 4 (interior 2x2) = 12 of them
    assert raw.dtype == bool and raw.sum() == 12
    assert raw[2, 2] and raw[5, 5] and not raw[3, 3] and not raw[1, 1]
    # thinning drops the 4 corners, which are redundant for 8-connectivity: 12 - 4 = 8
    b = label_boundaries(labels)
    assert b.sum() == 8 and not b[2, 2] and b[2, 3]
    assert label_boundaries(labels, mode="thick", thinned=False).sum() > raw.sum()


@pytest.mark.parametrize("seed", range(4))
def test_thin_boundaries_equals_skimage_thin(seed):
    rng = np.random.default_rng(seed)
    for _ in range(25):
        shape = tuple(rng.integers(1, 48, 2))
        smooth = gaussian_filter(rng.random(shape), 2 * rng.random()) > 0.3 + 0.4 * rng.random()
        noisy = rng.random(shape) < rng.random()
        for mask in (smooth, noisy, np.ones(shape, bool)):
            assert np.array_equal(thin_boundaries(mask), thin(mask))


def test_correspond_pixels_is_one_to_one():
    # one true pixel at (5, 5); two predicted neighbours at distance 1: only one may take it
    true = np.zeros((11, 11), bool)
    true[5, 5] = True
    pred = np.zeros_like(true)
    pred[5, 4] = pred[5, 6] = True
    pm, tm = correspond_pixels(pred, true, max_dist=1.0)
    assert pm.sum() == 1 and tm.sum() == 1
    pm, tm = correspond_pixels(pred, true, max_dist=0.5)  # out of tolerance
    assert pm.sum() == 0 and tm.sum() == 0


def test_perfect_prediction_gives_one():
    gt = _ring()
    ev = BoundaryEvaluator()
    ev.update(gt.astype(float), gt)
    r = ev.compute()
    assert r["ods"] == 1.0 and r["ois"] == 1.0 and r["ois_mean"] == 1.0
    assert r["ods_precision"] == 1.0 and r["ods_recall"] == 1.0


def test_one_pixel_shift_is_within_tolerance():
    # tolerance 0.0075 * diagonal(96 x 96) = 1.02 px >= 1 px shift
    gt = _ring()
    ev = BoundaryEvaluator()
    ev.update(np.roll(gt, 1, axis=1).astype(float), gt)
    assert ev.compute()["ods"] == 1.0


def test_far_off_prediction_scores_low():
    gt = _ring()
    ev = BoundaryEvaluator()
    ev.update(np.roll(gt, (10, 10), axis=(0, 1)).astype(float), gt)
    assert ev.compute()["ods"] < 0.1


def test_several_annotators_bsds_rule():
    # annotator 1 draws the ring A, annotator 2 draws A plus a line L; the prediction is A.
    # Recall sums over annotators: (|A| + |A|) / (|A| + |A| + |L|); every predicted pixel matches -> P = 1.
    ring = _ring()
    line = np.zeros_like(ring)
    line[90, 10:70] = True
    ev = BoundaryEvaluator(n_thresholds=9)
    ev.update(ring.astype(float), [ring, ring | line])
    r = ev.compute()
    a, n_line = ring.sum(), line.sum()
    assert r["ods_recall"] == pytest.approx(2 * a / (2 * a + n_line))
    assert r["ods_precision"] == 1.0


def test_graded_map_ranks_above_noise_and_ois_is_per_image():
    rng = np.random.default_rng(0)
    gt = _ring(64, 12, 52)
    good = np.where(gt, 0.9, 0.05 * rng.random(gt.shape))
    noise = rng.random(gt.shape)
    ev_good, ev_noise = BoundaryEvaluator(n_thresholds=19), BoundaryEvaluator(n_thresholds=19)
    ev_good.update(good, gt)
    ev_noise.update(noise, gt)
    g, n = ev_good.compute(), ev_noise.compute()
    assert g["ods"] > 0.95 and n["ods"] < 0.5
    assert g["ap"] > n["ap"]
    # two images whose best thresholds differ: OIS (each image at its own threshold) >= ODS
    ev = BoundaryEvaluator(n_thresholds=19)
    ev.update(np.where(gt, 0.3, 0.0), gt)
    ev.update(np.where(gt, 0.9, 0.5 * (rng.random(gt.shape) < 0.3)), gt)
    r = ev.compute()
    assert r["ois"] == pytest.approx(1.0) and r["ods"] < 1.0


def test_bad_inputs():
    ev = BoundaryEvaluator()
    gt = _ring(16, 4, 12)
    with pytest.raises(ValueError, match=r"prob must be in \[0, 1\]"):
        ev.update(gt * 2.0, gt)
    with pytest.raises(ValueError, match="must be bool"):
        ev.update(gt.astype(float), gt.astype(int))
    with pytest.raises(ValueError, match="same shape"):
        ev.update(gt.astype(float), gt[:8])
    with pytest.raises(ValueError, match="empty list"):
        ev.update(gt.astype(float), [])
    with pytest.raises(ValueError, match="n_thresholds must be >= 1"):
        BoundaryEvaluator(n_thresholds=0)
