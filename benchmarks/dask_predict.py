"""Prediction on a Dask cluster: images/s with 1 and 2 workers on a folder, Mpx/s on one big image.

    python benchmarks/dask_predict.py [--n-images 64] [--size 256] [--workers 1 2] [--big 8192]
    python benchmarks/dask_predict.py --n-images 8 --big 1024          # smoke run

Each measurement starts a ``LocalCluster`` (``--scheduler local:N``: N worker processes, one thread
each, on 127.0.0.1), runs ``predict_on_cluster`` and reports the wall time without the cluster's
start-up (the model is loaded once per worker inside the timed run). The folder holds
``--n-images`` synthetic nuclei images; the big image is a tiled BigTIFF of synthetic nuclei
(``benchmarks/big_image.py``'s generator), segmented tile by tile as Dask tasks. The model is a
default-config spatial network trained ``--train-steps`` steps (0: random init; then few objects are
found and the figure is mostly network + I/O). A local run (``predict_paths``, this process) is
printed for comparison. On a 2-core machine 2 workers cannot beat 2 threads by much: the point is
that the same command runs on a cluster (``--scheduler tcp://HOST:8786``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent / "_data" / "dask"
sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-images", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--big", type=int, default=8192, help="side of the big image (multiple of 512; 0: skip)")
    ap.add_argument("--train-steps", type=int, default=0)
    args = ap.parse_args()

    import torch
    from big_image import make_model, write_big_tiff
    from distributed import Client, LocalCluster

    from pixelgroup.data.synth import write_synthetic
    from pixelgroup.engine.cluster import predict_on_cluster
    from pixelgroup.engine.predict import predict_paths
    from pixelgroup.engine.segmenter import load_model

    DATA.mkdir(parents=True, exist_ok=True)
    folder = DATA / f"nuclei_{args.n_images}_{args.size}"
    if not (folder / "images").is_dir():
        write_synthetic(folder, kind="nuclei", n=args.n_images, size=args.size, seed=0)
    model = make_model(DATA, channels=1, train_steps=args.train_steps, device="cpu")
    big = DATA / f"big_{args.big}.tif"
    if args.big and not big.is_file():
        write_big_tiff(big, args.big, rgb=False)

    def timed(run) -> float:
        out = DATA / "out"
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        run(out)
        return time.perf_counter() - t0

    torch.set_num_threads(len(args.workers) and max(args.workers))
    seg = load_model(model)
    t = timed(lambda out: predict_paths(seg, [folder / "images"], out, progress=False))
    print(f"local (this process, {torch.get_num_threads()} threads): {args.n_images / t:.2f} images/s")
    if args.big:
        t = timed(lambda out: predict_paths(seg, [big], out, progress=False))
        print(f"local: big image {args.big}^2: {args.big ** 2 / 1e6 / t:.2f} Mpx/s ({t:.1f} s)")
    for n in args.workers:
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None) as cluster, Client(cluster):
            address = cluster.scheduler_address
            t = timed(lambda out, a=address: predict_on_cluster(model, [folder / "images"], out, scheduler=a,
                                                                progress=False))
            print(f"{n} worker(s): {args.n_images / t:.2f} images/s ({t:.1f} s for {args.n_images} images)")
            if args.big:
                t = timed(lambda out, a=address: predict_on_cluster(model, [big], out, scheduler=a, progress=False))
                print(f"{n} worker(s): big image {args.big}^2: {args.big ** 2 / 1e6 / t:.2f} Mpx/s ({t:.1f} s)")


if __name__ == "__main__":
    main()
