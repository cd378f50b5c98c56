from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from pixelgroup.config import config_from_dict
from pixelgroup.engine.state import fit_state
from pixelgroup.grouping.argmax import argmax_grouping
from pixelgroup.grouping.segsort import explain_segments, image_prototypes, segsort_grouping
from pixelgroup.losses.segsort import SegSortLoss
from pixelgroup.losses.semantic import SemanticCrossEntropyLoss, semantic_cross_entropy
from pixelgroup.methods.base import METHODS
from pixelgroup.methods.recipes import SEGSORT, SOFTMAX
from pixelgroup.types import ModelOutput

DIRECTIONS = torch.eye(6)[:4]  # a perfect embedding: one orthonormal direction per class 0..3


class Oracle(nn.Module):
    """Reads the class stored in image channel 0 and returns its direction (plus a little noise)."""

    multiple = 4

    def forward(self, image: torch.Tensor) -> ModelOutput:
        cls = image[:, 0].round().long().clamp(0, 3)
        g = torch.Generator().manual_seed(0)
        emb = DIRECTIONS[cls].permute(0, 3, 1, 2) + 0.01 * torch.randn(
            cls.shape[0], 6, *cls.shape[1:], generator=g)
        return ModelOutput(embedding=emb)


def _scene(seed: int, h: int = 30, w: int = 30) -> np.ndarray:
    """(H, W) int64 classes: background with one box each of classes 1, 2, 3 at random places."""
    rng = np.random.default_rng(seed)
    c = np.zeros((h, w), np.int64)
    for k in (1, 2, 3):
        y, x = rng.integers(0, h - 10), rng.integers(0, w - 10)
        c[y : y + 10, x : x + 10] = k
    return c


def _samples(n: int = 6, ignore_border: bool = False) -> list[dict]:
    out = []
    for i in range(n):
        c = _scene(i)
        img = np.repeat(c[..., None].astype(np.float32), 3, axis=-1)
        if ignore_border:
            c = c.copy()
            c[0] = -1
        out.append({"image": img, "classes": c, "name": f"img{i}"})
    return out


def _output_for(c: np.ndarray) -> ModelOutput:
    image = torch.from_numpy(np.repeat(c[None, None].astype(np.float32), 3, axis=1))
    return Oracle()(image).select(0)


def test_registered_heads_and_loss():
    method = METHODS.get("segsort")
    assert method is SEGSORT and method.task == "semantic" and method.state is not None
    cfg = config_from_dict({"method": "segsort", "model": {"embedding_dim": 16},
                            "loss": {"concentration": 5.0, "memory_batches": 1, "grid": [3, 3]}})
    assert method.head_channels(cfg) == {"embedding": 16}
    loss = method.build_loss(cfg)
    assert isinstance(loss, SegSortLoss) and loss.concentration == 5.0 and loss.grid == (3, 3)
    with pytest.raises(ValueError, match="unknown loss key"):
        method.build_loss(config_from_dict({"method": "segsort", "loss": {"kappa": 1}}))
    with pytest.raises(ValueError, match="embedding_dim"):
        method.head_channels(config_from_dict({"method": "segsort", "model": {"embedding_dim": 1}}))


