from __future__ import annotations

import logging

import numpy as np
import pytest

from pixelgroup.data.base import DATASETS
from pixelgroup.data.io import DataError, read_labels, write_labels
from pixelgroup.data.voc import VOC_CLASSES, VOCDataset
from pixelgroup.data.writers import write_coco_results

from .fixtures import coco_ap, coco_gt_from_samples, make_voc, save_palette_png


@pytest.fixture
def voc(tmp_path):
    return tmp_path, make_voc(tmp_path)


def _base(root):
    return root / "VOCdevkit" / "VOC2012"


def test_registered():
    assert DATASETS.get("voc") is VOCDataset


def test_samples_match_the_drawn_annotations(voc):
    root, expected = voc
    ds = VOCDataset(root)
    assert ds.names == sorted(expected) and ds.class_names == list(VOC_CLASSES) and len(VOC_CLASSES) == 21
    for i, name in enumerate(ds.names):
        s = ds[i]
        assert s["name"] == name and s["image"].shape == (40, 48, 3) and s["image"].dtype == np.float32
        for key in ("instances", "classes", "instance_classes"):
            assert s[key].dtype == np.int64
            np.testing.assert_array_equal(s[key], expected[name][key], err_msg=key)
    # the car has 4 stray person pixels but its majority class is car (7), the person 15
    assert ds[0]["instance_classes"].tolist() == [15, 7]


def test_normalize_none_keeps_raw_intensities(voc):
    root, _ = voc
    image = VOCDataset(root, normalize=None)[0]["image"]
    assert image.dtype == np.float32 and image.max() > 100  # raw 0..255, not mapped to ~[0, 1]


@pytest.mark.parametrize("sub", ["", "VOCdevkit", "VOCdevkit/VOC2012"])
def test_root_may_be_any_level(voc, sub):
    root, expected = voc
    assert VOCDataset(root / sub if sub else root).names == sorted(expected)


def test_split_and_names(voc):
    root, expected = voc
    names = sorted(expected)
    assert VOCDataset(root, split="train").names == names[:2]
    assert VOCDataset(root, split="val").names == names[2:]
    assert VOCDataset(root, split="train", names=[names[1]]).names == [names[1]]
    with pytest.raises(DataError, match="split 'test' not found; available: train, val"):
        VOCDataset(root, split="test")
    with pytest.raises(DataError, match="unknown sample name"):
        VOCDataset(root, names=["nope"])


def test_not_a_voc_folder(tmp_path):
    with pytest.raises(DataError, match="not a VOC 2012 folder"):
        VOCDataset(tmp_path)


def test_missing_image_raises_or_is_skipped(voc, caplog):
    root, expected = voc
    missing = sorted(expected)[1]
    (_base(root) / "JPEGImages" / f"{missing}.jpg").unlink()
    with pytest.raises(DataError, match=f"{missing}.jpg: file not found"):
        VOCDataset(root)
    with caplog.at_level(logging.WARNING):
        ds = VOCDataset(root, skip_bad=True)
    assert missing not in ds.names and len(ds) == 2
    assert [name for name, _ in ds.skipped] == [missing]
    assert "skipped 1 bad sample(s) of 3, kept 2" in caplog.text
    assert len(VOCDataset(root, names=sorted(set(expected) - {missing}))) == 2  # not asked for: no error


def test_class_outside_table(voc, caplog):
    root, expected = voc
    name = sorted(expected)[0]
    classes = read_labels(_base(root) / "SegmentationClass" / f"{name}.png")
    classes[0, 0] = 30
    save_palette_png(_base(root) / "SegmentationClass" / f"{name}.png", classes)
    with pytest.raises(DataError, match="class id 30 outside VOC's table 0..20"):
        VOCDataset(root)[0]
    with caplog.at_level(logging.WARNING):
        ds = VOCDataset(root, skip_bad=True)
    assert len(ds) == 2 and ds.skipped[0][0] == name and "class id 30" in ds.skipped[0][1]
    assert "skipped 1 bad sample(s)" in caplog.text


def test_size_mismatch(voc):
    root, expected = voc
    name = sorted(expected)[0]
    save_palette_png(_base(root) / "SegmentationObject" / f"{name}.png", np.zeros((20, 20), np.uint8))
    with pytest.raises(DataError, match=r"has size \(20, 20\) but its image .* has size \(40, 48\)"):
        VOCDataset(root)[0]


def test_object_without_object_class(voc):
    root, expected = voc
    name = sorted(expected)[0]
    objects = read_labels(_base(root) / "SegmentationObject" / f"{name}.png")
    objects[38:40, 0:2] = 9  # an object where the class map says background
    save_palette_png(_base(root) / "SegmentationObject" / f"{name}.png", objects)
    with pytest.raises(DataError, match="object 9 has no object-class pixels"):
        VOCDataset(root)[0]


def test_round_trip_labels_and_coco_ap(voc, tmp_path):
    root, _ = voc
    ds = VOCDataset(root)
    samples = [ds[i] for i in range(len(ds))]
    for s in samples:  # label TIFFs of the (ignore-free) instances read back unchanged
        path = write_labels(tmp_path / "pred" / f"{s['name']}.tif", np.maximum(s["instances"], 0))
        np.testing.assert_array_equal(read_labels(path), np.maximum(s["instances"], 0))
    ids = list(range(1, len(samples) + 1))
    results = [(i, np.maximum(s["instances"], 0), [1, 1], s["instance_classes"])
               for i, s in zip(ids, samples)]
    assert write_coco_results(tmp_path / "res.json", results) == 6
    assert coco_ap(coco_gt_from_samples(samples, ids), tmp_path / "res.json") == pytest.approx(1.0)
