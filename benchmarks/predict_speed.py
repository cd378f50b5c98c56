"""Prediction speed of one 512 x 512 image end to end, before and after the inference speed-ups.

Input: the DSB 2018 fluorescence image (512 x 512 uint16, ~125 nuclei) that ``real_nuclei.py``
fetches. Model: ``--model`` (default the bundled ``nuclei``). Each phase of
``seg.segment(image)`` is timed on its own (wall clock, median of ``--repeats`` runs after
``--warmup`` runs, with ``torch.set_num_threads(--threads)``), old and new path interleaved in
every repeat so that both see the same machine load:

* ``normalise``: percentile normalisation. Old: two ``torch.kthvalue`` per percentile (as before);
  new: :func:`pixelgroup.data.io.normalize_percentile` (partial sort by ``topk``, same values).
* ``network``: ``seg.outputs`` on the normalised image. Old: ``seg.inference = "plain"`` (the
  trained module); new: ``"fused"`` (BatchNorm folded, fused kernels; :mod:`pixelgroup.models.fused`).
* ``grouping``: seeded grouping of the outputs. Old: the previous implementation (reproduced below:
  float64 activations of every pixel, a stable argsort and one Python step per candidate seed);
  new: ``seg.group`` (:mod:`pixelgroup.grouping.seeded`).
* ``total``: the three in a row (old), ``seg.segment(image)`` (new).

Then it checks that the new labels equal the old ones (or else that every object matches at
IoU >= 0.99), and that the new grouping gives the old labels on the same outputs. ``--bf16`` adds
the ``inference="bf16"`` network (bfloat16; AMX CPUs) with its agreement with the old labels.

    PYTHONPATH=src python benchmarks/predict_speed.py [--threads 2] [--repeats 15] [--bf16] [--clock cpu]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
import torch
from real_nuclei import fetch_image

import pixelgroup
from pixelgroup.engine.segmenter import Segmenter, _channels_last
from pixelgroup.grouping.seeded import _CELL_PX, _check_params, _EmbeddingIndex, _paint, _proposal
from pixelgroup.metrics.matching import match
from pixelgroup.ops.coords import check_coord_scale, sigma_precision, spatial_embedding
from pixelgroup.types import Instances, ModelOutput, as_numpy

PHASES = ("normalise", "network", "grouping", "total")


# -- the old path (the implementations these speed-ups replaced) -----------------------------------
def old_percentile(values: torch.Tensor, q: float) -> torch.Tensor:
    n = values.shape[0]
    pos = q / 100.0 * (n - 1)
    lo = int(math.floor(pos))
    hi = min(lo + 1, n - 1)
    a = torch.kthvalue(values, lo + 1, dim=0).values.double()
    b = torch.kthvalue(values, hi + 1, dim=0).values.double()
    return a + (b - a) * (pos - lo)


def old_prepare(seg: Segmenter, image: np.ndarray) -> np.ndarray:
    image = _channels_last(image, seg.model.in_channels)
    if not np.isfinite(image).all():
        raise ValueError("image has NaN or inf pixels")
    x = image.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError("image has NaN or inf pixels")
    t = torch.from_numpy(np.ascontiguousarray(x))
    flat = t.reshape(-1, t.shape[-1])
    low, high = seg.cfg.data.normalize
    p_low, p_high = old_percentile(flat, low), old_percentile(flat, high)
    return ((t - p_low.float()) * (1.0 / (p_high - p_low + 1e-20)).float()).numpy()


def old_seeded(output: ModelOutput, *, coord_scale: float, fg_threshold: float = 0.5, seed_threshold: float = 0.9,
               min_size: int = 36, min_unclustered: float = 0.5, max_instances: int | None = None) -> Instances:
    check_coord_scale(coord_scale)
    for t in (output.offset, output.sigma, output.seed):
        if not bool(torch.isfinite(t).all()):
            raise ValueError("outputs contain NaN or inf")
    emb = as_numpy(spatial_embedding(output.offset.double(), scale=coord_scale).reshape(2, -1))
    precision = as_numpy(sigma_precision(output.sigma.double()).reshape(output.sigma.shape[0], -1).expand(2, -1))
    prob = as_numpy(torch.sigmoid(output.seed.float()))
    _check_params(fg_threshold, seed_threshold, min_size, min_unclustered, max_instances)
    found = []
    for c in range(prob.shape[0]):
        fg = np.flatnonzero(prob[c].reshape(-1) > fg_threshold)
        if fg.size == 0:
            continue
        s, e, p = prob[c].reshape(-1)[fg], emb[:, fg], precision[:, fg]
        index = _EmbeddingIndex(e, _CELL_PX * coord_scale)
        candidates = np.flatnonzero(s > seed_threshold)
        candidates = candidates[np.argsort(-s[candidates], kind="stable")]
        unclustered, unlabelled = np.ones(fg.size, bool), np.ones(fg.size, bool)
        n = 0
        for j in candidates:
            if not unclustered[j]:
                continue
            if max_instances is not None and n >= max_instances:
                break
            proposal = _proposal(e, p, j, index)
            share, fresh = unclustered[proposal].mean(), proposal[unlabelled[proposal]]
            unclustered[proposal] = False
            if share >= min_unclustered and fresh.size >= min_size:
                unlabelled[fresh] = False
                found.append((float(s[j]), c, fg[fresh]))
                n += 1
    result = _paint(found, tuple(output.seed.shape[1:]), min_size=min_size, max_instances=max_instances)
    if prob.shape[0] > 1:  # seeded_classes: class ids 1..K
        result.classes = result.classes + 1
    return result


# -- timing ----------------------------------------------------------------------------------------
CLOCK = time.perf_counter  # --clock cpu: time.process_time (CPU seconds of this process, all threads)


def timed(fn: Callable[[], object], into: list[float]) -> object:
    t0 = CLOCK()
    out = fn()
    into.append(CLOCK() - t0)
    return out


def run_old(seg: Segmenter, image: np.ndarray, times: dict[str, list[float]]) -> np.ndarray:
    seg.inference = "plain"
    t0 = CLOCK()
    x = timed(lambda: old_prepare(seg, image), times["normalise"])
    out = timed(lambda: seg.outputs(x, normalized=True), times["network"])
    labels = timed(lambda: old_seeded(out, **seg.grouper_params), times["grouping"]).labels
    times["total"].append(CLOCK() - t0)
    return labels


def run_new(seg: Segmenter, image: np.ndarray, times: dict[str, list[float]], inference: str) -> np.ndarray:
    seg.inference = inference
    x = timed(lambda: seg.prepare(image), times["normalise"])
    out = timed(lambda: seg.outputs(x, normalized=True), times["network"])
    timed(lambda: seg.group(out), times["grouping"])
    return timed(lambda: seg.segment(image), times["total"])


def agreement(old: np.ndarray, new: np.ndarray) -> str:
    if np.array_equal(old, new):
        return f"identical labels ({int(old.max())} objects)"
    m99, m50 = match(old, new, thresh=0.99), match(old, new, thresh=0.5)
    return (f"{m99.tp}/{int(old.max())} old objects matched at IoU >= 0.99 ({m50.tp} at 0.5), "
            f"{int(new.max())} new objects, {int(((old > 0) != (new > 0)).sum())} pixels differ in foreground")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="nuclei", help="run folder, checkpoint or model name")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--bf16", action="store_true", help="also time the bfloat16 network")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: CPU time of the process, steadier than wall time on a shared machine with "
                         "--threads 1 (with more threads it also counts the threads' waiting)")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    image = fetch_image()[0]
    seg = pixelgroup.load_model(args.model)
    if seg.grouper not in ("seeded", "seeded_classes"):
        raise SystemExit(f"this benchmark reproduces the old seeded grouping; {args.model} uses {seg.grouper!r}")
    paths = {"old": "plain", "new": "fused"} | ({"bf16": "bf16"} if args.bf16 else {})
    times = {p: {ph: [] for ph in PHASES} for p in paths}
    labels: dict[str, np.ndarray] = {}
    for r in range(args.warmup + args.repeats):
        for name, inference in paths.items():
            sink = times[name] if r >= args.warmup else {ph: [] for ph in PHASES}
            labels[name] = run_old(seg, image, sink) if name == "old" else run_new(seg, image, sink, inference)

    print(f"image {image.shape} {image.dtype}, model {args.model!r}, torch {torch.__version__}, "
          f"{args.threads} thread(s), median of {args.repeats} runs (ms, {args.clock} clock)")
    print(f"{'phase':<10}" + "".join(f"{p:>9}" for p in paths) + "".join(f"{p + '/old':>11}" for p in paths
                                                                         if p != "old"))
    for ph in PHASES:
        med = {p: 1e3 * float(np.median(times[p][ph])) for p in paths}
        print(f"{ph:<10}" + "".join(f"{med[p]:9.1f}" for p in paths)
              + "".join(f"{med[p] / med['old']:11.2f}" for p in paths if p != "old"))
    seg.inference = "plain"
    same_out = seg.outputs(image)
    regrouped = seg.group(same_out).labels
    print("grouping, old vs new on the same outputs:", agreement(old_seeded(same_out, **seg.grouper_params).labels,
                                                                 regrouped))
    for name in paths:
        if name != "old":
            print(f"labels, old vs {name} end to end:", agreement(labels["old"], labels[name]))


if __name__ == "__main__":
    main()
