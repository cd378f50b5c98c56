"""Test-time augmentation: outputs mapped back through each of the 8 transforms of D4."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.config import RunConfig
from pixelgroup.engine.build import build_model
from pixelgroup.engine.segmenter import Segmenter
from pixelgroup.engine.tta import D4, HEAD_KINDS, invert, transform, tta_forward

from ._toy import CentroidNet, disc_image, same_partition, toy_segmenter


def test_d4_has_eight_distinct_transforms():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    seen = {tuple(transform(x, k, f).flatten().tolist()) + (transform(x, k, f).shape,) for k, f in D4}
    assert len(D4) == len(seen) == 8
    for k, f in D4:  # invert undoes transform
        assert torch.equal(invert(transform(x, k, f), k, f), x)


@pytest.mark.parametrize(("k", "flip"), D4)
def test_outputs_map_back_exactly_per_head_kind(k, flip):
    # the toy is equivariant: the outputs of the transformed image, mapped back (offset vectors
    # rotated/negated, (y, x) sigmas swapped), equal the outputs of the image itself
    net = CentroidNet(n_sigma=2)
    x = torch.from_numpy(disc_image((64, 80), n=6, seed=1))[None, None]
    ref = net(x)
    out = net(transform(x, k, flip))
    for name, t in ref.items():
        back = invert(getattr(out, name), k, flip, HEAD_KINDS[name])
        torch.testing.assert_close(back, t, atol=2e-5, rtol=0)
    # without the vector map the offsets would be wrong (unless the transform is the identity)
    if (k, flip) != (0, False):
        assert not torch.allclose(invert(out.offset, k, flip, "scalar"), ref.offset, atol=1e-3)


@pytest.mark.parametrize(("k", "flip"), D4)
def test_tta_segmentation_equals_plain_on_every_transform(k, flip):
    seg = toy_segmenter(n_sigma=2)
    image = transform(torch.from_numpy(disc_image((96, 112), n=10, seed=2)), k, flip).numpy()
    plain = seg.segment_instances(image, normalized=True, tile=0)
    assert plain.count == image.max() >= 6
    assert same_partition(plain.labels, seg.segment_instances(image, normalized=True, tile=0, tta=True).labels)
    if k == 1:  # TTA inside tiles
        tiled = seg.segment_instances(image, normalized=True, tile=32, halo=32, tta=True)
        assert same_partition(plain.labels, tiled.labels)


def test_free_embeddings_come_from_the_identity(caplog):
    cfg = RunConfig().replace(**{"method": "hypersphere", "model.width": 8, "model.depth": 2})
    torch.manual_seed(0)
    model = build_model(cfg, in_channels=1).eval()
    x = torch.rand(1, 1, 32, 48)
    with torch.no_grad():
        avg, ref = tta_forward(model, x), model(x)
    torch.testing.assert_close(avg.embedding, ref.embedding)
    assert not torch.allclose(avg.foreground, ref.foreground)  # averaged over the 8
    Segmenter(model, cfg).outputs(np.zeros((32, 48), np.float32), tta=True)
    assert "not equivariant" in caplog.text
