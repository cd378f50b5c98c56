"""Hostile and damaged model files: loading never runs code; mismatches and damage give one line, exit 2."""

from __future__ import annotations

import builtins
import os
import pickle

import numpy as np
import pytest
import torch

import pixelgroup
from pixelgroup.engine.checkpoint import UnsafeCheckpointError, load_checkpoint, save_checkpoint

from .conftest import assert_one_line_error, cli, cli_subprocess, tiny_cfg, tiny_checkpoint


class _System:
    """Unpickling this calls ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _Exec:
    """Unpickling this calls ``exec(code)``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return builtins.exec, (self.code,)


def _write_hostile(path, sentinel, kind: str):
    """A file that, loaded with weights_only=False, creates ``sentinel``."""
    touch = _System(f"touch {sentinel}")
    if kind == "whole_file":  # the pickled object itself is the payload
        torch.save(touch, path)
    elif kind == "raw_pickle":  # not even a torch zip file: a plain protocol-2 pickle
        with open(path, "wb") as fh:
            pickle.dump(_Exec(f"open({str(sentinel)!r}, 'w').close()"), fh, protocol=2)
    elif kind == "hidden_in_valid":  # a real, complete checkpoint with one poisoned entry deep inside
        tiny_checkpoint(path)
        state = torch.load(path, weights_only=True)
        state["method_state"] = {"kind": "segsort_bank", "params": {"grid": [5, touch]}}
        state.update(optimizer={"state": {}, "param_groups": []}, elapsed=0.0, best=-1.0, best_step=0, history=[],
                     step=1)
        torch.save(state, path)
    return path


KINDS = ["whole_file", "raw_pickle", "hidden_in_valid"]


@pytest.mark.parametrize("kind", KINDS)
def test_load_model_refuses_code(tmp_path, kind):
    sentinel = tmp_path / "SENTINEL"
    path = _write_hostile(tmp_path / "model.pt", sentinel, kind)
    with pytest.raises(UnsafeCheckpointError, match="refused for safety") as info:
        pixelgroup.load_model(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not sentinel.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_predict_refuses_code(tmp_path, capsys, nuclei, kind):
    sentinel = tmp_path / "SENTINEL"
    path = _write_hostile(tmp_path / "model.pt", sentinel, kind)
    code, _, err = cli(capsys, "predict", "--model", path, nuclei / "images", "--out", tmp_path / "pred",
                       "--no-progress", "--device", "cpu")
    assert_one_line_error(code, err, str(path), "refused for safety")
    assert not sentinel.exists() and not (tmp_path / "pred").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_train_init_refuses_code(tmp_path, capsys, train_args, kind):
    sentinel = tmp_path / "SENTINEL"
    path = _write_hostile(tmp_path / "model.pt", sentinel, kind)
    code, _, err = cli(capsys, *train_args, "--steps", "1", "--init", path)
    assert_one_line_error(code, err, str(path), "refused for safety")
    assert not sentinel.exists() and not (tmp_path / "run" / "last.pt").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_train_resume_refuses_code(tmp_path, capsys, train_args, kind):
    sentinel = tmp_path / "SENTINEL"
    run = tmp_path / "run"
    run.mkdir()
    path = _write_hostile(run / "last.pt", sentinel, kind)
    before = path.read_bytes()
    code, _, err = cli(capsys, *train_args, "--steps", "1", "--resume")
    assert_one_line_error(code, err, str(path), "refused for safety")
    assert not sentinel.exists()
    assert path.read_bytes() == before  # the refused file is left as it was, not overwritten


def test_predict_refuses_code_in_a_real_process(tmp_path, nuclei):
    sentinel = tmp_path / "SENTINEL"
    path = _write_hostile(tmp_path / "model.pt", sentinel, "whole_file")
    res = cli_subprocess("predict", "--model", path, nuclei / "images", "--out", tmp_path / "pred")
    assert_one_line_error(res.returncode, res.stderr, str(path), "refused for safety")
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not sentinel.exists()


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated"])
def test_damaged_file_is_named_not_called_unsafe(tmp_path, capsys, nuclei, damage):
    path = tiny_checkpoint(tmp_path / "model.pt")
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "garbage": b"not a checkpoint at all" * 10, "truncated": data[: len(data) // 2]}
                     [damage])
    code, _, err = cli(capsys, "predict", "--model", path, nuclei / "images", "--out", tmp_path / "pred",
                       "--no-progress", "--device", "cpu")
    line = assert_one_line_error(code, err, str(path), "not a readable pixelgroup checkpoint")
    assert "safety" not in line


@pytest.mark.parametrize("method", ["spatial", "segsort"])
def test_old_layout_checkpoints_still_load(tmp_path, method):
    """Files as pixelgroup 0.1.0 wrote them (torch.save of the same plain dict) load unchanged."""
    cfg = tiny_cfg(method)
    from pixelgroup.engine.build import build_model

    model = build_model(cfg, in_channels=1)
    bank = None if method == "spatial" else {
        "kind": "segsort_bank", "prototypes": torch.randn(4, 8), "labels": torch.tensor([0, 1, 1, 2]),
        "image_index": torch.zeros(4, dtype=torch.int64), "bbox": torch.zeros(4, 4, dtype=torch.int64),
        "names": ["a"], "params": {"grid": [5, 5], "iterations": 10, "k": 3, "vote": "majority",
                                   "concentration": 10.0, "coord_weight": 1.0, "max_per_class": 2000, "seed": 0}}
    opt = torch.optim.AdamW(model.parameters())
    out = model(torch.zeros(1, 1, 32, 32))
    sum(t.sum() for t in (out.offset, out.seed, out.embedding) if t is not None).backward()
    opt.step()
    old = {"version": "0.1.0", "config": cfg.to_dict(), "model": model.state_dict(), "in_channels": 1, "step": 3,
           "method_state": bank, "data_root": "/data", "optimizer": opt.state_dict(), "elapsed": 1.5,
           "best": 0.25, "best_step": 2, "history": [{"step": 2, "seconds": 1.0, "miou": 0.25}]}
    torch.save(old, tmp_path / "last.pt")
    loaded_cfg, state = load_checkpoint(tmp_path / "last.pt")
    assert loaded_cfg == cfg and state["step"] == 3 and state["optimizer"]["param_groups"]
    seg = pixelgroup.load_model(tmp_path)
    out = seg.segment(np.random.default_rng(0).random((32, 32)).astype(np.float32))
    assert out.shape == (32, 32)


def test_config_edited_after_training_gives_one_line(tmp_path, capsys, nuclei):
    """A checkpoint whose config says another embedding size than its weights: one line, first tensors named."""
    path = tiny_checkpoint(tmp_path / "model.pt")
    state = torch.load(path, weights_only=True)
    state["config"]["model"]["width"] = 8
    torch.save(state, path)
    code, _, err = cli(capsys, "predict", "--model", path, nuclei / "images", "--out", tmp_path / "pred",
                       "--no-progress", "--device", "cpu")
    line = assert_one_line_error(code, err, str(path), "do not match", "more)", "restore the config")
    assert line.count(" in the file vs ") == 2


def test_saving_refuses_objects_that_would_need_unpickling(tmp_path):
    cfg = tiny_cfg()
    from pixelgroup.engine.build import build_model

    with pytest.raises(TypeError, match=r"state\.method_state\.bank is a ndarray"):
        save_checkpoint(tmp_path / "x.pt", cfg=cfg, model=build_model(cfg, in_channels=1),
                        method_state={"bank": np.zeros(3)})
    assert not (tmp_path / "x.pt").exists()
