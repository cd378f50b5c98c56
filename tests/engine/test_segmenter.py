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


def _trained_segmenter(**kw):
    """A segmenter whose network's BatchNorm statistics are not the initial (0, 1)."""
    seg = _segmenter()
    seg.model.train()
    with torch.no_grad():
        for _ in range(2):
            seg.model(torch.randn(2, 1, 32, 32) * 3 + 1)
    seg.model.eval()
    for key, value in kw.items():
        setattr(seg, key, value)
    return seg


def _heads(out):
    return dict(out.items())


def test_auto_inference_takes_bf16_only_where_the_cpu_has_it():
    from pixelgroup.engine.segmenter import native_bf16_cpu, resolve_inference

    assert _trained_segmenter().inference == "auto"
    assert resolve_inference("auto", torch.device("cpu")) == ("bf16" if native_bf16_cpu() else "fused")
    assert resolve_inference("auto", torch.device("cuda")) == "fused"
    assert resolve_inference("plain", torch.device("cpu")) == "plain"


def test_fused_inference_gives_the_plain_outputs():
    seg = _trained_segmenter()
    seg.inference = "fused"
    image = np.random.default_rng(1).random((37, 50)).astype(np.float32)
    assert seg.network is not seg.model
    fast = _heads(seg.outputs(image))
    seg.inference = "plain"
    assert seg.network is seg.model
    plain = _heads(seg.outputs(image))
    for name, t in plain.items():
        torch.testing.assert_close(fast[name], t, rtol=1e-4, atol=1e-5, msg=name)
    with pytest.raises(ValueError, match=r"inference must be one of \['auto', 'plain', 'fused', 'bf16'\]"):
        seg.inference = "fast"


def test_fused_copy_follows_weight_changes_and_training_mode():
    seg = _trained_segmenter()
    seg.inference = "fused"
    image = np.random.default_rng(2).random((32, 32)).astype(np.float32)
    first = seg.network
    assert seg.network is first  # cached while the weights stay
    with torch.no_grad():
        seg.model.heads["seed"].out.bias.add_(1.0)  # in place, as an optimiser step does
    assert seg.network is not first
    fast = seg.outputs(image).seed
    seg.inference = "plain"
    torch.testing.assert_close(fast, seg.outputs(image).seed, rtol=1e-4, atol=1e-5)
    seg.inference = "fused"
    seg.model.train()
    assert seg.network is seg.model  # batch statistics in training mode: never the eval-mode copy


def test_segmenting_leaves_the_checkpoint_weights_as_they_are():
    seg = _trained_segmenter()
    before = {k: v.clone() for k, v in seg.model.state_dict().items()}
    seg.segment(np.random.default_rng(3).random((40, 40)).astype(np.float32))
    after = seg.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
