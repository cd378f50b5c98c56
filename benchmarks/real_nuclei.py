"""Real fluorescence nuclei: one annotated image of ~100 nuclei for training, 10 minutes of CPU training,
AP on held-out nuclei, over several training seeds.

Data: the DSB 2018 fluorescence image and its expert annotation (125 nuclei, 512x512) that the
StarDist package ships as test data (Caicedo et al., Nature Methods 2019). The script fetches the
StarDist wheel from PyPI with ``pip download`` (nothing else of StarDist is used), then splits the
image by columns: x < 384 is the training image (ONE 512 x 384 image, as a user would have it;
``train`` holds out a band of it for model selection and threshold calibration), x >= 384 is the
test set (two 256 x 128 tiles, never seen in training).

    python benchmarks/real_nuclei.py [--minutes 10] [--seeds 0 1 2] [--method spatial] [--threads 2]
                                     [--tta] [--model RUN_OR_NAME] [--set KEY=VALUE ...]

prints, per seed, AP_dsb at IoU 0.5 ... 0.9, COCO AP, F1, PQ, SBD on the held-out nuclei and the
wall time, then the mean and spread (min - max) of AP_dsb@0.5 and @0.75 over the seeds.

Each score is printed twice. ``plain``/``tta`` score all 32 test objects, as the benchmark was
first written. ``uncut`` scores the same predictions with the nuclei that the benchmark's own
lines cut (the train/test line at column 384 and the line between the two test tiles at row 256:
11 of the 32 test objects, pieces of 9 nuclei, 6 of them 2-4 px wide slivers of 8-46 px) as
void, the rule ``train`` applies to its own validation band (no object straddling a split is
scored): a prediction lying mostly on them is neither right nor wrong. On the 32 objects, finding
none of the 6 slivers caps AP_dsb at 26/32 = 0.81 plus whatever slivers are found; ``uncut``
measures the other 21 objects.

``--tta`` also predicts with test-time augmentation (8 flips/rotations) and prints both rows and
the prediction time of each. ``--model`` skips training and scores an existing run or model name
(the bundled ``nuclei`` model was trained on the same training columns, so the test columns are
held out for it too).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import tifffile
import torch
import yaml
from _common import ROOT, wheel
from skimage.segmentation import relabel_sequential

import pixelgroup
from pixelgroup.config import RunConfig
from pixelgroup.engine.evaluate import evaluate_folders
from pixelgroup.engine.predict import predict_paths
from pixelgroup.engine.predict_big import BigOptions
from pixelgroup.metrics.report import format_instance_table

WHEEL = "stardist==0.9.2"


def fetch_image() -> tuple[np.ndarray, np.ndarray]:
    """The DSB 2018 nuclei image and labels from the StarDist wheel (downloaded once, cached)."""
    img_path, mask_path = ROOT / "dsb_img2d.tif", ROOT / "dsb_mask2d.tif"
    if not img_path.is_file():
        with wheel(WHEEL) as z:
            img_path.write_bytes(z.read("stardist/data/images/img2d.tif"))
            mask_path.write_bytes(z.read("stardist/data/images/mask2d.tif"))
    return tifffile.imread(img_path), tifffile.imread(mask_path)


def write_split(root: Path, image: np.ndarray, labels: np.ndarray, tiles: list[tuple[slice, slice]]) -> int:
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    count = 0
    for i, (ys, xs) in enumerate(tiles):
        lab = relabel_sequential(labels[ys, xs])[0].astype(np.int32)
        count += int(lab.max())
        tifffile.imwrite(root / "images" / f"tile{i}.tif", image[ys, xs])
        tifffile.imwrite(root / "masks" / f"tile{i}.tif", lab)
    return count


TRAIN_COLUMNS = 384
"""Columns ``[0, 384)`` are the training image, ``[384, 512)`` the test columns."""
TEST_TILES = [(slice(0, 256), slice(TRAIN_COLUMNS, 512)), (slice(256, 512), slice(TRAIN_COLUMNS, 512))]


def cut_by_split(labels: np.ndarray) -> np.ndarray:
    """Ids of the nuclei that the benchmark's lines cut: an object with pixels on both sides of the
    train/test line, or, in the test columns, on both sides of the line between the test tiles."""
    left, right = labels[:, TRAIN_COLUMNS - 1], labels[:, TRAIN_COLUMNS]
    row = TEST_TILES[1][0].start
    above, below = labels[row - 1, TRAIN_COLUMNS:], labels[row, TRAIN_COLUMNS:]
    ids = np.concatenate([left[(left == right) & (left > 0)], above[(above == below) & (above > 0)]])
    return np.unique(ids)


def score(model, work: Path, name: str, tta: bool, void: dict[str, np.ndarray]) -> tuple[dict, dict, float]:
    """``(all objects, the uncut ones, seconds)``: the same predictions scored on every test object
    and with the objects the benchmark's lines cut as void."""
    seg = pixelgroup.load_model(model)
    pred = work / f"pred_{name}"
    t0 = time.time()
    predict_paths(seg, [work / "test" / "images"], pred, overlays=True, progress=False, big=BigOptions(tta=tta))
    seconds = time.time() - t0
    every = evaluate_folders(work / "test", pred, json_path=work / f"results_{name}.json")
    uncut = evaluate_folders(work / "test", pred, json_path=work / f"results_{name}_uncut.json", ignore=void)
    return every, uncut, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (one run each)")
    ap.add_argument("--method", default="spatial")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "real_nuclei_run")
    ap.add_argument("--config", type=Path, default=None)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change one setting for an A/B run, e.g. --set train.ema=0.999 (YAML value)")
    ap.add_argument("--tta", action="store_true", help="also predict with test-time augmentation")
    ap.add_argument("--model", default=None, help="score this run or model name instead of training one")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    image, labels = fetch_image()
    work = args.out
    if work.exists():
        import shutil

        shutil.rmtree(work)
    train_tiles = [(slice(0, 512), slice(0, TRAIN_COLUMNS))]
    n_train = write_split(work / "train", image, labels, train_tiles)
    n_test = write_split(work / "test", image, labels, TEST_TILES)
    cut = cut_by_split(labels)
    void = {f"tile{i}": np.isin(labels[tile], cut) for i, tile in enumerate(TEST_TILES)}
    n_void = sum(int(np.unique(labels[tile][v]).size) for tile, v in zip(TEST_TILES, void.values()))
    print(f"train: one 512 x 384 image, {n_train} nuclei (a band is held out for validation); test: {n_test} "
          f"nuclei, {n_void} of them cut by the benchmark's lines (void in the 'uncut' rows)")
    changes = {k.strip(): yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    rows: dict[str, dict] = {}
    modes = (False, True) if args.tta else (False,)
    for seed in ([None] if args.model else args.seeds):
        model = args.model
        tag = "" if seed is None else f"seed{seed} "
        if model is None:
            cfg = pixelgroup.load_config(args.config) if args.config else RunConfig(method=args.method)
            cfg = cfg.replace(**{"method": args.method, "train.minutes": args.minutes, "train.steps": 100000,
                                 "train.seed": seed, **changes})
            t0 = time.time()
            res = pixelgroup.fit(cfg, data=work / "train", out=work / f"run_seed{seed}", progress=False)
            print(f"seed {seed}: steps={res.steps} train_time={time.time() - t0:.0f}s threads={args.threads}")
            print(f"seed {seed}: {res.summary()}")
            model = res.run_dir
        for tta in modes:
            mode = "tta" if tta else "plain"
            name = mode + ("" if seed is None else f"_seed{seed}")
            rows[tag + mode], rows[tag + mode + " uncut"], seconds = score(model, work, name, tta, void)
            print(f"{tag}{mode}: predicted the 2 test tiles in {seconds:.2f} s; AP_dsb@0.5 "
                  f"{rows[tag + mode]['ap_dsb@0.50']:.3f} (uncut {rows[tag + mode + ' uncut']['ap_dsb@0.50']:.3f})")
    print(format_instance_table(rows))
    for mode in [m + u for m in (("plain", "tta") if args.tta else ("plain",)) for u in ("", " uncut")]:
        picked = [r for k, r in rows.items() if k.endswith(mode)]  # "... plain" never matches "... plain uncut"
        for t in ("0.50", "0.75"):
            v = np.array([r[f"ap_dsb@{t}"] for r in picked])
            print(f"{mode}: AP_dsb@{t} on held-out real nuclei: mean {v.mean():.3f} over {len(v)} run(s) "
                  f"(min {v.min():.3f}, max {v.max():.3f})")


if __name__ == "__main__":
    main()
