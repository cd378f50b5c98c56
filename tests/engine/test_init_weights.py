"""Starting a run from another run's weights (transfer learning): init_weights and train --init."""

from __future__ import annotations

import pytest
import torch

from pixelgroup.cli import main
from pixelgroup.config import RunConfig
from pixelgroup.engine.build import build_model
from pixelgroup.engine.checkpoint import init_weights, load_checkpoint, save_checkpoint


def _model(method: str, **model):
    cfg = RunConfig(method=method).replace(**{"model.width": 8, "model.depth": 2,
                                              **{f"model.{k}": v for k, v in model.items()}})
    return cfg, build_model(cfg, in_channels=1)


def test_backbone_copied_modules_of_other_shape_left_fresh(tmp_path):
    torch.manual_seed(0)
    cfg_a, a = _model("spatial")
    save_checkpoint(tmp_path / "a.pt", cfg=cfg_a, model=a)
    torch.manual_seed(1)
    _, b = _model("discriminative", embedding_dim=5)
    before = {k: v.clone() for k, v in b.state_dict().items()}
    copied, total = init_weights(b, tmp_path / "a.pt")
    assert 0 < copied < total
    sa, sb = a.state_dict(), b.state_dict()
    modules = {k.rsplit(".", 1)[0] for k in sb}
    whole = {m for m in modules if all(k in sa and sa[k].shape == sb[k].shape
                                       for k in sb if k.rsplit(".", 1)[0] == m)}
    same = [k for k in sb if k.rsplit(".", 1)[0] in whole]
    assert len(same) == copied
    assert not any(k.startswith("heads.embedding") for k in same)
    for k in sb:
        expect = sa[k] if k in same else before[k]
        assert torch.equal(sb[k], expect), k
    assert any(k not in same for k in sb)  # the 5-channel embedding head kept its own init


def test_nothing_matches_is_a_clear_error(tmp_path):
    cfg_a, a = _model("spatial")
    save_checkpoint(tmp_path / "a.pt", cfg=cfg_a, model=a)
    _, wide = _model("spatial", width=12)
    with pytest.raises(ValueError, match=r"a\.pt: no weight matches this model.*same backbone"):
        init_weights(wide, tmp_path / "a.pt")
    with pytest.raises(FileNotFoundError, match="model not found"):
        init_weights(wide, tmp_path / "missing.pt")


def test_train_init_flag(tmp_path):
    data = tmp_path / "nuclei"
    assert main(["synth", str(data), "--kind", "nuclei", "--n", "3", "--size", "64", "--seed", "1"]) == 0
    common = ["--data", str(data), "--steps", "1", "--batch-size", "2", "--crop-size", "64", "--no-progress"]
    assert main(["train", "--out", str(tmp_path / "a"), *common]) == 0
    assert main(["train", "--out", str(tmp_path / "b"), "--method", "discriminative",
                 "--init", str(tmp_path / "a"), *common]) == 0
    cfg, _ = load_checkpoint(tmp_path / "b")
    assert cfg.train.init == str(tmp_path / "a")
