"""Tests of pixelgroup.metrics.checks (input validation shared by the metrics)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.metrics.checks import as_label_image, check_same_shape, per_image, per_instance_values


def test_per_instance_values():
    ids = np.array([2, 5])
    assert per_instance_values(np.array([0.1, 0.2, 0.3, 0.4, 0.5]), ids, name="s").tolist() == [0.2, 0.5]
    assert per_instance_values({2: 1, 5: 3}, ids, name="s").tolist() == [1, 3]
    with pytest.raises(ValueError, match="has 3 entries but the label image has id 5"):
        per_instance_values(np.zeros(3), ids, name="scores")
    with pytest.raises(ValueError, match=r"no value for instance ids \[5\]"):
        per_instance_values({2: 1}, ids, name="scores")


def test_per_instance_values_default():
    ids = np.array([2, 5])
    assert per_instance_values(None, ids, name="s", default=np.array([7, 8])).tolist() == [7, 8]
    with pytest.raises(ValueError, match="scores is None; give one value per instance id"):
        per_instance_values(None, ids, name="scores")


def test_as_label_image():
    out = as_label_image(torch.tensor([[0, 3], [2, 0]], dtype=torch.int32))
    assert out.dtype == np.int64 and out.tolist() == [[0, 3], [2, 0]]
    with pytest.raises(ValueError, match=r"\(H, W\) label image"):
        as_label_image(np.zeros((2, 3, 4), int))
    with pytest.raises(ValueError, match="gt must have an integer dtype"):
        as_label_image(np.zeros((2, 2)), name="gt")
    with pytest.raises(ValueError, match="negative values"):
        as_label_image(-np.ones((2, 2), int))
    assert as_label_image(-np.ones((2, 2), int), allow_void=True).min() == -1


def test_check_same_shape():
    check_same_shape(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"gt and pred must have the same shape, got \(2, 3\) and \(3, 2\)"):
        check_same_shape(np.zeros((2, 3)), np.zeros((3, 2)))


def test_per_image_checks_list_lengths():
    rows = list(per_image([1, 2], ["a", "b"], None, None, None, [True, False]))
    assert rows == [(1, "a", None, None, None, True), (2, "b", None, None, None, False)]
    with pytest.raises(ValueError, match="scores_list has 1 entries for 2 ground-truth images"):
        list(per_image([1, 2], ["a", "b"], [0.5], None, None, None))
