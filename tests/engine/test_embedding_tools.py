"""Boundaries, proposals (hypersphere model) and explain (SegSort model) through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pixelgroup.cli import main
from pixelgroup.data.proposals import read_proposals


@pytest.fixture(scope="module")
def nuclei(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb") / "nuclei"
    assert main(["synth", str(root), "--kind", "nuclei", "--n", "3", "--size", "64", "--seed", "5"]) == 0
    return root


@pytest.fixture(scope="module")
def hyper_run(nuclei, tmp_path_factory):
    run = tmp_path_factory.mktemp("emb_run") / "hyper"
    assert main(["train", "--data", str(nuclei), "--out", str(run), "--method", "hypersphere", "--steps", "2",
                 "--batch-size", "2", "--crop-size", "64", "--no-progress"]) == 0
    return run


def test_boundaries_and_bsds_evaluation(hyper_run, nuclei, tmp_path, capsys):
    out = tmp_path / "bd"
    assert main(["boundaries", "--model", str(hyper_run), str(nuclei / "images"), "--out", str(out)]) == 0
    maps = sorted(out.glob("*.png"))
    assert len(maps) == 3
    prob = np.asarray(Image.open(maps[0]))
    assert prob.shape == (64, 64) and prob.dtype == np.uint8
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(nuclei), "--pred", str(out), "--boundaries"]) == 0
    assert "ODS" in capsys.readouterr().out


def test_proposals_and_average_recall(hyper_run, nuclei, tmp_path, capsys):
    out = tmp_path / "props"
    assert main(["proposals", "--model", str(hyper_run), str(nuclei / "images"), "--out", str(out),
                 "--top", "20"]) == 0
    files = sorted(out.glob("*.json"))
    assert len(files) == 3
    doc = json.loads(files[0].read_text())
    scores = [p["score"] for p in doc["proposals"]]
    assert scores == sorted(scores, reverse=True) and len(scores) <= 20
    masks = read_proposals(files[0])
    assert masks.shape[1:] == (64, 64) or masks.shape[0] == 0
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(nuclei), "--pred", str(out), "--proposals"]) == 0
    assert "AR@10" in capsys.readouterr().out


def test_spatial_model_has_no_embedding(nuclei, tmp_path, capsys):
    run = tmp_path / "sp"
    assert main(["train", "--data", str(nuclei), "--out", str(run), "--steps", "1", "--batch-size", "2",
                 "--crop-size", "64", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["boundaries", "--model", str(run), str(nuclei / "images"), "--out", str(tmp_path / "b")]) == 2
    assert "no free embedding" in capsys.readouterr().err


def test_segsort_explain(tmp_path, capsys):
    data = tmp_path / "sem"
    assert main(["synth", str(data), "--kind", "semantic", "--n", "3", "--size", "64", "--seed", "1"]) == 0
    run = tmp_path / "segsort"
    assert main(["train", "--data", str(data), "--out", str(run), "--method", "segsort", "--steps", "2",
                 "--batch-size", "2", "--crop-size", "64", "--no-progress"]) == 0
    pred = tmp_path / "pred"
    assert main(["predict", "--model", str(run), str(data / "images"), "--out", str(pred)]) == 0
    classes = np.asarray(Image.open(sorted(pred.glob("*.png"))[0]))
    assert classes.shape == (64, 64)
    image = sorted((data / "images").iterdir())[0]
    out = tmp_path / "explain"
    assert main(["explain", "--model", str(run), str(image), "--out", str(out), "--k", "3"]) == 0
    panels = sorted(out.glob("*.png"))
    assert panels, "one panel per predicted segment"
    panel = np.asarray(Image.open(panels[0]))
    assert panel.shape[0] == 96 and panel.shape[1] >= 96 and panel.shape[2] == 3
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(data), "--pred", str(pred), "--semantic", "--n-classes", "6"]) == 0
    assert "mIoU" in capsys.readouterr().out or "miou" in capsys.readouterr().out.lower()
