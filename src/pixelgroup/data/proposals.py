"""Ranked proposal files: ``NAME.json`` with COCO-style RLE masks and scores, best first."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from ..fileio import atomic_write_text


def write_proposals(path: str | Path, masks: Sequence[np.ndarray], scores: Sequence[float], *, image: str) -> Path:
    """Write ``(H, W)`` bool ``masks`` (best first) with their ``scores`` as ``{"image", "proposals"}``."""
    entries = []
    for rank, (mask, score) in enumerate(zip(masks, scores)):
        rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
        entries.append({"rank": rank, "score": float(score),
                        "segmentation": {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}})
    return atomic_write_text(path, json.dumps({"image": image, "proposals": entries}))


def read_proposals(path: str | Path) -> np.ndarray:
    """``(K, H, W)`` bool masks, best first, from a file written by :func:`proposals_paths`."""
    doc = json.loads(Path(path).read_text())
    entries = sorted(doc["proposals"], key=lambda e: e["rank"])
    if not entries:
        return np.zeros((0, 1, 1), bool)
    rles = [{"size": e["segmentation"]["size"], "counts": e["segmentation"]["counts"].encode("ascii")}
            for e in entries]
    return np.moveaxis(mask_utils.decode(rles), -1, 0).astype(bool)
