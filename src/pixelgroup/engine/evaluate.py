"""Evaluation of files: a folder of predictions against a folder of ground truth or a standard dataset
(per-class COCO AP), boundary maps (BSDS) and ranked proposals (AR). A model on a dataset is
:mod:`pixelgroup.engine.validate`."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import data as _data  # noqa: F401  (registers the dataset readers)
from ..data.io import DataError, index_by_stem, read_labels
from ..data.open import open_dataset
from ..data.proposals import read_proposals
from ..fileio import atomic_write_text
from ..metrics.instance import InstanceEvaluator
from ..metrics.semantic import ConfusionMatrix

log = logging.getLogger(__name__)

LABEL_SUFFIXES = (".tif", ".tiff", ".png")


def _index(folder: Path, what: str) -> dict[str, Path]:
    """Label images of ``folder`` by stem (overlays left out; of two files with one stem, the first)."""
    return index_by_stem(folder, what, suffixes=LABEL_SUFFIXES, skip=lambda stem: stem.endswith("_overlay"),
                         duplicates="first")


def _scores(pred_path: Path, n: int) -> np.ndarray | None:
    return _sidecar(pred_path, n)[0]


def _sidecar(pred_path: Path, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(scores (n,), classes (n,))`` of instances 1..n from ``NAME.json``; ``(None, None)`` without it."""
    entries = _sidecar_entries(pred_path)
    if entries is None:
        return None, None
    ids = range(1, n + 1)
    scores = np.array([float(entries.get(i, {}).get("score", 0.0)) for i in ids], np.float32)
    classes = np.array([int(entries.get(i, {}).get("class", 0)) for i in ids], np.int64)
    return scores, classes


def _sidecar_entries(pred_path: Path) -> dict[int, dict[str, Any]] | None:
    """Instance id -> its entry in ``NAME.json`` (``None`` when there is no such file)."""
    side = pred_path.with_suffix(".json")
    if not side.is_file():
        return None
    try:
        return {int(d["id"]): d for d in json.loads(side.read_text()).get("instances", [])}
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise DataError(f"{side}: not a prediction sidecar ({err!r}); rewrite it with 'pixelgroup predict'") from None


