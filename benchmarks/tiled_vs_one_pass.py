"""Tiled vs one-pass prediction of the same model on a large synthetic field, and regroup vs predict.

    python benchmarks/tiled_vs_one_pass.py [--size 2048] [--tiles 256 1024] [--model nuclei]

The field is a ``--size`` square of ``pixelgroup.data.synth`` nuclei; the model is the bundled
``nuclei`` model (or ``--model RUN``). For each tile size (default halo) it prints the share of the
one-pass objects matched at IoU >= 0.95 by the tiled result, the objects split at a seam (a one-pass
object of which two or more tiled objects each hold >= 10 % of the pixels), the duplicates (two
tiled objects inside one one-pass object: counted by the same rule from the tiled side) and the tiled
objects without a one-pass partner at IoU >= 0.5. Then ``predict --save-outputs`` (tiled, through
the big-image path) is timed against ``pixelgroup regroup`` of the saved outputs.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

DATA = Path(__file__).resolve().parent / "_data" / "tiled"


def overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(Na + 1, Nb + 1)`` pixel counts of every (a id, b id) pair (0 = background)."""
    na, nb = int(a.max()) + 1, int(b.max()) + 1
    return np.bincount(a.ravel().astype(np.int64) * nb + b.ravel(), minlength=na * nb).reshape(na, nb)


def split_count(counts: np.ndarray) -> int:
    """Objects (rows, id >= 1) of which >= 2 partners (columns, id >= 1) each hold >= 10 % of the pixels."""
    area = counts.sum(1, keepdims=True).clip(min=1)
    return int(((counts[1:, 1:] >= 0.1 * area[1:]).sum(1) >= 2).sum())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--tiles", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--model", default="nuclei")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    import pixelgroup
    from pixelgroup.data.synth import synth_nuclei
    from pixelgroup.engine.predict import predict_paths
    from pixelgroup.engine.predict_big import BigOptions
    from pixelgroup.engine.regroup import regroup_paths
    from pixelgroup.metrics.matching import match

    image, _ = synth_nuclei(np.random.default_rng(7), args.size)
    seg = pixelgroup.load_model(args.model)
    t0 = time.perf_counter()
    one = seg.segment(image, tile=0)
    print(f"one pass: {int(one.max())} objects in {time.perf_counter() - t0:.1f} s")
    for tile in args.tiles:
        t0 = time.perf_counter()
        tiled = seg.segment(image, tile=tile)
        seconds = time.perf_counter() - t0
        m95, m50 = match(one, tiled, thresh=0.95), match(one, tiled, thresh=0.5)
        counts = overlaps(one, tiled)
        print(f"tile {tile}: {int(tiled.max())} objects in {seconds:.1f} s; matched at IoU>=0.95: "
              f"{m95.tp / max(1, int(one.max())):.4f}; split: {split_count(counts)}; duplicates: "
              f"{split_count(counts.T)}; unmatched at IoU>=0.5: {m50.fp}")
    DATA.mkdir(parents=True, exist_ok=True)
    src = DATA / "field.tif"
    tifffile.imwrite(src, image, tile=(256, 256))
    for folder in ("pred", "regrouped"):
        shutil.rmtree(DATA / folder, ignore_errors=True)
    t0 = time.perf_counter()
    predict_paths(seg, [src], DATA / "pred", big=BigOptions(tile=args.tiles[-1], save_outputs=True), progress=False)
    t_predict = time.perf_counter() - t0
    t0 = time.perf_counter()
    regroup_paths([DATA / "pred"], DATA / "regrouped", progress=False)
    t_regroup = time.perf_counter() - t0
    labels = [tifffile.imread(DATA / folder / "field.tif") for folder in ("pred", "regrouped")]
    same = np.array_equal(*labels)
    print(f"predict --save-outputs: {t_predict:.1f} s; regroup: {t_regroup:.1f} s; identical labels: {same}")


if __name__ == "__main__":
    main()
