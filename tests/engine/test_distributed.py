"""Multi-process training for real: ``torchrun`` starts 2 processes with the gloo backend on the CPU."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import pixelgroup
from pixelgroup.data.io import read_image
from pixelgroup.data.synth import write_synthetic
from pixelgroup.engine.checkpoint import read_checkpoint
from pixelgroup.engine.distributed import DistributedSpec, Ranks, spec_from_env

from .ddp_fit import weights_digest

SCRIPT = Path(__file__).with_name("ddp_fit.py")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed not built")


def _torchrun(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp") / "nuclei"
    write_synthetic(root, kind="nuclei", n=4, size=64, seed=0)
    return root


def test_spec_from_the_environment():
    assert spec_from_env({}) is None and spec_from_env({"WORLD_SIZE": "1"}) is None
    assert spec_from_env({"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}) == DistributedSpec(1, 2, 1)
    with pytest.raises(ValueError, match="torchrun"):
        spec_from_env({"WORLD_SIZE": "2"})
    assert Ranks.current() == Ranks(0, 1) and Ranks().main and not Ranks().distributed


def test_two_processes_train_identical_weights_and_resume(data, tmp_path):
    run = tmp_path / "run"
    done = _torchrun(str(SCRIPT), "--data", str(data), "--out", str(run), "--steps", "4")
    assert done.returncode == 0, done.stderr[-3000:]
    digests = {(run / f"rank{r}.sha").read_text() for r in (0, 1)}
    assert len(digests) == 1  # both ranks hold the same weights after the steps
    steps, digest = digests.pop().split()
    assert steps == "4"
    state = read_checkpoint(run / "last.pt")  # rank 0's checkpoint holds those weights too
    net = pixelgroup.build_model(pixelgroup.load_config(run / "config.yaml"), in_channels=1)
    net.load_state_dict(state["model"])
    assert state["step"] == 4 and weights_digest(net) == digest
    again = _torchrun(str(SCRIPT), "--data", str(data), "--out", str(run), "--steps", "6", "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert read_checkpoint(run / "last.pt")["step"] == 6
    assert len({(run / f"rank{r}.sha").read_text() for r in (0, 1)}) == 1
    # the run loads and predicts like a one-process run
    image = read_image(sorted((data / "images").iterdir())[0])
    labels = pixelgroup.load_model(run).segment(image)
    assert labels.shape == image.shape[:2] and labels.dtype == np.int32


def test_cli_under_torchrun_logs_on_rank_0_only(data, tmp_path):
    run = tmp_path / "cli"
    done = _torchrun("-m", "pixelgroup", "train", "--data", str(data), "--out", str(run), "--steps", "2",
                     "--crop-size", "32", "--batch-size", "2", "--no-progress")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("held-out: AP@0.5") == 1 and "at step 2 of 2" in done.stdout
    assert (run / "best.pt").is_file() and (run / "config.yaml").is_file()
    assert len(list((run / "tensorboard").iterdir())) == 1  # one event file: rank 0's


def test_a_failure_on_one_rank_stops_all(data, tmp_path):
    start = time.monotonic()
    done = _torchrun(str(SCRIPT), "--data", str(data), "--out", str(tmp_path / "bad"), "--bad-rank", "1",
                     timeout=120)
    assert done.returncode != 0
    assert "training data not found" in done.stderr and time.monotonic() - start < 120
