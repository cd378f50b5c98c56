"""Training: ``fit(cfg, data=..., out=...)`` with validation-AP model selection, TensorBoard, resume."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Sampler

from ..config import RunConfig, config_from_dict, save_config
from ..data.transforms import TrainingCrops
from ..fileio import atomic_write_text
from .build import build_loss, build_model, get_method, grouper_spec
from .calibrate import Calibration, calibrate, default_min_size
from .checkpoint import BEST, LAST, init_weights, load_weights, read_checkpoint, save_checkpoint, update_checkpoint
from .datasets import check_before_training, check_n_classes, open_datasets
from .diameter import dataset_areas, diameter_range, equivalent_diameters
from .distributed import Ranks
from .errors import TrainingError
from .segmenter import Segmenter, amx_cpu
from .state import fit_state
from .validate import evaluate_segmenter
from .zoo import resolve_model

log = logging.getLogger(__name__)


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training after a full checkpoint (``path``) was saved at ``step``."""

    def __init__(self, signum: int, step: int, path: Path) -> None:
        self.signum, self.step, self.path = signum, step, path
        self.signame = signal.Signals(signum).name
        super().__init__(f"stopped by {self.signame} at step {step}; saved {path}; continue with --resume")


@contextlib.contextmanager
def _stop_requests():
    """While open, SIGINT and SIGTERM ask training to stop after the current step: the signals received
    are appended to the yielded list. A second signal stops at once (``KeyboardInterrupt``). Outside
    the main thread nothing is installed; the previous handlers are restored on exit."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        log.warning("%s: saving a checkpoint after this step, then stopping (send it again to stop at once)",
                    signal.Signals(signum).name)

    wanted = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in wanted}
    for s in wanted:
        signal.signal(s, handler)
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)


@dataclass
class FitResult:
    """What :func:`fit` returns (``model``: the network as trained to the last step, in memory; on
    every rank of a multi-process run, where the validation figures are rank 0's).

    ``validation``: how the held-out data was chosen; ``held_out``: the validation results of the
    selected step; ``calibration``: the grouping values calibrated on the held-out data after
    training (``Calibration.to_dict()``, ``None`` when nothing was calibrated)."""

    run_dir: Path
    steps: int
    seconds: float
    best_metric: float
    best_step: int
    history: list[dict[str, Any]]
    model: torch.nn.Module | None = None
    validation: str = ""
    held_out: dict[str, float] = dataclasses.field(default_factory=dict)
    calibration: dict[str, Any] | None = None

    def summary(self) -> str:
        """One line: the held-out result of the selected model, as ``pixelgroup train`` ends."""
        h = self.held_out
        if "ap_dsb@0.50" in h:
            cal = Calibration.from_dict(self.calibration) if self.calibration else None
            ap50, ap75 = (cal.ap["ap_dsb@0.50"], cal.ap["ap_dsb@0.75"]) if cal else (h["ap_dsb@0.50"], h["ap_dsb@0.75"])
            grouping = f"calibrated {cal.describe()}" if cal else "default grouping"
            return (f"held-out: AP@0.5 {ap50:.3f}, AP@0.75 {ap75:.3f} on {int(h.get('n_gt', 0))} objects at step "
                    f"{self.best_step} of {self.steps} ({self.seconds:.0f} s); {grouping}; model: {self.run_dir}")
        if "miou" in h:
            return (f"held-out: mIoU {h['miou']:.3f} at step {self.best_step} of {self.steps} ({self.seconds:.0f} s); "
                    f"model: {self.run_dir}")
        return f"trained {self.steps} steps in {self.seconds:.0f} s; model: {self.run_dir}"


def forward_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype of the network's forward while training for ``train.precision`` on ``device``.

    ``auto``: bfloat16 on a CPU with AMX tiles (bf16 matrix units: the U-Net's forward and backward
    about 2x faster, the loss terms within 0.5% and the gradients at cosine > 0.999 of float32,
    ``benchmarks/train_throughput.py``), float32 elsewhere (CPUs without AMX are often slower in bf16).
    """
    if precision == "auto":  # the value itself is checked when the config is built
        return torch.bfloat16 if device.type == "cpu" and amx_cpu() else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


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
        self.ranks = Ranks.current()
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
        # the module trained: DDP averages the gradients over the ranks; self.model stays the plain
        # network (validation, checkpoints)
        self.net: torch.nn.Module = self.model
        if self.ranks.distributed:
            self.net = DistributedDataParallel(self.model, device_ids=[device] if device.type == "cuda" else None)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        self.ema = ema_model(self.model, cfg.train.ema) if cfg.train.ema > 0 else None
        self.step, self.elapsed, self.best, self.best_step = 0, 0.0, -1.0, 0
        self.history: list[dict[str, Any]] = []
        self.method_state: dict | None = None
        self.data_root: str | None = None
        # the training objects' size: for diameter= at prediction and the grouping's minimum size
        areas = dataset_areas(train_ds) if self.method.task == "instance" else np.zeros(0)
        self.object_diameter = float(np.median(equivalent_diameters(areas))) if areas.size else None
        size_range = diameter_range(areas)
        self.object_diameter_range = list(size_range) if size_range else None
        self.median_area = float(np.median(areas)) if areas.size else None

    def autocast(self) -> contextlib.AbstractContextManager:
        """The context of the network's forward: bfloat16 autocast or nothing (``train.precision``)."""
        if forward_dtype(self.cfg.train.precision, self.device) == torch.bfloat16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- state -----------------------------------------------------------------------------------
    @property
    def eval_model(self) -> torch.nn.Module:
        """The network validated and saved: the weights' moving average, or the raw weights."""
        return self.model if self.ema is None else self.ema.module

    def save(self, name: str, *, full: bool) -> None:
        extra: dict[str, Any] = {"in_channels": self.in_channels, "step": self.step,
                                 "method_state": self.method_state, "data_root": self.data_root,
                                 "object_diameter": self.object_diameter,
                                 "object_diameter_range": self.object_diameter_range}
        if full:
            extra.update(optimizer=self.opt.state_dict(), elapsed=self.elapsed, best=self.best,
                         best_step=self.best_step, history=self.history)
            if self.ema is not None:  # "model" holds the average; resuming needs the raw weights too
                extra.update(train_model={k: v.detach().cpu() for k, v in self.model.state_dict().items()},
                             ema_count=int(self.ema.n_averaged))
        save_checkpoint(self.run_dir / name, cfg=self.cfg, model=self.eval_model, **extra)

    def resume(self, path: Path, state: dict | None = None) -> None:
        state = read_checkpoint(path, map_location=self.device) if state is None else state
        if "optimizer" not in state:
            raise TrainingError(f"{path} holds weights only (no optimizer state), so it cannot be resumed; "
                                "start a new run from it with --init instead")
        load_weights(self.model, state.get("train_model", state["model"]), path)
        if self.ema is not None:
            load_weights(self.ema.module, state["model"], path)
            self.ema.n_averaged.fill_(int(state.get("ema_count", self.step)))
        self.opt.load_state_dict(state["optimizer"])
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.best, self.best_step = float(state["best"]), int(state["best_step"])
        self.history, self.method_state = list(state["history"]), state.get("method_state")
        log.info("resumed %s at step %d", path, self.step)

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> dict[str, Any]:
        self.model.eval()
        model = self.eval_model
        if self.method.state is not None:
            self.method_state = fit_state(self.method, model, self.train_ds, self.device, cfg=self.cfg)
        seg = Segmenter(model, self.cfg, device=self.device, state=self.method_state,
                        calibration=self.start_grouping())
        results = evaluate_segmenter(seg, self.val_ds, n_classes=self.cfg.model.n_classes)
        self.model.train()
        return results

    def start_grouping(self) -> dict[str, Any] | None:
        """The grouping values before calibration that follow the training data (``min_size`` from the
        training objects' median area), as a calibration dict; ``None`` when there are none."""
        name = grouper_spec(self.cfg)[0]
        size = default_min_size(self.median_area)
        if size is None or "min_size" in self.cfg.grouping.params or name != self.method.grouper:
            return None
        return {"grouper": name, "params": {"min_size": size}}

    def calibrate(self, writer) -> dict[str, Any] | None:
        """Calibrate the grouping of ``best.pt`` on the validation data; store it in ``best.pt`` and
        ``calibration.json``, log it, and return it (``None``: nothing to calibrate)."""
        if self.method.task != "instance" or not (self.run_dir / BEST).is_file():
            return None
        seg = Segmenter.from_checkpoint(self.run_dir / BEST, device=self.device)
        t0 = time.monotonic()
        cal = calibrate(seg, self.val_ds, user=self.cfg.grouping.params, area=self.median_area)
        if cal is None:
            return None
        result = cal.to_dict()
        update_checkpoint(self.run_dir / BEST, calibration=result)
        atomic_write_text(self.run_dir / "calibration.json", json.dumps(result, indent=2) + "\n")
        for k, v in cal.params.items():
            if isinstance(v, (int, float)):
                writer.add_scalar(f"calibrated/{k}", float(v), self.best_step)
        for k, v in cal.ap.items():
            writer.add_scalar(f"calibrated/{k}", v, self.best_step)
        writer.add_text("calibrated", cal.describe(), self.best_step)
        log.info("calibrated the grouping on the held-out data in %.1f s: %s", time.monotonic() - t0, cal.describe())
        return result


def _budget_progress(tr: _Trainer, t0: float) -> float:
    cfg = tr.cfg.train
    p = tr.step / max(1, cfg.steps)
    if cfg.minutes:
        p = max(p, (tr.elapsed + time.monotonic() - t0) / (60.0 * cfg.minutes))
    return p


def ema_model(model: torch.nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of ``model``'s weights and buffers; after ``n`` updates the
    decay is ``min(decay, (1 + n) / (10 + n))``, so early weights are forgotten in short runs."""

    def average(avg: torch.Tensor, new: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
        d = min(decay, (1.0 + float(n)) / (10.0 + float(n)))
        return avg * d + new * (1.0 - d)

    return AveragedModel(model, avg_fn=average, use_buffers=True)


class _CropStream(Sampler[int]):
    """Crop indices of one rank from ``start`` step on: step ``s`` of rank ``r`` of ``W`` takes crops
    ``(s W + r) B ... (s W + r) B + B - 1`` of the seeded crop stream, so ranks never share a crop,
    one process (``W = 1``) reads the stream in order, and a resumed run continues where it stopped."""

    def __init__(self, start: int, steps: int, batch: int, ranks: Ranks) -> None:
        self.start, self.steps, self.batch, self.ranks = start, steps, batch, ranks

    def __iter__(self):
        for s in range(self.start, self.steps + 1):
            first = (s * self.ranks.world_size + self.ranks.rank) * self.batch
            yield from range(first, first + self.batch)

    def __len__(self) -> int:
        return max(0, self.steps + 1 - self.start) * self.batch


CROP_DIAMETERS = 3.0
"""A training crop narrower than this many median object diameters holds few whole objects: warn."""


def _check_crop_size(crop_size: int, diameter: float | None) -> None:
    """Warn when the training objects are large for the crops (most of each crop's objects cut)."""
    if diameter is None or crop_size >= CROP_DIAMETERS * diameter:
        return
    suggested = 32 * math.ceil(6 * diameter / 32)
    log.warning("the training objects are %.0f px across (median) and the crops %d px, so few objects fit a crop "
                "whole; set data.crop_size to about 6 diameters (e.g. %d; --crop-size %d)",
                diameter, crop_size, suggested, suggested)


def _loader(tr: _Trainer) -> DataLoader:
    cfg = tr.cfg
    crops = TrainingCrops(tr.train_ds, crop_size=cfg.data.crop_size, augment=cfg.data.augment,
                          length=(cfg.train.steps + 1) * cfg.data.batch_size * tr.ranks.world_size,
                          seed=cfg.train.seed, gain=cfg.data.gain, shift=cfg.data.shift,
                          zoom=cfg.data.zoom)
    sampler = _CropStream(tr.step, cfg.train.steps, cfg.data.batch_size, tr.ranks)
    return DataLoader(crops, batch_size=cfg.data.batch_size, sampler=sampler, drop_last=True,
                      num_workers=cfg.train.num_workers, persistent_workers=cfg.train.num_workers > 0,
                      worker_init_fn=_leave_signals_to_main if cfg.train.num_workers > 0 else None)


def _leave_signals_to_main(_: int) -> None:
    """Data-loader workers ignore Ctrl-C and SIGTERM sent to the whole process group: the main process
    saves a checkpoint and stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _nothing_to_resume(run_dir: Path) -> TrainingError:
    if (run_dir / "config.yaml").is_file():
        return TrainingError(f"nothing to resume in {run_dir}: it has config.yaml but no {LAST} (the run stopped "
                             "before its first checkpoint); start it again without --resume")
    return TrainingError(f"nothing to resume: {run_dir} holds no run ({LAST} not found); give the run folder "
                         "with --out, or drop --resume to start a new run there")


def _resume_state(cfg: RunConfig, run_dir: Path, device: torch.device) -> dict:
    """The state of ``run_dir/last.pt``, once its method and model settings are known to match ``cfg``."""
    state = read_checkpoint(run_dir / LAST, map_location=device)
    try:
        saved = config_from_dict(state["config"])
    except (TypeError, ValueError) as err:
        raise TrainingError(f"{run_dir / LAST}: the config saved in it is invalid ({err})") from None
    ours, theirs = cfg.to_dict(), saved.to_dict()
    keys = ["method"] + [f"model.{k}" for k in theirs["model"]]
    differ = [k for k in keys if _get(ours, k) != _get(theirs, k)]
    if differ:
        asks = ", ".join(f"{k}={_get(ours, k)!r}" for k in differ)
        was = ", ".join(f"{k}={_get(theirs, k)!r}" for k in differ)
        raise TrainingError(
            f"{run_dir / LAST} was trained with {was}; this run asks for {asks}. A resumed run keeps its method "
            f"and model settings: drop the differing --method/--config values, or start a new run in another "
            f"--out (with --init {run_dir} to start from these weights)")
    return state


def _without_init(cfg: RunConfig) -> RunConfig:
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, init=None))


def _get(tree: dict, key: str) -> Any:
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


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
    if resume and not (run_dir / LAST).is_file():
        raise _nothing_to_resume(run_dir)
    method = get_method(cfg)  # an unknown method or grouper name fails here, before any data is read
    grouper_spec(cfg)
    check_before_training(cfg, data)
    datasets = open_datasets(cfg, data, val)
    train_ds, val_ds = datasets.train, datasets.val
    log.info("%s", datasets.how)
    n_data = getattr(train_ds, "n_classes", None)
    if method.task == "semantic" and n_data and cfg.model.n_classes == 1:
        log.info("model.n_classes set to %d (background + classes) from %s", n_data, data)
        cfg = cfg.replace(**{"model.n_classes": int(n_data)})
    check_n_classes(cfg, train_ds)
    saved = _resume_state(cfg, run_dir, device) if resume else None
    # resuming: the weights come from last.pt, so train.init is not read again (it may be gone)
    tr = _Trainer(cfg if saved is None else _without_init(cfg), train_ds, val_ds, run_dir, device)
    tr.cfg = cfg
    tr.data_root = str(Path(data).resolve())
    if tr.ranks.main:
        _check_crop_size(cfg.data.crop_size, tr.object_diameter)
    if saved is not None:
        tr.resume(run_dir / LAST, saved)
    run_dir.mkdir(parents=True, exist_ok=True)
    if tr.ranks.main:
        save_config(cfg, run_dir / "config.yaml", version=__version__)
    if tr.ranks.distributed:
        log.info("rank %d of %d: %d crops of %d px per step on this process (%d in all)", tr.ranks.rank,
                 tr.ranks.world_size, cfg.data.batch_size, cfg.data.crop_size,
                 cfg.data.batch_size * tr.ranks.world_size)
    with _stop_requests() as stop:
        calibration = _train_loop(tr, progress=progress, stop=stop)
    held_out = next((h for h in tr.history if h.get("step") == tr.best_step), {})
    return FitResult(run_dir, tr.step, tr.elapsed, tr.best, tr.best_step, tr.history, tr.eval_model,
                     validation=datasets.how, held_out={k: v for k, v in held_out.items() if k != "step"},
                     calibration=calibration)


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
    if "ap_dsb@0.50" in scalars:
        log.info("step %d: val AP@0.5 %.3f, AP@0.75 %.3f, mean AP %.3f on %d objects (best mean AP %.3f at step %d)",
                 tr.step, scalars["ap_dsb@0.50"], scalars["ap_dsb@0.75"], score, int(scalars.get("n_gt", 0)),
                 tr.best, tr.best_step)
    else:
        log.info("step %d: val %s = %.4f (best %.4f at step %d)", tr.step, metric, score, tr.best, tr.best_step)
    tr.save(LAST, full=True)


def _train_loop(tr: _Trainer, *, progress: bool, stop: list[int] | None = None) -> dict[str, Any] | None:
    """Train to the budget, then calibrate the grouping of the best model (returned, see
    :meth:`_Trainer.calibrate`); when ``stop`` holds a signal number, save ``last.pt`` after the
    current step and raise :class:`TrainingInterrupted`."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm.auto import tqdm

    cfg, main = tr.cfg.train, tr.ranks.main
    writer = SummaryWriter(log_dir=str(tr.run_dir / "tensorboard")) if main else _NoWriter()
    bar = _Progress(tqdm, tr, enabled=progress and main)
    t0 = time.monotonic()
    tr.model.train()
    last_val = tr.step
    try:
        for batch in _loader(tr):
            # the ranks agree on the schedule and on stopping, so their weights stay identical
            budget, stopping = tr.ranks.agree_max([_budget_progress(tr, t0), float(bool(stop))], tr.device)
            if stopping:
                tr.elapsed += time.monotonic() - t0
                tr.ranks.sync_buffers(tr.model)
                if tr.ema is not None:
                    tr.ranks.sync_buffers(tr.ema)
                if main:
                    tr.save(LAST, full=True)
                tr.ranks.barrier()
                raise TrainingInterrupted(stop[0] if stop else signal.SIGTERM, tr.step, tr.run_dir / LAST)
            if tr.step >= cfg.steps or budget >= 1.0:
                break
            lr = lr_at(budget, cfg.lr)
            for g in tr.opt.param_groups:
                g["lr"] = lr
            batch = {k: v.to(tr.device, non_blocking=True) for k, v in batch.items() if torch.is_tensor(v)}
            with tr.autocast():
                output = tr.net(batch["image"])
            # every loss computes in float32 (exp, norms, sums over thousands of pixels)
            terms = tr.loss(output.apply(lambda t: t.float()), batch)
            _check_finite(terms, tr.step, tr.run_dir)
            tr.opt.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(tr.model.parameters(), 10.0)
            tr.opt.step()
            if tr.ema is not None:
                tr.ema.update_parameters(tr.model)
            tr.step += 1
            for k, v in terms.items():
                writer.add_scalar(f"loss/{k}", float(v.detach()), tr.step)
            writer.add_scalar("lr", lr, tr.step)
            bar.update(tr, t0, {k: f"{float(v.detach()):.3f}" for k, v in terms.items()})
            log.debug("step %d done", tr.step)
            if tr.step - last_val >= cfg.val_every:
                tr.elapsed += time.monotonic() - t0
                _validate_on_main(tr, writer)
                t0 = time.monotonic()
                last_val = tr.step
        tr.elapsed += time.monotonic() - t0
        if tr.step != last_val or not (tr.run_dir / BEST).is_file():
            _validate_on_main(tr, writer)
        bar.close()
        calibration = tr.calibrate(writer) if main else None
        tr.ranks.barrier()
        return calibration
    finally:
        bar.close()
        writer.close()


class _Progress:
    """The training progress bar: steps out of ``train.steps``, or, for a run bounded by
    ``train.minutes``, the share of the budget used (time or steps, whichever is further), with the
    step count and the loss terms after it."""

    def __init__(self, tqdm, tr: _Trainer, *, enabled: bool) -> None:
        cfg = tr.cfg.train
        self.by_budget = cfg.minutes is not None
        desc = f"train {tr.cfg.method}"
        if self.by_budget:
            fmt = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"
            desc += f" ({cfg.minutes:g} min or {cfg.steps} steps)"
            self.bar = tqdm(total=1000, disable=not enabled, desc=desc, bar_format=fmt, dynamic_ncols=True)
        else:
            self.bar = tqdm(total=cfg.steps, initial=tr.step, disable=not enabled, desc=desc, dynamic_ncols=True)

    def update(self, tr: _Trainer, t0: float, terms: dict[str, str]) -> None:
        if self.by_budget:
            done = min(1000, int(1000 * _budget_progress(tr, t0)))
            self.bar.update(max(0, done - self.bar.n))
            self.bar.set_postfix({"step": tr.step, **terms}, refresh=False)
        else:
            self.bar.update(1)
            self.bar.set_postfix(terms, refresh=False)

    def close(self) -> None:
        self.bar.close()


def _validate_on_main(tr: _Trainer, writer) -> None:
    """Rank 0 validates, selects and saves; the other ranks wait for it (and take rank 0's
    normalisation statistics, so every rank holds the model that was validated)."""
    tr.ranks.sync_buffers(tr.model)
    if tr.ema is not None:
        tr.ranks.sync_buffers(tr.ema)
    if tr.ranks.main:
        _record(tr, writer, tr.validate())
    tr.ranks.barrier()


class _NoWriter:
    """TensorBoard on ranks other than 0: writes nothing."""

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        pass

    def close(self) -> None:
        pass
