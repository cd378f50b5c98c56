"""Speed and accuracy of ``pixelgroup.grouping.mean_shift`` against scikit-learn's ``MeanShift``.

A synthetic 8-D embedding map with known clusters: the image (aspect 1:2) is cut into 100 Voronoi
cells (the instances); every pixel of cell ``k`` has embedding ``c_k + N(0, noise^2 I)`` with the
centres ``c_k`` drawn uniformly in ``[0, 8]^8``, at least ``3 * bandwidth`` apart. Both methods
cluster the flattened ``(H*W, 8)`` embedding at the same bandwidth; the adjusted Rand index
(``sklearn.metrics.adjusted_rand_score``) compares each result with the true cells.

Ours (flat and Gaussian kernels) is timed as the best of ``--repeats`` runs after one warm-up run,
with ``torch.set_num_threads(--threads)``; then scikit-learn (``bin_seeding=True``,
``n_jobs=--threads``) once, and only on sizes up to ``--sklearn-max-mp`` megapixels because it takes
minutes beyond that. Wall-clock times: run it on an otherwise idle machine.

    python benchmarks/mean_shift_speed.py                    # 0.25, 0.5, 1, 2 MP
    python benchmarks/mean_shift_speed.py --sklearn-max-mp 0  # ours only
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import numpy as np
import torch
from scipy.spatial import cKDTree
from sklearn.cluster import MeanShift
from sklearn.metrics import adjusted_rand_score

from pixelgroup.grouping.mean_shift import mean_shift

log = logging.getLogger("mean_shift_speed")

KERNELS = ("flat", "gaussian")
SHAPES = {0.25: (512, 512), 0.5: (512, 1024), 1.0: (1024, 1024), 2.0: (1024, 2048)}


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


def time_ours(x: np.ndarray, *, bandwidth: float, kernel: str, repeats: int) -> tuple[float, np.ndarray]:
    labels = mean_shift(x, bandwidth=bandwidth, kernel=kernel)  # warm-up
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        labels = mean_shift(x, bandwidth=bandwidth, kernel=kernel)
        best = min(best, time.perf_counter() - t0)
    return best, labels


def time_sklearn(x: np.ndarray, *, bandwidth: float, jobs: int) -> tuple[float, np.ndarray]:
    t0 = time.perf_counter()
    model = MeanShift(bandwidth=bandwidth, bin_seeding=True, n_jobs=jobs).fit(x)
    return time.perf_counter() - t0, model.labels_


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=float, nargs="+", default=sorted(SHAPES), help="megapixels (0.25 0.5 1 2)")
    p.add_argument("--bandwidth", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--sklearn-max-mp", type=float, default=0.5, help="largest size also run with sklearn")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(args.threads)
    log.info("torch %s, %d threads; load average %s", torch.__version__, args.threads,
             " ".join(f"{v:.2f}" for v in os.getloadavg()))
    log.info("%-6s %-11s %-8s %-9s %-10s %-9s %-8s %-10s %-8s",
             "MP", "H x W", "kernel", "ours [s]", "ours ARI", "sk [s]", "sk ARI", "speed-up", "clusters")
    for mp in args.sizes:
        h, w = SHAPES[mp]
        x, truth = embedding_map(h, w, min_dist=3.0 * args.bandwidth)
        ours = {k: time_ours(x, bandwidth=args.bandwidth, kernel=k, repeats=args.repeats) for k in KERNELS}
        sk = ("-", "-", None)  # sklearn after ours: its worker threads must not share the CPU with us
        if mp <= args.sklearn_max_mp:
            sk_time, sk_labels = time_sklearn(x, bandwidth=args.bandwidth, jobs=args.threads)
            sk = (f"{sk_time:.2f}", f"{adjusted_rand_score(truth, sk_labels):.4f}", sk_time)
        for kernel, (t, labels) in ours.items():
            ratio = "-" if sk[2] is None else f"{sk[2] / t:.0f}x"
            log.info("%-6s %-11s %-8s %-9.3f %-10.4f %-9s %-8s %-10s %-8d", mp, f"{h} x {w}", kernel, t,
                     adjusted_rand_score(truth, labels), sk[0], sk[1], ratio, int(labels.max()) + 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
