from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from pixelgroup.data.io import (
    IMAGE_SUFFIXES,
    LABEL_SUFFIXES,
    DataError,
    files_by_stem,
    find_images,
    index_by_stem,
    normalize_percentile,
    read_image,
    read_labels,
    write_image_png,
    write_labels,
)

# ------------------------------------------------------------------------------------------- images


def test_read_16bit_tiff_keeps_dtype_and_values(tmp_path):
    image = (np.arange(24 * 32).reshape(24, 32) * 80).astype(np.uint16)  # values up to 61360
    tifffile.imwrite(tmp_path / "a.tif", image)
    out = read_image(tmp_path / "a.tif")
    assert out.dtype == np.uint16 and out.shape == (24, 32)
    np.testing.assert_array_equal(out, image)


def test_read_float_tiff(tmp_path):
    image = np.random.default_rng(0).normal(size=(16, 20)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tiff", image)
    np.testing.assert_array_equal(read_image(tmp_path / "f.tiff"), image)


def test_read_rgb_png_and_jpeg(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(read_image(tmp_path / "c.png"), rgb)
    Image.fromarray(rgb).save(tmp_path / "c.jpg")
    assert read_image(tmp_path / "c.jpg").shape == (16, 20, 3)


def test_rgba_becomes_rgb(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (12, 10, 4), dtype=np.uint8)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_image(tmp_path / "a.png"), rgba[..., :3])
    tifffile.imwrite(tmp_path / "a.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    np.testing.assert_array_equal(read_image(tmp_path / "a.tif"), rgba[..., :3])


def test_channels_first_tiff_moved_to_channels_last(tmp_path):
    image = np.random.default_rng(0).integers(0, 4000, (2, 16, 24), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "cf.tif", image, photometric="minisblack")
    out = read_image(tmp_path / "cf.tif")
    assert out.shape == (16, 24, 2)
    np.testing.assert_array_equal(out[..., 1], image[1])


def test_stack_is_refused_with_hint(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((10, 16, 16), np.uint16))
    with pytest.raises(DataError, match=r"stack\.tif.*\(10, 16, 16\).*one plane"):
        read_image(tmp_path / "stack.tif")


@pytest.mark.parametrize("reader", [read_image, read_labels])
def test_missing_file(tmp_path, reader):
    with pytest.raises(DataError, match=r"nope\.tif: .*not found"):
        reader(tmp_path / "nope.tif")


@pytest.mark.parametrize("reader", [read_image, read_labels])
def test_corrupt_file(tmp_path, reader):
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"bad\.png: cannot read file.*re-export"):
        reader(tmp_path / "bad.png")


def test_unsupported_suffix(tmp_path):
    (tmp_path / "a.bmp").write_bytes(b"BM")
    with pytest.raises(DataError, match=r"a\.bmp: unsupported image file type '\.bmp'.*\.tif"):
        read_image(tmp_path / "a.bmp")


def test_errors_are_one_line_value_errors(tmp_path):
    with pytest.raises(ValueError) as info:
        read_image(tmp_path / "x.png")
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------- labels


def test_read_labels_any_integer_dtype_non_contiguous_ids(tmp_path):
    labels = np.zeros((16, 16), np.uint16)
    labels[2:5, 2:5], labels[8:12, 8:12] = 7, 40000  # ids need not be contiguous
    tifffile.imwrite(tmp_path / "m.tif", labels)
    out = read_labels(tmp_path / "m.tif")
    assert out.dtype == np.int64 and out.shape == (16, 16)
    np.testing.assert_array_equal(out, labels.astype(np.int64))


def test_float_mask_with_integer_values_is_accepted(tmp_path):
    labels = np.zeros((8, 8), np.float32)
    labels[1:3, 1:3] = 3.0
    tifffile.imwrite(tmp_path / "m.tif", labels)
    np.testing.assert_array_equal(read_labels(tmp_path / "m.tif"), labels.astype(np.int64))


def test_interpolated_float_mask_is_refused(tmp_path):
    labels = np.zeros((8, 8), np.float32)
    labels[1:3, 1:3] = 2.5
    tifffile.imwrite(tmp_path / "m.tif", labels)
    with pytest.raises(DataError, match=r"m\.tif: .*interpolation.*nearest-neighbour.*integer dtype"):
        read_labels(tmp_path / "m.tif")


def test_rgb_mask_is_refused_with_fix(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[2:4, 2:4] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "m.png")
    with pytest.raises(DataError, match=r"m\.png: mask has 3 channels.*single-channel label image"):
        read_labels(tmp_path / "m.png")


def test_grey_mask_saved_as_rgb_is_accepted(tmp_path):
    grey = np.zeros((8, 8), np.uint8)
    grey[2:4, 2:4] = 5
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_labels(tmp_path / "m.png"), grey)


def test_palette_png_gives_indices(tmp_path):
    indices = np.zeros((8, 8), np.uint8)
    indices[1:4, 1:4] = 3
    im = Image.fromarray(indices, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 756)
    im.save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_labels(tmp_path / "m.png"), indices)


def test_negative_labels_refused(tmp_path):
    tifffile.imwrite(tmp_path / "m.tif", np.full((4, 4), -2, np.int32))
    with pytest.raises(DataError, match=r"m\.tif: mask has negative values \(min -2\)"):
        read_labels(tmp_path / "m.tif")


def test_jpeg_mask_refused(tmp_path):
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "m.jpg")
    with pytest.raises(DataError, match=r"m\.jpg: .*lossy.*PNG or TIFF"):
        read_labels(tmp_path / "m.jpg")


