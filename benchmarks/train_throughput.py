"""Training throughput of the default ``spatial`` run, old vs new code, phase by phase, in one process.

The default config (``RunConfig()``: U-Net width 16 depth 3, 128 px crops, batch 8, AdamW at 2e-3,
gradient clipping) on two training sets: the DSB 2018 nuclei image of ``real_nuclei.py`` (512 x 512,
fetched once) and 8 synthetic 256 x 256 nuclei images (``pixelgroup synth``). Every batch goes
through three trainers in turn (same initial weights), so that a busy machine slows all alike:

* ``old``: the spatial loss as it was before the vectorised rewrite (frozen in
  ``tests/losses/spatial_reference.py``), float32 network: today's ``fit``;
* ``new``: the current ``SpatialEmbeddingLoss``, float32 network;
* ``new+bf16``: the same with the network's forward under CPU bfloat16 autocast (the loss upcasts
  its inputs to float32): ``docs_pending/trainspeed_train.patch``.

Phases: ``data`` (crops + flips + collate of one batch through a ``DataLoader`` as in ``fit``, shared
by the trainers), ``forward``, ``loss``, ``backward``, ``optim`` (gradient clipping + AdamW).
Prints the median milliseconds per phase and the steps per minute (the shared data phase included),
then how far the bf16 loss terms and parameter gradients are from float32 on the same weights and
batch. Runs in about a minute on 2 idle cores:

    python benchmarks/train_throughput.py [--threads 2] [--steps 20] [--warmup 2] [--workers 0]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import tifffile
import torch
from real_nuclei import fetch_image
from torch.utils.data import DataLoader

from pixelgroup.config import RunConfig
from pixelgroup.data.synth import write_synthetic
from pixelgroup.data.transforms import TrainingCrops
from pixelgroup.engine.build import build_loss, build_model
from pixelgroup.engine.datasets import open_reader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests/
from tests.losses.spatial_reference import reference_spatial_loss  # noqa: E402

PHASES = ("forward", "loss", "backward", "optim")


class Trainer:
    """One network + loss + AdamW, stepped with per-phase timings."""

    def __init__(self, name: str, model: torch.nn.Module, loss: Callable, *, bf16: bool, cfg: RunConfig) -> None:
        self.name, self.model, self.loss, self.bf16 = name, model, loss, bf16
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        self.times: dict[str, list[float]] = {p: [] for p in PHASES}
        self.first_total: float | None = None

    def autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.bf16 else nullcontext()

    def step(self, batch: dict[str, torch.Tensor], record: bool, clock: Callable[[], float]) -> None:
        t = [clock()]
        with self.autocast():
            out = self.model(batch["image"])
        t.append(clock())
        terms = self.loss(out, batch)
        t.append(clock())
        self.opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        t.append(clock())
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 10.0)
        self.opt.step()
        t.append(clock())
        if self.first_total is None:
            self.first_total = float(terms["total"].detach())
        if record:
            for phase, a, b in zip(PHASES, t, t[1:]):
                self.times[phase].append(b - a)


def make_data(root: Path) -> dict[str, Path]:
    """The two training folders: ``dsb`` (the whole 512 x 512 image) and ``synth`` (8 images)."""
    image, labels = fetch_image()
    dsb = root / "dsb"
    (dsb / "images").mkdir(parents=True)
    (dsb / "masks").mkdir(parents=True)
    tifffile.imwrite(dsb / "images" / "dsb.tif", image)
    tifffile.imwrite(dsb / "masks" / "dsb.tif", labels.astype(np.int32))
    write_synthetic(root / "synth", kind="nuclei", n=8, size=256, seed=0)
    return {"dsb": dsb, "synth": root / "synth"}


def old_loss(cfg: RunConfig) -> Callable:
    settings = build_loss(cfg)  # the same settings (coord_scale, tol, weights) as the module
    return lambda out, batch: reference_spatial_loss(
        out, batch["instances"], coord_scale=settings.coord_scale, center=settings.center,
        foreground_weight=settings.foreground_weight, lovasz_tol=settings.lovasz_tol, **settings.weights)


def bf16_agreement(model: torch.nn.Module, loss: Callable, batch: dict[str, torch.Tensor]) -> str:
    """Loss terms and parameter gradients of bf16 autocast vs float32 on the same weights and batch."""
    results = []
    for bf16 in (False, True):
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            out = model(batch["image"])
        terms = loss(out, batch)
        terms["total"].backward()
        grad = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
        results.append(({k: float(v.detach()) for k, v in terms.items()}, grad))
    (t32, g32), (t16, g16) = results
    model.zero_grad(set_to_none=True)
    rel = {k: abs(t16[k] - t32[k]) / max(abs(t32[k]), 1e-12) for k in t32}
    cos = float(torch.nn.functional.cosine_similarity(g32, g16, dim=0))
    norm = float(g16.norm() / g32.norm())
    terms = ", ".join(f"{k} {t32[k]:.4f} ({100 * r:.2f}%)" for k, r in rel.items())
    return f"fp32 terms (bf16 rel. diff): {terms}; gradient cosine {cos:.4f}, norm ratio {norm:.3f}"


def run(name: str, root: Path, args: argparse.Namespace) -> None:
    cfg = RunConfig()
    torch.manual_seed(0)
    dataset = open_reader(cfg, root)
    steps = args.warmup + args.steps
    crops = TrainingCrops(dataset, crop_size=cfg.data.crop_size, length=steps * cfg.data.batch_size,
                          seed=cfg.train.seed)
    loader = DataLoader(crops, batch_size=cfg.data.batch_size, num_workers=args.workers)
    model = build_model(cfg, in_channels=int(dataset[0]["image"].shape[-1]))
    trainers = [
        Trainer("old", copy.deepcopy(model), old_loss(cfg), bf16=False, cfg=cfg),
        Trainer("new", copy.deepcopy(model), build_loss(cfg), bf16=False, cfg=cfg),
        Trainer("new+bf16", copy.deepcopy(model), build_loss(cfg), bf16=True, cfg=cfg),
    ]
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    data_times, n_instances = [], []
    it = iter(loader)
    for i in range(steps):
        t0 = clock()
        batch = {k: v for k, v in next(it).items() if torch.is_tensor(v)}
        if i >= args.warmup:
            data_times.append(clock() - t0)
        n_instances += [len(torch.unique(lab[lab > 0])) for lab in batch["instances"]]
        for tr in trainers[i % 3 :] + trainers[: i % 3]:  # rotate who goes first
            tr.step(batch, i >= args.warmup, clock)
    data_ms = 1000 * statistics.median(data_times)
    print(f"\n{name}: {len(dataset)} image(s), {np.mean(n_instances):.0f} instances per crop on average, "
          f"{args.steps} timed steps after {args.warmup} warm-up, {args.threads} thread(s), {args.workers} workers, "
          f"{args.clock} clock")
    print(f"{'ms per step (median)':22s}{'data':>8s}" + "".join(f"{p:>10s}" for p in PHASES)
          + f"{'total':>10s}{'steps/min':>11s}{'speed-up':>10s}")
    base = None
    for tr in trainers:
        ms = [1000 * statistics.median(tr.times[p]) for p in PHASES]
        total = data_ms + sum(ms)
        base = base or total
        print(f"{tr.name:22s}{data_ms:8.1f}" + "".join(f"{m:10.1f}" for m in ms)
              + f"{total:10.1f}{60000 / total:11.1f}{base / total:9.2f}x")
    print(f"first-step loss (same weights, same batch): old {trainers[0].first_total:.6f}, "
          f"new {trainers[1].first_total:.6f}")
    print("bf16 vs fp32 after training ('new' weights, last batch): "
          + bf16_agreement(trainers[1].model, trainers[1].loss, batch))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20, help="timed steps per trainer and data set")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="cpu: this process's CPU time, steadier on a busy machine (use with --threads 1 "
                    "--workers 0, as idle threads spinning count too)")
    ap.add_argument("--data", nargs="+", default=["dsb", "synth"], choices=["dsb", "synth"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folders = make_data(Path(tmp))
        for name in args.data:
            run(name, folders[name], args)


if __name__ == "__main__":
    main()
