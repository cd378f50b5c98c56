from __future__ import annotations

import logging

import numpy as np
import pytest

from pixelgroup.data.base import DATASETS
from pixelgroup.data.cvppp import CVPPPDataset
from pixelgroup.data.io import DataError

from .fixtures import CVPPP_SHAPE, make_cvppp, save_palette_png


@pytest.fixture
def cvppp(tmp_path):
    return tmp_path, make_cvppp(tmp_path)


def test_registered():
    assert DATASETS.get("cvppp") is CVPPPDataset


def test_samples_match_palette_and_rgb_labels(cvppp):
    root, expected = cvppp
    ds = CVPPPDataset(root)
    assert ds.names == ["A1_plant001", "A2_plant002"] and ds.class_names == ["background", "leaf"]
    for i, name in enumerate(ds.names):
        s = ds[i]
        assert s["image"].shape == (*CVPPP_SHAPE, 3)  # A1's RGBA image: alpha dropped
        for key in ("instances", "classes", "instance_classes"):
            assert s[key].dtype == np.int64
            np.testing.assert_array_equal(s[key], expected[name][key], err_msg=key)


def test_split_and_single_folder_root(cvppp):
    root, _ = cvppp
    assert CVPPPDataset(root, split="A2").names == ["A2_plant002"]
    assert CVPPPDataset(root / "A1").names == ["plant001"]
    with pytest.raises(DataError, match="CVPPP subfolder not found; available: A1, A2"):
        CVPPPDataset(root, split="A9")
    with pytest.raises(DataError, match="not a CVPPP folder"):
        CVPPPDataset(root / "nothing")


def test_image_without_label(cvppp, caplog):
    root, _ = cvppp
    (root / "A2" / "plant002_label.png").unlink()
    with pytest.raises(DataError, match="plant002_rgb.png: image without its label plant002_label.png"):
        CVPPPDataset(root)
    with caplog.at_level(logging.WARNING):
        ds = CVPPPDataset(root, skip_bad=True)
    assert ds.names == ["A1_plant001"] and ds.skipped[0][0] == "A2_plant002"
    assert "skipped 1 bad sample(s) of 2, kept 1" in caplog.text


def test_size_mismatch_and_unreadable(cvppp):
    root, _ = cvppp
    save_palette_png(root / "A1" / "plant001_label.png", np.zeros((10, 10), np.uint8))
    (root / "A2" / "plant002_label.png").write_bytes(b"not a png")
    ds = CVPPPDataset(root)
    with pytest.raises(DataError, match=r"plant001_label.png has size \(10, 10\)"):
        ds[0]
    with pytest.raises(DataError, match="plant002_label.png: cannot read label"):
        ds[1]
    ds = CVPPPDataset(root, skip_bad=True)
    assert len(ds) == 0 and len(ds.skipped) == 2
