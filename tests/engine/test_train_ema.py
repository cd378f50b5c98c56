"""The moving average of the weights: what is validated and saved, and resumed exactly."""

from __future__ import annotations

import pytest
import torch

from pixelgroup.config import ConfigError, RunConfig
from pixelgroup.engine.checkpoint import read_checkpoint
from pixelgroup.engine.train import ema_model, fit


def test_the_decay_warms_up_then_is_capped():
    net = torch.nn.Linear(1, 1, bias=False)
    ema = ema_model(net, 0.9)
    for value, expected in [(0.0, 0.0), (1.0, 9 / 11), (1.0, 9 / 11 + (1 - 9 / 11) * (1 - 3 / 12))]:
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update_parameters(net)
        assert float(ema.module.weight) == pytest.approx(expected)
    for _ in range(200):
        ema.update_parameters(net)
    assert float(ema.module.weight) == pytest.approx(1.0, abs=1e-6)  # d = 0.9 at most: it converges


def test_run_saves_the_average_and_resumes_both(tmp_path):
    from pixelgroup.cli import main

    data = tmp_path / "synth"
    assert main(["synth", str(data), "--kind", "nuclei", "--n", "3", "--size", "64", "--seed", "1"]) == 0
    cfg = RunConfig().replace(**{"train.steps": 3, "train.val_every": 100, "data.batch_size": 2, "train.ema": 0.999,
                                 "data.crop_size": 64})
    fit(cfg, data=data, out=tmp_path / "run", progress=False)
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    assert last["ema_count"] == 3
    raw = last["train_model"]
    differs = [k for k, v in last["model"].items() if v.is_floating_point() and not torch.equal(v, raw[k])]
    assert differs  # the saved model is the average, not the raw weights
    res = fit(cfg.replace(**{"train.steps": 5}), data=data, out=tmp_path / "run", resume=True, progress=False)
    assert res.steps == 5 and read_checkpoint(tmp_path / "run" / "last.pt")["ema_count"] == 5

    plain = fit(cfg.replace(**{"train.ema": 0.0}), data=data, out=tmp_path / "plain", progress=False)
    assert "train_model" not in read_checkpoint(tmp_path / "plain" / "last.pt") and plain.steps == 3


def test_ema_setting_is_checked():
    with pytest.raises(ConfigError, match="train.ema"):
        RunConfig().replace(**{"train.ema": 1.0})


def test_training_precision():
    from pixelgroup.engine.train import forward_dtype

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    assert forward_dtype("auto", cpu) == (torch.bfloat16 if amx else torch.float32)
    assert forward_dtype("auto", cuda) == torch.float32
    assert forward_dtype("float32", cpu) == torch.float32 and forward_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(ConfigError, match="train.precision"):
        RunConfig().replace(**{"train.precision": "fp8"})
