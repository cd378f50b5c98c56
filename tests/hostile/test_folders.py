"""Hostile folders: empty, missing, duplicate stems, stray files, a file where a folder is expected."""

from __future__ import annotations

import numpy as np
import pytest

from pixelgroup.data.check import check_dataset

from .helpers_inputs import noise, one_line_error, run, snapshot, tiny_checkpoint, write_tif


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


def test_empty_images_and_masks_folders_are_an_error(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    report = check_dataset(tmp_path, format="folder")
    assert not report.ok and "no images" in report.errors[0].message
    code, out, _ = run(capsys, "check", tmp_path, "--format", "folder")
    assert code == 1 and "FAILED" in out and "OK" not in out


def test_predict_on_an_empty_folder(model, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    code, _, err = run(capsys, "predict", "--model", model, tmp_path / "in", "--out", tmp_path / "o")
    assert code == 2
    one_line_error(err, str(tmp_path / "in"), "no images")


def test_predict_on_a_missing_path(model, tmp_path, capsys):
    code, _, err = run(capsys, "predict", "--model", model, tmp_path / "nope.tif", "--out", tmp_path / "o")
    assert code == 2
    one_line_error(err, "nope.tif", "no such file")


def test_two_inputs_with_the_same_stem_are_refused_naming_both(model, tmp_path, capsys):
    write_tif(tmp_path / "in" / "a.tif", noise((16, 16)))
    (tmp_path / "in" / "a.png").write_bytes((tmp_path / "in" / "a.tif").read_bytes())
    code, _, err = run(capsys, "predict", "--model", model, tmp_path / "in", "--out", tmp_path / "o", "--no-progress")
    assert code == 2
    one_line_error(err, "a.png", "a.tif", "rename one")
    assert not (tmp_path / "o").exists()


def test_same_stem_in_two_folders_is_refused(model, tmp_path, capsys):
    write_tif(tmp_path / "x" / "a.tif", noise((16, 16)))
    write_tif(tmp_path / "y" / "a.tif", noise((16, 16), seed=1))
    code, _, err = run(capsys, "predict", "--model", model, tmp_path / "x", tmp_path / "y", "--out", tmp_path / "o",
                       "--no-progress")
    assert code == 2
    one_line_error(err, str(tmp_path / "x" / "a.tif"), str(tmp_path / "y" / "a.tif"))


def test_hidden_and_other_files_are_ignored(model, tmp_path, capsys):
    write_tif(tmp_path / "in" / "a.tif", noise((16, 16)))
    (tmp_path / "in" / ".DS_Store").write_bytes(b"\0\1")
    (tmp_path / "in" / "notes.txt").write_text("hello")
    (tmp_path / "in" / "sub").mkdir()
    code, _, _ = run(capsys, "predict", "--model", model, tmp_path / "in", "--out", tmp_path / "o", "--no-progress")
    assert code == 0 and sorted(p.name for p in (tmp_path / "o").iterdir()) == ["a.json", "a.tif"]


def test_check_on_a_file_or_a_missing_folder_reports(tmp_path, capsys):
    write_tif(tmp_path / "a.tif", noise((8, 8)))
    code, out, err = run(capsys, "check", tmp_path / "a.tif")
    assert code in (1, 2) and "a.tif" in out + err
    code, out, err = run(capsys, "check", tmp_path / "missing")
    assert code in (1, 2) and "missing" in out + err


def test_images_without_masks_folder(tmp_path):
    write_tif(tmp_path / "images" / "a.tif", noise((8, 8)))
    (tmp_path / "masks").mkdir()
    report = check_dataset(tmp_path, format="folder")
    assert not report.ok and report.errors[0].file == "images/a.tif" and "without a mask" in report.errors[0].message


def test_train_refuses_a_data_folder_with_one_empty_dataset(tmp_path, capsys):
    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "masks").mkdir()
    before = snapshot(tmp_path / "d")
    code, _, err = run(capsys, "train", "--data", tmp_path / "d", "--format", "folder", "--out", tmp_path / "run",
                       "--steps", "1", "--no-progress", "--device", "cpu")
    assert code == 2 and "no images" in err and "Traceback" not in err
    assert snapshot(tmp_path / "d") == before and not (tmp_path / "run" / "last.pt").exists()


def test_labels_mask_size_mismatch_named(tmp_path):
    write_tif(tmp_path / "images" / "a.tif", noise((16, 16)))
    write_tif(tmp_path / "masks" / "a.tif", np.zeros((8, 16), np.uint16))
    report = check_dataset(tmp_path)
    assert report.errors[0].file == "masks/a.tif" and "differs" in report.errors[0].message
