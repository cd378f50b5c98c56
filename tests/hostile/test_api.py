"""The Python API under hostile arrays: one ValueError naming the shape (or value) and what is accepted."""

from __future__ import annotations

import numpy as np
import pytest

from pixelgroup.data.check import check_dataset
from pixelgroup.engine.outputs import OutputError, check_out_file, plan_outputs
from pixelgroup.engine.predict import PredictReport, predict_paths

from .helpers_inputs import noise, tiny_segmenter, write_tif


@pytest.fixture(scope="module")
def seg():
    return tiny_segmenter()


@pytest.mark.parametrize("shape", [(0, 0), (0, 5), (5, 0, 1)])
def test_empty_image(seg, shape):
    with pytest.raises(ValueError, match=rf"shape \({shape[0]}, {shape[1]}.*no pixels.*H, W >= 1"):
        seg.segment(np.zeros(shape, np.float32))


def test_stack_of_planes_is_not_read_as_channels(seg):
    with pytest.raises(ValueError, match=r"shape \(5, 24, 24\): the last axis \(24\) is not a channel count"):
        seg.segment(np.zeros((5, 24, 24), np.float32))


def test_channels_first_is_refused_with_the_fix(seg):
    with pytest.raises(ValueError, match=r"channels-first \(C, H, W\).*np\.moveaxis\(image, 0, -1\)"):
        seg.segment(noise((3, 24, 24)))


def test_batch_axis_is_refused(seg):
    with pytest.raises(ValueError, match=r"shape \(1, 16, 16, 1\); expected \(H, W\)"):
        seg.segment(np.zeros((1, 16, 16, 1), np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels(seg, bad):
    image = np.ones((16, 16), np.float32)
    image[4, 4] = bad
    with pytest.raises(ValueError, match="1 NaN or inf pixel value"):
        seg.segment(image)


@pytest.mark.parametrize("dtype", [object, np.complex64, "U1"])
def test_non_numeric_pixels(seg, dtype):
    with pytest.raises(ValueError, match="numeric array"):
        seg.segment(np.zeros((8, 8), dtype=dtype))


@pytest.mark.parametrize("shape", [(1, 7), (7, 1), (13, 9), (9, 13, 1), (9, 13, 3), (9, 13, 4)])
def test_accepted_shapes_give_labels_of_the_image_size(seg, shape):
    labels = seg.segment(noise(shape).astype(np.float64))
    assert labels.shape == shape[:2] and labels.dtype == np.int32 and labels.min() >= 0


def test_two_channel_image_on_a_grey_model(seg):
    with pytest.raises(ValueError, match=r"2 channels but the model was trained on 1"):
        seg.segment(np.zeros((8, 8, 2), np.float32))


def test_predict_paths_reports_failures(seg, tmp_path):
    write_tif(tmp_path / "in" / "a.tif", noise((12, 12)))
    write_tif(tmp_path / "in" / "b.tif", np.full((12, 12), np.nan, np.float32))
    report = predict_paths(seg, [tmp_path / "in"], tmp_path / "out", progress=False)
    assert isinstance(report, PredictReport)
    assert [p.name for p in report.written] == ["a.tif"]
    assert [(p.name, "NaN" in why) for p, why in report.failed] == [("b.tif", True)]


def test_plan_outputs_collisions_and_symlinked_out(tmp_path):
    a = write_tif(tmp_path / "in" / "a.tif", noise((4, 4)))
    (tmp_path / "link").symlink_to(tmp_path / "in")
    with pytest.raises(OutputError, match="is the folder of the input"):
        plan_outputs([a], tmp_path / "link", lambda p: [f"{p.stem}.tif"], overwrite=True)
    x = write_tif(tmp_path / "x" / "a_overlay.tif", noise((4, 4)))
    with pytest.raises(OutputError, match="would both be written as"):
        plan_outputs([a, x], tmp_path / "o", lambda p: [f"{p.stem}.png", f"{p.stem}_overlay.png"], overwrite=True)


def test_check_out_file_rules(tmp_path):
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(OutputError, match="file exists; pass --overwrite"):
        check_out_file(tmp_path / "r.json", overwrite=False)
    assert check_out_file(tmp_path / "r.json", overwrite=True) == tmp_path / "r.json"
    with pytest.raises(OutputError, match="is a folder"):
        check_out_file(tmp_path, overwrite=True)


def test_check_dataset_rejects_an_unknown_binary_masks_setting(tmp_path):
    with pytest.raises(ValueError, match="binary_masks must be one of check, objects, components"):
        check_dataset(tmp_path, binary_masks="yes")
