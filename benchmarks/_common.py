"""Shared plumbing of the benchmark scripts: make data once, train a config, evaluate held-out images."""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
import torch

import pixelgroup
from pixelgroup.config import RunConfig
from pixelgroup.engine.datasets import open_reader
from pixelgroup.engine.diameter import resize_image
from pixelgroup.engine.evaluate import evaluate_folders
from pixelgroup.engine.predict import predict_paths
from pixelgroup.engine.predict_big import BigOptions
from pixelgroup.engine.validate import evaluate_segmenter
from pixelgroup.metrics.report import format_instance_table
from pixelgroup.ops.resize import resize_labels

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


def wheel(spec: str) -> zipfile.ZipFile:
    """The wheel of ``spec`` (e.g. ``"stardist==0.9.2"``) from PyPI, downloaded into ``ROOT`` once
    (``pip download --no-deps``; nothing is installed), opened as a zip file."""
    pattern = spec.split("==")[0].replace("-", "_") + "-*.whl"
    if not list(ROOT.glob(pattern)):
        ROOT.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", spec, "--no-deps", "--quiet", "-d", str(ROOT)],
                       check=True)
    return zipfile.ZipFile(next(ROOT.glob(pattern)))


def rescale_folder(folder: Path, factor: float) -> None:
    """Resize every ``images/*.tif`` (bilinear, antialiased when shrinking) and ``masks/*.tif``
    (nearest, same pixel centres) of ``folder`` by ``factor``, in place (benchmark data only)."""
    for path in sorted((folder / "images").glob("*.tif")):
        image = tifffile.imread(path).astype(np.float32)
        resized = resize_image(image if image.ndim == 3 else image[..., None], factor)
        tifffile.imwrite(path, resized if image.ndim == 3 else resized[..., 0])
        mask = folder / "masks" / path.name
        tifffile.imwrite(mask, resize_labels(tifffile.imread(mask), resized.shape[:2]))


def run_real_benchmark(doc: str, *, name: str, write: Callable[[Path], str], what: str) -> None:
    """The command line of a real-data benchmark: ``write(work)`` writes the ``work/train`` and
    ``work/test`` folders and returns a line describing them; then train the defaults for
    ``--minutes`` (or load ``--model``), predict the test folder (plain, ``--tta``, ``--diameter``)
    and print the metrics table and AP_dsb@0.5 / @0.75 on ``what``."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--method", default="spatial")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / f"{name}_run")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tta", action="store_true", help="also predict with test-time augmentation")
    ap.add_argument("--diameter", default=None, help="also predict with this --diameter (pixels or auto)")
    ap.add_argument("--model", default=None, help="score this run or model name instead of training one")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="train on the training images resized by this factor, and predict the test images "
                         "resized by it too (--diameter = the model's object size / scale)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = fresh(args.out)
    print(write(work))
    if args.scale != 1.0:
        rescale_folder(work / "train", args.scale)
    n_test = len(list((work / "test" / "images").iterdir()))
    if args.model is None:
        cfg = pixelgroup.load_config(args.config) if args.config else RunConfig(method=args.method)
        cfg = cfg.replace(**{"method": args.method, "train.seed": args.seed, "train.minutes": args.minutes,
                             "train.steps": 100000})
        t0 = time.time()
        res = pixelgroup.fit(cfg, data=work / "train", out=work / "run", progress=False)
        t_train = time.time() - t0
        print(f"method={args.method} steps={res.steps} train_time={t_train:.0f}s best_val={res.best_metric:.3f}"
              f"@{res.best_step} threads={args.threads} seed={args.seed}")
    seg = pixelgroup.load_model(args.model or work / "run")
    variants = [("plain", BigOptions(), None)]
    if args.scale != 1.0:  # the test images at the training images' scale
        variants = [(f"scale={args.scale:g}", BigOptions(), seg.object_diameter / args.scale)]
    if args.tta:
        variants.append(("tta", BigOptions(tta=True), None))
    if args.diameter is not None:
        diameter = args.diameter if args.diameter == "auto" else float(args.diameter)
        variants.append((f"diameter={args.diameter}", BigOptions(), diameter))
    rows = {}
    for label, big, diameter in variants:
        pred = work / f"pred_{re.sub(r'[^a-z0-9]+', '_', label)}"
        t0 = time.time()
        predict_paths(seg, [work / "test" / "images"], pred, overlays=True, progress=False, big=big,
                      diameter=diameter)
        seconds = time.time() - t0
        rows[label] = evaluate_folders(work / "test", pred, json_path=pred.with_suffix(".json"))
        print(f"{label}: predicted the {n_test} test images in {seconds:.2f} s; "
              f"AP_dsb@0.5 {rows[label]['ap_dsb@0.50']:.3f}")
    print(format_instance_table(rows))
    first = variants[0][0]
    print(f"AP_dsb@0.5 on {what}: {rows[first]['ap_dsb@0.50']:.3f}")
    print(f"AP_dsb@0.75 on {what}: {rows[first]['ap_dsb@0.75']:.3f}")
