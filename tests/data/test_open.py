"""Tests of pixelgroup.data.open.open_dataset: format by name or detected, options passed only when given."""

from __future__ import annotations

import numpy as np
import pytest

from pixelgroup.data import open_dataset
from pixelgroup.data.cvppp import CVPPPDataset
from pixelgroup.data.folder import FolderDataset
from pixelgroup.data.io import DataError
from pixelgroup.data.semantic import SemanticFolderDataset
from pixelgroup.data.synth_semantic import write_synthetic_semantic
from pixelgroup.data.voc import VOCDataset

from .fixtures import make_cvppp, make_folder, make_voc


def test_auto_detects_the_format_and_passes_names_and_normalize(tmp_path):
    masks = make_folder(tmp_path)
    ds = open_dataset(tmp_path, names=["img1"], normalize=None)
    assert isinstance(ds, FolderDataset) and ds.names == ["img1"]
    sample = ds[0]
    assert sample["image"].dtype == np.float32 and sample["image"].max() > 1  # raw values: not normalised
    np.testing.assert_array_equal(sample["instances"], masks["img1"])


def test_split_and_skip_bad_reach_a_standard_reader(tmp_path):
    expected = make_voc(tmp_path)
    ds = open_dataset(tmp_path, format="voc", split="val", skip_bad=True)
    assert isinstance(ds, VOCDataset)
    assert ds.names == sorted(expected)[-1:]
    assert isinstance(open_dataset(tmp_path / "VOCdevkit" / "VOC2012"), VOCDataset)


def test_explicit_format(tmp_path):
    make_cvppp(tmp_path)
    ds = open_dataset(tmp_path, format="cvppp", split="A2")
    assert isinstance(ds, CVPPPDataset) and ds.names == ["A2_plant002"]


def test_segments_reach_the_semantic_reader(tmp_path):
    write_synthetic_semantic(tmp_path, n=2, size=32, seed=0)
    ds = open_dataset(tmp_path, format="semantic_folder", segments="slic")
    assert isinstance(ds, SemanticFolderDataset) and ds.segments == "slic"
    assert "segments" in ds[0]


def test_refuses_an_option_the_reader_does_not_take(tmp_path):
    make_folder(tmp_path)
    with pytest.raises(DataError, match=r"dataset format 'folder' has no splits \(split='train'\); drop --split"):
        open_dataset(tmp_path, split="train")
    with pytest.raises(DataError, match=r"'folder' does not take segments='slic'.*takes: skip_bad"):
        open_dataset(tmp_path, segments="slic")
    assert open_dataset(tmp_path, skip_bad=True).skipped == []


def test_refuses_skip_bad_for_the_semantic_reader(tmp_path):
    write_synthetic_semantic(tmp_path, n=2, size=32, seed=0)
    with pytest.raises(DataError, match=r"'semantic_folder' does not take skip_bad=True"):
        open_dataset(tmp_path, skip_bad=True)


def test_unknown_format_and_layout(tmp_path):
    with pytest.raises(KeyError, match=r"unknown dataset 'nope'; valid names: .*cityscapes"):
        open_dataset(tmp_path, format="nope")
    with pytest.raises(DataError, match="not a known dataset layout"):
        open_dataset(tmp_path)
