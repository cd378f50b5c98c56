"""End to end through the CLI on tiny synthetic data: synth -> train -> predict -> evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from pixelgroup.cli import main
from pixelgroup.engine.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    assert main(["synth", str(root / "nuclei"), "--kind", "nuclei", "--n", "4", "--size", "64", "--seed", "3"]) == 0
    return root / "nuclei"


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("run") / "spatial"
    code = main(["train", "--data", str(data_dir), "--out", str(run), "--steps", "3", "--batch-size", "2",
                 "--crop-size", "64", "--device", "cpu", "--no-progress"])
    assert code == 0
    return run


def test_train_writes_run_folder(run_dir):
    for name in ("best.pt", "last.pt", "config.yaml", "history.jsonl"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tensorboard").iterdir())
    cfg, state = load_checkpoint(run_dir)
    assert cfg.method == "spatial" and cfg.train.steps == 3
    assert state["in_channels"] == 1
    low, high = state["object_diameter_range"]  # 10th-90th percentile of the training objects' diameters
    assert 0 < low <= state["object_diameter"] <= high


def test_predict_and_evaluate(run_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "pred"
    assert main(["predict", "--model", str(run_dir), str(data_dir / "images"), "--out", str(out),
                 "--overlays", "--no-progress"]) == 0
    names = sorted(p.stem for p in (data_dir / "images").iterdir())
    for name in names:
        labels = tifffile.imread(out / f"{name}.tif")
        assert labels.shape == (64, 64) and np.issubdtype(labels.dtype, np.integer)
        doc = json.loads((out / f"{name}.json").read_text())
        assert len(doc["instances"]) == labels.max()
        assert (out / f"{name}_overlay.png").is_file()
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(data_dir), "--pred", str(out), "--json", str(tmp_path / "r.json")]) == 0
    table = capsys.readouterr().out
    assert "AP" in table
    res = json.loads((tmp_path / "r.json").read_text())
    assert 0.0 <= res["ap_dsb@0.50"] <= 1.0


def test_perfect_prediction_scores_one(data_dir, tmp_path):
    assert main(["evaluate", "--gt", str(data_dir), "--pred", str(data_dir / "masks"),
                 "--json", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["ap_dsb@0.50"] == pytest.approx(1.0)
    assert res["ap_dsb@0.90"] == pytest.approx(1.0)


def test_resume_continues(run_dir, data_dir):
    assert main(["train", "--data", str(data_dir), "--out", str(run_dir), "--steps", "5", "--batch-size", "2",
                 "--crop-size", "64", "--resume", "--no-progress"]) == 0
    _, state = load_checkpoint(run_dir / "last.pt")
    assert state["step"] == 5


def test_existing_run_without_resume_is_refused(run_dir, data_dir, capsys):
    code = main(["train", "--data", str(data_dir), "--out", str(run_dir), "--steps", "2", "--no-progress"])
    assert code == 2
    assert "pass --resume" in capsys.readouterr().err


def test_clear_errors(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "missing" in err and err.count("\n") == 1
    assert main(["predict", "--model", str(tmp_path / "nope"), str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "model not found" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--method", "nope"]) == 2
    assert "valid names" in capsys.readouterr().err


def test_synth_semantic_palette(tmp_path):
    from PIL import Image

    from pixelgroup.data.synth_semantic import synth_semantic

    args = ["--kind", "semantic", "--n", "1", "--size", "40", "--seed", "2"]
    assert main(["synth", str(tmp_path / "cls"), *args]) == 0
    assert main(["synth", str(tmp_path / "shared"), *args, "--palette", "shared"]) == 0
    for palette in ("class", "shared"):
        image, _ = synth_semantic(np.random.default_rng([2, 0]), 40, palette=palette)
        folder = "cls" if palette == "class" else "shared"
        assert np.array_equal(np.asarray(Image.open(tmp_path / folder / "images" / "synth_0000.png")), image)
