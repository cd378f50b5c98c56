"""``pixelgroup demo``: synthetic nuclei -> train -> predict held-out images -> evaluate."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import RunConfig
from ..data.synth import write_synthetic
from .evaluate import evaluate_folders
from .predict import predict_paths
from .segmenter import load_model
from .train import fit

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    out: Path
    results: dict[str, Any]
    train_seconds: float


def run_demo(out: str | Path = "pixelgroup-demo", *, method: str = "spatial", minutes: float = 4.0,
             n_train: int = 48, n_test: int = 8, size: int = 256, seed: int = 0,
             device: str = "cpu", progress: bool = True, cfg: RunConfig | None = None) -> DemoResult:
    """Run the whole path on built-in synthetic data and return the held-out evaluation.

    Layout of ``out``: ``train/`` and ``test/`` (synthetic folders), ``run/`` (the trained model),
    ``pred/`` (label images, score sidecars and ``*_overlay.png``), ``results.json``.
    """
    out = Path(out)
    cfg = cfg or RunConfig(method=method)
    cfg = cfg.replace(**{"train.minutes": minutes, "train.steps": max(cfg.train.steps, 100000)})
    if not (out / "train").is_dir():
        write_synthetic(out / "train", kind="nuclei", n=n_train, size=size, seed=seed)
        write_synthetic(out / "test", kind="nuclei", n=n_test, size=size, seed=seed + 10_000)
    result = fit(cfg, data=out / "train", out=out / "run", device=device, progress=progress,
                 resume=(out / "run" / "last.pt").is_file())
    seg = load_model(out / "run", device=device)
    predict_paths(seg, [out / "test" / "images"], out / "pred", overlays=True, progress=progress,
                  overwrite=True)
    results = evaluate_folders(out / "test", out / "pred", json_path=out / "results.json")
    return DemoResult(out, results, result.seconds)
