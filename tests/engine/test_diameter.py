"""--diameter: images rescaled to the model's training object size, labels back at the input size."""

from __future__ import annotations

import numpy as np
import pytest

from pixelgroup.data.synth import synth_nuclei
from pixelgroup.engine.diameter import (
    diameter_range,
    median_diameter,
    object_diameters,
    resize_image,
    resize_labels,
    size_hint,
)
from pixelgroup.engine.segmenter import load_model
from pixelgroup.metrics.matching import match
from pixelgroup.types import Instances


@pytest.fixture(scope="module")
def nuclei():
    seg = load_model("nuclei")
    image, truth = synth_nuclei(np.random.default_rng([42, 0]), 192)
    return seg, image.astype(np.float32), truth


def _same_objects(a: np.ndarray, b: np.ndarray) -> None:
    """Same count, and every object of ``a`` matched in ``b`` at IoU >= 0.5."""
    assert a.max() == b.max() > 0
    m = match(a, b, thresh=0.5)
    assert m.tp == a.max(), m


def test_diameters_by_hand():
    labels = np.zeros((20, 20), np.int32)
    labels[:10, :10] = 1  # area 100: diameter sqrt(400 / pi) = 11.28
    labels[15:17, 15:17] = 3  # area 4: 2.26 (ids need not be consecutive)
    np.testing.assert_allclose(object_diameters(labels), [np.sqrt(400 / np.pi), np.sqrt(16 / np.pi)])
    assert median_diameter(np.zeros((4, 4), np.int32)) is None


def test_resize_round_trip():
    labels = np.arange(12, dtype=np.int32).reshape(3, 4)
    np.testing.assert_array_equal(resize_labels(resize_labels(labels, (6, 8)), (3, 4)), labels)
    assert resize_image(np.zeros((10, 12, 2), np.float32), 0.5).shape == (5, 6, 2)


@pytest.mark.parametrize("factor", [2.0, 0.5])
def test_scaled_image_gives_the_same_objects(nuclei, factor):
    seg, image, truth = nuclei
    d = median_diameter(truth)
    base = seg.segment(image, diameter=d)
    scaled = resize_image(image[..., None], factor)[..., 0]
    got = seg.segment(scaled, diameter=d * factor)
    assert got.shape == scaled.shape
    _same_objects(resize_labels(base, scaled.shape) if factor > 1 else base,
                  got if factor > 1 else resize_labels(got, base.shape))


def test_auto_diameter_on_a_three_times_larger_image(nuclei):
    # 3x: beyond the sizes the bundled model was trained on (it splits them without rescaling)
    seg, image, truth = nuclei
    big = resize_image(image[..., None], 3.0)[..., 0]
    got = seg.segment(big, diameter="auto")
    ref = resize_labels(seg.segment(image, diameter=median_diameter(truth)), big.shape)
    m = match(ref, got, thresh=0.5)
    assert m.tp >= 0.95 * ref.max() and m.fp <= 0.05 * ref.max(), m


def test_auto_diameter_on_objects_the_first_pass_splits(nuclei):
    # 5x: the network cuts every nucleus into pieces of about its training size, so the median of a
    # pass at the image's own scale is far too small, and one pass at the scale it gives still
    # splits (the two-pass estimate this replaced); a coarser probe sees them whole
    seg, image, truth = nuclei
    big = resize_image(image[..., None], 5.0)[..., 0]
    ref = resize_labels(seg.segment(image, diameter=median_diameter(truth)), big.shape)
    m = match(ref, seg.segment(big, diameter="auto"), thresh=0.5)
    assert m.tp >= 0.9 * ref.max() and m.fp <= 0.1 * ref.max(), m
    two = match(ref, seg.segment(big, diameter=median_diameter(seg.segment(big))), thresh=0.5)
    assert two.tp < 0.7 * ref.max(), two
    assert seg.estimate_diameter(big) == pytest.approx(5 * median_diameter(truth), rel=0.25)
    assert median_diameter(seg.segment(big)) < 0.6 * 5 * median_diameter(truth)  # a pass at its own scale


