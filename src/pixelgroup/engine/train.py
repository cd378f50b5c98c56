"""Training: ``fit(cfg, data=..., out=...)`` with validation-AP model selection, TensorBoard, resume."""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import RunConfig, save_config
from ..data.transforms import TrainingCrops
from ..fileio import atomic_write_text
from .build import build_loss, build_model, get_method, grouper_spec
from .checkpoint import BEST, LAST, init_weights, save_checkpoint
from .datasets import check_before_training, check_n_classes, open_datasets
from .diameter import dataset_diameter
from .errors import TrainingError
from .segmenter import Segmenter
from .state import fit_state
from .validate import evaluate_segmenter
from .zoo import resolve_model

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """What :func:`fit` returns."""

    run_dir: Path
    steps: int
    seconds: float
    best_metric: float
    best_step: int
    history: list[dict[str, Any]]


def lr_at(progress: float, peak: float, warmup: float = 0.05) -> float:
    """Linear warm-up over the first ``warmup`` of training, then cosine decay to 1% of ``peak``."""
    if progress < warmup:
        return peak * (0.1 + 0.9 * progress / warmup)
    p = min(1.0, (progress - warmup) / (1.0 - warmup))
    return peak * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * p)))


def _check_finite(terms: dict[str, torch.Tensor], step: int, run_dir: Path) -> None:
    if all(torch.isfinite(v).all() for v in terms.values()):
        return
    shown = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items())
    raise TrainingError(
        f"loss became non-finite at step {step} ({shown}); the last good checkpoint is {run_dir / LAST}; "
        "lower the learning rate (train.lr) or check the data for NaN/constant images"
    )


class _Trainer:
    def __init__(self, cfg: RunConfig, train_ds, val_ds, run_dir: Path, device: torch.device) -> None:
        self.cfg, self.train_ds, self.val_ds, self.run_dir, self.device = cfg, train_ds, val_ds, run_dir, device
        self.method = get_method(cfg)
        self.in_channels = int(train_ds[0]["image"].shape[-1])
        self.model = build_model(cfg, in_channels=self.in_channels).to(device)
        if cfg.train.init:
            init_weights(self.model, resolve_model(cfg.train.init))
        if cfg.data.crop_size % self.model.multiple:
            raise TrainingError(
                f"data.crop_size={cfg.data.crop_size} must be a multiple of {self.model.multiple} "
                f"(2**model.depth); use e.g. {cfg.data.crop_size - cfg.data.crop_size % self.model.multiple}"
            )
        self.loss = build_loss(cfg).to(device)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        self.step, self.elapsed, self.best, self.best_step = 0, 0.0, -1.0, 0
        self.history: list[dict[str, Any]] = []
        self.method_state: dict | None = None
        self.data_root: str | None = None
        self.object_diameter = dataset_diameter(train_ds) if self.method.task == "instance" else None

    # -- state -----------------------------------------------------------------------------------
    def save(self, name: str, *, full: bool) -> None:
        extra: dict[str, Any] = {"in_channels": self.in_channels, "step": self.step,
                                 "method_state": self.method_state, "data_root": self.data_root,
                                 "object_diameter": self.object_diameter}
        if full:
            extra.update(optimizer=self.opt.state_dict(), elapsed=self.elapsed, best=self.best,
                         best_step=self.best_step, history=self.history)
        save_checkpoint(self.run_dir / name, cfg=self.cfg, model=self.model, **extra)

    def resume(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.best, self.best_step = float(state["best"]), int(state["best_step"])
        self.history, self.method_state = list(state["history"]), state.get("method_state")
        log.info("resumed %s at step %d", path, self.step)

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> dict[str, Any]:
        self.model.eval()
        if self.method.state is not None:
            self.method_state = fit_state(self.method, self.model, self.train_ds, self.device, cfg=self.cfg)
        seg = Segmenter(self.model, self.cfg, device=self.device, state=self.method_state)
        results = evaluate_segmenter(seg, self.val_ds, n_classes=self.cfg.model.n_classes)
        self.model.train()
        return results


def _budget_progress(tr: _Trainer, t0: float) -> float:
    cfg = tr.cfg.train
    p = tr.step / max(1, cfg.steps)
    if cfg.minutes:
        p = max(p, (tr.elapsed + time.monotonic() - t0) / (60.0 * cfg.minutes))
    return p


def _loader(tr: _Trainer) -> DataLoader:
    cfg = tr.cfg
    crops = TrainingCrops(tr.train_ds, crop_size=cfg.data.crop_size, augment=cfg.data.augment,
                          length=(cfg.train.steps + 1) * cfg.data.batch_size, seed=cfg.train.seed)
    sampler = range(tr.step * cfg.data.batch_size, len(crops))
    return DataLoader(crops, batch_size=cfg.data.batch_size, sampler=sampler, drop_last=True,
                      num_workers=cfg.train.num_workers, persistent_workers=cfg.train.num_workers > 0)


def fit(cfg: RunConfig, *, data: str | Path, out: str | Path, val: str | Path | None = None,
        device: str | torch.device = "cpu", resume: bool = False, progress: bool = True) -> FitResult:
    """Train ``cfg.method`` on ``data`` and write the run folder ``out``.

    ``out`` receives ``config.yaml`` (resolved config + version), ``last.pt`` (everything needed to
    resume), ``best.pt`` (best validation score, selected with the same grouping and metric as
    predict/evaluate), ``history.jsonl`` and TensorBoard scalars. Training stops at
    ``cfg.train.steps`` or after ``cfg.train.minutes``, whichever comes first; the learning-rate
    schedule follows whichever budget is closer to its end.
    """
    from .. import __version__

    torch.manual_seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    run_dir = Path(out)
    device = torch.device(device)
    if (run_dir / LAST).is_file() and not resume:
        raise TrainingError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    method = get_method(cfg)  # an unknown method or grouper name fails here, before any data is read
    grouper_spec(cfg)
    check_before_training(cfg, data)
    train_ds, val_ds = open_datasets(cfg, data, val)
    n_data = getattr(train_ds, "n_classes", None)
    if method.task == "semantic" and n_data and cfg.model.n_classes == 1:
        log.info("model.n_classes set to %d (background + classes) from %s", n_data, data)
        cfg = cfg.replace(**{"model.n_classes": int(n_data)})
    check_n_classes(cfg, train_ds)
    tr = _Trainer(cfg, train_ds, val_ds, run_dir, device)
    tr.data_root = str(Path(data).resolve())
    if resume and (run_dir / LAST).is_file():
        tr.resume(run_dir / LAST)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / "config.yaml", version=__version__)
    _train_loop(tr, progress=progress)
    return FitResult(run_dir, tr.step, tr.elapsed, tr.best, tr.best_step, tr.history)


