from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.grouping.proposals import embedding_proposals


def _scene(side: int = 32):
    """Background (e0), square A (e1), rectangle B (e2) and a small square C sharing A's embedding."""
    inst = torch.zeros(side, side, dtype=torch.int64)
    inst[3:13, 3:13] = 1
    inst[16:28, 14:30] = 2
    inst[20:25, 2:7] = 3
    direction = torch.tensor([0, 1, 2, 1])[inst]
    emb = torch.nn.functional.one_hot(direction, 4).permute(2, 0, 1).float()
    emb = emb + 0.02 * torch.randn(emb.shape, generator=torch.Generator().manual_seed(0))
    return emb, inst


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_objects_are_top_proposals():
    emb, inst = _scene()
    props = embedding_proposals(emb)
    masks = [m for m, _ in props]
    for k in (1, 2, 3):
        target = inst.numpy() == k
        best = max(range(len(masks)), key=lambda i: _iou(masks[i], target))
        assert _iou(masks[best], target) == 1.0
        assert best < 5  # ranked among the first proposals, before background-like masks
    union = (inst.numpy() == 1) | (inst.numpy() == 3)
    assert max(_iou(m, union) for m in masks) == 1.0  # the two-piece cluster is a proposal too


def test_ranking_nms_and_types():
    emb, _ = _scene()
    props = embedding_proposals(emb, top_k=4)
    assert 1 <= len(props) <= 4
    scores = [s for _, s in props]
    assert scores == sorted(scores, reverse=True)
    for mask, score in props:
        assert mask.dtype == bool and mask.shape == (32, 32) and mask.sum() >= 16
        assert 0.0 <= score <= 1.0
    full = embedding_proposals(emb)
    for i in range(len(full)):
        for j in range(i):
            assert _iou(full[i][0], full[j][0]) < 0.9


def test_foreground_suppresses_background():
    emb, inst = _scene()
    fg = (inst > 0).float()
    props = embedding_proposals(emb, foreground=fg)
    background = inst.numpy() == 0
    matches = [score for mask, score in props if _iou(mask, background) == 1.0]
    assert matches == [0.0]  # the background is proposed, with score 0 (no foreground in it)
    assert props[0][1] > 0


def test_bad_input():
    emb, _ = _scene()
    with pytest.raises(ValueError, match=r"\(E, H, W\)"):
        embedding_proposals(emb[None])
    with pytest.raises(ValueError, match="foreground"):
        embedding_proposals(emb, foreground=torch.ones(5, 5))
    with pytest.raises(ValueError, match="bandwidths"):
        embedding_proposals(emb, bandwidths=())
