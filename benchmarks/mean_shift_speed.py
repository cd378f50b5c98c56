"""Speed and accuracy of ``pixelgroup.grouping.mean_shift`` against scikit-learn's ``MeanShift``.

A synthetic 8-D embedding map with known clusters: the image is cut into 100 Voronoi cells (the
instances); every pixel of cell ``k`` has embedding ``c_k + N(0, noise^2 I)`` with the centres
``c_k`` drawn uniformly in ``[0, 8]^8``, at least ``3 * bandwidth`` apart. Both methods cluster the
flattened ``(H*W, 8)`` embedding at the same bandwidth; the adjusted Rand index
(``sklearn.metrics.adjusted_rand_score``) compares each result with the true cells.

Sizes (``--sizes``) are points (``4096``, ``4k`` = 4096, ``16k`` ...) or megapixels (a number below
100: ``0.5``, ``2``); the map is the squarest power-of-two frame (``64 x 64`` for 4k, ``1024 x 2048``
for 2 MP). Ours (flat and Gaussian kernels) is timed as the best of at least ``--repeats`` runs
(more on small sizes, up to about half a second per kernel) after one warm-up run, with
``torch.set_num_threads(--threads)``; then scikit-learn (``bin_seeding=True``, ``n_jobs=--threads``)
once (its worker pool started beforehand), on sizes up to ``--sklearn-max-mp`` megapixels (it
takes minutes beyond). With
``--baseline FILE`` (an older copy of ``mean_shift.py``, e.g. from ``git show REV:src/...``) that
version is timed too, interleaved with ours, and the speed-up printed. Wall-clock times: run it on an
otherwise idle machine (with another busy process on the two cores, times scatter 5-10x).

    python benchmarks/mean_shift_speed.py                       # 4k 16k 64k 256k 0.5 1 2 MP
    python benchmarks/mean_shift_speed.py --sizes 4k 16k --sklearn-max-mp 0   # ours only
    git show HEAD~1:src/pixelgroup/grouping/mean_shift.py > /tmp/ms_before.py
    python benchmarks/mean_shift_speed.py --sizes 4k 16k 64k --baseline /tmp/ms_before.py
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import math
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from scipy.spatial import cKDTree
from sklearn.cluster import MeanShift
from sklearn.metrics import adjusted_rand_score

from pixelgroup.grouping.mean_shift import mean_shift

log = logging.getLogger("mean_shift_speed")

KERNELS = ("flat", "gaussian")
DEFAULT_SIZES = ("4k", "16k", "64k", "256k", "0.5", "1", "2")
MIN_SECONDS = 0.5  # our runs per kernel and size go on (past --repeats) until this much time is spent


def parse_size(text: str) -> int:
    """Points of a size: ``4096``, ``4k`` (x 1024), ``1.5M`` (x 1024^2), or megapixels below 100."""
    t = text.strip().lower()
    try:
        if t.endswith("k"):
            n = float(t[:-1]) * 1024
        elif t.endswith(("m", "mp")):
            n = float(t.rstrip("p")[:-1]) * 1024**2
        else:
            value = float(t)
            n = value * 1024**2 if value < 100 else value
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: give points (4096, 4k) or megapixels (0.5, 2)") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} is below one point")
    return int(round(n))


def frame(points: int) -> tuple[int, int]:
    """``(H, W)`` of about ``points`` pixels: ``H`` the power of two at most ``sqrt(points)``."""
    h = 1 << int(math.log2(math.sqrt(points)))
    return h, max(1, round(points / h))


def size_label(points: int) -> str:
    return f"{points / 1024**2:g} MP" if points >= 512 * 1024 else f"{points / 1024:g}k"


def _centres(
    rng: np.random.Generator, k: int, dim: int, low: float, high: float, min_dist: float
) -> np.ndarray:
    """``(k, dim)`` uniform centres, each at least ``min_dist`` from the others (rejection sampling)."""
    out: list[np.ndarray] = []
    while len(out) < k:
        c = rng.uniform(low, high, size=dim)
        if all(np.linalg.norm(c - o) >= min_dist for o in out):
            out.append(c)
    return np.stack(out).astype(np.float32)


def embedding_map(
    height: int, width: int, *, instances: int = 100, dim: int = 8, noise: float = 0.15,
    min_dist: float = 3.0, seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(H*W, dim)`` float32 embeddings and ``(H*W,)`` true instance ids of a Voronoi map."""
    rng = np.random.default_rng(seed)
    sites = rng.uniform(0, [height, width], size=(instances, 2))
    yy, xx = np.mgrid[0:height, 0:width]
    _, truth = cKDTree(sites).query(np.stack([yy.ravel(), xx.ravel()], axis=1), workers=2)
    centres = _centres(rng, instances, dim, 0.0, 8.0, min_dist)
    x = centres[truth] + rng.normal(0.0, noise, size=(height * width, dim)).astype(np.float32)
    return x, truth


