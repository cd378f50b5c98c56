from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from pixelgroup.data.folder import FolderDataset
from pixelgroup.data.io import DataError, read_image, read_labels
from pixelgroup.data.synth import synth_nuclei, synth_shapes, write_synthetic


def _touching_pairs(labels: np.ndarray) -> int:
    """Number of distinct pairs of objects that share a 4-connected edge."""
    pairs = set()
    for a, b in ((labels[1:], labels[:-1]), (labels[:, 1:], labels[:, :-1])):
        contact = (a != b) & (a > 0) & (b > 0)
        pairs |= {tuple(sorted(p)) for p in zip(a[contact].tolist(), b[contact].tolist())}
    return len(pairs)


@pytest.mark.parametrize("fn", [synth_nuclei, synth_shapes])
def test_deterministic_per_generator(fn):
    image1, labels1 = fn(np.random.default_rng([3, 1]), 64)
    image2, labels2 = fn(np.random.default_rng([3, 1]), 64)
    np.testing.assert_array_equal(image1, image2)
    np.testing.assert_array_equal(labels1, labels2)
    image3, _ = fn(np.random.default_rng([3, 2]), 64)
    assert not np.array_equal(image1, image3)


def test_shapes_and_dtypes():
    image, labels = synth_nuclei(np.random.default_rng(0), 48)
    assert image.shape == (48, 48) and image.dtype == np.uint16
    assert labels.shape == (48, 48) and labels.dtype == np.int32
    image, labels = synth_shapes(np.random.default_rng(0), 40)
    assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    assert labels.shape == (40, 40) and labels.dtype == np.int32


@pytest.mark.parametrize("fn", [synth_nuclei, synth_shapes])
def test_too_small_refused(fn):
    with pytest.raises(ValueError, match="size must be >= 16"):
        fn(np.random.default_rng(0), 8)


@pytest.mark.parametrize("fn", [synth_nuclei, synth_shapes])
def test_labels_are_consecutive_connected_objects(fn):
    for i in range(4):
        _, labels = fn(np.random.default_rng([0, i]), 96)
        ids = np.unique(labels)
        np.testing.assert_array_equal(ids, np.arange(ids.size))  # 0 and 1..N, none lost to occlusion
        for obj_id, box in enumerate(ndimage.find_objects(labels), start=1):
            assert ndimage.label(labels[box] == obj_id)[1] == 1  # an occluded object is never cut in two


def test_nuclei_statistics_are_plausible_and_varied():
    counts, touching, contrast, radii = [], 0, [], []
    for i in range(12):
        image, labels = synth_nuclei(np.random.default_rng([0, i]), 128)
        counts.append(labels.max())
        touching += _touching_pairs(labels)
        contrast.append(np.median(image[labels > 0]) / np.median(image[labels == 0]))
        inner = labels[20:-20, 20:-20]  # objects away from the border are whole
        areas = np.bincount(labels.ravel())[np.unique(inner[inner > 0])]
        radii.extend(np.sqrt(areas / np.pi).tolist())
    counts = np.array(counts)
    assert counts.min() >= 1 and counts.max() <= 200
    assert counts.max() >= 4 * counts.min()  # sparse and crowded images
    assert touching >= 10  # touching / overlapping nuclei occur
    assert min(contrast) > 1.05  # nuclei are brighter than the background in every image
    assert 2.5 <= np.percentile(radii, 5) and np.percentile(radii, 95) <= 22


def test_shapes_touch_and_have_colour():
    touching = 0
    for i in range(6):
        image, labels = synth_shapes(np.random.default_rng([0, i]), 96)
        touching += _touching_pairs(labels)
        assert labels.max() >= 1
        assert image.reshape(-1, 3).std(0).max() > 5  # not a flat picture
    assert touching >= 3


def test_write_synthetic_folder_dataset(tmp_path):
    paths = write_synthetic(tmp_path / "n", kind="nuclei", n=3, size=48, seed=5)
    assert [p.name for p in paths] == ["nuclei_0000.tif", "nuclei_0001.tif", "nuclei_0002.tif"]
    ds = FolderDataset(tmp_path / "n")
    assert ds.names == ["nuclei_0000", "nuclei_0001", "nuclei_0002"]
    # image i comes from default_rng([seed, i])
    image, labels = synth_nuclei(np.random.default_rng([5, 1]), 48)
    np.testing.assert_array_equal(read_image(paths[1]), image)
    np.testing.assert_array_equal(read_labels(tmp_path / "n" / "masks" / "nuclei_0001.tif"), labels)

    shapes = write_synthetic(tmp_path / "s", kind="shapes", n=1, size=32, seed=0)
    assert shapes[0].suffix == ".png" and read_image(shapes[0]).shape == (32, 32, 3)


def test_write_synthetic_is_byte_identical_and_rerunnable(tmp_path):
    write_synthetic(tmp_path / "a", kind="nuclei", n=2, size=32, seed=1)
    write_synthetic(tmp_path / "b", kind="nuclei", n=2, size=32, seed=1)
    write_synthetic(tmp_path / "a", kind="nuclei", n=2, size=32, seed=1)  # same files again: allowed
    for sub in ("images", "masks"):
        for path in sorted((tmp_path / "a" / sub).iterdir()):
            assert path.read_bytes() == (tmp_path / "b" / sub / path.name).read_bytes()


def test_write_synthetic_refuses_a_folder_with_other_files(tmp_path):
    write_synthetic(tmp_path, kind="nuclei", n=1, size=32, seed=0)
    with pytest.raises(DataError, match=r"images: already holds 1 other file\(s\) \(e\.g\. nuclei_0000\.tif\)"):
        write_synthetic(tmp_path, kind="shapes", n=1, size=32, seed=0)


def test_write_synthetic_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match=r"unknown synthetic kind 'cells'; valid kinds: nuclei, .*shapes"):
        write_synthetic(tmp_path, kind="cells", n=1, size=32, seed=0)
    with pytest.raises(ValueError, match=r"need n >= 1.*got n=0"):
        write_synthetic(tmp_path, kind="nuclei", n=0, size=32, seed=0)
