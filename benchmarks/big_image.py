"""Big images end to end: peak memory and speed of tiled prediction from a tiled TIFF on disk.

Synthesises, tile by tile (never the whole image in memory), square grey images of synthetic
nuclei (512 x 512 ``pixelgroup.data.synth`` scenes side by side) at each ``--sizes`` and one RGB
image of synthetic shapes (``--rgb-size``), as tiled TIFFs (BigTIFF), then runs
``predict_paths`` on each in a fresh process and prints its peak RSS and seconds per megapixel.

The model is a default-config ``spatial`` network (``RunConfig()``: U-Net width 32, depth 3),
randomly initialised unless ``--train-steps N`` trains it N steps on synthetic nuclei first, or
``--model RUN`` gives a trained run. An untrained model finds few objects, so the grouping is cheap
and the figures are mostly network + I/O; a trained one adds the grouping of every nucleus.

Usage (heavy: run alone on the machine; the 8k grey image is 64 Mpx):
    python benchmarks/big_image.py --sizes 1024 2048 4096 8192 --rgb-size 4096
    python benchmarks/big_image.py --sizes 1024 --rgb-size 0          # smoke run
Target: <= 2 GB peak RSS at 8192 x 8192.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

SCENE = 512
"""Side of one synthetic scene; the big image is a grid of them."""


def write_big_tiff(path: Path, size: int, *, rgb: bool, seed: int = 0) -> Path:
    """A ``size x size`` (x3 when ``rgb``) tiled BigTIFF of synthetic scenes, written tile by tile."""
    from pixelgroup.data.synth import synth_nuclei, synth_shapes

    if size % SCENE:
        raise ValueError(f"--sizes must be multiples of {SCENE}, got {size}")
    synth = synth_shapes if rgb else synth_nuclei
    n = size // SCENE

    def tiles():
        for i in range(n):
            for j in range(n):
                image, _ = synth(np.random.default_rng([seed, i, j]), SCENE)
                yield image

    shape = (size, size, 3) if rgb else (size, size)
    tifffile.imwrite(path, tiles(), shape=shape, dtype=np.uint8 if rgb else np.uint16, tile=(SCENE, SCENE),
                     bigtiff=True, photometric="rgb" if rgb else "minisblack")
    return path


def make_model(out: Path, *, channels: int, train_steps: int, device: str) -> Path:
    """A default-config spatial run: random init, or trained ``train_steps`` on synthetic nuclei."""
    import torch

    from pixelgroup.config import RunConfig
    from pixelgroup.engine.build import build_model
    from pixelgroup.engine.checkpoint import save_checkpoint

    cfg = RunConfig()
    if train_steps and channels == 1:
        from pixelgroup.data.synth import write_synthetic
        from pixelgroup.engine.train import fit

        write_synthetic(out / "data", kind="nuclei", n=16, size=256, seed=0)
        fit(cfg.replace(**{"train.steps": train_steps}), data=out / "data", out=out / "run", device=device,
            progress=False)
        return out / "run"
    torch.manual_seed(0)
    return save_checkpoint(out / f"random_{channels}.pt", cfg=cfg, model=build_model(cfg, in_channels=channels),
                           in_channels=channels)


def worker(args: argparse.Namespace) -> None:
    """One prediction in this (fresh) process; prints a JSON line with time and peak RSS."""
    from pixelgroup.engine.predict import predict_paths
    from pixelgroup.engine.predict_big import BigOptions
    from pixelgroup.engine.segmenter import load_model

    seg = load_model(args.model, device=args.device)
    t0 = time.perf_counter()
    predict_paths(seg, [args.image], args.out, progress=False, overwrite=True,
                  big=BigOptions(tile=args.tile, halo=args.halo, out_format=args.out_format))
    seconds = time.perf_counter() - t0
    with tifffile.TiffFile(args.image) as tif:
        h, w = tif.series[0].shape[:2]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"image": Path(args.image).name, "mpx": h * w / 1e6, "seconds": seconds,
                      "s_per_mpx": seconds / (h * w / 1e6), "peak_rss_mb": peak_kb / 1024}))


def run(args: argparse.Namespace) -> None:
    work = Path(args.work or tempfile.mkdtemp(prefix="pixelgroup-big-"))
    work.mkdir(parents=True, exist_ok=True)
    jobs = [(size, False) for size in args.sizes] + ([(args.rgb_size, True)] if args.rgb_size else [])
    how = args.model or (f"trained {args.train_steps} steps" if args.train_steps else "random init")
    print(f"model: default-config spatial, {how}; tile {args.tile}, halo {args.halo}; device {args.device}")
    print(f"{'image':<22}{'Mpx':>8}{'seconds':>10}{'s/Mpx':>8}{'peak RSS MB':>13}")
    for size, rgb in jobs:
        image = work / f"{'rgb' if rgb else 'grey'}_{size}.tif"
        if not image.exists():
            write_big_tiff(image, size, rgb=rgb)
        model = args.model or str(make_model(work, channels=3 if rgb else 1, train_steps=0 if rgb else args.train_steps,
                                             device=args.device))
        cmd = [sys.executable, __file__, "--worker", "--image", str(image), "--model", model, "--out",
               str(work / "pred"), "--tile", str(args.tile), "--halo", str(args.halo), "--device", args.device,
               "--out-format", args.out_format]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        r = json.loads(line)
        print(f"{r['image']:<22}{r['mpx']:>8.1f}{r['seconds']:>10.1f}{r['s_per_mpx']:>8.2f}{r['peak_rss_mb']:>13.0f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096, 8192])
    p.add_argument("--rgb-size", type=int, default=4096, help="side of the RGB image (0: none)")
    p.add_argument("--tile", type=int, default=1024)
    p.add_argument("--halo", type=int, default=96)
    p.add_argument("--out-format", default="tif", choices=("tif", "ome-zarr"))
    p.add_argument("--train-steps", type=int, default=0, help="train the grey model this many steps first")
    p.add_argument("--model", default=None, help="a trained run folder or checkpoint instead")
    p.add_argument("--device", default="cpu")
    p.add_argument("--work", default=None, help="folder for the images and predictions (default: a temp folder)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--image", default=None, help=argparse.SUPPRESS)
    p.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    worker(args) if args.worker else run(args)


if __name__ == "__main__":
    main()
