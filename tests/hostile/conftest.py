"""Shared pieces of the hostile-input tests: tiny data, tiny checkpoints, the CLI in and out of process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pixelgroup.cli import main
from pixelgroup.config import RunConfig
from pixelgroup.engine.build import build_model
from pixelgroup.engine.checkpoint import save_checkpoint

SRC = Path(__file__).resolve().parents[2] / "src"
TINY = {"model.width": 4, "model.depth": 2, "data.crop_size": 32, "data.batch_size": 2}


def tiny_cfg(method: str = "spatial", **over) -> RunConfig:
    return RunConfig(method=method).replace(**{**TINY, **over})


def tiny_checkpoint(path: Path, method: str = "spatial", **extra) -> Path:
    cfg = tiny_cfg(method)
    return save_checkpoint(path, cfg=cfg, model=build_model(cfg, in_channels=1), in_channels=1, **extra)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """``pixelgroup ARGS`` in this process: ``(exit code, stdout, stderr)``."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def cli_subprocess(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    return subprocess.run([sys.executable, "-m", "pixelgroup.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=timeout)


def assert_one_line_error(code: int, err: str, *needles: str) -> str:
    """Exit code 2, no traceback, exactly one error line containing every needle; returns that line."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture(scope="session")
def nuclei(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hostile_data") / "nuclei"
    assert main(["synth", str(root), "--kind", "nuclei", "--n", "4", "--size", "48", "--seed", "1"]) == 0
    return root


@pytest.fixture(scope="session")
def tiny_yaml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hostile_cfg") / "tiny.yaml"
    path.write_text("model: {width: 4, depth: 2}\ntrain: {val_every: 1000, num_workers: 0}\n")
    return path


@pytest.fixture
def train_args(nuclei, tiny_yaml, tmp_path):
    """Arguments of a tiny ``pixelgroup train`` into ``tmp_path / 'run'`` (append --steps etc.)."""
    return ["train", "--data", nuclei, "--out", tmp_path / "run", "--config", tiny_yaml, "--batch-size", "2",
            "--crop-size", "32", "--device", "cpu", "--no-progress"]


