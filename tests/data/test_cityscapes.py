from __future__ import annotations

import logging

import numpy as np
import pytest

from pixelgroup.data.base import DATASETS
from pixelgroup.data.cityscapes import INSTANCE_LABEL_IDS, CityscapesDataset
from pixelgroup.data.io import DataError
from pixelgroup.data.writers import read_cityscapes_results, write_cityscapes_results

from .fixtures import CITY_SHAPE, make_cityscapes, save_png


@pytest.fixture
def city(tmp_path):
    return tmp_path, make_cityscapes(tmp_path)


def _gt(root, name, split="train"):
    return root / "gtFine" / split / name.split("_")[0] / f"{name}_gtFine_instanceIds.png"


def test_registered():
    assert DATASETS.get("cityscapes") is CityscapesDataset


def test_samples_match_the_drawn_annotations(city):
    root, expected = city
    ds = CityscapesDataset(root)
    assert ds.names == sorted(expected)
    assert ds.class_names[1:] == ["person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle"]
    assert ds.label_ids == list(INSTANCE_LABEL_IDS) == [24, 25, 26, 27, 28, 31, 32, 33]
    for i, name in enumerate(ds.names):
        s = ds[i]
        assert s["image"].shape == (*CITY_SHAPE, 3)
        for key in ("instances", "classes", "instance_classes"):
            assert s[key].dtype == np.int64
            np.testing.assert_array_equal(s[key], expected[name][key], err_msg=key)
    s = ds[0]
    assert (s["instances"][22:30, 2:14] == -1).all()  # person group region (24, no instance id)
    assert (s["classes"][0:6] == 0).all()  # building (11) -> background


def test_splits(tmp_path):
    train = make_cityscapes(tmp_path, "train", "aachen", n=1)
    val = make_cityscapes(tmp_path, "val", "bonn", n=1)
    make_cityscapes(tmp_path, "test", "berlin", n=1)
    assert CityscapesDataset(tmp_path).names == sorted([*train, *val])  # test left out
    assert CityscapesDataset(tmp_path, split="val").names == sorted(val)
    assert len(CityscapesDataset(tmp_path, split="test")) == 1
    with pytest.raises(DataError, match="split not found; available: test, train, val"):
        CityscapesDataset(tmp_path, split="extra")


def test_not_a_cityscapes_folder(tmp_path):
    with pytest.raises(DataError, match="not a Cityscapes folder"):
        CityscapesDataset(tmp_path)


@pytest.mark.parametrize(("value", "label"), [(11000, 11), (50, 50)])
def test_ids_outside_the_table(city, value, label, caplog):
    root, expected = city
    name = sorted(expected)[0]
    ids = np.full(CITY_SHAPE, 7, np.uint16)
    ids[0, 0] = value
    save_png(_gt(root, name), ids)
    with pytest.raises(DataError, match=f"value {value} \\(label id {label}\\) is outside the Cityscapes"):
        CityscapesDataset(root)[0]
    with caplog.at_level(logging.WARNING):
        ds = CityscapesDataset(root, skip_bad=True)
    assert ds.names == sorted(expected)[1:] and ds.skipped[0][0] == name
    assert "skipped 1 bad sample(s) of 2, kept 1" in caplog.text


def test_label_without_image(city):
    root, expected = city
    name = sorted(expected)[0]
    (root / "leftImg8bit" / "train" / "aachen" / f"{name}_leftImg8bit.png").unlink()
    with pytest.raises(DataError, match=f"no image {name}_leftImg8bit.png"):
        CityscapesDataset(root)
    assert len(CityscapesDataset(root, skip_bad=True)) == 1


def test_round_trip_results_read_back_equal(city, tmp_path):
    root, _ = city
    ds = CityscapesDataset(root)
    s = ds[0]
    labels = np.maximum(s["instances"], 0)
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    txt = write_cityscapes_results(tmp_path / "res", s["name"], labels, scores, s["instance_classes"])
    lines = txt.read_text().splitlines()
    assert [line.split()[1:] for line in lines] == [
        ["24", "0.900000"], ["26", "0.800000"], ["26", "0.700000"], ["33", "0.600000"]
    ]
    assert lines[0].split()[0] == f"masks/{s['name']}_001.png"
    back, back_scores, back_ids = read_cityscapes_results(txt)
    np.testing.assert_array_equal(back, labels)
    np.testing.assert_allclose(back_scores, scores)
    assert back_ids.tolist() == [24, 26, 26, 33]
