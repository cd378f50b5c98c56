"""Writing predictions in the formats the standard benchmarks evaluate.

* :func:`write_coco_results`: a COCO results JSON (RLE masks + scores) for ``COCOeval(iouType="segm")``.
* :func:`write_cityscapes_results`: the Cityscapes instance-level results format (one ``NAME.txt``
  listing ``masks/NAME_III.png LABEL_ID SCORE`` lines + one binary PNG per instance), read back by
  :func:`read_cityscapes_results`.
* Label images (``.tif``/``.png``): :func:`pixelgroup.data.io.write_labels`, re-exported here.

Predictions are ``(labels (H, W), scores (N,), classes (N,))``: instance ``i + 1`` has score
``scores[i]`` and class ``classes[i]`` (a contiguous class 1..K of the reader).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..fileio import atomic_write_text
from .cityscapes import INSTANCE_LABEL_IDS
from .io import DataError, read_labels, write_image_png, write_labels

__all__ = ["read_cityscapes_results", "write_cityscapes_results", "write_coco_results", "write_labels"]

MASK_DIR = "masks"


def _prediction(
    labels: Any, scores: Any, classes: Any, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated ``(labels (H, W) int64, scores (N,) float64, classes (N,) int64)``."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    classes = np.asarray(classes).reshape(-1).astype(np.int64)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{what}: labels must be an (H, W) integer image, got {labels.dtype} {labels.shape}")
    n = int(labels.max(initial=0))
    if labels.min(initial=0) < 0:
        raise ValueError(f"{what}: labels must be >= 0 (0 = background); remove ignore (-1) pixels first")
    if scores.shape != (n,) or classes.shape != (n,):
        raise ValueError(
            f"{what}: labels go up to {n} but there are {scores.size} scores and {classes.size} classes; "
            "give one score and one class per instance id 1..N"
        )
    return labels.astype(np.int64), scores, classes


def _category_of(classes: np.ndarray, category_ids: Sequence[int] | None, what: str) -> np.ndarray:
    if category_ids is None:
        return classes
    table = np.asarray(category_ids, dtype=np.int64)
    bad = (classes < 1) | (classes > table.size)
    if bad.any():
        raise ValueError(
            f"{what}: class {int(classes[bad][0])} has no category id (category_ids has {table.size}); "
            "classes must be 1..K"
        )
    return table[classes - 1]


def write_coco_results(
    path: str | Path,
    results: Iterable[tuple[int, Any, Any, Any]],
    *,
    category_ids: Sequence[int] | None = None,
) -> int:
    """Write a COCO segmentation results JSON atomically.

    Args:
        path: the ``.json`` to write.
        results: ``(image_id, labels (H, W), scores (N,), classes (N,))`` per image; empty instance
            ids (no pixels) are left out.
        category_ids: COCO category id of class ``k`` at ``category_ids[k - 1]`` (a COCO reader's
            ``.category_ids``); ``None`` = the classes are already category ids.

    Returns:
        The number of detections written. Each is ``{"image_id", "category_id", "segmentation":
        {"size": [H, W], "counts": str}, "score"}``.
    """
    entries = []
    for image_id, labels, scores, classes in results:
        what = f"image_id {image_id}"
        labels, scores, classes = _prediction(labels, scores, classes, what)
        categories = _category_of(classes, category_ids, what)
        for i in range(scores.size):
            mask = labels == i + 1
            if not mask.any():
                continue
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            segmentation = {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}
            entries.append({
                "image_id": int(image_id),
                "category_id": int(categories[i]),
                "segmentation": segmentation,
                "score": float(scores[i]),
            })
    atomic_write_text(path, json.dumps(entries))
    return len(entries)


def write_cityscapes_results(
    out_dir: str | Path,
    name: str,
    labels: Any,
    scores: Any,
    classes: Any,
    *,
    label_ids: Sequence[int] = INSTANCE_LABEL_IDS,
) -> Path:
    """Write one image's instances in the Cityscapes instance-level results format.

    Writes ``out_dir/NAME.txt`` with one ``masks/NAME_III.png LABEL_ID SCORE`` line per instance
    (paths relative to the txt) and ``out_dir/masks/NAME_III.png``, a 0/255 uint8 mask per instance.
    Every file is written atomically, the txt last.

    Args:
        out_dir: the results folder (created).
        name: the image name (``CITY_SEQUENCE_FRAME``, as the Cityscapes reader's ``names``).
        labels: ``(H, W)`` instance ids 0..N.
        scores: ``(N,)`` confidences.
        classes: ``(N,)`` classes 1..8 of the Cityscapes reader.
        label_ids: Cityscapes label id of class ``k`` at ``label_ids[k - 1]``.

    Returns:
        The path of the txt file.
    """
    out_dir = Path(out_dir)
    labels, scores, classes = _prediction(labels, scores, classes, name)
    ids = _category_of(classes, label_ids, name)
    lines = []
    for i in range(scores.size):
        mask = labels == i + 1
        if not mask.any():
            continue
        rel = f"{MASK_DIR}/{name}_{i + 1:03d}.png"
        write_image_png(out_dir / rel, mask.astype(np.uint8) * 255)
        lines.append(f"{rel} {int(ids[i])} {scores[i]:.6f}\n")
    return atomic_write_text(out_dir / f"{name}.txt", "".join(lines))


def read_cityscapes_results(
    txt: str | Path, *, shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a Cityscapes results txt and its masks back into one label image.

    Masks are painted in ascending score order, so where they overlap the most confident one wins;
    instance ids follow the order of the lines. An instance left without pixels keeps its id.

    Args:
        txt: the results file.
        shape: ``(H, W)`` of the image; needed only when the file lists no instance.

    Returns:
        ``(labels (H, W) int64, scores (N,) float64, label_ids (N,) int64)``.
    """
    txt = Path(txt)
    rows = [line.split() for line in txt.read_text().splitlines() if line.strip()]
    if any(len(r) != 3 for r in rows):
        raise DataError(f"{txt}: every line must be 'relative/mask.png LABEL_ID SCORE'")
    if not rows and shape is None:
        raise DataError(f"{txt}: no instances listed; pass shape=(H, W) to get an empty label image")
    scores = np.asarray([float(r[2]) for r in rows])
    label_ids = np.asarray([int(r[1]) for r in rows], dtype=np.int64)
    labels = None if shape is None else np.zeros(shape, np.int64)
    for i in np.argsort(scores, kind="stable"):
        mask = read_labels(txt.parent / rows[i][0]) > 0
        if labels is None:
            labels = np.zeros(mask.shape, np.int64)
        elif mask.shape != labels.shape:
            raise DataError(f"{txt.parent / rows[i][0]}: mask size {mask.shape} differs from {labels.shape}")
        labels[mask] = i + 1
    return labels, scores, label_ids