class _Scaled:
    """A stand-in for one pass of the network whose objects' median diameter depends on the scale of
    its input as ``diameters(scale)`` says (None: nothing found); records the scales it ran at."""

    def __init__(self, size: int, diameters):
        self.size, self.diameters, self.scales, self.tta = size, diameters, [], []

    def __call__(self, image, **kw):
        scale = image.shape[0] / self.size
        self.scales.append(round(scale, 3))
        self.tta.append(kw["tta"])
        d = self.diameters(scale)
        labels = np.zeros(image.shape[:2], np.int32)
        if d is not None:
            side = max(1, int(round(d * np.sqrt(np.pi) / 2)))  # a square of about that equivalent diameter
            labels[:side, :side] = 1
        return Instances(labels, np.ones(int(labels.max()), np.float32))


@pytest.mark.parametrize("case, size, scales", [
    # 40 px objects, seen whole at every scale: probes down to 1/8 (5 px, under the training sizes'
    # low end of 10 px), the estimate of 1/4, then one pass at scale 20/40
    ("whole", 400, [1, 0.5, 0.25, 0.125, 0.5]),
    # 150 px objects, cut into 25 px pieces wherever they are over 40 px: 1/8 sees them whole
    ("split", 400, [1, 0.5, 0.25, 0.125, 0.133]),
    # 8 px objects: the 1/2 probe finds them under the low end; the first pass's estimate, scale 2.5
    ("small", 400, [1, 0.5, 2.5]),
    # 21 px objects: the scale asked for (0.95) is close enough to 1 to keep the first pass
    ("near", 400, [1, 0.5, 0.25]),
    # no probe that makes the image's short side under 32 px (100 px image: not 1/4)
    ("whole", 100, [1, 0.5, 0.5]),
    # the first pass finds nothing: its result, no probe
    ("none", 400, [1]),
])
def test_auto_diameter_probes(nuclei, monkeypatch, case, size, scales):
    seg = nuclei[0]
    monkeypatch.setattr(seg, "object_diameter", 20.0)
    monkeypatch.setattr(seg, "object_diameter_range", (10.0, 32.0))
    diameters = {
        "whole": lambda s: 40 * s,
        "split": lambda s: 150 * s if 150 * s <= 40 else 25,
        "small": lambda s: 8 * s,
        "near": lambda s: 21 * s,
        "none": lambda s: None,
    }[case]
    fake = _Scaled(size, diameters)
    monkeypatch.setattr(seg, "_segment", fake)
    got = seg.segment_instances(np.zeros((size, size), np.float32), normalized=True, diameter="auto")
    assert fake.scales == pytest.approx(scales, rel=0.05)
    assert got.labels.shape == (size, size) and got.labels.max() == (case != "none")


def test_auto_factor(nuclei, monkeypatch):
    seg = nuclei[0]
    monkeypatch.setattr(seg, "object_diameter", 20.0)
    assert seg.auto_factor(None) == 1.0 and seg.auto_factor(21.0) == 1.0  # within 10% of scale 1
    assert seg.auto_factor(40.0) == pytest.approx(0.5) and seg.auto_factor(10.0) == pytest.approx(2.0)


def test_auto_diameter_probes_without_tta(nuclei, monkeypatch):
    # the probes only measure: no test-time augmentation there; the first and the final pass as asked
    seg = nuclei[0]
    monkeypatch.setattr(seg, "object_diameter", 20.0)
    monkeypatch.setattr(seg, "object_diameter_range", (10.0, 32.0))
    fake = _Scaled(400, lambda s: 40 * s)
    monkeypatch.setattr(seg, "_segment", fake)
    seg.segment_instances(np.zeros((400, 400), np.float32), normalized=True, diameter="auto", tta=True)
    assert fake.tta == [True, False, False, False, True]


def test_diameter_errors(nuclei, monkeypatch):
    seg, image, _ = nuclei
    with pytest.raises(ValueError, match="positive number"):
        seg.segment(image, diameter=-3)
    monkeypatch.setattr(seg, "object_diameter", None)
    with pytest.raises(ValueError, match="does not record"):
        seg.segment(image, diameter=10)


