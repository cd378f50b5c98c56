"""Property-based tests (hypothesis): readers round-trip, metrics are invariant and bounded,
groupers return consecutive labels of the input's size for any image size and float dtype."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from pixelgroup.data.io import DataError, read_image, read_labels, write_image_png, write_labels
from pixelgroup.grouping import GROUPERS, group
from pixelgroup.grouping.segsort import build_prototype_bank
from pixelgroup.metrics.matching import match
from pixelgroup.types import ModelOutput

FEW = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
sizes = st.tuples(st.integers(1, 12), st.integers(1, 12))


@st.composite
def label_images(draw, max_id=70000):
    shape = draw(sizes)
    return draw(arrays(np.int64, shape, elements=st.integers(0, max_id)))


@FEW
@given(labels=label_images(), suffix=st.sampled_from([".tif", ".png"]))
def test_labels_round_trip(tmp_path, labels, suffix):
    if suffix == ".png" and labels.max() > 65535:  # PNG holds 16 bits: refused, naming the fix
        with pytest.raises(DataError, match=r"do not fit a 16-bit PNG; write a \.tif instead"):
            write_labels(tmp_path / "m.png", labels)
        return
    path = write_labels(tmp_path / f"m{suffix}", labels)
    back = read_labels(path)
    assert back.shape == labels.shape and back.dtype == np.int64
    np.testing.assert_array_equal(back, labels)


@FEW
@given(shape=sizes, channels=st.sampled_from([None, 3]),
       dtype=st.sampled_from([np.uint8, np.uint16, np.float32]), data=st.data())
def test_tiff_images_round_trip(tmp_path, shape, channels, dtype, data):
    full = shape if channels is None else (*shape, channels)
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(-1e6, 1e6, width=32, allow_nan=False)
    else:
        elements = st.integers(0, np.iinfo(dtype).max)
    image = data.draw(arrays(dtype, full, elements=elements))
    tifffile.imwrite(tmp_path / "i.tif", image, photometric="minisblack" if channels is None else "rgb")
    back = read_image(tmp_path / "i.tif")
    np.testing.assert_array_equal(back, image)


@FEW
@given(image=arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from([3]))))
def test_png_images_round_trip(tmp_path, image):
    np.testing.assert_array_equal(read_image(write_image_png(tmp_path / "i.png", image)), image)


@st.composite
def gt_and_pred(draw):
    shape = draw(sizes)
    gt = draw(arrays(np.int64, shape, elements=st.integers(0, 4)))
    pred = draw(arrays(np.int64, shape, elements=st.integers(0, 4)))
    return gt, pred


def _permute(labels: np.ndarray, seed: int) -> np.ndarray:
    ids = np.unique(labels[labels > 0])
    lut = np.arange(labels.max() + 1)
    lut[ids] = np.random.default_rng(seed).permutation(ids) + 100  # other ids, same partition
    return lut[labels]


@FEW
@given(pair=gt_and_pred(), seed=st.integers(0, 10), thresh=st.sampled_from([0.1, 0.5, 0.9]))
def test_matching_is_invariant_to_label_ids_and_bounded(pair, seed, thresh):
    gt, pred = pair
    m = match(gt, pred, thresh=thresh)
    p = match(_permute(gt, seed), _permute(pred, seed + 1), thresh=thresh)
    for name in ("precision", "recall", "f1", "ap_dsb", "pq", "sq"):
        assert 0.0 <= getattr(m, name) <= 1.0
        assert getattr(m, name) == pytest.approx(getattr(p, name))
    assert (m.tp, m.fp, m.fn) == (p.tp, p.fp, p.fn)


@FEW
@given(gt=label_images(max_id=6), seed=st.integers(0, 10))
def test_perfect_prediction_scores_one(gt, seed):
    m = match(gt, _permute(gt, seed), thresh=0.5)
    assert m.ap_dsb == 1.0 and m.f1 == 1.0 and m.pq == pytest.approx(1.0) and m.fp == m.fn == 0


SEMANTIC = ("argmax", "segsort")


def _output(name: str, shape: tuple[int, int], dtype: torch.dtype, seed: int) -> tuple[ModelOutput, dict]:
    """Random raw heads of ONE image for grouper ``name``, and the parameters it needs."""
    g = torch.Generator().manual_seed(seed)
    h, w = shape

    def rand(c: int, scale: float = 3.0) -> torch.Tensor:
        return (torch.randn(c, h, w, generator=g) * scale).to(dtype)

    if name == "argmax":
        return ModelOutput(semantic=rand(4)), {}
    if name == "segsort":  # a bank from a random annotated image, then a random test image
        bank = build_prototype_bank([("train", ModelOutput(embedding=rand(4, 1.0)), torch.randint(0, 3, (h, w),
                                     generator=g))], grid=(2, 2), iterations=2)
        return ModelOutput(embedding=rand(4, 1.0)), {"state": bank, "k": 3}
    if name.startswith("seeded"):
        k = 2 if name == "seeded_classes" else 1
        return ModelOutput(offset=rand(2, 0.5), sigma=rand(2, 1.0), seed=rand(k)), {"min_size": 1}
    params = {"min_size": 1}
    if name == "meanshift":
        params["bandwidth"] = 0.5
    if name == "hdbscan":
        params.update(min_cluster_size=2)
    return ModelOutput(embedding=rand(4, 1.0), foreground=rand(1)), params


@pytest.mark.parametrize("name", GROUPERS.names())
@settings(max_examples=20, deadline=None)
@given(shape=st.tuples(st.integers(1, 17), st.integers(1, 17)), dtype=st.sampled_from([torch.float32, torch.float64]),
       seed=st.integers(0, 1000))
def test_groupers_give_consecutive_labels_of_the_image_size(name, shape, dtype, seed):
    output, params = _output(name, shape, dtype, seed)
    inst = group(name, output, **params)
    if name in SEMANTIC:  # a class map: one class index per pixel
        assert inst.shape == shape and inst.min(initial=0) >= 0 and inst.max(initial=0) < 4
        return
    labels = inst.labels
    assert labels.shape == shape and labels.dtype == np.int32
    n = int(labels.max(initial=0))
    assert labels.min(initial=0) >= 0
    assert set(np.unique(labels).tolist()) - {0} == set(range(1, n + 1))
    assert inst.scores.shape == (n,) and inst.classes.shape == (n,)
