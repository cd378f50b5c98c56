"""Tests of the binary Lovász hinge."""

from __future__ import annotations

import pytest
import torch

from pixelgroup.losses.lovasz import lovasz_grad, lovasz_hinge, lovasz_hinge_segments


def test_hand_derived_two_pixels():
    # labels [1, 0], logits [0.2, 0.6] -> errors 1 - f * sign = [0.8, 1.6].
    # Sorted (desc): [1.6 (gt 0), 0.8 (gt 1)]; gts = 1; intersection = [1, 0]; union = [2, 2];
    # jaccard = [0.5, 1.0]; grad = [0.5, 0.5]; loss = 1.6 * 0.5 + 0.8 * 0.5 = 1.2.
    loss = lovasz_hinge(torch.tensor([0.2, 0.6]), torch.tensor([1, 0]))
    assert loss.shape == ()
    assert loss.item() == pytest.approx(1.2)


def test_lovasz_grad_hand_derived():
    # gt_sorted [1, 0, 1]: gts = 2; intersection = [1, 1, 0]; union = [2, 3, 3];
    # jaccard = [1/2, 2/3, 1]; increments = [1/2, 1/6, 1/3] (sum 1).
    g = lovasz_grad(torch.tensor([1.0, 0.0, 1.0]))
    assert torch.allclose(g, torch.tensor([0.5, 1 / 6, 1 / 3]))


def test_perfect_margin_gives_zero_and_wrong_sign_is_large():
    labels = torch.tensor([1, 1, 0, 0, 0])
    good = torch.tensor([2.0, 1.5, -3.0, -1.0, -2.0])  # every margin >= 1 -> every error <= 0
    assert lovasz_hinge(good, labels).item() == 0.0
    assert lovasz_hinge(-good, labels).item() > 1.0


def test_equals_jaccard_loss_on_binary_errors():
    # With logit 0 on a set M of "mispredicted" pixels and a margin of exactly 1 elsewhere, the errors
    # are the indicator of M and the Lovász extension equals the Jaccard loss of that prediction.
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        labels = torch.rand(30, generator=gen) < 0.4
        labels[0] = True
        wrong = torch.rand(30, generator=gen) < 0.3
        logits = torch.where(wrong, torch.zeros(30), torch.where(labels, 1.0, -1.0))
        pred = labels ^ wrong
        iou = (labels & pred).sum() / (labels | pred).sum()
        assert lovasz_hinge(logits, labels).item() == pytest.approx(1.0 - iou.item(), abs=1e-6)


def test_rows_match_single_calls():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 17, generator=gen)
    labels = torch.rand(4, 17, generator=gen) < 0.5
    rows = lovasz_hinge(logits, labels)
    assert rows.shape == (4,)
    for i in range(4):
        assert rows[i].item() == pytest.approx(lovasz_hinge(logits[i], labels[i]).item())


def test_no_positive_labels_and_empty_input():
    # No positives: union >= 1 so no division by zero; loss = error of the worst negative
    # (the Jaccard loss jumps from 0 to 1 at the first negative).
    loss = lovasz_hinge(torch.tensor([0.5, -0.5]), torch.tensor([0, 0]))
    assert loss.item() == pytest.approx(1.5)
    empty = torch.zeros(0, requires_grad=True)
    out = lovasz_hinge(empty, torch.zeros(0))
    out.backward()
    assert out.item() == 0.0 and empty.grad.shape == (0,)


def test_gradcheck_float64():
    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 12, generator=gen, dtype=torch.float64, requires_grad=True)
    labels = torch.rand(2, 12, generator=gen) < 0.5
    assert torch.autograd.gradcheck(lambda x: lovasz_hinge(x, labels), (logits,))


def test_bad_input():
    with pytest.raises(ValueError, match="must match"):
        lovasz_hinge(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match=r"\(P,\) or \(N, P\)"):
        lovasz_hinge(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3))


def ragged(dtype, seed=3):
    """Rows of 5 x 13 logits (errors of both signs), flattened, shuffled, with segment ids; two empty
    segments (5 and 6)."""
    gen = torch.Generator().manual_seed(seed)
    logits = 2 * torch.randn(5, 13, generator=gen, dtype=dtype)
    labels = torch.rand(5, 13, generator=gen) < 0.4
    segments = torch.arange(5)[:, None].expand(5, 13).reshape(-1)
    perm = torch.randperm(65, generator=gen)
    return logits, labels, logits.reshape(-1)[perm], labels.reshape(-1)[perm], segments[perm]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])  # one int64 sort / two sorts
def test_segments_match_rows(dtype):
    logits, labels, flat, flat_labels, segments = ragged(dtype)
    rows = lovasz_hinge(logits, labels)
    seg = lovasz_hinge_segments(flat, flat_labels, segments, n_segments=7)
    assert seg.shape == (7,) and seg[5:].tolist() == [0.0, 0.0]
    assert torch.allclose(seg[:5], rows, rtol=1e-6 if dtype == torch.float32 else 1e-12)


def test_segments_hand_derived():
    # Segment 0 is the two-pixel example of test_hand_derived_two_pixels (1.2); segment 1 holds one
    # negative with logit -2: error 1 - 2 = -1 -> relu -> 0.
    loss = lovasz_hinge_segments(torch.tensor([0.6, -2.0, 0.2]), torch.tensor([0, 0, 1]), torch.tensor([0, 1, 0]),
                                 n_segments=2)
    assert loss.tolist() == pytest.approx([1.2, 0.0])


def test_segments_with_left_out_small_errors():
    # Keeping only the entries with error > tol (and giving each segment's positives) is the exact
    # loss less at most tol.
    logits, labels, flat, flat_labels, segments = ragged(torch.float64, seed=4)
    errors = 1 - flat * (2 * flat_labels.double() - 1)
    tol = 0.5
    keep = errors > tol
    positives = torch.bincount(segments[flat_labels], minlength=7)
    part = lovasz_hinge_segments(flat[keep], flat_labels[keep], segments[keep], n_segments=7, positives=positives)
    exact = lovasz_hinge(logits, labels)
    assert ((exact - part[:5]) <= tol + 1e-12).all() and ((exact - part[:5]) >= 0).all()
    assert (exact - part[:5]).max() > 0  # something was left out


def test_segments_gradcheck_and_empty():
    _, _, flat, flat_labels, segments = ragged(torch.float64, seed=5)
    x = flat.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda v: lovasz_hinge_segments(v, flat_labels, segments, n_segments=6), (x,))
    empty = torch.zeros(0, requires_grad=True)
    out = lovasz_hinge_segments(empty, torch.zeros(0), torch.zeros(0, dtype=torch.long), n_segments=3)
    out.sum().backward()
    assert out.tolist() == [0.0, 0.0, 0.0] and empty.grad.shape == (0,)


def test_segments_bad_input():
    with pytest.raises(ValueError, match=r"must be \(M,\) alike"):
        lovasz_hinge_segments(torch.zeros(3), torch.zeros(3), torch.zeros(2, dtype=torch.long), n_segments=1)
