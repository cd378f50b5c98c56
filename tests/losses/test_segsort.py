from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pixelgroup.losses.base import LOSSES
from pixelgroup.losses.segsort import PrototypeMemory, SegSortLoss, segsort_loss
from pixelgroup.ops.segments import refine_segments, segment_labels, segment_prototypes
from pixelgroup.types import ModelOutput


def _reference(emb, seg, cls, kappa, memory=None):
    """Pixel-by-pixel transcription of the authors' NCA likelihood (slow, for comparison)."""
    protos, _, _ = segment_prototypes(emb, seg)
    labels = segment_labels(seg, cls) if cls is not None else torch.arange(protos.shape[0])
    if memory is not None:
        protos = torch.cat([protos, F.normalize(memory[0], dim=1)])
        mem_l = memory[1] if cls is not None else torch.full_like(memory[1], -2)
        labels = torch.cat([labels, mem_l])
    x = F.normalize(emb, dim=1).permute(0, 2, 3, 1).reshape(-1, emb.shape[1])
    flat_seg, flat_cls = seg.reshape(-1), (cls.reshape(-1) if cls is not None else None)
    sid = {}
    b = seg.shape[0]
    for i in range(b):
        for s in sorted(seg[i][seg[i] >= 0].unique().tolist()):
            sid[(i, s)] = len(sid)
    hw = seg[0].numel()
    losses = []
    for p in range(x.shape[0]):
        if flat_seg[p] < 0:
            continue
        own = sid[(p // hw, int(flat_seg[p]))]
        e = torch.exp(kappa * protos @ x[p])
        if cls is None:
            losses.append(-torch.log(e[own] / e.sum()))
            continue
        same = [j for j in range(len(e)) if j != own and labels[j] == flat_cls[p]]
        diff = [j for j in range(len(e)) if labels[j] != flat_cls[p] and j != own]
        num = e[same].sum() if same else e[own]
        losses.append(-torch.log(num / (num + e[diff].sum())))
    return torch.stack(losses).mean()


def _blocks(side: int = 8, b: int = 2, seed: int = 0):
    """Random embedding; classes in vertical bands; segments = a 2 x 2 grid intersected with classes."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, 3, side, side, generator=g, dtype=torch.float64)
    cls = (torch.arange(side) * 3 // side).expand(b, side, side).clone()
    grid = (torch.arange(side)[:, None] * 2 // side) * 2 + torch.arange(side)[None, :] * 2 // side
    seg = refine_segments(grid.expand(b, side, side).clone(), cls)
    return emb, seg, cls


def test_smoke_terms_and_registry():
    emb, seg, cls = _blocks()
    out = segsort_loss(emb, seg, cls)
    assert set(out) == {"segsort", "total"} and torch.isfinite(out["total"])
    assert LOSSES.get("segsort") is SegSortLoss


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((torch.randn(3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), None), "embedding must be"),
        ((torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 3, dtype=torch.long), None), "segments"),
        ((torch.randn(1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(1, 3, 4)), "classes"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        segsort_loss(*args)


def test_bad_memory():
    emb, seg, cls = _blocks()
    with pytest.raises(ValueError, match="memory must be"):
        segsort_loss(emb, seg, cls, memory=(torch.randn(4, 5), torch.zeros(4, dtype=torch.long)))


def test_hand_derived_unsupervised():
    # pixels (1, 0) and (0, 1), one segment each, kappa = 1: each pixel -log(e / (e + e^0))
    emb = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    seg = torch.tensor([[[0, 1]]])
    out = segsort_loss(emb, seg, None, concentration=1.0)
    assert out["total"].item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-5)


def test_hand_derived_supervised():
    # a = (1, 0) seg 0 class 1; b = (0, 1) seg 1 class 1; c = (-1, 0) seg 2 class 2; kappa = 1.
    # a: positive seg 1 e^0, negative seg 2 e^-1 -> log(1 + e^-1)
    # b: positive seg 0 e^0, negative seg 2 e^0 -> log 2
    # c: no other class-2 segment, own e^1 is the positive; negatives e^-1, e^0 -> log(1 + e^-2 + e^-1)
    emb = torch.tensor([[[[1.0, 0.0, -1.0]], [[0.0, 1.0, 0.0]]]])  # (1, 2, 1, 3)
    seg = torch.tensor([[[0, 1, 2]]])
    cls = torch.tensor([[[1, 1, 2]]])
    want = (math.log(1 + math.exp(-1)) + math.log(2) + math.log(1 + math.exp(-2) + math.exp(-1))) / 3
    assert segsort_loss(emb, seg, cls, concentration=1.0)["total"].item() == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("supervised", [True, False])
def test_matches_pixelwise_reference_with_memory(supervised):
    emb, seg, cls = _blocks(seed=1)
    g = torch.Generator().manual_seed(2)
    memory = (torch.randn(5, 3, generator=g, dtype=torch.float64), torch.tensor([0, 1, 2, 2, 7]))
    c = cls if supervised else None
    got = segsort_loss(emb, seg, c, concentration=4.0, memory=memory)["total"]
    assert got.item() == pytest.approx(_reference(emb, seg, c, 4.0, memory).item(), rel=1e-6)


def test_gradcheck():
    emb, seg, cls = _blocks(side=4, b=1, seed=3)
    emb.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: segsort_loss(e, seg, cls, concentration=3.0)["total"], (emb,))
    assert torch.autograd.gradcheck(lambda e: segsort_loss(e, seg, None, concentration=3.0)["total"], (emb,))


def test_perfect_embedding_near_zero_random_large():
    _, seg, cls = _blocks(side=12, b=2)
    perfect = torch.eye(3, dtype=torch.float64)[cls].permute(0, 3, 1, 2)  # one unit vector per class
    assert segsort_loss(perfect, seg, cls, concentration=30.0)["total"].item() < 1e-6
    g = torch.Generator().manual_seed(0)
    rand = torch.randn(2, 3, 12, 12, generator=g, dtype=torch.float64)
    assert segsort_loss(rand, seg, cls, concentration=30.0)["total"].item() > 1.0


def test_invariant_to_segment_and_class_permutation():
    emb, seg, cls = _blocks(seed=4)
    base = segsort_loss(emb, seg, cls)["total"]
    perm = torch.tensor([5, 2, 7, 0, 4, 1, 6, 3])  # relabel segment ids (0..7 present per image)
    assert int(seg.max()) == 7
    assert torch.allclose(segsort_loss(emb, perm[seg], cls)["total"], base)
    assert torch.allclose(segsort_loss(emb, seg, torch.tensor([2, 0, 1])[cls])["total"], base)
    unsup = segsort_loss(emb, seg, None)["total"]
    assert torch.allclose(segsort_loss(emb, perm[seg], None)["total"], unsup)


def test_ignored_pixels_do_not_matter():
    emb, seg, cls = _blocks(seed=5)
    cls = cls.clone()
    cls[0, :2] = -1
    cls[1, :, :2] = 255
    base = segsort_loss(emb, seg, cls)["total"]
    wild = emb.clone()
    wild[0, :, :2] = 50.0
    wild[1, :, :, :2] = -7.0
    assert torch.allclose(segsort_loss(wild, seg, cls)["total"], base)
    none_valid = segsort_loss(emb.requires_grad_(True), seg, torch.full_like(cls, -1))["total"]
    assert none_valid.item() == 0.0
    none_valid.backward()


def test_memory_bank_changes_the_loss():
    # perfect embedding: ~0 alone; one memory copy of each class direction under a wrong label is a
    # negative as similar as the n (3 to 5 here) positives -> each pixel's loss becomes log(1 + 1/n)
    _, seg, cls = _blocks(seed=6)
    perfect = torch.eye(3, dtype=torch.float64)[cls].permute(0, 3, 1, 2)
    assert segsort_loss(perfect, seg, cls, concentration=30.0)["total"].item() < 1e-6
    wrong = (torch.eye(3, dtype=torch.float64), torch.tensor([1, 2, 0]))
    confused = segsort_loss(perfect, seg, cls, concentration=30.0, memory=wrong)["total"]
    assert confused.item() > math.log(1 + 1 / 5)
    # random embedding: copies of the batch's own prototypes as extra positives lower the loss
    emb = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    protos, _, _ = segment_prototypes(emb, seg)
    base = segsort_loss(emb, seg, cls)["total"]
    right = segsort_loss(emb, seg, cls, memory=(protos, segment_labels(seg, cls)))["total"]
    assert right.item() < base.item()


def test_prototype_memory_fifo():
    mem = PrototypeMemory(size_batches=2)
    assert mem.get() is None
    for i in range(3):
        p = torch.full((i + 1, 2), float(i), requires_grad=True)
        mem.push(p * 1, torch.full((i + 1,), i))
    protos, labels = mem.get()
    assert labels.tolist() == [1, 1, 2, 2, 2] and len(mem) == 5  # batch 0 dropped
    assert not protos.requires_grad
    off = PrototypeMemory(size_batches=0)
    off.push(torch.ones(2, 2), torch.zeros(2))
    assert off.get() is None
    with pytest.raises(ValueError, match="size_batches"):
        PrototypeMemory(size_batches=-1)


def test_pixel_subset():
    emb, seg, cls = _blocks(seed=7)
    full = segsort_loss(emb, seg, cls)["total"]
    assert torch.allclose(segsort_loss(emb, seg, cls, max_pixels=10_000)["total"], full)
    g = torch.Generator().manual_seed(0)
    part = segsort_loss(emb, seg, cls, max_pixels=40, generator=g)["total"]
    assert torch.isfinite(part) and not torch.allclose(part, full)


def test_module_supervised_trains_and_fills_memory():
    g = torch.Generator().manual_seed(8)
    emb = torch.randn(2, 4, 16, 16, generator=g, requires_grad=True)
    cls = torch.randint(0, 3, (2, 16, 16), generator=g)
    cls[:, 0] = 255
    loss = SegSortLoss(grid=(2, 2), memory_batches=2)
    terms = loss(ModelOutput(embedding=emb), {"classes": cls})
    terms["total"].backward()
    assert torch.isfinite(terms["total"]) and emb.grad is not None and emb.grad.abs().sum() > 0
    assert emb.grad[:, :, 0].abs().sum() == 0  # ignored row: no gradient
    assert 0 < len(loss.memory) <= 2 * 2 * 2  # at most B * gy * gx per batch
    loss.eval()
    loss(ModelOutput(embedding=emb), {"classes": cls})
    assert len(loss.memory) <= 8  # evaluation does not push


def test_module_unsupervised_needs_segments():
    emb = torch.randn(1, 3, 8, 8, requires_grad=True)
    loss = SegSortLoss(unsupervised=True)
    with pytest.raises(ValueError, match="over-segmentation"):
        loss(ModelOutput(embedding=emb), {"classes": torch.zeros(1, 8, 8, dtype=torch.long)})
    seg = (torch.arange(8)[None, :] // 4 + 2 * (torch.arange(8)[:, None] // 4))[None]
    terms = loss(ModelOutput(embedding=emb), {"segments": seg})
    assert torch.isfinite(terms["total"])
    with pytest.raises(ValueError, match="no 'embedding' head"):
        loss(ModelOutput(), {"segments": seg})
    with pytest.raises(ValueError, match="concentration"):
        SegSortLoss(concentration=0.0)


def test_module_memory_default_follows_the_authors():
    """2 batches of prototypes when supervised, none when unsupervised; an explicit value wins."""
    assert SegSortLoss().memory.size_batches == 2
    assert SegSortLoss(unsupervised=True).memory.size_batches == 0
    assert SegSortLoss(unsupervised=True, memory_batches=3).memory.size_batches == 3
    emb = torch.randn(1, 3, 8, 8, requires_grad=True)
    seg = (torch.arange(8)[None, :] // 4 + 2 * (torch.arange(8)[:, None] // 4))[None]
    loss = SegSortLoss(unsupervised=True)
    loss(ModelOutput(embedding=emb), {"segments": seg})
    assert len(loss.memory) == 0
