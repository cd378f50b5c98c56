"""Evaluation: a model on a dataset, or a folder of predictions against a folder of ground truth."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..data.io import DataError, read_labels
from ..fileio import atomic_write_text
from ..metrics.instance import InstanceEvaluator
from ..metrics.semantic import ConfusionMatrix
from .segmenter import Segmenter

log = logging.getLogger(__name__)

LABEL_SUFFIXES = (".tif", ".tiff", ".png")


def evaluate_segmenter(seg: Segmenter, dataset, *, n_classes: int | None = None) -> dict[str, Any]:
    """Segment every image of ``dataset`` (already normalised samples) and score it.

    Instance methods: :class:`InstanceEvaluator` results; semantic methods: mIoU and friends.
    """
    if seg.task == "semantic":
        cm = ConfusionMatrix(n_classes or seg.cfg.model.n_classes, ignore_index=-1)
        for i in range(len(dataset)):
            sample = dataset[i]
            cm.update(sample["classes"], seg.segment(sample["image"], normalized=True))
        return cm.compute()
    ev = InstanceEvaluator()
    for i in range(len(dataset)):
        sample = dataset[i]
        inst = seg.segment_instances(sample["image"], normalized=True)
        gt = np.where(sample["instances"] < 0, 0, sample["instances"])
        ev.update(gt, inst.labels, scores=inst.scores)
    return ev.compute()


def _index(folder: Path, what: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(f"{what} folder not found: {folder}")
    files = {}
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in LABEL_SUFFIXES and not p.stem.endswith("_overlay"):
            files.setdefault(p.stem, p)
    if not files:
        raise DataError(f"{folder}: no label images (.tif/.tiff/.png) in this {what} folder")
    return files


def _scores(pred_path: Path, n: int) -> np.ndarray | None:
    side = pred_path.with_suffix(".json")
    if not side.is_file():
        return None
    doc = json.loads(side.read_text())
    scores = {int(d["id"]): float(d["score"]) for d in doc.get("instances", [])}
    return np.array([scores.get(i, 0.0) for i in range(1, n + 1)], np.float32)


def evaluate_folders(gt_dir: str | Path, pred_dir: str | Path, *, semantic: bool = False,
                     n_classes: int | None = None, json_path: str | Path | None = None) -> dict[str, Any]:
    """Score the label images of ``pred_dir`` against those of ``gt_dir`` (paired by file stem).

    ``gt_dir`` may be a dataset folder (its ``masks/`` or ``classes/`` subfolder is used). Instance
    scores are read from the ``NAME.json`` sidecars that ``pixelgroup predict`` writes (when absent,
    instances are ranked by area for COCO AP).
    """
    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    sub = "classes" if semantic else "masks"
    if (gt_dir / sub).is_dir():
        gt_dir = gt_dir / sub
    gts, preds = _index(gt_dir, "ground-truth"), _index(pred_dir, "prediction")
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise DataError(
            f"{pred_dir}: no prediction for {len(missing)} ground-truth image(s), e.g. {missing[:3]}; "
            "predict every image of the ground-truth folder"
        )
    if semantic:
        ev = _semantic_eval(gts, preds, n_classes)
    else:
        ev = InstanceEvaluator()
        for stem, gpath in gts.items():
            gt, pred = read_labels(gpath), read_labels(preds[stem])
            _check_same_size(gpath, gt, preds[stem], pred)
            n = int(pred.max()) if pred.size else 0
            ev.update(gt, pred, scores=_scores(preds[stem], n))
    results = ev.compute()
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(_jsonable(results), indent=2))
    return results


def _semantic_eval(gts: dict[str, Path], preds: dict[str, Path], n_classes: int | None) -> ConfusionMatrix:
    pairs = [(read_labels(gts[s]), read_labels(preds[s]), gts[s], preds[s]) for s in gts]
    if n_classes is None:
        n_classes = 1 + max(int(max(g[g != 255].max(initial=0), p.max(initial=0))) for g, p, _, _ in pairs)
    cm = ConfusionMatrix(n_classes, ignore_index=255)
    for gt, pred, gpath, ppath in pairs:
        _check_same_size(gpath, gt, ppath, pred)
        cm.update(gt, pred)
    return cm


def _check_same_size(gpath: Path, gt: np.ndarray, ppath: Path, pred: np.ndarray) -> None:
    if gt.shape != pred.shape:
        raise DataError(
            f"{ppath}: prediction is {pred.shape[1]}x{pred.shape[0]} but ground truth {gpath} is "
            f"{gt.shape[1]}x{gt.shape[0]}; predict at the ground truth's size"
        )


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def evaluate_boundaries(gt_dir: str | Path, pred_dir: str | Path, *,
                        json_path: str | Path | None = None) -> dict[str, Any]:
    """BSDS ODS/OIS/AP of boundary maps (``NAME.png`` from ``pixelgroup boundaries``) against the
    boundaries of ground-truth label images (``gt_dir`` or its ``masks/``)."""
    from ..data.io import read_image
    from ..metrics.boundary import BoundaryEvaluator, label_boundaries

    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    if (gt_dir / "masks").is_dir():
        gt_dir = gt_dir / "masks"
    gts = _index(gt_dir, "ground-truth")
    ev = BoundaryEvaluator()
    for stem, gpath in gts.items():
        ppath = pred_dir / f"{stem}.png"
        if not ppath.is_file():
            raise DataError(f"{ppath}: missing boundary map for {gpath.name}; run 'pixelgroup boundaries' on it")
        gt = read_labels(gpath)
        prob = read_image(ppath).astype(np.float32)
        prob = (prob[..., 0] if prob.ndim == 3 else prob) / 255.0
        _check_same_size(gpath, gt, ppath, prob)
        ev.update(prob, label_boundaries(np.where(gt < 0, 0, gt)))
    results = ev.compute()
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(_jsonable(results), indent=2))
    return results


def evaluate_proposals(gt_dir: str | Path, pred_dir: str | Path, *,
                       json_path: str | Path | None = None) -> dict[str, Any]:
    """AR@10 / AR@100 of ranked proposals (``NAME.json`` from ``pixelgroup proposals``)."""
    from ..metrics.proposals import ProposalEvaluator
    from .embedding_tools import read_proposals

    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    if (gt_dir / "masks").is_dir():
        gt_dir = gt_dir / "masks"
    ev = ProposalEvaluator()
    for stem, gpath in _index(gt_dir, "ground-truth").items():
        ppath = pred_dir / f"{stem}.json"
        if not ppath.is_file():
            raise DataError(f"{ppath}: missing proposals for {gpath.name}; run 'pixelgroup proposals' on it")
        gt = read_labels(gpath)
        props = read_proposals(ppath)
        if props.shape[0] and props.shape[1:] != gt.shape:
            raise DataError(f"{ppath}: proposals are {props.shape[1:]} but {gpath} is {gt.shape}")
        ev.update(np.where(gt < 0, 0, gt), props)
    results = ev.compute()
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(_jsonable(results), indent=2))
    return results
