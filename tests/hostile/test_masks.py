"""Hostile masks: interpolated ids, binary masks of several objects, all background, bad values."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.transform import resize

from pixelgroup.data.check import check_dataset, interpolation_fragments
from pixelgroup.data.folder import FolderDataset
from pixelgroup.data.synth import synth_nuclei, synth_rods, synth_shapes, write_synthetic

from .helpers_inputs import noise, run, snapshot, write_tif


def _nuclei_labels(size=64, seed=0):
    return synth_nuclei(np.random.default_rng(seed), size)[1]


def _dataset(root, masks):
    for i, mask in enumerate(masks):
        write_tif(root / "images" / f"im{i}.tif", noise(mask.shape, seed=i))
        write_tif(root / "masks" / f"im{i}.tif", mask)
    return root


def _binary(shape=(32, 32)):
    mask = np.zeros(shape, np.uint8)
    mask[2:12, 2:12] = 255
    mask[16:28, 14:30] = 255
    return mask


@pytest.mark.parametrize("factor", [0.5, 1.5, 2.0])
def test_labels_resized_with_interpolation_are_an_error(tmp_path, factor):
    labels = _nuclei_labels()
    shape = (int(64 * factor),) * 2
    damaged = resize(labels, shape, order=1, preserve_range=True).astype(int).astype(np.uint16)
    report = check_dataset(_dataset(tmp_path, [damaged]))
    assert not report.ok and report.blocking
    assert report.errors[0].file == "masks/im0.tif"
    assert "damaged by interpolation" in report.errors[0].message and "nearest-neighbour" in report.errors[0].fix


def test_labels_resized_nearest_neighbour_pass(tmp_path):
    labels = resize(_nuclei_labels(), (96, 96), order=0, preserve_range=True, anti_aliasing=False)
    report = check_dataset(_dataset(tmp_path, [labels.astype(np.uint16)]))
    assert report.ok, report.format()


@pytest.mark.parametrize("make", [synth_nuclei, synth_shapes, synth_rods])
def test_clean_partitions_have_few_interpolation_fragments(make):
    for seed in range(3):
        labels = make(np.random.default_rng(seed), 96)[1]
        n_ids = len(np.unique(labels[labels > 0]))
        assert interpolation_fragments(labels) < max(3, 0.5 * n_ids)


def test_crossing_rods_are_not_taken_for_interpolation_damage(tmp_path):
    # crossing rods leave stray pixels of one id between two others (up to ~0.9 pieces per object):
    # a clean dataset that an earlier threshold (0.5 per object) refused
    write_synthetic(tmp_path / "rods", kind="rods", n=16, size=128, seed=21)
    report = check_dataset(tmp_path / "rods")
    assert report.ok, report.format()


def test_binary_mask_with_several_objects_is_an_error_offering_fix(tmp_path, capsys):
    _dataset(tmp_path, [_binary(), _binary()])
    code, out, _ = run(capsys, "check", tmp_path)
    assert code == 1 and "ERROR" in out and "binary mask (values [0, 255]) with 2 separate objects" in out
    assert "pixelgroup check DIR --fix" in out and "data.binary_masks" in out
    assert run(capsys, "check", tmp_path, "--binary-masks", "objects")[0] == 0
    assert run(capsys, "check", tmp_path, "--binary-masks", "components")[0] == 0


def test_train_stops_on_binary_masks_even_with_skip_bad(tmp_path, capsys):
    data = _dataset(tmp_path / "d", [_binary(), _binary()])
    (tmp_path / "c.yaml").write_text("data:\n  skip_bad: true\n")
    code, _, err = run(capsys, "train", "--data", data, "--out", tmp_path / "run", "--config", tmp_path / "c.yaml",
                       "--steps", "1", "--no-progress", "--device", "cpu")
    assert code == 2 and "binary mask" in err and "--fix" in err
    assert not (tmp_path / "run" / "last.pt").exists()


def test_binary_masks_components_setting_labels_objects(tmp_path):
    _dataset(tmp_path, [_binary()])
    assert FolderDataset(tmp_path)[0]["instances"].max() == 255
    labels = FolderDataset(tmp_path, binary_masks="components")[0]["instances"]
    assert sorted(np.unique(labels).tolist()) == [0, 1, 2]


def test_fix_rewrites_binary_masks_and_keeps_originals(tmp_path, capsys):
    _dataset(tmp_path, [_binary()])
    original = (tmp_path / "masks" / "im0.tif").read_bytes()
    code, out, _ = run(capsys, "check", tmp_path, "--fix")
    assert code == 0 and "FIXED" in out
    assert (tmp_path / "masks_orig" / "im0.tif").read_bytes() == original


def test_every_mask_background_is_an_error(tmp_path, capsys):
    _dataset(tmp_path / "d", [np.zeros((20, 20), np.uint8)] * 2)
    report = check_dataset(tmp_path / "d")
    assert not report.ok and len(report.errors) == 1 and "every mask checked (2) is all background" in \
        report.errors[0].message
    assert not report.warnings  # one finding, not one per file
    code, _, err = run(capsys, "train", "--data", tmp_path / "d", "--out", tmp_path / "run", "--steps", "1",
                       "--no-progress", "--device", "cpu")
    assert code == 2 and "all background" in err


def test_some_empty_masks_are_only_warnings(tmp_path):
    labels = np.zeros((20, 20), np.uint8)
    labels[2:9, 2:9] = 1
    report = check_dataset(_dataset(tmp_path, [labels, np.zeros((20, 20), np.uint8)]))
    assert report.ok and [p.file for p in report.warnings] == ["masks/im1.tif"]


def test_negative_and_rgb_masks_name_the_file(tmp_path):
    _dataset(tmp_path, [np.full((20, 20), -1, np.int32)])
    write_tif(tmp_path / "images" / "rgb.tif", noise((20, 20)))
    write_tif(tmp_path / "masks" / "rgb.tif", noise((20, 20, 3)))
    errors = {p.file: p.message for p in check_dataset(tmp_path).errors}
    assert "negative values" in errors["masks/im0.tif"] and "3 channels" in errors["masks/rgb.tif"]


def test_check_never_modifies_files_without_fix(tmp_path):
    _dataset(tmp_path, [_binary(), np.zeros((32, 32), np.uint8)])
    before = snapshot(tmp_path)
    check_dataset(tmp_path)
    assert snapshot(tmp_path) == before