@pytest.mark.parametrize(
    ("name", "high", "dtype"),
    [("a.tif", 65535, np.uint16), ("b.tif", 70000, np.int32), ("c.png", 255, np.uint8), ("d.png", 300, np.uint16)],
)
def test_write_labels_picks_the_smallest_dtype_and_round_trips(tmp_path, name, high, dtype):
    labels = np.zeros((6, 7), np.int64)
    labels[1, 1], labels[2, 3] = 1, high
    write_labels(tmp_path / name, labels)
    stored = tifffile.imread(tmp_path / name) if name.endswith(".tif") else np.array(Image.open(tmp_path / name))
    assert stored.dtype == dtype
    np.testing.assert_array_equal(read_labels(tmp_path / name), labels)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # atomic: no temporary file left behind


def test_write_labels_png_overflow_refused(tmp_path):
    with pytest.raises(DataError, match=r"m\.png: ids 0\.\.70000 do not fit a 16-bit PNG; write a \.tif"):
        write_labels(tmp_path / "m.png", np.full((3, 3), 70000))


def test_write_image_png(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    write_image_png(tmp_path / "x.png", rgb)
    np.testing.assert_array_equal(read_image(tmp_path / "x.png"), rgb)
    with pytest.raises(DataError, match=r"y\.png: expected a uint8"):
        write_image_png(tmp_path / "y.png", rgb.astype(np.float32))


# ------------------------------------------------------------------------------------ normalisation


def test_normalize_percentile_by_hand():
    # 101 pixels with values 0..100: with linear interpolation the 1st percentile is 1 and the 99th is
    # 99, so x' = (x - 1) / 98: 50 -> 0.5, 0 -> -1/98 (no clipping), 100 -> 99/98.
    x = np.arange(101, dtype=np.float64).reshape(101, 1)
    image = np.concatenate([x, 3 * x + 7], axis=1).reshape(101, 1, 2)  # channel 2 is affine in channel 1
    out = normalize_percentile(image, 1.0, 99.0)
    assert out.dtype == np.float32 and out.shape == (101, 1, 2)
    np.testing.assert_allclose(out[[0, 50, 100], 0, 0], [-1 / 98, 0.5, 99 / 98], rtol=1e-6)
    np.testing.assert_allclose(out[..., 1], out[..., 0], rtol=1e-6)  # per channel: affine-invariant


def test_normalize_adds_channel_axis_and_handles_constant_images():
    out = normalize_percentile(np.full((4, 5), 1234, np.uint16))
    assert out.shape == (4, 5, 1)
    np.testing.assert_array_equal(out, 0.0)


def test_normalize_bad_percentiles_and_nan():
    with pytest.raises(ValueError, match="0 <= low < high <= 100"):
        normalize_percentile(np.zeros((2, 2)), 50, 10)
    with pytest.raises(ValueError, match="NaN"):
        normalize_percentile(np.array([[np.nan, 1.0]]))


# ------------------------------------------------------------------------------------------ finding


def test_find_images(tmp_path):
    for name in ["b.png", "a.tif", "c.txt", ".hidden.png", "d.JPG"]:
        (tmp_path / name).write_bytes(b"x")
    other = tmp_path / "sub"
    other.mkdir()
    (other / "z.tiff").write_bytes(b"x")
    found = find_images([tmp_path, other / "z.tiff", tmp_path / "a.tif"])
    assert [p.name for p in found] == ["a.tif", "b.png", "d.JPG", "z.tiff"]  # sorted, deduplicated


def test_find_images_errors(tmp_path):
    with pytest.raises(DataError, match=r"missing: no such file or folder"):
        find_images([tmp_path / "missing"])
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DataError, match=r"folder has no images"):
        find_images([tmp_path])


# --------------------------------------------------------------------------- index_by_stem


def _touch(folder, *names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"")


def test_index_by_stem_maps_stems_and_skips_other_files(tmp_path):
    _touch(tmp_path, "b.png", "a.tif", ".hidden.png", "notes.txt", "a_overlay.png")
    found = index_by_stem(tmp_path, "labels", suffixes=LABEL_SUFFIXES, skip=lambda s: s.endswith("_overlay"))
    assert found == {"a": tmp_path / "a.tif", "b": tmp_path / "b.png"}
    assert list(found) == ["a", "b"]  # sorted


def test_index_by_stem_errors(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: images folder not found; check the path"):
        index_by_stem(tmp_path / "nowhere", "images", suffixes=IMAGE_SUFFIXES)
    _touch(tmp_path / "empty", "readme.txt")
    with pytest.raises(DataError, match=r"empty: no images files \(.tif, .tiff, .png, .jpg, .jpeg\)"):
        index_by_stem(tmp_path / "empty", "images", suffixes=IMAGE_SUFFIXES)
    assert index_by_stem(tmp_path / "empty", "images", suffixes=IMAGE_SUFFIXES, allow_empty=True) == {}
    _touch(tmp_path / "dup", "a.png", "a.TIF")
    with pytest.raises(DataError, match=r"dup: two masks files named 'a' \(a\.TIF, a\.png\); keep one"):
        index_by_stem(tmp_path / "dup", "masks", suffixes=LABEL_SUFFIXES)
    first = index_by_stem(tmp_path / "dup", "masks", suffixes=LABEL_SUFFIXES, duplicates="first")
    assert first == {"a": tmp_path / "dup" / "a.TIF"}


def test_files_by_stem_groups_clashes(tmp_path):
    _touch(tmp_path, "a.png", "a.tif", "b.jpg")
    assert files_by_stem(tmp_path, LABEL_SUFFIXES) == {"a": [tmp_path / "a.png", tmp_path / "a.tif"]}
