from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.config import RunConfig
from pixelgroup.engine.build import build_model
from pixelgroup.engine.segmenter import Segmenter
from pixelgroup.engine.train import lr_at
from pixelgroup.grouping.base import GROUPERS


def _segmenter(channels=1):
    cfg = RunConfig().replace(**{"model.width": 8, "model.depth": 2})
    return Segmenter(build_model(cfg, in_channels=channels), cfg, device="cpu")


@pytest.mark.parametrize("shape", [(37, 50), (64, 64), (5, 9)])
def test_any_image_size(shape):
    seg = _segmenter()
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    labels = seg.segment(image)
    assert labels.shape == shape and labels.dtype == np.int32
    out = seg.outputs(image)
    assert out.offset.shape[1:] == shape


def test_channel_mismatch_message():
    seg = _segmenter(channels=1)
    rgb = np.zeros((16, 16, 3), np.uint8)
    assert seg.prepare(rgb).shape == (16, 16, 1)  # RGB -> grey for grey models
    seg3 = _segmenter(channels=3)
    assert seg3.prepare(np.zeros((16, 16))).shape == (16, 16, 3)
    with pytest.raises(ValueError, match="trained on 3"):
        seg3.prepare(np.zeros((16, 16, 2)))


def test_lr_schedule_shape():
    assert lr_at(0.0, 1.0) == pytest.approx(0.1)
    assert lr_at(0.05, 1.0) == pytest.approx(1.0)
    assert lr_at(1.0, 1.0) == pytest.approx(0.01)
    xs = [lr_at(p, 1.0) for p in np.linspace(0.05, 1, 20)]
    assert all(a >= b for a, b in zip(xs, xs[1:]))


def test_model_output_is_on_the_segmenter_device():
    seg = _segmenter()
    out = seg.outputs(np.zeros((16, 16), np.float32))
    assert out.seed.device == torch.device("cpu")


def test_semantic_segmenter_passes_grouping_params_to_the_grouper(monkeypatch):
    # cfg.grouping.params (and load_model overrides) reach the grouper: SegSort takes its inference
    # settings from there, softmax's argmax has none and says so.
    seen = {}

    def recorder(output, *, k=1):
        seen["k"] = k
        return np.zeros(output.semantic.shape[1:], np.int64)

    cfg = RunConfig(method="softmax").replace(**{"model.width": 8, "model.depth": 2, "model.n_classes": 3,
                                                "grouping.params": {"k": 5}})
    seg = Segmenter(build_model(cfg, in_channels=1), cfg, device="cpu")
    with pytest.raises(ValueError, match=r"grouper 'argmax' \(grouping.params\): unknown setting\(s\) \['k'\]"):
        seg.segment(np.zeros((16, 16), np.float32))
    monkeypatch.setitem(GROUPERS._items, "recorder", recorder)
    seg.grouper = "recorder"
    assert seg.segment(np.zeros((16, 16), np.float32)).shape == (16, 16)
    assert seen == {"k": 5}
