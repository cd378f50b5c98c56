from __future__ import annotations

import numpy as np
import pytest
import tifffile

from pixelgroup.data.check import CheckReport, Problem, check_dataset
from pixelgroup.data.detect import detect_format
from pixelgroup.data.folder import FolderDataset
from pixelgroup.data.io import DataError, read_labels

from .fixtures import (
    edit_coco,
    make_cityscapes,
    make_coco,
    make_cvppp,
    make_folder,
    make_voc,
    noise_image,
    save_png,
)

MAKERS = {"folder": make_folder, "voc": make_voc, "coco": make_coco, "cityscapes": make_cityscapes,
          "cvppp": make_cvppp}


@pytest.mark.parametrize("fmt", sorted(MAKERS))
def test_detect_format_each_layout(tmp_path, fmt):
    MAKERS[fmt](tmp_path)
    assert detect_format(tmp_path) == fmt


def test_detect_format_variants(tmp_path):
    make_voc(tmp_path / "v")  # VOCdevkit/VOC2012 below the root
    assert detect_format(tmp_path / "v" / "VOCdevkit") == "voc"
    make_coco(tmp_path / "c")
    assert detect_format(tmp_path / "c" / "annotations" / "instances_val.json") == "coco"
    make_cvppp(tmp_path / "p")
    assert detect_format(tmp_path / "p" / "A1") == "cvppp"


