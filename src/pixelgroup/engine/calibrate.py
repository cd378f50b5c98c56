"""Grouping thresholds calibrated on the held-out images after training (as StarDist's
``optimize_thresholds``): the network runs once over the validation images, then the grouping is
repeated over a small grid of its thresholds and the values with the best mean AP_dsb over IoU
0.5:0.95 are kept. Settings the user gave (``grouping.params``) are never changed.

The smallest object kept (``min_size``) follows the training objects: its candidates are fractions
of their median area, not a constant in pixels.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..grouping.base import GROUPERS
from ..metrics.instance import DSB_THRESHOLDS
from ..metrics.matching import match_thresholds
from ..types import Instances
from .diameter import dataset_areas
from .segmenter import Segmenter

log = logging.getLogger(__name__)

MIN_SIZE_FRACTIONS = (0.05, 0.1, 0.2, 0.35)
"""Candidates of ``min_size`` as fractions of the training objects' median area."""
DEFAULT_MIN_SIZE_FRACTION = 0.05
"""``min_size`` before calibration: a twentieth of the median training object (between Cellpose's 15 px
for cells of ~700 px and EmbedSeg's 36 px for nuclei of ~350 px): objects cut by the image border
are often this small, and calibration raises it when the held-out part shows small false positives."""
MAX_PIXELS = 16_000_000
"""Validation pixels whose network outputs are kept for calibration (the first images up to this)."""
HYSTERESIS = 0.002
"""A candidate replaces the current values only when it scores this much better (ties keep defaults)."""


@dataclass(frozen=True)
class Calibration:
    """Calibrated grouping settings of a run.

    Attributes:
        grouper: the grouper they are for.
        params: the calibrated values (only settings the user did not give).
        score: mean AP_dsb over IoU 0.5:0.95 on the validation images with them.
        default_score: the same with the values before calibration.
        ap: AP_dsb at IoU 0.5 and 0.75 with them, ``{"ap_dsb@0.50": ..., "ap_dsb@0.75": ...}``.
        n_objects: ground-truth objects in the validation images used.
    """

    grouper: str
    params: dict[str, Any]
    score: float
    default_score: float
    ap: dict[str, float] = field(default_factory=dict)
    n_objects: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"grouper": self.grouper, "params": dict(self.params), "score": self.score,
                "default_score": self.default_score, "ap": dict(self.ap), "n_objects": self.n_objects}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Calibration:
        return cls(str(d["grouper"]), dict(d["params"]), float(d["score"]), float(d["default_score"]),
                   {k: float(v) for k, v in dict(d.get("ap", {})).items()}, int(d.get("n_objects", 0)))

    def describe(self) -> str:
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(self.params.items()))
        return f"{values} (mean AP {self.default_score:.3f} -> {self.score:.3f} on {self.n_objects} held-out objects)"


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def median_area(dataset, *, max_samples: int = 256) -> float | None:
    """Median area (pixels) of the objects of the first ``max_samples`` samples' ``instances``."""
    areas = dataset_areas(dataset, max_samples=max_samples)
    return float(np.median(areas)) if areas.size else None


def min_size_candidates(area: float | None) -> tuple[int, ...]:
    """``min_size`` candidates (pixels) for objects of median ``area``; ``()`` without objects."""
    if not area:
        return ()
    return tuple(sorted({max(1, int(round(f * area))) for f in MIN_SIZE_FRACTIONS}))


def default_min_size(area: float | None) -> int | None:
    return None if not area else max(1, int(round(DEFAULT_MIN_SIZE_FRACTION * area)))


def grid_for(seg: Segmenter, user: Mapping[str, Any], area: float | None) -> dict[str, tuple]:
    """The settings to calibrate and their candidates: the method's declared grid and ``min_size``
    (from the training objects' median ``area``) where the grouper takes them, minus ``user``'s."""
    params = inspect.signature(GROUPERS.get(seg.grouper)).parameters
    open_ended = any(p.kind is p.VAR_KEYWORD for p in params.values())  # a wrapper passing settings on

    def takes(key: str) -> bool:
        return open_ended or key in params

    grid = {k: tuple(v) for k, v in seg.method.calibrate if takes(k)}
    if takes("min_size") and area:
        grid["min_size"] = min_size_candidates(area)
    return {k: v for k, v in grid.items() if k not in user and len(v) > 1}