def evaluate_folders(gt_dir: str | Path, pred_dir: str | Path, *, semantic: bool = False,
                     n_classes: int | None = None, json_path: str | Path | None = None,
                     ignore: Mapping[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Score the label images of ``pred_dir`` against those of ``gt_dir`` (paired by file stem).

    ``gt_dir`` may be a dataset folder (its ``masks/`` or ``classes/`` subfolder is used). Instance
    scores are read from the ``NAME.json`` sidecars that ``pixelgroup predict`` writes (when absent,
    instances are ranked by area for COCO AP). ``ignore`` maps a file stem to an ``(H, W)`` bool mask
    of void pixels (instances only): ground-truth objects there are not scored, and a prediction lying
    mostly there is neither right nor wrong (COCO's crowd regions).
    """
    if semantic and ignore:
        raise DataError("'ignore' masks are for instance evaluation; leave them out with semantic=True")
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
    unknown = sorted(set(ignore or ()) - set(gts))
    if unknown:
        raise DataError(f"{gt_dir}: 'ignore' names image(s) that are not there: {unknown[:3]}")
    if semantic:
        ev = _semantic_eval(gts, preds, n_classes)
    else:
        ev = InstanceEvaluator()
        for stem, gpath in gts.items():
            gt, pred = read_labels(gpath), read_labels(preds[stem])
            _check_same_size(gpath, gt, preds[stem], pred)
            n = int(pred.max()) if pred.size else 0
            void = None if ignore is None else ignore.get(stem)
            if void is not None and np.shape(void) != gt.shape:
                raise DataError(f"{gpath}: its 'ignore' mask is {np.shape(void)}, the image {gt.shape}")
            ev.update(gt, pred, scores=_scores(preds[stem], n), ignore=void)
    results = ev.compute()
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(_jsonable(results), indent=2))
    return results


def evaluate_dataset(gt_root: str | Path, pred_dir: str | Path, *, format: str, split: str | None = None,
                     json_path: str | Path | None = None) -> dict[str, Any]:
    """Score the predictions of ``pred_dir`` against a standard dataset, per class.

    The ground truth is read by the dataset reader ``format`` (``voc``, ``coco``, ``cityscapes``,
    ``cvppp``, ``folder``, or ``auto`` = detected): ``instances`` (-1 = void, a crowd region for
    COCO AP) and ``instance_classes``. Each sample's prediction is ``NAME.tif`` (or ``.tiff``/
    ``.png``) + ``NAME.json`` as ``pixelgroup predict`` writes them (scores and classes), ``NAME`` =
    the sample's name or its image file's stem.

    Per class when the reader gives classes (``class_names``): the results then hold
    ``coco_ap/class_{c}`` for every class ``c`` with ground truth, ``coco_ap`` = their mean, and
    ``class_names`` (list, index = class id). Predictions without sidecars, or of a class-agnostic
    model (every predicted class 0), are scored class-agnostic, with a warning. The matching
    metrics (``ap_dsb``, F1, PQ, SBD, ...) are class-agnostic in every case.

    Args:
        gt_root: the dataset root, as the reader takes it.
        pred_dir: folder of predictions.
        format: dataset reader name or ``auto``.
        split: the reader's image set (VOC ``val``, COCO ``val2017``, Cityscapes ``val``, ...).
        json_path: also write the results there as JSON.

    Returns:
        :meth:`InstanceEvaluator.compute`'s dict (plus ``class_names`` when per class).
    """
    reader = _open_ground_truth(gt_root, format, split)
    paths = _match_predictions(reader, Path(pred_dir))
    names = getattr(reader, "class_names", None)
    per_class = names is not None and _predicts_classes(paths, pred_dir)
    ev = InstanceEvaluator()
    for i, path in enumerate(paths):
        sample, labels = reader[i], read_labels(path)
        scores, classes = _sidecar(path, int(labels.max(initial=0)))
        _check_same_size(reader.sample_files(i)["image"], sample["instances"], path, labels)
        if not per_class:
            ev.update(sample["instances"], labels, scores=scores)
            continue
        if classes is None:
            raise DataError(f"{path.with_suffix('.json')}: missing; per-class evaluation needs the classes "
                            "that 'pixelgroup predict' writes there")
        ev.update(sample["instances"], labels, scores=scores, gt_classes=sample["instance_classes"],
                  pred_classes=classes)
    results: dict[str, Any] = ev.compute()
    if per_class:
        results["class_names"] = list(names)
    if json_path is not None:
        atomic_write_text(json_path, json.dumps(_jsonable(results), indent=2))
    return results


def _predicts_classes(paths: list[Path], pred_dir: str | Path) -> bool:
    """False (with a warning) when no ``NAME.json`` exists or every predicted instance has class 0
    (a class-agnostic model); True otherwise, also when nothing at all was predicted."""
    sidecars = [_sidecar_entries(path) for path in paths]
    if all(entries is None for entries in sidecars):
        log.warning("%s: no NAME.json sidecars, so no classes; scoring class-agnostic", pred_dir)
        return False
    seen = {int(d.get("class", 0)) for entries in sidecars for d in (entries or {}).values()}
    if seen == {0}:
        log.warning("%s: every predicted instance has class 0 (class-agnostic model); scoring class-agnostic",
                    pred_dir)
        return False
    return True


def _open_ground_truth(gt_root: str | Path, format: str, split: str | None):
    """The dataset reader ``format`` on ``gt_root`` (raw images, no normalisation)."""
    return open_dataset(gt_root, format=format, normalize=None, split=split)


def _match_predictions(reader, pred_dir: Path) -> list[Path]:
    """The prediction file of every sample of ``reader`` (by sample name, else image file stem)."""
    preds = _index(pred_dir, "prediction")
    found, missing = [], []
    for i, name in enumerate(reader.names):
        path = preds.get(name) or preds.get(reader.sample_files(i)["image"].stem)
        if path is None:
            missing.append(name)
        found.append(path)
    if missing:
        raise DataError(
            f"{pred_dir}: no prediction for {len(missing)} of {len(reader.names)} ground-truth image(s), e.g. "
            f"{missing[:3]}; run 'pixelgroup predict' on the dataset's images into this folder"
        )
    return found


def format_class_ap(results: dict[str, Any]) -> str:
    """Per-class COCO AP lines of :func:`evaluate_dataset`'s results, then the mean ("" if none)."""
    names = results.get("class_names") or []
    rows = []
    for key, value in results.items():
        if key.startswith("coco_ap/class_"):
            c = int(key.rsplit("_", 1)[1])
            name = names[c] if 0 <= c < len(names) else f"class {c}"
            rows.append((f"{c:>3} {name}", value))
    if not rows:
        return ""
    rows.append(("mean", results["coco_ap"]))
    width = max(len(label) for label, _ in rows)
    return "\n".join([f"{'class'.ljust(width)}  COCO AP"] + [f"{label.ljust(width)}  {v:7.3f}" for label, v in rows])


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
