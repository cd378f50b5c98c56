"""Interruption and crashes during ``pixelgroup train`` (real processes): SIGINT/SIGTERM save a full
checkpoint at the current step and resume continues there; SIGKILL at any moment never leaves a torn
checkpoint and loses at most one checkpoint interval."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time

import pytest

from pixelgroup.engine.checkpoint import read_checkpoint

from .conftest import SRC, assert_one_line_error, cli, tiny_checkpoint

DONE = re.compile(r"^step (\d+) done$")


def _start(args) -> subprocess.Popen:
    """``pixelgroup -v ARGS`` in its own process; ``-v`` logs 'step N done' after every step."""
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "pixelgroup.cli", "-v", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_step(proc: subprocess.Popen, step: int, timeout: float = 60) -> tuple[int, list[str]]:
    """Read stderr until 'step >= step done' (or the process ends): ``(last step done, lines read)``."""
    last, lines, t0 = 0, [], time.monotonic()
    for line in proc.stderr:
        lines.append(line.rstrip("\n"))
        m = DONE.match(lines[-1])
        if m:
            last = int(m.group(1))
            if last >= step:
                break
        assert time.monotonic() - t0 < timeout, "training too slow"
    return last, lines


def _finish(proc: subprocess.Popen, lines: list[str], timeout: float = 60) -> tuple[int, list[str]]:
    rest = proc.communicate(timeout=timeout)[1]
    lines += rest.splitlines()
    return proc.returncode, lines


def _steps_done(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for m in map(DONE.match, lines) if m]


def _stop_with(sig: signal.Signals, args, run, after: int, group: bool = False) -> tuple[int, list[int]]:
    """Train, send ``sig`` (to the whole process group, as a terminal does) once ``after`` steps are done:
    ``(step saved, steps this process did)``."""
    proc = _start(args)
    _, lines = _wait_for_step(proc, after)
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    rc, lines = _finish(proc, lines)
    assert rc == 128 + sig, "\n".join(lines[-20:])
    assert "Traceback" not in "\n".join(lines)
    done = _steps_done(lines)
    state = read_checkpoint(run / "last.pt")
    assert state["step"] == done[-1] >= after and "optimizer" in state
    assert lines[-1].startswith(f"pixelgroup train: stopped by {sig.name} at step {done[-1]}; "
                                f"saved {run / 'last.pt'}; continue with: pixelgroup train ")
    assert lines[-1].endswith("--resume")
    assert not list(run.glob(".*.tmp"))
    return done[-1], done


@pytest.mark.slow
def test_sigint_and_sigterm_save_the_step_and_resume_continues_there(train_args, tmp_path):
    """SIGINT -> 130, resume, SIGTERM -> 143, resume to the end: every run starts at the step saved.

    The SIGTERM goes to the process group of a run with a data-loader worker, which must leave it to the
    main process."""
    run = tmp_path / "run"
    first, _ = _stop_with(signal.SIGINT, [*train_args, "--steps", "100000"], run, 3)
    workers = tmp_path / "workers.yaml"
    workers.write_text("model: {width: 4, depth: 2}\ntrain: {val_every: 1000, num_workers: 1}\n")
    args = [*train_args, "--steps", "100000", "--resume"]
    args[args.index("--config") + 1] = workers
    second, done = _stop_with(signal.SIGTERM, args, run, first + 2, group=True)
    assert done[0] == first + 1
    proc = _start([*train_args, "--steps", str(second + 2), "--resume"])
    rc, lines = _finish(proc, [])
    assert rc == 0, "\n".join(lines[-20:])
    assert _steps_done(lines) == [second + 1, second + 2]
    assert read_checkpoint(run / "last.pt")["step"] == second + 2


@pytest.mark.slow
def test_sigkill_at_random_moments_never_tears_a_checkpoint(train_args, tmp_path):
    """3 kills at seeded random moments, each followed by a resume; the last run finishes."""
    run, every, total = tmp_path / "run", 20, 150
    args = [*train_args, "--steps", str(total)]
    cfg = tmp_path / "every.yaml"
    cfg.write_text(f"model: {{width: 4, depth: 2}}\ntrain: {{val_every: {every}}}\n")
    args[args.index("--config") + 1] = cfg
    rng = random.Random(12)
    reached = 0
    for kill in range(4):
        resume = ["--resume"] if (run / "last.pt").is_file() else []
        proc = _start([*args, *resume])
        if kill == 3:  # the last run goes to the end
            rc, lines = _finish(proc, [], timeout=120)
            assert rc == 0, "\n".join(lines[-20:])
            break
        target = reached + rng.randint(5, 3 * every)
        last, lines = _wait_for_step(proc, min(target, total - 10))
        time.sleep(rng.random() * 0.3)  # somewhere inside a step, a validation or a save
        proc.kill()
        proc.wait(timeout=30)
        last = max([last, *_steps_done(lines + proc.stderr.read().splitlines())])
        for name in ("last.pt", "best.pt"):
            if (run / name).exists():
                read_checkpoint(run / name)  # raises on a torn file
        saved = read_checkpoint(run / "last.pt")["step"] if (run / "last.pt").exists() else 0
        assert last - saved <= every, (kill, last, saved)
        reached = saved
    state = read_checkpoint(run / "last.pt")
    assert state["step"] == total
    steps = [h["step"] for h in state["history"]]
    assert steps == sorted(set(steps)) and steps[-1] == total


def test_resume_without_a_run_says_there_is_nothing(train_args, tmp_path, capsys):
    code, _, err = cli(capsys, *train_args, "--steps", "1", "--resume")
    assert_one_line_error(code, err, "nothing to resume", str(tmp_path / "run"), "drop --resume")
    assert not (tmp_path / "run").exists()


def test_resume_before_the_first_checkpoint_says_so(train_args, tmp_path, capsys):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("method: spatial\n")
    code, _, err = cli(capsys, *train_args, "--steps", "1", "--resume")
    assert_one_line_error(code, err, "nothing to resume", "config.yaml but no last.pt", "without --resume")


def test_resume_takes_method_from_the_run_and_refuses_another(train_args, tmp_path, capsys, caplog):
    run = tmp_path / "run"
    assert cli(capsys, *train_args, "--steps", "2", "--method", "discriminative")[0] == 0
    before = (run / "last.pt").read_bytes()
    code, _, err = cli(capsys, *train_args, "--steps", "3", "--resume", "--method", "spatial")
    assert_one_line_error(code, err, str(run / "last.pt"), "method='discriminative'", "asks for method='spatial'",
                          "drop the differing --method")
    assert (run / "last.pt").read_bytes() == before
    with caplog.at_level("INFO", logger="pixelgroup"):
        code, _, err = cli(capsys, *train_args, "--steps", "3", "--resume")
    assert code == 0, err
    assert "method 'discriminative' and settings from" in caplog.text
    state = read_checkpoint(run / "last.pt")
    assert state["step"] == 3 and state["config"]["method"] == "discriminative"


def test_resume_does_not_read_the_init_checkpoint_again(train_args, tmp_path, capsys):
    """A run started with --init resumes from its own last.pt even when the init file is gone."""
    init = tiny_checkpoint(tmp_path / "init.pt")
    assert cli(capsys, *train_args, "--steps", "2", "--init", init)[0] == 0
    init.unlink()
    code, _, err = cli(capsys, *train_args, "--steps", "3", "--resume")
    assert code == 0, err
    state = read_checkpoint(tmp_path / "run" / "last.pt")
    assert state["step"] == 3 and state["config"]["train"]["init"] == str(init)
