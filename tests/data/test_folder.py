from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from pixelgroup.data.base import DATASETS
from pixelgroup.data.folder import FolderDataset, split_names
from pixelgroup.data.io import DataError, write_labels


def _pair(root, name, *, image_suffix=".tif", mask_suffix=".tif", shape=(16, 20), mask_shape=None, seed=0):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    if image_suffix == ".png":
        Image.fromarray(rng.integers(0, 256, shape + (3,), dtype=np.uint8)).save(root / "images" / f"{name}.png")
    else:
        tifffile.imwrite(root / "images" / f"{name}{image_suffix}", rng.integers(0, 4096, shape, dtype=np.uint16))
    labels = np.zeros(mask_shape or shape, np.int64)
    labels[2:6, 2:6] = 3
    write_labels(root / "masks" / f"{name}{mask_suffix}", labels)


def test_registered():
    assert DATASETS.get("folder") is FolderDataset


def test_pairs_by_stem_and_reads_samples(tmp_path):
    _pair(tmp_path, "b", image_suffix=".png", mask_suffix=".png")
    _pair(tmp_path, "a")
    (tmp_path / "images" / "README.txt").write_text("ignored")
    ds = FolderDataset(tmp_path)
    assert ds.names == ["a", "b"] and len(ds) == 2
    a, b = ds[0], ds[1]
    assert a["name"] == "a" and a["image"].shape == (16, 20, 1) and a["image"].dtype == np.float32
    assert b["image"].shape == (16, 20, 3)
    assert a["instances"].dtype == np.int64 and a["instances"][3, 3] == 3
    # normalised: the 1st / 99.8th percentiles map to 0 / 1
    lo, hi = np.percentile(a["image"], [1.0, 99.8])
    assert abs(lo) < 1e-5 and abs(hi - 1) < 1e-5


def test_no_normalisation(tmp_path):
    _pair(tmp_path, "a")
    raw = tifffile.imread(tmp_path / "images" / "a.tif")
    image = FolderDataset(tmp_path, normalize=None)[0]["image"]
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image[..., 0], raw)


def test_cache_returns_copies(tmp_path):
    _pair(tmp_path, "a")
    ds = FolderDataset(tmp_path)
    first = ds[0]
    first["instances"][:] = 99
    first["image"][:] = -5
    again = ds[0]
    assert again["instances"][3, 3] == 3 and again["image"].min() > -5


def test_names_subset(tmp_path):
    for name in "abc":
        _pair(tmp_path, name)
    assert FolderDataset(tmp_path, names=["c", "a"]).names == ["a", "c"]
    with pytest.raises(DataError, match=r"unknown image name\(s\) zz; use stems"):
        FolderDataset(tmp_path, names=["a", "zz"])


def test_missing_folders(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: dataset folder not found"):
        FolderDataset(tmp_path / "nowhere")
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match=r"masks: masks folder not found; a folder dataset is ROOT/images"):
        FolderDataset(tmp_path)


def test_no_images(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match=r"images: no images"):
        FolderDataset(tmp_path)


def test_image_without_mask_lists_names(tmp_path):
    for name in ["a", "b", "c", "d", "e", "f", "g"]:
        _pair(tmp_path, name)
    for name in ["b", "c", "d", "e", "f", "g"]:
        (tmp_path / "masks" / f"{name}.tif").unlink()
    with pytest.raises(
        DataError,
        match=r"images/b\.tif: no mask for this image; add masks/b\.tif \(or \.png\).* \(6 problems in all; "
        r"also: c, d, e, f, g\); or pass skip_bad=True",
    ):
        FolderDataset(tmp_path)


def test_mask_without_image(tmp_path):
    _pair(tmp_path, "a")
    _pair(tmp_path, "b")
    (tmp_path / "images" / "b.tif").unlink()
    with pytest.raises(DataError, match=r"masks/b\.tif: no image for this mask; add images/b\.<ext>"):
        FolderDataset(tmp_path)


def test_duplicate_stems(tmp_path):
    _pair(tmp_path, "a")
    _pair(tmp_path, "a", image_suffix=".png")
    with pytest.raises(DataError, match=r"images: two files share the name 'a' \(a\.png, a\.tif\); keep one"):
        FolderDataset(tmp_path)


def test_jpeg_masks_refused(tmp_path):
    _pair(tmp_path, "a")
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "masks" / "b.jpg")
    with pytest.raises(DataError, match=r"b\.jpg: JPEG masks are lossy.*save it as PNG or TIFF"):
        FolderDataset(tmp_path)


def test_size_mismatch_names_both_files(tmp_path):
    _pair(tmp_path, "a", shape=(16, 20), mask_shape=(16, 21))
    ds = FolderDataset(tmp_path)  # checked when read, not at construction
    with pytest.raises(DataError, match=r"images/a\.tif has size \(16, 20\) but .*masks/a\.tif has size \(16, 21\)"):
        ds[0]


def test_names_subset_ignores_problems_elsewhere(tmp_path):
    _pair(tmp_path, "a")
    _pair(tmp_path, "b")
    (tmp_path / "masks" / "b.tif").unlink()
    assert FolderDataset(tmp_path, names=["a"]).names == ["a"]


def test_skip_bad_records_and_skips(tmp_path):
    for name in "abcde":
        _pair(tmp_path, name)
    (tmp_path / "masks" / "b.tif").unlink()  # image without mask
    _pair(tmp_path, "c", image_suffix=".png")  # duplicate stem
    _pair(tmp_path, "d", mask_shape=(16, 21))  # size mismatch, found by reading up front
    (tmp_path / "images" / "e.tif").write_bytes(b"garbage")  # unreadable
    ds = FolderDataset(tmp_path, skip_bad=True)
    assert ds.names == ["a"] and len(ds) == 1
    reasons = dict(ds.skipped)
    assert sorted(reasons) == ["b", "c", "d", "e"]
    assert "no mask" in reasons["b"] and "share the name" in reasons["c"]
    assert "has size (16, 20)" in reasons["d"] and "cannot read" in reasons["e"]
    assert ds.sample_files(0) == {"image": tmp_path / "images" / "a.tif", "mask": tmp_path / "masks" / "a.tif"}


# --------------------------------------------------------------------------------------------- split


def test_split_is_deterministic_disjoint_and_order_independent():
    names = [f"img{i:03d}" for i in range(50)]
    train, val = split_names(names, 0.2, 7)
    assert len(val) == 10 and len(train) == 40
    assert sorted(train + val) == names and not set(train) & set(val)
    assert split_names(list(reversed(names)), 0.2, 7) == (train, val)
    assert split_names(names, 0.2, 8)[1] != val  # another seed, another split


def test_split_keeps_most_of_the_split_when_images_are_added():
    names = [f"img{i:03d}" for i in range(100)]
    _, val = split_names(names, 0.2, 0)
    _, val_more = split_names(names + ["extra1", "extra2"], 0.2, 0)
    assert len(set(val) & set(val_more)) >= 18


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"), [(2, 0.01, 1), (10, 0.0, 0), (1, 0.5, 0), (3, 0.9, 2), (10, 0.25, 2)]
)
def test_split_sizes(n, fraction, n_val):
    # round(0.25 * 10) = 2 (banker's rounding); at least 1 and at most n - 1 validation images
    train, val = split_names([str(i) for i in range(n)], fraction, 0)
    assert len(val) == n_val and len(train) == n - n_val


def test_split_bad_fraction():
    with pytest.raises(ValueError, match=r"val_fraction must be in \[0, 1\)"):
        split_names(["a", "b"], 1.0, 0)
