"""Tests of pixelgroup.metrics.report (plain-text tables)."""

from __future__ import annotations

import numpy as np
import pytest

from pixelgroup.metrics.instance import InstanceEvaluator
from pixelgroup.metrics.report import format_instance_table, format_semantic_table
from pixelgroup.metrics.semantic import ConfusionMatrix


def _instance_results() -> dict[str, float]:
    gt = np.zeros((16, 16), np.int64)
    gt[0:4, 0:4], gt[8:12, 8:12] = 1, 2
    ev = InstanceEvaluator()
    ev.update(gt, gt)
    return ev.compute()


def test_instance_table_columns_and_alignment():
    text = format_instance_table(_instance_results())
    lines = text.splitlines()
    assert len(lines) == 3  # header, rule, one row
    header = lines[0].split()
    assert header[:2] == ["run", "AP_dsb@0.5"] and header[-1] == "|DiC|"
    for title in ("AP_dsb@0.9", "COCO", "Precision", "Recall", "F1", "PQ", "SBD"):
        assert title in lines[0]
    assert len(lines[0]) == len(lines[2])  # right-aligned columns end together
    assert lines[2].split()[1:] == ["1.000"] * 11 + ["0.00"]


def test_instance_table_several_runs_and_missing_values():
    res = _instance_results()
    text = format_instance_table({"spatial": res, "baseline": {"ap_dsb@0.50": 0.25}})
    rows = text.splitlines()[2:]
    assert rows[0].startswith("spatial") and rows[1].startswith("baseline")
    assert rows[1].split()[1] == "0.250" and rows[1].split()[-1] == "-"


def test_semantic_table():
    cm = ConfusionMatrix(3)
    cm.update(np.array([[0, 0, 1], [1, 2, 2]]), np.array([[0, 1, 1], [1, 2, 2]]))
    r = cm.compute()
    text = format_semantic_table(r, class_names=["bg", "cat", "dog"])
    lines = text.splitlines()
    assert lines[2].split() == ["bg", "0.500"]  # class 0: tp 1, gt 2, pred 1 -> 1 / 2
    assert lines[-3].split() == ["mIoU", f"{r['miou']:.3f}"]
    with pytest.raises(ValueError, match="class_names has 2 names for 3 classes"):
        format_semantic_table(r, class_names=["a", "b"])
