"""Training from one annotated image: a held-out band, calibrated grouping, the summary line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from pixelgroup import load_model
from pixelgroup.cli import main
from pixelgroup.config import RunConfig
from pixelgroup.engine.checkpoint import read_checkpoint
from pixelgroup.engine.datasets import open_datasets
from pixelgroup.engine.errors import TrainingError
from pixelgroup.engine.train import fit

from ._toy import disc_image

TINY = ["--steps", "3", "--batch-size", "2", "--crop-size", "64", "--device", "cpu", "--no-progress"]


def _write(root, images):
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name, ids in images.items():
        rng = np.random.default_rng(0)
        image = np.where(ids > 0, 200, 20) + rng.integers(0, 20, ids.shape)
        tifffile.imwrite(root / "images" / f"{name}.tif", image.astype(np.uint16))
        tifffile.imwrite(root / "masks" / f"{name}.tif", ids.astype(np.int32))
    return root


@pytest.fixture(scope="module")
def one_image(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("one") / "data", {"field": disc_image((224, 160), n=40, seed=1)})


@pytest.fixture(scope="module")
def run(one_image, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "one"
    assert main(["train", "--data", str(one_image), "--out", str(out), *TINY]) == 0
    return out


def test_one_image_trains_with_a_held_out_band(one_image):
    ds = open_datasets(RunConfig(), one_image, None)
    assert len(ds.train) == len(ds.val) == 1
    assert ds.train[0]["name"] == "field[train]" and ds.val[0]["name"] == "field[val]"
    assert ds.train[0]["image"].shape[0] + ds.val[0]["image"].shape[0] <= 224
    assert "validation: a band" in ds.how


def test_train_ends_with_a_summary_and_a_calibrated_grouping(run, one_image, tmp_path, capsys):
    # the module fixture trained already; train a second run here to see its output
    out = tmp_path / "again"
    assert main(["train", "--data", str(one_image), "--out", str(out), *TINY]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("held-out: AP@0.5 ") and "AP@0.75" in line and "objects at step" in line
    assert "calibrated" in line and str(out) in line
    saved = json.loads((run / "calibration.json").read_text())
    assert saved["grouper"] == "seeded_classes" and "min_size" in saved["params"]
    assert read_checkpoint(run / "best.pt")["calibration"] == saved
    history = [json.loads(h) for h in (run / "history.jsonl").read_text().splitlines()]
    assert all("ap_dsb@0.75" in h and h["n_gt"] > 0 for h in history)


def test_predict_uses_the_calibrated_values_and_the_users_win(run):
    saved = json.loads((run / "calibration.json").read_text())["params"]
    seg = load_model(run)
    assert {k: seg.grouper_params[k] for k in saved} == saved
    assert load_model(run, min_size=3).grouper_params["min_size"] == 3


def test_a_whole_image_split_says_how_many_objects_it_holds_out(tmp_path):
    images = {f"f{i}": disc_image((64, 64), n=3 + i, seed=i) for i in range(8)}
    data = _write(tmp_path / "data", images)
    ds = open_datasets(RunConfig(), data, None)  # 8 images: whole images are held out
    held = [ds.val[i]["instances"] for i in range(len(ds.val))]
    count = sum(len(np.unique(m[m > 0])) for m in held)
    assert count > 0 and ds.how == f"validation: {len(held)} of 8 images held out ({count} objects)"


def test_images_split_needs_two_images(one_image, tmp_path):
    cfg = RunConfig().replace(**{"data.val_split": "images", "train.steps": 1})
    with pytest.raises(TrainingError, match="val_split: regions"):
        fit(cfg, data=one_image, out=tmp_path / "r")


def test_too_small_single_image_says_what_to_do(tmp_path):
    data = _write(tmp_path / "small", {"tiny": disc_image((64, 64), n=3, radius=(5, 7), margin=8)})
    with pytest.raises(TrainingError, match="--val DIR"):
        fit(RunConfig().replace(**{"train.steps": 1}), data=data, out=tmp_path / "r")


def test_a_minutes_budget_shows_progress_against_time(one_image, tmp_path, capsys):
    cfg = RunConfig().replace(**{"train.steps": 2, "train.minutes": 5.0, "data.batch_size": 2, "data.crop_size": 64})
    fit(cfg, data=one_image, out=tmp_path / "r", progress=True)
    err = capsys.readouterr().err
    assert "(5 min or 2 steps)" in err and "step=2" in err and "100%" in err
    assert "/2 [" not in err  # not a bar of steps


def test_crops_small_for_the_objects_are_warned_about(one_image, tmp_path, caplog):
    # the discs are ~16 px across: 32 px crops hold two of them across, 64 px crops four
    cfg = RunConfig().replace(**{"train.steps": 1, "data.batch_size": 2, "data.crop_size": 32})
    with caplog.at_level("WARNING", logger="pixelgroup.engine.train"):
        fit(cfg, data=one_image, out=tmp_path / "small", progress=False)
    warned = [r.getMessage() for r in caplog.records if "few objects fit a crop" in r.getMessage()]
    assert len(warned) == 1 and "are 16 px across" in warned[0] and "crops 32 px" in warned[0], warned
    suggested = int(warned[0].rsplit("--crop-size ", 1)[1].rstrip(")"))
    assert suggested % 32 == 0 and 6 * 16 <= suggested <= 6 * 17 + 32
    caplog.clear()
    with caplog.at_level("WARNING", logger="pixelgroup.engine.train"):
        fit(cfg.replace(**{"data.crop_size": 64}), data=one_image, out=tmp_path / "fine", progress=False)
    assert not [r for r in caplog.records if "few objects fit a crop" in r.getMessage()]