def _record(tr: _Trainer, writer, results: dict[str, Any]) -> None:
    metric = tr.method.select_metric
    score = float(results.get(metric, float("nan")))
    scalars = {k: float(v) for k, v in results.items() if isinstance(v, (int, float, np.floating, np.integer))}
    for k, v in scalars.items():
        if np.isfinite(v):
            writer.add_scalar(f"val/{k}", v, tr.step)
    tr.history.append({"step": tr.step, "seconds": round(tr.elapsed, 1), **scalars})
    atomic_write_text(tr.run_dir / "history.jsonl", "".join(json.dumps(h) + "\n" for h in tr.history))
    if np.isfinite(score) and score > tr.best:
        tr.best, tr.best_step = score, tr.step
        tr.save(BEST, full=False)
    log.info("step %d: val %s = %.4f (best %.4f at step %d)", tr.step, metric, score, tr.best, tr.best_step)
    tr.save(LAST, full=True)


def _train_loop(tr: _Trainer, *, progress: bool) -> None:
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    cfg = tr.cfg.train
    writer = SummaryWriter(log_dir=str(tr.run_dir / "tensorboard"))
    bar = tqdm(total=cfg.steps, initial=tr.step, disable=not progress, desc=f"train {tr.cfg.method}",
               dynamic_ncols=True)
    t0 = time.monotonic()
    tr.model.train()
    last_val = tr.step
    try:
        for batch in _loader(tr):
            if tr.step >= cfg.steps or _budget_progress(tr, t0) >= 1.0:
                break
            lr = lr_at(_budget_progress(tr, t0), cfg.lr)
            for g in tr.opt.param_groups:
                g["lr"] = lr
            batch = {k: v.to(tr.device, non_blocking=True) for k, v in batch.items() if torch.is_tensor(v)}
            terms = tr.loss(tr.model(batch["image"]), batch)
            _check_finite(terms, tr.step, tr.run_dir)
            tr.opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(tr.model.parameters(), 10.0)
            tr.opt.step()
            tr.step += 1
            for k, v in terms.items():
                writer.add_scalar(f"loss/{k}", float(v.detach()), tr.step)
            writer.add_scalar("lr", lr, tr.step)
            bar.update(1)
            bar.set_postfix({k: f"{float(v.detach()):.3f}" for k, v in terms.items()}, refresh=False)
            if tr.step - last_val >= cfg.val_every:
                tr.elapsed += time.monotonic() - t0
                t0 = time.monotonic()
                _record(tr, writer, tr.validate())
                last_val = tr.step
        tr.elapsed += time.monotonic() - t0
        if tr.step != last_val or not (tr.run_dir / BEST).is_file():
            _record(tr, writer, tr.validate())
    finally:
        bar.close()
        writer.close()