def test_loss_on_a_network_batch_is_finite_and_trains():
    cfg = config_from_dict({"method": "segsort", "model": {"embedding_dim": 4}, "loss": {"grid": [2, 2]}})
    loss = METHODS.get("segsort").build_loss(cfg)
    net = nn.Conv2d(3, 4, 3, padding=1)
    g = torch.Generator().manual_seed(0)
    image = torch.randn(2, 3, 16, 16, generator=g)
    classes = torch.from_numpy(np.stack([_scene(0, 16, 16), _scene(1, 16, 16)]))
    terms = loss(ModelOutput(embedding=net(image)), {"image": image, "classes": classes})
    assert torch.isfinite(terms["total"])
    terms["total"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_image_prototypes_labels_and_boxes():
    # left 6 columns class 1, right 6 columns class 2; a (1, 2) grid without positions splits them
    c = torch.ones(4, 12, dtype=torch.long)
    c[:, 6:] = 2
    emb = DIRECTIONS[c].permute(2, 0, 1)
    params = {"grid": (1, 2), "iterations": 3, "coord_weight": 0.0}
    entry = image_prototypes(emb, c, params)
    assert entry["labels"].tolist() == [1, 2]
    assert entry["bbox"].tolist() == [[0, 0, 4, 6], [0, 6, 4, 12]]  # (y0, x0, y1, x1), end exclusive
    assert torch.allclose(entry["prototypes"], DIRECTIONS[[1, 2]])


def test_fit_state_bank_from_samples_or_batches():
    model = Oracle()
    state = fit_state(SEGSORT, model, _samples(), "cpu")
    m = state["prototypes"].shape[0]
    assert state["prototypes"].shape == (m, 6) and state["labels"].shape == (m,)
    assert state["bbox"].shape == (m, 4) and state["image_index"].max() < len(state["names"])
    assert set(state["labels"].tolist()) == {0, 1, 2, 3}
    assert torch.allclose(state["prototypes"].norm(dim=1), torch.ones(m), atol=1e-5)
    samples = _samples()
    batches = []
    for i in range(0, 6, 2):  # what a DataLoader with batch_size=2 would give
        pair = samples[i : i + 2]
        image = torch.from_numpy(np.stack([s["image"] for s in pair])).permute(0, 3, 1, 2)
        classes = torch.from_numpy(np.stack([s["classes"] for s in pair]))
        batches.append({"image": image, "classes": classes, "name": [s["name"] for s in pair]})
    again = fit_state(SEGSORT, model, iter(batches), "cpu")
    assert torch.allclose(again["prototypes"], state["prototypes"]) and again["names"] == state["names"]
    assert model.training  # mode restored


def test_bank_is_capped_per_class():
    state = fit_state(SEGSORT, Oracle(), _samples(), "cpu", max_per_class=3)
    counts = np.bincount(state["labels"].numpy())
    assert counts.max() <= 3 and (counts > 0).all()


def test_predict_recovers_classes_from_a_perfect_embedding():
    state = fit_state(SEGSORT, Oracle(), _samples(8, ignore_border=True), "cpu")
    for seed in (100, 101):
        c = _scene(seed, 30, 30)
        for vote in ("majority", "vmf"):
            pred = segsort_grouping(_output_for(c), state=state, k=3, vote=vote)
            assert pred.shape == c.shape and pred.dtype == np.int64
            assert np.array_equal(pred, c)


def test_explain_lists_the_voters():
    state = fit_state(SEGSORT, Oracle(), _samples(), "cpu")
    c = _scene(7)
    out = _output_for(c)
    segments = explain_segments(out, state, k=4)
    pred = segsort_grouping(out, state=state, k=4)
    cover = np.zeros(c.shape, int)
    for seg in segments:
        cover += seg.mask
        assert len(seg.voters) == 4 and (pred[seg.mask] == seg.predicted_class).all()
        best = seg.voters[0]
        assert best.name in state["names"] and best.similarity == pytest.approx(1.0, abs=1e-3)
        y0, x0, y1, x1 = best.bbox
        assert 0 <= y0 < y1 <= 30 and 0 <= x0 < x1 <= 30
        assert best.class_index == seg.predicted_class
    assert (cover == 1).all()  # the segments partition the image


def test_predict_without_a_bank_says_what_to_do():
    with pytest.raises(ValueError, match="fit_state"):
        segsort_grouping(_output_for(_scene(0)), state={})
    with pytest.raises(ValueError, match="vote"):
        state = fit_state(SEGSORT, Oracle(), _samples(2), "cpu")
        segsort_grouping(_output_for(_scene(0)), state=state, vote="mean")


# -------------------------------------------------------------------------------------- softmax
def test_softmax_method_heads_loss_predict():
    method = METHODS.get("softmax")
    assert method is SOFTMAX and method.task == "semantic" and method.grouper == "argmax"
    cfg = config_from_dict({"method": "softmax", "model": {"n_classes": 4}})
    assert method.head_channels(cfg) == {"semantic": 4}
    assert isinstance(method.build_loss(cfg), SemanticCrossEntropyLoss)
    assert fit_state(method, None, [], "cpu") == {}
    logits = torch.zeros(4, 2, 3)
    logits[2, 0, 1] = 1.0
    logits[3, 1] = 2.0
    assert argmax_grouping(ModelOutput(semantic=logits)).tolist() == [[0, 2, 0], [3, 3, 3]]
    with pytest.raises(ValueError, match="n_classes must be >= 2"):
        method.head_channels(config_from_dict({"method": "softmax"}))
    with pytest.raises(ValueError, match="unknown loss key"):
        method.build_loss(config_from_dict({"method": "softmax", "loss": {"weight": 1}}))


def test_cross_entropy_hand_derived_ignore_and_errors():
    # uniform logits over K = 4 classes: -log(1/4) = log 4 for every counted pixel
    logits = torch.zeros(1, 4, 2, 2, requires_grad=True)
    classes = torch.tensor([[[0, 3], [-1, 255]]])
    out = semantic_cross_entropy(logits, classes)
    assert set(out) == {"cross_entropy", "total"}
    assert out["total"].item() == pytest.approx(np.log(4))
    out["total"].backward()
    assert logits.grad[0, :, 1, 0].abs().sum() == 0  # ignored pixels get no gradient
    with pytest.raises(ValueError, match="class 5 found but the head has 4"):
        semantic_cross_entropy(logits, torch.full((1, 2, 2), 5))
    with pytest.raises(ValueError, match="need logits"):
        semantic_cross_entropy(logits[0], classes)
    empty = semantic_cross_entropy(logits, torch.full((1, 2, 2), -1))["total"]
    assert empty.item() == 0.0
    with pytest.raises(ValueError, match="no 'classes'"):
        SemanticCrossEntropyLoss()(ModelOutput(semantic=logits), {})
