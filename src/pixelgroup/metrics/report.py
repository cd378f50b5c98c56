"""Plain-text tables of evaluation results (for logs, the CLI and the README)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["format_instance_table", "format_semantic_table"]

# (column title, key in InstanceEvaluator.compute())
INSTANCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("AP_dsb@0.5", "ap_dsb@0.50"),
    ("AP_dsb@0.6", "ap_dsb@0.60"),
    ("AP_dsb@0.7", "ap_dsb@0.70"),
    ("AP_dsb@0.8", "ap_dsb@0.80"),
    ("AP_dsb@0.9", "ap_dsb@0.90"),
    ("COCO AP", "coco_ap"),
    ("Precision", "precision"),
    ("Recall", "recall"),
    ("F1", "f1"),
    ("PQ", "pq"),
    ("SBD", "sbd"),
    ("|DiC|", "abs_dic"),
)


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    value = float(value)
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned first column, right-aligned others, a rule under the header."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def format_instance_table(results: Mapping[str, Any]) -> str:
    """Aligned table of instance metrics: one row per run.

    Args:
        results: the dict of :meth:`InstanceEvaluator.compute`, or a mapping ``run name -> dict``
            for several rows. Missing metrics print as ``-``.

    Returns:
        Columns AP_dsb at 0.5, 0.6, 0.7, 0.8, 0.9, COCO AP (0.5:0.95), precision, recall, F1 (at 0.5),
        PQ, SBD, |DiC|.
    """
    runs = results if results and all(isinstance(v, Mapping) for v in results.values()) else {"": results}
    header = ["run", *(title for title, _ in INSTANCE_COLUMNS)]
    rows = []
    for name, res in runs.items():
        cells = [_fmt(res.get(key), 2 if key == "abs_dic" else 3) for _, key in INSTANCE_COLUMNS]
        rows.append([str(name) or "-", *cells])
    return _table(header, rows)


def format_semantic_table(results: Mapping[str, Any], class_names: Sequence[str] | None = None) -> str:
    """Aligned table of per-class IoU followed by mIoU, pixel accuracy and mean accuracy.

    Args:
        results: the dict of :meth:`ConfusionMatrix.compute` (``iou`` (K,), ``miou``, ...).
        class_names: K names; default ``class 0`` ... ``class K-1``.
    """
    iou = np.asarray(results["iou"], float)
    if class_names is None:
        class_names = [f"class {i}" for i in range(iou.size)]
    if len(class_names) != iou.size:
        raise ValueError(f"class_names has {len(class_names)} names for {iou.size} classes")
    rows = [[str(n), _fmt(v)] for n, v in zip(class_names, iou)]
    rows.append(["mIoU", _fmt(results.get("miou"))])
    rows.append(["pixel accuracy", _fmt(results.get("pixel_accuracy"))])
    rows.append(["mean accuracy", _fmt(results.get("mean_accuracy"))])
    return _table(["class", "IoU"], rows)
