from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from pixelgroup.data.io import DataError
from pixelgroup.data.overseg import find_segments, oversegment, read_segments


def _scene(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """Four flat colour rectangles plus weak noise, float in [0, 1], (H, W, 3)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3))
    img[: h // 2, : w // 2] = (0.9, 0.1, 0.1)
    img[: h // 2, w // 2 :] = (0.1, 0.8, 0.2)
    img[h // 2 :, : w // 2] = (0.2, 0.2, 0.9)
    img[h // 2 :, w // 2 :] = (0.9, 0.9, 0.2)
    return np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1)


@pytest.mark.parametrize("method", ["felzenszwalb", "slic", "watershed"])
def test_partition_is_consecutive_deterministic_and_respects_edges(method):
    img = _scene()
    seg = oversegment(img, method=method, n_segments=16)
    assert seg.shape == (48, 64) and seg.dtype == np.int64
    assert np.array_equal(np.unique(seg), np.arange(seg.max() + 1))
    assert np.array_equal(seg, oversegment(img, method=method, n_segments=16))
    # regions follow the colour edges: almost no segment straddles two rectangles
    quadrant = (np.arange(48)[:, None] >= 24) * 2 + (np.arange(64)[None, :] >= 32)
    pure = sum(np.bincount(quadrant[seg == s]).max() for s in range(seg.max() + 1))
    assert pure / seg.size > 0.95


def test_felzenszwalb_two_flat_halves_hand_derived():
    # two constant halves: the only edge is between columns 15 and 16, so exactly two regions
    img = np.zeros((20, 32))
    img[:, 16:] = 1.0
    seg = oversegment(img, method="felzenszwalb", n_segments=4)
    want = np.zeros((20, 32), np.int64)
    want[:, 16:] = 1
    assert np.array_equal(seg, want)


def test_more_segments_when_asked_and_integer_input():
    img = (_scene() * 255).astype(np.uint8)
    few = oversegment(img, method="slic", n_segments=8).max() + 1
    many = oversegment(img, method="slic", n_segments=64).max() + 1
    assert many > few
    grey = img[..., 0]
    assert oversegment(grey, method="watershed", n_segments=40).max() > oversegment(
        grey, method="watershed", n_segments=9
    ).max()


@pytest.mark.parametrize(
    ("image", "kwargs", "match"),
    [
        (np.zeros((4, 4, 3, 2)), {}, "must be"),
        (np.full((8, 8), np.nan), {}, "NaN"),
        (np.zeros((8, 8)), {"method": "quickshift"}, "unknown method"),
        (np.zeros((8, 8)), {"n_segments": 0}, "n_segments"),
    ],
)
def test_bad_input(image, kwargs, match):
    with pytest.raises(ValueError, match=match):
        oversegment(image, **kwargs)


def test_read_grey_colour_and_tiff_segments(tmp_path):
    ids = np.array([[10, 10, 200], [7, 7, 200]], np.uint8)
    Image.fromarray(ids).save(tmp_path / "grey.png")
    # sorted values 7 < 10 < 200 -> ids 0, 1, 2
    assert read_segments(tmp_path / "grey.png").tolist() == [[1, 1, 2], [0, 0, 2]]
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[:, 2] = (255, 0, 0)
    rgb[1, :2] = (0, 0, 9)
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    seg = read_segments(tmp_path / "colour.png")
    assert seg.dtype == np.int64 and len(np.unique(seg)) == 3
    assert seg[0, 0] == seg[0, 1] != seg[1, 0] and seg[0, 2] == seg[1, 2]
    tifffile.imwrite(tmp_path / "big.tif", np.array([[1000, 5], [5, 70000 // 2]], np.uint16))
    assert read_segments(tmp_path / "big.tif").tolist() == [[1, 0], [0, 2]]
    with pytest.raises(DataError, match="JPEG"):
        read_segments(tmp_path / "x.jpg")


def test_find_segments(tmp_path):
    (tmp_path / "segments").mkdir()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "segments" / "a.png")
    assert find_segments(tmp_path, "a") == tmp_path / "segments" / "a.png"
    assert find_segments(tmp_path, "b") is None