def test_predict_diameter_flag(nuclei, tmp_path):
    import tifffile

    from pixelgroup.cli import main

    seg, image, truth = nuclei
    (tmp_path / "in").mkdir()
    big = resize_image(image[..., None], 2.0)[..., 0]
    tifffile.imwrite(tmp_path / "in" / "big.tif", big)
    assert main(["predict", "--model", "nuclei", str(tmp_path / "in"), "--out", str(tmp_path / "pred"),
                 "--diameter", str(2 * median_diameter(truth)), "--device", "cpu", "--no-progress"]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "pred" / "big.tif"),
                                  seg.segment(big, diameter=2 * median_diameter(truth)))
    with pytest.raises(SystemExit):
        main(["predict", "--model", "nuclei", str(tmp_path / "in"), "--out", str(tmp_path / "p2"), "--diameter", "-1"])


def test_size_hint_by_hand():
    assert size_hint(19.0, 13.0) is None and size_hint(9.0, 13.0) is None  # within 1.5x
    assert size_hint(None, 13.0) is None and size_hint(20.0, None) is None
    hint = size_hint(40.0, 13.0)
    assert "3.1x the size this model was trained on (40 px across, median, against 13 px)" in hint
    assert "--diameter auto" in hint
    assert "0.5x" in size_hint(6.0, 13.0)


def test_size_hint_knows_the_training_range():
    # a model trained on 10-40 px objects (median 25) is not told that 12 px objects are far off
    assert size_hint(12.0, 25.0) is not None
    assert size_hint(12.0, 25.0, (10.0, 40.0)) is None and size_hint(40.0, 25.0, (10.0, 40.0)) is None
    # a narrow range never narrows the 1.5x band, and beyond both the hint names the range
    assert size_hint(19.0, 13.0, (12.0, 14.0)) is None
    hint = size_hint(80.0, 25.0, (10.0, 40.0))
    assert "3.2x" in hint and "10-40 px for most of them" in hint
    assert "0.3x" in size_hint(8.0, 25.0, (12.0, 40.0))


def test_diameter_range_is_the_10_90_percentiles():
    areas = np.pi / 4 * np.arange(1, 102, dtype=float) ** 2  # diameters 1..101
    np.testing.assert_allclose(diameter_range(areas), (11.0, 91.0))
    assert diameter_range(np.zeros(0)) is None


def test_predict_says_when_the_objects_are_far_from_the_training_size(nuclei, tmp_path, caplog):
    import logging

    import tifffile

    from pixelgroup.engine.predict import predict_paths

    seg, image, _ = nuclei
    # the image at the model's training size, then 2x larger: beyond 1.5x and beyond the sizes it was
    # trained on (10-32 px), found whole (much larger ones are split into pieces of the training size,
    # which the median of what is found cannot tell)
    at_size = resize_image(image[..., None], seg.object_diameter / median_diameter(seg.segment(image)))[..., 0]
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", at_size)
    with caplog.at_level(logging.INFO, logger="pixelgroup.engine.predict"):
        predict_paths(seg, [tmp_path / "in"], tmp_path / "same", progress=False)
    assert "objects found:" in caplog.text and "trained on" not in caplog.text
    tifffile.imwrite(tmp_path / "in" / "a.tif", resize_image(at_size[..., None], 2.0)[..., 0])
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="pixelgroup.engine.predict"):
        predict_paths(seg, [tmp_path / "in"], tmp_path / "big", progress=False)
    assert "x the size this model was trained on" in caplog.text and "--diameter auto" in caplog.text
    assert median_diameter(tifffile.imread(tmp_path / "big" / "a.tif")) > 1.5 * seg.object_diameter
    caplog.clear()  # given the size, no hint
    with caplog.at_level(logging.INFO, logger="pixelgroup.engine.predict"):
        predict_paths(seg, [tmp_path / "in"], tmp_path / "sized", progress=False, diameter="auto")
    assert "trained on" not in caplog.text and "objects found" not in caplog.text
