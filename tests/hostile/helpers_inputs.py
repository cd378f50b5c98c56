"""Shared helpers of the hostile-input tests: a tiny untrained model, CLI runs, file snapshots."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from pixelgroup.cli import main
from pixelgroup.config import RunConfig
from pixelgroup.engine.build import build_model
from pixelgroup.engine.checkpoint import save_checkpoint
from pixelgroup.engine.segmenter import Segmenter


def tiny_config(method: str = "spatial") -> RunConfig:
    return RunConfig(method=method).replace(**{"model.width": 4, "model.depth": 1})


def tiny_segmenter(channels: int = 1, method: str = "spatial") -> Segmenter:
    cfg = tiny_config(method)
    return Segmenter(build_model(cfg, in_channels=channels), cfg, device="cpu")


def tiny_checkpoint(path: Path, method: str = "spatial") -> Path:
    """An untrained 1-channel model saved as a checkpoint (predict runs it; results are arbitrary)."""
    cfg = tiny_config(method)
    return save_checkpoint(path, cfg=cfg, model=build_model(cfg, in_channels=1), in_channels=1)


def noise(shape: tuple[int, ...], seed: int = 0, dtype=np.uint8) -> np.ndarray:
    return np.random.default_rng(seed).integers(10, 240, size=shape).astype(dtype)


def write_tif(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, array)
    return path


def run(capsys, *argv: object) -> tuple[int, str, str]:
    """``pixelgroup ARGV`` in-process: (exit code, stdout, stderr); never a traceback."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    return code, out, err


def one_line_error(err: str, *needles: str) -> None:
    """``err`` is exactly one ``pixelgroup ...: error: ...`` line holding every needle."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and ": error: " in lines[0], err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``folder``: relative path -> (bytes, mtime_ns)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}
