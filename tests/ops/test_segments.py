from __future__ import annotations

import pytest
import torch
from scipy import ndimage

from pixelgroup.ops.segments import (
    grid_labels,
    location_features,
    refine_segments,
    segment_index,
    segment_labels,
    segment_prototypes,
    spherical_kmeans,
)


def _quadrants(side: int = 16, noise: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A (1, 4, side, side) embedding whose four quadrants point along the four axes, and the classes."""
    g = torch.Generator().manual_seed(seed)
    h = side // 2
    classes = torch.zeros(side, side, dtype=torch.long)
    classes[:h, h:], classes[h:, :h], classes[h:, h:] = 1, 2, 3
    emb = torch.eye(4)[classes].permute(2, 0, 1) + noise * torch.randn(4, side, side, generator=g)
    return emb[None], classes[None]


def test_shapes_and_dtype():
    emb = torch.randn(2, 3, 12, 10)
    seg = spherical_kmeans(emb)
    assert seg.shape == (2, 12, 10) and seg.dtype == torch.int64
    single = spherical_kmeans(emb[1])
    assert single.shape == (12, 10)
    assert torch.equal(single, seg[1])  # images are clustered independently


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"embedding": torch.randn(4, 4)}, "embedding must be"),
        ({"embedding": torch.randn(1, 2, 4, 4), "grid": (0, 2)}, "grid must be"),
        ({"embedding": torch.randn(1, 2, 4, 4), "valid": torch.ones(1, 3, 4, dtype=torch.bool)}, "valid"),
    ],
)
def test_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        spherical_kmeans(**kwargs)


def test_two_halves_hand_derived():
    # Left half e0, right half e1, no position features. A (1, 2) grid starts with exactly the two
    # halves, whose means are e0 and e1; every pixel is then closest to its own half's prototype
    # (cos 1 vs 0), so the labels stay: left 0, right 1.
    emb = torch.zeros(1, 2, 4, 6)
    emb[0, 0, :, :3] = 1.0
    emb[0, 1, :, 3:] = 1.0
    seg = spherical_kmeans(emb, grid=(1, 2), with_coords=False)
    want = torch.tensor([[0, 0, 0, 1, 1, 1]] * 4)
    assert torch.equal(seg[0], want)


def test_recovers_quadrants_and_drops_empty_clusters():
    emb, classes = _quadrants()
    seg = spherical_kmeans(emb, grid=(5, 5), with_coords=False)
    # 25 initial clusters collapse onto the 4 directions; ids are consecutive from 0
    assert sorted(seg.unique().tolist()) == list(range(int(seg.max()) + 1))
    labels = segment_labels(seg, classes)
    assert torch.equal(labels[seg], classes)  # every segment is pure


def test_constant_embedding_gives_connected_grid_cells():
    # Identical embeddings: only the positions separate pixels, so each segment is one compact piece.
    emb = torch.ones(1, 3, 20, 20)
    seg = spherical_kmeans(emb, grid=(3, 3))[0].numpy()
    assert seg.max() >= 3
    for s in range(seg.max() + 1):
        _, n = ndimage.label(seg == s)
        assert n == 1


def test_valid_mask_excludes_pixels():
    emb, _ = _quadrants(seed=1)
    valid = torch.ones(1, 16, 16, dtype=torch.bool)
    valid[0, :, :3] = False
    seg = spherical_kmeans(emb, valid=valid)
    assert (seg[~valid] == -1).all() and (seg[valid] >= 0).all()
    wild = emb.clone()
    wild[:, :, :, :3] = 100.0 * torch.randn(4, 16, 3)  # what ignored pixels hold must not matter
    assert torch.equal(spherical_kmeans(wild, valid=valid), seg)


def test_float64_input_and_location_features():
    seg = spherical_kmeans(torch.randn(1, 2, 8, 8, dtype=torch.float64), grid=(2, 2))
    assert seg.dtype == torch.int64
    loc = location_features(4, 2)
    assert loc.shape == (2, 4, 2)
    assert loc[0, :, 0].tolist() == [0.0, 0.25, 0.5, 0.75]  # y / H
    assert loc[1, 0].tolist() == [0.0, 0.5]  # x / W


def test_grid_labels():
    # H = 5, gy = 2: rows y * 2 // 5 = 0, 0, 0, 1, 1; W = 4, gx = 2: columns 0, 0, 1, 1
    want = torch.tensor([[0, 0, 1, 1]] * 3 + [[2, 2, 3, 3]] * 2)
    assert torch.equal(grid_labels(5, 4, (2, 2)), want)
    assert int(grid_labels(2, 2, (5, 5)).max()) == 3  # clipped to the image size


def test_segment_prototypes_hand_derived():
    # image 0: segment 0 = pixels (3, 4) and (0, 5) -> unit (0.6, 0.8) + (0, 1) = (0.6, 1.8)
    #   -> / sqrt(0.36 + 3.24) = / 1.8974 -> (0.3162, 0.9487); segment 2 = pixel (2, 0) -> (1, 0);
    #   the -1 pixel (9, 9) is ignored
    # image 1: segment 0 = pixel (0, -2) -> (0, -1)
    emb = torch.zeros(2, 2, 2, 2)  # (B, E, H, W)
    emb[0, :, 0, 0] = torch.tensor([3.0, 4.0])
    emb[0, :, 0, 1] = torch.tensor([0.0, 5.0])
    emb[0, :, 1, 0] = torch.tensor([2.0, 0.0])
    emb[0, :, 1, 1] = torch.tensor([9.0, 9.0])
    emb[1, :, 0, 0] = torch.tensor([0.0, -2.0])
    seg = torch.tensor([[[0, 0], [2, -1]], [[0, -1], [-1, -1]]])
    protos, image, ids = segment_prototypes(emb, seg)
    assert image.tolist() == [0, 0, 1] and ids.tolist() == [0, 2, 0]
    want = torch.tensor([[0.3162, 0.9487], [1.0, 0.0], [0.0, -1.0]])
    assert torch.allclose(protos, want, atol=1e-4)
    with pytest.raises(ValueError, match="segment_prototypes"):
        segment_prototypes(emb, seg[0])


def test_segment_prototypes_gradcheck():
    g = torch.Generator().manual_seed(0)
    emb = torch.randn(2, 3, 4, 4, dtype=torch.float64, generator=g, requires_grad=True)
    seg = torch.randint(-1, 3, (2, 4, 4), generator=g)
    assert torch.autograd.gradcheck(lambda e: segment_prototypes(e, seg)[0], (emb,))


def test_segment_labels_majority_ties_and_ignore():
    seg = torch.tensor([[[0, 0, 0, 1], [1, 2, 2, -1]]])
    cls = torch.tensor([[[4, 4, 1, 3], [2, 255, -1, 0]]])
    # segment 0: votes 4, 4, 1 -> 4; segment 1: 3 and 2 tie -> smallest, 2; segment 2: no votes -> -1
    assert segment_labels(seg, cls, ignore=255).tolist() == [4, 2, -1]
    with pytest.raises(ValueError, match="do not match"):
        segment_labels(seg, cls[:, :1])


def test_segment_index_orders_by_image_then_id():
    seg = torch.tensor([[[5, 5], [-1, 2]], [[0, 7], [7, 7]]])
    inverse, image, ids = segment_index(seg)
    assert image.tolist() == [0, 0, 1, 1] and ids.tolist() == [2, 5, 0, 7]
    assert inverse.tolist() == [1, 1, -1, 0, 2, 3, 3, 3]


def test_refine_segments_intersects_with_classes():
    seg = torch.tensor([[[0, 0, 1], [0, 1, 1]]])
    cls = torch.tensor([[[2, 3, 3], [2, -1, 3]]])
    out = refine_segments(seg, cls)
    # (seg 0, class 2), (seg 0, class 3), (seg 1, class 3): three pure segments, ignore -> -1
    assert out.tolist() == [[[0, 1, 2], [0, -1, 2]]]


def test_rotating_the_embedding_keeps_the_partition():
    # Permuting the embedding channels (a rotation of the sphere) keeps the partition.
    emb, _ = _quadrants(seed=3)
    a = spherical_kmeans(emb)
    b = spherical_kmeans(emb[:, [2, 0, 3, 1]])
    assert torch.equal(a, b)
