"""Shared plumbing of the benchmark scripts: make data once, train a config, evaluate held-out images."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import torch

import pixelgroup
from pixelgroup.config import RunConfig
from pixelgroup.engine.datasets import open_reader
from pixelgroup.engine.validate import evaluate_segmenter

ROOT = Path(__file__).resolve().parent / "_data"

FLIPS_ONLY = {"data.zoom": (1.0, 1.0), "data.gain": (1.0, 1.0), "data.shift": 0.0}
"""Config changes that turn the zoom and intensity augmentation off (flips and 90-degree rotations
stay): the embedding-method comparisons were measured before those became defaults, and keep them
off so that their scripts still give the figures in the README."""


def fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    return path


def train_and_score(cfg: RunConfig, *, train: Path, test: Path, out: Path, grouping: list[dict] | None = None,
                    device: str = "cpu") -> dict[str, Any]:
    """Train ``cfg`` on ``train`` (a split held out for model selection), score ``test``.

    ``grouping``: extra grouping configs (``{"name": ..., "params": {...}, "label": ...}``) scored on
    the same trained model, keyed by ``label`` (default: the grouper's name; give one when only the
    params differ, e.g. a semantic method's inference settings). Returns ``{"train_s", "steps",
    "step_s", "results": {grouper or label: metrics}, "infer_s"}``.
    """
    t0 = time.time()
    res = pixelgroup.fit(cfg, data=train, out=fresh(out), device=device, progress=False)
    train_s = time.time() - t0
    test_ds = open_reader(cfg, test)
    trained = pixelgroup.Segmenter.from_checkpoint(out, device=device)
    scores, infer = {}, {}
    for g in [None, *(grouping or [])]:
        c = cfg if g is None else cfg.replace(**{"grouping.name": g["name"], "grouping.params": g.get("params", {})})
        seg = pixelgroup.Segmenter(trained.model, c, device=device, state=trained.state)
        t1 = time.time()
        key = seg.grouper if g is None else g.get("label", seg.grouper)
        scores[key] = evaluate_segmenter(seg, test_ds, n_classes=cfg.model.n_classes)
        infer[key] = (time.time() - t1) / max(1, len(test_ds))
    return {"train_s": train_s, "steps": res.steps, "step_s": train_s / max(1, res.steps), "results": scores,
            "infer_s": infer}


def set_threads(n: int) -> None:
    torch.set_num_threads(n)
