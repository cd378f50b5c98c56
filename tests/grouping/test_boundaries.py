from __future__ import annotations

import pytest
import torch

from pixelgroup.grouping.boundaries import embedding_boundaries


def _halves(side: int = 12, antipodal: bool = False) -> torch.Tensor:
    """(2, side, side): left half (1, 0), right half (0, 1) or (-1, 0)."""
    emb = torch.zeros(2, side, side)
    emb[0, :, : side // 2] = 1.0
    if antipodal:
        emb[0, :, side // 2 :] = -1.0
    else:
        emb[1, :, side // 2 :] = 1.0
    return emb


def test_shape_range_and_constant_embedding():
    b = embedding_boundaries(torch.randn(5, 9, 13))
    assert b.shape == (9, 13) and b.dtype == torch.float32
    assert b.min() >= 0 and b.max() <= 1
    assert embedding_boundaries(torch.ones(3, 8, 8)).abs().max() < 1e-6


def test_hand_values_two_halves():
    # Orthogonal halves: 1 - s = (1 - cos) / 2 = 1/2 across the border, 0 elsewhere.
    # scale 1: columns 5 and 6 see across -> 1/2. scales (1, 2): columns 5, 6 -> (1/2 + 1/2) / 2,
    # columns 4, 7 only at d = 2 -> 1/4, the rest 0.
    b1 = embedding_boundaries(_halves(), scales=(1,))
    assert torch.allclose(b1[:, 5:7], torch.full((12, 2), 0.5))
    assert b1[:, :5].abs().max() == 0 and b1[:, 7:].abs().max() == 0
    b12 = embedding_boundaries(_halves(), scales=(1, 2))
    row = b12[3]
    assert torch.allclose(row[[4, 5, 6, 7]], torch.tensor([0.25, 0.5, 0.5, 0.25]))
    assert row[[0, 1, 2, 3, 8, 9, 10, 11]].abs().max() == 0
    # antipodal halves: cos = -1 -> 1 - s = 1
    assert embedding_boundaries(_halves(antipodal=True), scales=(1,))[0, 5].item() == pytest.approx(1.0)


def test_invariant_to_embedding_scale_and_equivariant_to_transpose():
    emb = torch.randn(4, 10, 7)
    b = embedding_boundaries(emb)
    assert torch.allclose(embedding_boundaries(3.0 * emb), b, atol=1e-6)
    assert torch.allclose(embedding_boundaries(emb.transpose(1, 2)), b.T, atol=1e-6)


def test_translation_equivariance():
    emb = torch.randn(3, 16, 16)
    moved = torch.roll(emb, shifts=(3, 2), dims=(1, 2))
    a = embedding_boundaries(emb, scales=(1, 2))
    b = embedding_boundaries(moved, scales=(1, 2))
    # away from the wrapped rows/columns (and 2 pixels of reach) the maps agree
    assert torch.allclose(b[5:14, 4:14], a[2:11, 2:12], atol=1e-6)


def test_gradcheck_float64():
    emb = torch.randn(3, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda e: embedding_boundaries(e, scales=(1, 2)), (emb,))


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(E, H, W\)"):
        embedding_boundaries(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="scales"):
        embedding_boundaries(torch.randn(3, 8, 8), scales=(0,))
    with pytest.raises(ValueError, match="scales"):
        embedding_boundaries(torch.randn(3, 8, 8), scales=())