def mean_ap(gts: Sequence[np.ndarray], preds: Sequence[np.ndarray],
            thresholds: Sequence[float] = DSB_THRESHOLDS) -> tuple[float, dict[str, float]]:
    """Dataset AP_dsb (tp, fp, fn summed over images) at each IoU threshold and their mean."""
    counts = np.zeros((len(thresholds), 3))
    for gt, pred in zip(gts, preds):
        for k, m in enumerate(match_thresholds(gt, pred, thresholds=thresholds)):
            counts[k] += (m.tp, m.fp, m.fn)
    total = counts.sum(axis=1)
    ap = np.where(total > 0, counts[:, 0] / np.maximum(total, 1), 1.0)
    return float(ap.mean()), {f"ap_dsb@{t:.2f}": float(a) for t, a in zip(thresholds, ap)}


def calibrate(seg: Segmenter, dataset, *, user: Mapping[str, Any] | None = None, area: float | None = None,
              max_pixels: int = MAX_PIXELS) -> Calibration | None:
    """Calibrate ``seg``'s grouping on an annotated ``dataset`` (normalised samples with
    ``instances``); ``None`` for semantic methods, without validation objects or nothing to tune.

    Args:
        seg: the trained model; its current ``grouper_params`` are the starting values.
        dataset: the validation samples.
        user: settings the user gave (kept as they are).
        area: median training object area, pixels (for ``min_size``; ``None``: not calibrated).
        max_pixels: use the first images up to this many pixels.
    """
    if seg.task != "instance":
        return None
    grid = grid_for(seg, user or {}, area)
    if not grid:
        return None
    signature = inspect.signature(GROUPERS.get(seg.grouper)).parameters
    empty = inspect.Parameter.empty
    start = {k: signature[k].default for k in grid if k in signature and signature[k].default is not empty}
    start.update(seg.grouper_params)
    if "min_size" in grid:
        start["min_size"] = default_min_size(area)
    outputs, gts, pixels = [], [], 0
    for i in range(len(dataset)):
        sample = dataset[i]
        gt = np.asarray(sample["instances"])
        if pixels and pixels + gt.size > max_pixels:
            break
        pixels += gt.size
        outputs.append(seg.outputs(sample["image"], normalized=True).apply(lambda t: t.cpu()))
        gts.append(np.where(gt < 0, 0, gt))
    n_objects = int(sum(np.unique(g[g > 0]).size for g in gts))
    if not outputs or n_objects == 0:
        return None

    def score(params: dict[str, Any]) -> tuple[float, dict[str, float]]:
        seg.grouper_params = params
        preds = [_labels(seg.group(o.apply(lambda t: t.to(seg.device)))) for o in outputs]
        return mean_ap(gts, preds)

    saved = dict(seg.grouper_params)
    try:
        best = dict(start)
        default_score, best_ap = score(best)
        best_score = default_score
        thresholds = [k for k in grid if k != "min_size"]
        # the thresholds jointly (they interact), then the minimum size, then the thresholds again
        sizes = ["min_size"] if "min_size" in grid else []
        passes = [p for p in (thresholds, sizes, thresholds if sizes else []) if p]
        for keys in passes:
            for values in itertools.product(*(grid[k] for k in keys)):
                trial = {**best, **dict(zip(keys, values))}
                if trial == best:
                    continue
                s, ap = score(trial)
                if s > best_score + HYSTERESIS:
                    best, best_score, best_ap = trial, s, ap
    finally:
        seg.grouper_params = saved
    params = {k: _plain(best[k]) for k in grid if k in best}
    return Calibration(seg.grouper, params, best_score, default_score,
                       {k: best_ap[k] for k in ("ap_dsb@0.50", "ap_dsb@0.75")}, n_objects)


def _labels(result: Instances | np.ndarray) -> np.ndarray:
    return result.labels if isinstance(result, Instances) else np.asarray(result)


def _plain(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(float(v)) else None
    return v
