"""Tests of pixelgroup.metrics.proposals.ProposalEvaluator (AR@k)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pixelgroup.metrics.proposals import ProposalEvaluator


def _scene() -> tuple[np.ndarray, np.ndarray]:
    """gt: A = [0:4, 0:4] (id 1), B = [8:12, 8:12] (id 2). Proposals, best first: A exact, the left half
    of B ([8:12, 8:10], IoU 8 / 16 = 0.5 with B), B exact."""
    gt = np.zeros((12, 12), np.int64)
    gt[0:4, 0:4] = 1
    gt[8:12, 8:12] = 2
    props = np.zeros((3, 12, 12), bool)
    props[0, 0:4, 0:4] = True
    props[1, 8:12, 8:10] = True
    props[2, 8:12, 8:12] = True
    return gt, props


def test_average_recall_by_hand():
    # top-1: A recalled at all 10 thresholds, B at none -> AR@1 = (10 + 0) / 20 = 0.5
    # top-2: B's best IoU is 0.5, recalled at t = 0.5 only -> AR@2 = (10 + 1) / 20 = 0.55
    # top-3: both exact -> AR@3 = 1
    gt, props = _scene()
    ev = ProposalEvaluator(ks=(1, 2, 3, 100))
    ev.update(gt, props)
    r = ev.compute()
    assert r["ar@1"] == pytest.approx(0.5)
    assert r["ar@2"] == pytest.approx(0.55)
    assert r["ar@3"] == 1.0 and r["ar@100"] == 1.0
    assert r["n_gt"] == 2


def test_rle_input_equals_masks():
    gt, props = _scene()
    rles = [mask_utils.encode(np.asfortranarray(p.astype(np.uint8))) for p in props]
    rles = [dict(r, counts=r["counts"].decode()) for r in rles]
    a, b = ProposalEvaluator(ks=(1, 2)), ProposalEvaluator(ks=(1, 2))
    a.update(gt, props)
    b.update(gt, rles)
    assert a.compute() == b.compute()


def test_one_proposal_may_recall_two_objects():
    # a proposal covering A and B (side by side, 16 px each) has IoU 16 / 32 = 0.5 with both: without
    # one-to-one matching both count as recalled at t = 0.5.
    gt = np.zeros((4, 8), np.int64)
    gt[:, :4], gt[:, 4:] = 1, 2
    ev = ProposalEvaluator(ks=(1,), thresholds=(0.5,))
    ev.update(gt, np.ones((1, 4, 8), bool))
    assert ev.compute()["ar@1"] == 1.0


def test_dataset_average_over_objects_and_empty_cases():
    gt, props = _scene()
    ev = ProposalEvaluator(ks=(1,))
    ev.update(gt, props)  # A recalled, B not
    lone = np.zeros_like(gt)
    lone[5:7, 5:7] = 4
    ev.update(lone, np.zeros((0, 12, 12), bool))  # no proposal: not recalled
    assert ev.compute()["ar@1"] == pytest.approx(1 / 3)  # 1 of 3 objects, at every threshold
    assert ev.compute()["n_gt"] == 3
    ev.reset()
    assert math.isnan(ev.compute()["ar@1"])


def test_void_pixels_are_ignored():
    gt, props = _scene()
    gt[8:12, 10:12] = -1  # right half of B becomes void: B is now exactly the half-proposal
    ev = ProposalEvaluator(ks=(2,))
    ev.update(gt, props)
    assert ev.compute()["ar@2"] == 1.0


def test_bad_inputs():
    gt, props = _scene()
    ev = ProposalEvaluator()
    with pytest.raises(ValueError, match="proposals have size"):
        ev.update(gt, props[:, :6])
    with pytest.raises(ValueError, match="bool"):
        ev.update(gt, props * 0.5)
    with pytest.raises(ValueError, match=r"\(K, H, W\) masks"):
        ev.update(gt, props[0])
    with pytest.raises(ValueError, match="ks must be positive"):
        ProposalEvaluator(ks=(0,))