def test_detect_format_unknown_and_ambiguous(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(DataError, match=r"not a known dataset layout; looked for folder \(images/ \+ masks"):
        detect_format(tmp_path / "x")
    with pytest.raises(DataError, match="no such file or folder"):
        detect_format(tmp_path / "nope")
    make_folder(tmp_path / "both")
    make_cvppp(tmp_path / "both")
    with pytest.raises(DataError, match=r"matches several dataset layouts \(folder, cvppp\)"):
        detect_format(tmp_path / "both")


@pytest.mark.parametrize("fmt", sorted(MAKERS))
def test_clean_datasets_pass(tmp_path, fmt):
    MAKERS[fmt](tmp_path)
    report = check_dataset(tmp_path)
    # the COCO fixture's img_c has no annotation on purpose: one "no instance" warning
    expected = ["mask has no instance (all background)"] if fmt == "coco" else []
    assert [p.message for p in report.problems] == expected, report.format()
    assert report.ok and report.dataset_format == fmt and report.counts["checked"] >= 2
    assert "OK: no errors" in report.format()


def _problems(report: CheckReport, severity: str) -> dict[str, str]:
    return {p.file: p.message for p in report.problems if p.severity == severity}


def _binary_mask(shape=(32, 32), high=255):
    mask = np.zeros(shape, np.uint8)
    mask[2:12, 2:12] = high
    mask[16:28, 14:30] = high
    return mask


def test_folder_problems_are_each_reported(tmp_path):
    make_folder(tmp_path, n=2)
    img, msk = tmp_path / "images", tmp_path / "masks"
    save_png(msk / "img0.png", _binary_mask())  # binary, 2 components -> error (blocking)
    tifffile.imwrite(img / "flat.tif", np.full((32, 32), 7, np.uint8))  # constant image -> warning
    save_png(msk / "flat.png", np.zeros((32, 32), np.uint8))  # empty mask -> warning
    tifffile.imwrite(img / "small.tif", noise_image((32, 32), 1))
    save_png(msk / "small.png", np.zeros((16, 32), np.uint8))  # size mismatch -> error
    tifffile.imwrite(img / "jpg.tif", noise_image((32, 32), 2))
    save_png(msk / "jpg.jpg", np.zeros((32, 32, 3), np.uint8))  # JPEG mask -> error
    tifffile.imwrite(img / "interp.tif", noise_image((32, 32), 3))
    tifffile.imwrite(msk / "interp.tif", np.full((32, 32), 1.5, np.float32))  # non-integer -> error
    tifffile.imwrite(img / "frag.tif", noise_image((32, 32), 4))
    frag = np.zeros((32, 32), np.uint8)
    frag[2:20, 2:20] = 1
    frag[25, 2], frag[25, 8], frag[25, 14] = 2, 3, 4  # 3 of 4 instances < 5 px -> warning
    save_png(msk / "frag.png", frag)
    tifffile.imwrite(img / "alone.tif", noise_image((32, 32), 5))  # image without mask -> error
    save_png(msk / "orphan.png", frag)  # mask without image -> error
    save_png(img / "img1.png", noise_image((32, 32), 6))  # duplicate stem img1 (.tif and .png) -> error

    report = check_dataset(tmp_path)
    errors, warnings = _problems(report, "error"), _problems(report, "warning")
    assert not report.ok and report.dataset_format == "folder"
    assert sorted(errors) == ["images/alone.tif", "images/img1", "masks/img0.png", "masks/interp.tif",
                              "masks/jpg.jpg", "masks/orphan.png", "masks/small.png"]
    assert "image without a mask" in errors["images/alone.tif"]
    assert "2 files share the name 'img1'" in errors["images/img1"]
    assert "non-integer values" in errors["masks/interp.tif"]
    assert "JPEG mask" in errors["masks/jpg.jpg"]
    assert "mask without an image" in errors["masks/orphan.png"]
    assert "mask size (16, 32) differs from the image's (32, 32)" in errors["masks/small.png"]
    assert sorted(warnings) == ["images/flat.tif", "masks/flat.png", "masks/frag.png"]
    assert "constant" in warnings["images/flat.tif"]
    assert "no instance" in warnings["masks/flat.png"]
    assert "3 of 4 instances have fewer than 5 pixels" in warnings["masks/frag.png"]
    assert "binary mask (values [0, 255]) with 2 separate objects" in errors["masks/img0.png"]
    assert [p.file for p in report.blocking] == ["masks/img0.png"]
    assert report.counts["errors"] == 7 and report.counts["warnings"] == 3
    text = report.format()
    assert text.startswith(f"pixelgroup check: {tmp_path} (format: folder)") and "FAILED: 7 error(s)" in text
    assert all(isinstance(p, Problem) and len(p) == 5 and p.fix for p in report.problems)


@pytest.mark.parametrize("high", [1, 255])
def test_fix_relabels_binary_masks_and_keeps_originals(tmp_path, high):
    make_folder(tmp_path, n=2)
    save_png(tmp_path / "masks" / "img0.png", _binary_mask(high=high))
    original = (tmp_path / "masks" / "img0.png").read_bytes()
    report = check_dataset(tmp_path, fix=True)
    assert report.ok and report.counts["fixed"] == 1 and "img0.png: 2 instances" in report.fixed[0]
    assert (tmp_path / "masks_orig" / "img0.png").read_bytes() == original
    fixed = read_labels(tmp_path / "masks" / "img0.png")
    assert set(np.unique(fixed).tolist()) == {0, 1, 2}
    assert len(set(fixed[2:12, 2:12].ravel())) == 1 and len(set(fixed[16:28, 14:30].ravel())) == 1
    assert check_dataset(tmp_path).problems == []  # fixed for good
    ds = FolderDataset(tmp_path)
    assert ds[0]["instances"].max() == 2


def test_single_binary_object_is_fine(tmp_path):
    make_folder(tmp_path, n=2)
    mask = np.zeros((32, 32), np.uint8)
    mask[4:20, 4:20] = 255
    save_png(tmp_path / "masks" / "img0.png", mask)
    assert check_dataset(tmp_path).problems == []


def test_fix_refuses_to_overwrite_a_different_backup(tmp_path):
    make_folder(tmp_path, n=2)
    save_png(tmp_path / "masks" / "img0.png", _binary_mask())
    (tmp_path / "masks_orig").mkdir()
    (tmp_path / "masks_orig" / "img0.png").write_bytes(b"older original")
    report = check_dataset(tmp_path, fix=True)
    assert not report.ok and "masks_orig" in report.errors[0].message and not report.fixed
    assert (tmp_path / "masks_orig" / "img0.png").read_bytes() == b"older original"


def test_standard_format_annotation_errors(tmp_path):
    make_coco(tmp_path)
    edit_coco(tmp_path, lambda d: d["annotations"][0].update(category_id=99))
    report = check_dataset(tmp_path)
    assert not report.ok and report.dataset_format == "coco"
    assert report.errors[0].file == "img_a" and "category_id 99" in report.errors[0].message
    assert report.counts["samples"] == 3 and report.counts["checked"] == 2


def test_standard_format_constant_image_and_max_samples(tmp_path):
    make_cvppp(tmp_path)
    save_png(tmp_path / "A2" / "plant002_rgb.png", np.zeros((36, 40, 3), np.uint8))
    report = check_dataset(tmp_path, format="cvppp")
    assert report.ok and [p.file for p in report.warnings] == ["A2/plant002_rgb.png"]
    assert check_dataset(tmp_path, max_samples=1).counts["checked"] == 1


def test_bad_root_and_format_are_reported_not_raised(tmp_path):
    report = check_dataset(tmp_path / "missing")
    assert not report.ok and "no such file or folder" in report.errors[0].message
    report = check_dataset(tmp_path, format="pascal")
    assert not report.ok and "unknown dataset 'pascal'" in report.errors[0].message
