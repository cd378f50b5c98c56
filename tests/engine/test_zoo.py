"""Models by name: bundled models, the user cache, resolution order, the ``models`` command."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.cli import main
from pixelgroup.config import RunConfig
from pixelgroup.engine.build import build_model
from pixelgroup.engine.checkpoint import load_checkpoint, save_checkpoint
from pixelgroup.engine.segmenter import load_model
from pixelgroup.engine.zoo import add_model, get_model, list_models, resolve_model

BUNDLED = ("nuclei", "shapes")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An untrained run folder (weights are random; resolution does not care)."""
    run = tmp_path_factory.mktemp("run")
    torch_model = build_model(RunConfig(), in_channels=1)
    save_checkpoint(run / "best.pt", cfg=RunConfig(), model=torch_model, in_channels=1, object_diameter=12.0)
    return run


def test_bundled_models_are_listed_with_cards(tmp_path):
    models = {m.name: m for m in list_models(cache_dir=tmp_path)}
    for name in BUNDLED:
        assert models[name].source == "bundled"
        assert models[name].description, name
        assert "AP_dsb@0.5" in models[name].card and "icence" in models[name].card
        _, state = load_checkpoint(models[name].checkpoint)
        assert state["object_diameter"] > 0
        if name == "nuclei":  # trained on nuclei of several sizes: the range is recorded for the size hint
            low, high = state["object_diameter_range"]
            assert low < state["object_diameter"] < high
        torch.load(models[name].checkpoint, weights_only=True)  # plain tensors and Python values only


def test_add_refuses_overwrite_and_resolves(tiny_run, tmp_path):
    cache = tmp_path / "cache"
    model = add_model("mine", tiny_run, cache_dir=cache)
    assert model.checkpoint.is_file() and "mine" in model.card
    with pytest.raises(FileExistsError, match="--overwrite"):
        add_model("mine", tiny_run, cache_dir=cache)
    add_model("mine", tiny_run, cache_dir=cache, overwrite=True)
    assert resolve_model("mine", cache_dir=cache) == model.checkpoint
    assert load_model("mine", cache_dir=cache).object_diameter == 12.0
    with pytest.raises(ValueError, match="lower-case"):
        add_model("Bad Name", tiny_run, cache_dir=cache)


def test_resolution_order_path_then_user_then_bundled(tiny_run, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    assert get_model("nuclei", cache_dir=cache).source == "bundled"
    add_model("nuclei", tiny_run, cache_dir=cache)  # a user model hides the bundled one
    assert get_model("nuclei", cache_dir=cache).source == "user"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nuclei").mkdir()
    (tmp_path / "nuclei" / "best.pt").write_bytes((tiny_run / "best.pt").read_bytes())
    assert resolve_model("nuclei", cache_dir=cache).resolve() == tmp_path / "nuclei" / "best.pt"  # a path wins


def test_unknown_name_lists_valid_names(tmp_path):
    with pytest.raises(KeyError, match="valid names: .*nuclei.*shapes"):
        load_model("nucleii", cache_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="model not found"):
        load_model(tmp_path / "runs" / "missing", cache_dir=tmp_path)


def test_models_command(tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PIXELGROUP_HOME", str(tmp_path))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "nuclei" in out and "shapes" in out and "bundled" in out
    assert main(["models", "--info", "nuclei"]) == 0
    assert "Intended use" in capsys.readouterr().out
    assert main(["models", "--add", "mine", str(tiny_run)]) == 0
    assert (tmp_path / "models" / "mine" / "model.pt").is_file()
    assert main(["models", "--add", "mine", str(tiny_run)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["models", "--info", "nope"]) == 2
    assert "valid names" in capsys.readouterr().err


def test_predict_and_train_init_by_name(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELGROUP_HOME", str(tmp_path))
    assert main(["models", "--add", "mine", str(tiny_run)]) == 0
    img = tmp_path / "in"
    assert main(["synth", str(img), "--kind", "nuclei", "--n", "2", "--size", "64", "--seed", "1"]) == 0
    assert main(["predict", "--model", "mine", str(img / "images"), "--out", str(tmp_path / "pred"),
                 "--device", "cpu", "--no-progress"]) == 0
    assert len(list((tmp_path / "pred").glob("*.tif"))) == 2
    assert main(["train", "--data", str(img), "--out", str(tmp_path / "run"), "--steps", "1", "--batch-size", "1",
                 "--crop-size", "64", "--init", "mine", "--device", "cpu", "--no-progress"]) == 0
    cfg, state = load_checkpoint(tmp_path / "run")
    assert cfg.train.init.endswith("model.pt") and state["object_diameter"] > 0
    assert np.isfinite(state["object_diameter"])
