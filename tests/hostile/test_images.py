"""Hostile images: NaN/inf, stacks, corrupt, unreadable, mixed channels; in predict, check and train."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

from pixelgroup.data.check import check_dataset
from pixelgroup.data.folder import FolderDataset
from pixelgroup.data.io import DataError, read_image

from .helpers_inputs import noise, one_line_error, run, snapshot, tiny_checkpoint, write_tif


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("model") / "tiny.pt")


def _pair(root, name, image, mask=None):
    write_tif(root / "images" / f"{name}.tif", image)
    if mask is None:
        mask = np.zeros(image.shape[:2], np.uint16)
        mask[2:8, 2:8], mask[10:16, 10:16] = 1, 2
    write_tif(root / "masks" / f"{name}.tif", mask)


def test_predict_finishes_good_files_and_lists_bad_ones(model, tmp_path, capsys):
    inp = tmp_path / "in"
    write_tif(inp / "good.tif", noise((20, 24)))
    write_tif(inp / "nan.tif", np.full((20, 24), np.nan, np.float32))
    write_tif(inp / "stack.tif", noise((5, 20, 24)))
    (inp / "junk.png").write_bytes(b"not a png at all")
    before = snapshot(inp)
    code, out, err = run(capsys, "predict", "--model", model, inp, "--out", tmp_path / "out", "--no-progress")
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.json", "good.tif"]
    assert "wrote 1 prediction(s)" in out
    assert "3 input(s) could not be segmented" in err
    for name, why in (("nan.tif", "NaN or inf"), ("stack.tif", "pass --frames"), ("junk.png", "cannot read file")):
        assert any(str(inp / name) in line and why in line for line in err.splitlines()), (name, err)
    assert snapshot(inp) == before


def test_predict_strict_stops_at_the_first_bad_file(model, tmp_path, capsys):
    inp = tmp_path / "in"
    write_tif(inp / "a_nan.tif", np.full((16, 16), np.inf, np.float32))
    write_tif(inp / "b_good.tif", noise((16, 16)))
    code, _, err = run(capsys, "predict", "--model", model, inp, "--out", tmp_path / "out", "--strict",
                       "--no-progress")
    assert code == 2
    one_line_error(err, str(inp / "a_nan.tif"), "NaN or inf", "--strict")
    assert not (tmp_path / "out" / "b_good.tif").exists()


def test_predict_empty_file_is_reported_not_raised(model, tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.tif").write_bytes(b"")
    code, _, err = run(capsys, "predict", "--model", model, tmp_path / "in", "--out", tmp_path / "o", "--no-progress")
    assert code == 1 and f"{tmp_path / 'in' / 'empty.tif'}: cannot read file" in err


def test_predict_one_pixel_and_thin_images(model, tmp_path, capsys):
    write_tif(tmp_path / "in" / "dot.tif", noise((1, 1)))
    write_tif(tmp_path / "in" / "row.tif", noise((1, 9)))
    code, _, _ = run(capsys, "predict", "--model", model, tmp_path / "in", "--out", tmp_path / "o", "--no-progress")
    assert code == 0
    assert tifffile.imread(tmp_path / "o" / "dot.tif").shape == (1, 1)
    assert tifffile.imread(tmp_path / "o" / "row.tif").shape == (1, 9)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_image_says_permission_not_reexport(tmp_path):
    path = write_tif(tmp_path / "locked.tif", noise((8, 8)))
    path.chmod(0)
    with pytest.raises(DataError, match="permission denied") as info:
        read_image(path)
    assert "re-export" not in str(info.value) and str(path) in str(info.value)


def test_nan_image_is_a_check_error_and_skipped_with_skip_bad(tmp_path):
    _pair(tmp_path, "good", noise((20, 20)))
    bad = noise((20, 20), dtype=np.float32)
    bad[3, 3] = np.nan
    _pair(tmp_path, "nan", bad)
    report = check_dataset(tmp_path)
    assert not report.ok and [p.file for p in report.errors] == ["images/nan.tif"]
    assert "1 NaN or inf pixel" in report.errors[0].message
    ds = FolderDataset(tmp_path, skip_bad=True)
    assert ds.names == ["good"] and "NaN or inf" in ds.skipped[0][1]
    with pytest.raises(DataError, match=r"nan\.tif: image has NaN or inf pixels"):
        FolderDataset(tmp_path)[1]


def test_mixed_grey_and_rgb_images_name_an_example_of_each(tmp_path, capsys):
    _pair(tmp_path, "grey", noise((20, 20)))
    _pair(tmp_path, "rgb", noise((20, 20, 3)))
    report = check_dataset(tmp_path)
    assert not report.ok and report.blocking
    message = report.errors[0].message
    assert "images/grey.tif has 1 channel(s)" in message and "images/rgb.tif has 3 channel(s)" in message
    code, _, err = run(capsys, "train", "--data", tmp_path, "--out", tmp_path / "run", "--steps", "1",
                       "--no-progress", "--device", "cpu")
    assert code == 2 and "different channels" in err and "stack" not in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_check_names_a_corrupt_image(tmp_path):
    _pair(tmp_path, "good", noise((20, 20)))
    _pair(tmp_path, "bad", noise((20, 20)))
    (tmp_path / "images" / "bad.tif").write_bytes(b"II*\x00garbage")
    report = check_dataset(tmp_path)
    assert [p.file for p in report.errors] == ["images/bad.tif"]
    assert "cannot read file" in report.errors[0].message


def test_channels_first_tiff_file_is_read_channels_last(tmp_path):
    path = tmp_path / "cf.tif"
    tifffile.imwrite(path, noise((3, 20, 24)), photometric="minisblack")
    assert read_image(path).shape == (20, 24, 3)


@pytest.mark.parametrize(("axes", "what"), [("ZYX", "z-stack"), ("TYX", "time series")])
def test_labelled_stacks_are_refused_not_read_as_channels(tmp_path, axes, what):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, noise((3, 20, 24)), imagej=True, metadata={"axes": axes})
    with pytest.raises(DataError, match=rf"stack\.tif: image is a {what} \(axes {axes}"):
        read_image(path)


def test_permission_error_names_the_file_even_as_root(tmp_path, monkeypatch, capsys):
    """Root reads every file, so the operating system's refusal is simulated."""
    path = write_tif(tmp_path / "in" / "locked.tif", noise((8, 8)))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(tifffile, "TiffFile", refuse)
    with pytest.raises(DataError, match=r"locked\.tif: cannot read file \(permission denied\)") as info:
        read_image(path)
    assert "re-export" not in str(info.value)
