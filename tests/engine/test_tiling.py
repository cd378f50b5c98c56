"""Tiled prediction: blocks, the ownership rule at the seams, and agreement with one pass."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from pixelgroup.config import RunConfig
from pixelgroup.engine.build import build_model
from pixelgroup.engine.segmenter import Segmenter
from pixelgroup.engine.tiling import AUTO_TILE_PIXELS, block_grid, resolve_tiling
from pixelgroup.grouping.stitch import owned_objects, paint_owned
from pixelgroup.metrics.matching import match

from ._toy import dense_spatial_network, disc_image, same_partition, toy_segmenter


def test_block_grid_covers_every_pixel_once():
    cover = np.zeros((100, 130), int)
    for y0, y1, x0, x1 in block_grid(cover.shape, 32):
        cover[y0:y1, x0:x1] += 1
    assert (cover == 1).all()


def test_resolve_tiling_rules():
    assert resolve_tiling((512, 512)) is None  # small: one pass
    assert resolve_tiling((4096, 4096)).tile == 1024  # big: automatic
    assert resolve_tiling((4096, 4096), tile=0) is None  # --tile 0: off
    assert AUTO_TILE_PIXELS == 2048 * 2048
    t = resolve_tiling((300, 300), tile=50, halo=20, multiple=16)
    assert (t.tile, t.halo, t.context) == (64, 32, 32)  # rounded up to the multiple
    assert resolve_tiling((60, 60), tile=64) is None  # fits in one block
    with pytest.raises(ValueError, match="halo must be >= 0"):
        resolve_tiling((300, 300), tile=64, halo=-1)


def test_ownership_by_centroid():
    # window (0, 40, 0, 40) of a 100 x 100 image, core (0, 20, 0, 20): object 1's centroid (5, 5) is
    # in the core; object 2's (30, 10) is not; object 3 (centroid (19, 38)) is kept and touches the
    # window's right edge, which is inside the image
    lab = np.zeros((40, 40), np.int32)
    lab[3:8, 3:8] = 1
    lab[28:33, 8:13] = 2
    lab[18:21, 37:40] = 3
    own = owned_objects(lab, 3, window=(0, 40, 0, 40), core=(0, 20, 0, 40), image_shape=(100, 100))
    assert own.keep.tolist() == [False, True, False, True] and own.touching == 1
    # painting: object 1 is free; object 3 was painted (id 7) by an earlier block, so it is dropped
    region = np.zeros((40, 40), np.int64)
    region[18:21, 37:40] = 7
    region, accepted = paint_owned(region, lab, own.keep, next_id=8)
    assert accepted.tolist() == [1] and (region[lab == 1] == 8).all() and (region[lab == 3] == 7).all()


@pytest.mark.parametrize(("tile", "halo"), [(64, 32), (48, 32), (32, 24)])
def test_tiled_equals_one_pass_on_an_exact_model(tile, halo):
    # the toy's instances are defined by offsets pointing at each object's centre: with a halo wider
    # than the objects (<= 22 px) tiling must give exactly the one-pass objects, none split or doubled
    seg = toy_segmenter()
    image = disc_image()
    one = seg.segment_instances(image, normalized=True, tile=0)
    tiled = seg.segment_instances(image, normalized=True, tile=tile, halo=halo)
    truth = image.astype(np.int32)
    cuts = {int(i) for b in range(tile, image.shape[0], tile) for i in np.unique(truth[b - 1:b + 1])}
    assert len(cuts - {0}) >= 3  # objects do straddle the seams
    assert one.count == tiled.count == truth.max()
    assert same_partition(one.labels, tiled.labels) and same_partition(truth, tiled.labels)
    assert sorted(np.unique(tiled.labels)) == list(range(tiled.count + 1))  # ids 1..N consecutive
    assert tiled.scores.shape == tiled.classes.shape == (tiled.count,)


def _dense_spatial_model() -> Segmenter:
    cfg, model = dense_spatial_network()
    return Segmenter(model, cfg)


def test_tiled_matches_one_pass_of_a_real_network():
    seg = _dense_spatial_model()
    image = np.random.default_rng(0).random((192, 224)).astype(np.float32)
    one = seg.segment_instances(image, normalized=True, tile=0)
    tiled = seg.segment_instances(image, normalized=True, tile=64, halo=32)
    m = match(one.labels, tiled.labels, thresh=0.95)
    assert one.count > 200
    assert m.tp >= 0.99 * one.count and m.fp <= 0.01 * one.count
    assert sorted(np.unique(tiled.labels)) == list(range(tiled.count + 1))


@pytest.mark.parametrize("method", ["softmax", "hypersphere"])
def test_tiled_network_outputs_equal_one_pass(method):
    cfg = RunConfig().replace(**{"method": method, "model.width": 8, "model.depth": 2,
                                 "model.n_classes": 3 if method == "softmax" else 1})
    torch.manual_seed(0)
    seg = Segmenter(build_model(cfg, in_channels=1), cfg)
    image = np.random.default_rng(1).random((136, 200)).astype(np.float32)
    one = seg.outputs(image, normalized=True)
    tiling = seg.tiling_for(image.shape, tile=64, halo=32)
    labels = np.zeros(image.shape, np.int32)
    _, arrays = seg.segment_tiled(lambda b: image[b[0]:b[1], b[2]:b[3], None], image.shape, tiling, labels)
    for name, t in one.items():
        np.testing.assert_allclose(arrays[name], t.numpy(), atol=1e-5)
    if method == "softmax":  # semantic: the stitched class-map cores are the one-pass map
        np.testing.assert_array_equal(labels, seg.segment(image, normalized=True, tile=0))
    else:
        assert sorted(np.unique(labels)) == list(range(int(labels.max()) + 1))


def test_objects_larger_than_the_halo_warn(caplog):
    seg = toy_segmenter()
    image = disc_image((160, 160), n=6, radius=(24, 30), margin=4, seed=3)
    with caplog.at_level(logging.WARNING):
        seg.segment_instances(image, normalized=True, tile=32, halo=8)
    assert "touch the 8 px halo" in caplog.text
