"""Contract test of the dataset registry: every reader in ``DATASETS`` honours the sample dict of
:mod:`pixelgroup.data.base` on a small fixture of its layout.

A new reader needs one entry in ``FIXTURES`` (a builder writing a tiny dataset and returning its
sample names); the first test fails until it has one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import pixelgroup.data  # noqa: F401  (registers every reader)
from pixelgroup.data.base import DATASETS
from pixelgroup.data.open import open_dataset
from pixelgroup.data.synth_semantic import write_synthetic_semantic

from .fixtures import make_cityscapes, make_coco, make_cvppp, make_folder, make_voc


def _semantic_folder(root: Path) -> list[str]:
    write_synthetic_semantic(root, n=2, size=32, seed=0)
    return ["synth_0000", "synth_0001"]


FIXTURES: dict[str, Callable[[Path], list[str]]] = {
    "folder": lambda root: sorted(make_folder(root, n=2)),
    "semantic_folder": _semantic_folder,
    "voc": lambda root: sorted(make_voc(root, n=2)),
    "coco": lambda root: sorted(make_coco(root)),
    "cityscapes": lambda root: sorted(make_cityscapes(root, n=2)),
    "cvppp": lambda root: sorted(make_cvppp(root)),
}
"""Registry name -> builder: writes a tiny dataset of that layout under ``root``, returns its sample names."""

SEMANTIC = {"semantic_folder"}
"""Readers whose samples must carry ``classes`` (their ``instances`` are optional)."""


def test_every_registered_reader_has_a_fixture():
    missing = sorted(set(DATASETS.names()) - set(FIXTURES))
    assert not missing, (
        f"dataset reader(s) {missing} are registered without a contract fixture; add a builder to "
        f"FIXTURES in {Path(__file__).name} (write a tiny dataset, return its sample names)"
    )


def _check_label_image(arr: np.ndarray, hw: tuple[int, int], key: str) -> None:
    assert isinstance(arr, np.ndarray) and arr.dtype == np.int64, f"{key}: {type(arr)} {getattr(arr, 'dtype', '')}"
    assert arr.shape == hw, f"{key} has shape {arr.shape}, the image {hw}"
    assert arr.min(initial=0) >= -1, f"{key} has values below -1 (only -1 = ignore is negative)"


def _check_instances(instances: np.ndarray, sample: dict) -> None:
    ids = np.unique(instances[instances > 0])
    np.testing.assert_array_equal(ids, np.arange(1, ids.size + 1), err_msg="instance ids are not 1..N")
    if "instance_classes" in sample:
        ic = sample["instance_classes"]
        assert ic.dtype == np.int64 and ic.shape == (ids.size,), f"instance_classes {ic.dtype} {ic.shape}"
        assert (ic >= 1).all(), "an instance has class 0 (background)"


@pytest.mark.parametrize("name", DATASETS.names())
def test_reader_contract(name, tmp_path):
    if name not in FIXTURES:
        pytest.fail(f"no contract fixture for dataset '{name}'; add one to FIXTURES")
    expected = FIXTURES[name](tmp_path)
    reader = DATASETS.get(name)(tmp_path)
    assert type(open_dataset(tmp_path, format=name)) is type(reader)
    assert reader.names == expected and len(reader) == len(expected)
    class_names = getattr(reader, "class_names", None)
    if class_names is not None:
        assert all(isinstance(c, str) for c in class_names) and len(class_names) >= 2
    for i in range(len(reader)):
        sample = reader[i]
        assert sample["name"] == reader.names[i]
        image = sample["image"]
        assert image.dtype == np.float32 and image.ndim == 3 and image.shape[-1] in (1, 3), (
            f"image must be (H, W, C) float32 with C = 1 or 3, got {image.dtype} {image.shape}"
        )
        assert np.isfinite(image).all()
        hw = image.shape[:2]
        assert "instances" in sample or "classes" in sample, f"sample keys {sorted(sample)}"
        if name in SEMANTIC:
            assert "classes" in sample, f"semantic reader '{name}' gave no classes"
        if "instances" in sample:
            _check_label_image(sample["instances"], hw, "instances")
            _check_instances(sample["instances"], sample)
        if "classes" in sample:
            _check_label_image(sample["classes"], hw, "classes")
            if class_names is not None:
                assert sample["classes"].max(initial=0) < len(class_names), "class id outside class_names"