def load_baseline(path: str) -> Callable:
    """``mean_shift`` of an older copy of ``grouping/mean_shift.py`` (its relative imports resolve
    against the installed ``pixelgroup.grouping``)."""
    spec = importlib.util.spec_from_file_location("pixelgroup.grouping._mean_shift_baseline", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"--baseline {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.mean_shift


def time_runs(fns: dict[str, Callable], x: np.ndarray, *, bandwidth: float, kernel: str,
              repeats: int) -> dict[str, tuple[float, np.ndarray]]:
    """Best time and labels of each ``mean_shift`` in ``fns``, runs interleaved after a warm-up."""
    labels = {name: fn(x, bandwidth=bandwidth, kernel=kernel) for name, fn in fns.items()}  # warm-up
    best = dict.fromkeys(fns, np.inf)
    start, runs = time.perf_counter(), 0
    while runs < repeats or (time.perf_counter() - start < MIN_SECONDS * len(fns) and runs < 200):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            labels[name] = fn(x, bandwidth=bandwidth, kernel=kernel)
            best[name] = min(best[name], time.perf_counter() - t0)
        runs += 1
    return {name: (best[name], labels[name]) for name in fns}


def warm_up_sklearn(*, bandwidth: float, jobs: int) -> None:
    """Start joblib's worker pool once, outside the timings (seconds on the first call)."""
    x, _ = embedding_map(16, 16, min_dist=3.0 * bandwidth)
    MeanShift(bandwidth=bandwidth, bin_seeding=True, n_jobs=jobs).fit(x)


def time_sklearn(x: np.ndarray, *, bandwidth: float, jobs: int) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    model = MeanShift(bandwidth=bandwidth, bin_seeding=True, n_jobs=jobs).fit(x)
    return time.perf_counter() - t0, model.labels_


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=parse_size, nargs="+", default=[parse_size(t) for t in DEFAULT_SIZES],
                   help="points (4096, 4k, 16k) or megapixels (0.25, 2); default 4k 16k 64k 256k 0.5 1 2")
    p.add_argument("--bandwidth", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5, help="fewest timed runs of ours per kernel and size")
    p.add_argument("--sklearn-max-mp", type=float, default=0.5, help="largest size also run with sklearn")
    p.add_argument("--baseline", metavar="FILE", help="an older mean_shift.py to time against ours")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    fns = {"ours": mean_shift}
    if args.baseline:
        fns["before"] = load_baseline(args.baseline)
    log.info("torch %s, %d threads; load average %s; times in ms, best of >= %d runs (sklearn: one run)",
             torch.__version__, args.threads, " ".join(f"{v:.2f}" for v in os.getloadavg()), args.repeats)
    head = ["size", "H x W", "flat ms", "gauss ms"]
    if args.baseline:
        head += ["before flat", "before gauss", "gain flat", "gain gauss"]
    head += ["sklearn ms", "sk/flat", "sk/gauss", "ARI flat", "ARI gauss", "ARI sk", "clusters"]
    log.info(" ".join(f"{c:>{max(9, len(c))}}" for c in head))
    if any(n <= args.sklearn_max_mp * 1024**2 for n in args.sizes):
        warm_up_sklearn(bandwidth=args.bandwidth, jobs=args.threads)
    for n in args.sizes:
        h, w = frame(n)
        x, truth = embedding_map(h, w, min_dist=3.0 * args.bandwidth)
        runs = {k: time_runs(fns, x, bandwidth=args.bandwidth, kernel=k, repeats=args.repeats) for k in KERNELS}
        ours = {k: runs[k]["ours"] for k in KERNELS}
        sk_time, sk_ari = None, "-"  # sklearn after ours: its worker threads must not share the CPU with us
        if h * w <= args.sklearn_max_mp * 1024**2:
            sk_time, sk_labels = time_sklearn(x, bandwidth=args.bandwidth, jobs=args.threads)
            sk_ari = f"{adjusted_rand_score(truth, sk_labels):.4f}"
        row = [size_label(h * w), f"{h}x{w}"] + [f"{ours[k][0] * 1e3:.2f}" for k in KERNELS]
        if args.baseline:
            row += [f"{runs[k]['before'][0] * 1e3:.2f}" for k in KERNELS]
            row += [f"{runs[k]['before'][0] / ours[k][0]:.2f}x" for k in KERNELS]
        row += ["-" if sk_time is None else f"{sk_time * 1e3:.0f}"]
        row += ["-" if sk_time is None else f"{sk_time / ours[k][0]:.0f}x" for k in KERNELS]
        row += [f"{adjusted_rand_score(truth, ours[k][1]):.4f}" for k in KERNELS] + [sk_ari]
        row += ["/".join(str(int(ours[k][1].max()) + 1) for k in KERNELS)]
        log.info(" ".join(f"{c:>{max(9, len(t))}}" for c, t in zip(row, head)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
