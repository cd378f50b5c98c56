"""Bad settings, from a YAML file or a flag: one line naming the key (and file) and the fix, exit 2."""

from __future__ import annotations

import pytest
import torch
import yaml

from pixelgroup.config import ConfigError, RunConfig, config_from_dict, load_config, save_config

from .conftest import assert_one_line_error, cli

YAML_CASES = [
    ("train.steps", "train: {steps: ten}", "an integer >= 1"),
    ("train.steps", "train: {steps: -5}", "an integer >= 1"),
    ("train.steps", "train: {steps: 20.5}", "an integer"),
    ("train.lr", "train: {lr: '0.01'}", "a finite number > 0"),
    ("train.lr", "train: {lr: .nan}", "a finite number"),
    ("train.lr", "train: {lr: 0}", "> 0"),
    ("train.minutes", "train: {minutes: 0}", "> 0"),
    ("train.minutes", "train: {minutes: -2}", "> 0"),
    ("train.val_every", "train: {val_every: 0}", ">= 1"),
    ("train.num_workers", "train: {num_workers: -1}", ">= 0"),
    ("data.batch_size", "data: {batch_size: 0}", ">= 1"),
    ("data.crop_size", "data: {crop_size: 0}", ">= 1"),
    ("data.crop_size", "data: {crop_size: -64}", ">= 1"),
    ("data.normalize", "data: {normalize: [99.8, 1]}", "0 <= low < high <= 100"),
    ("data.normalize", "data: {normalize: [1, 200]}", "0 <= low < high <= 100"),
    ("data.normalize", "data: {normalize: 5}", "0 <= low < high <= 100"),
    ("data.normalize", "data: {normalize: [1, 2, 3]}", "0 <= low < high <= 100"),
    ("data.gain", "data: {gain: [2, 0.5]}", "0 < low <= high"),
    ("data.gain", "data: {gain: 1}", "0 < low <= high"),
    ("data.shift", "data: {shift: -0.1}", ">= 0"),
    ("data.zoom", "data: {zoom: [1.3, 0.7]}", "0 < low <= high"),
    ("data.zoom", "data: {zoom: [0, 1]}", "0 < low <= high"),
    ("data.val_fraction", "data: {val_fraction: 1.5}", "in [0, 1)"),
    ("data.augment", "data: {augment: sometimes}", "true or false"),
    ("model.width", "model: {width: 0}", ">= 1"),
    ("model.depth", "model: {depth: -1}", ">= 1"),
    ("model.n_sigma", "model: {n_sigma: two}", "an integer"),
    ("model.embedding_dim", "model: {embedding_dim: 8.5}", "an integer"),
    ("train", "train: 5", "a mapping of train settings"),
    ("method", "method: [spatial]", "text"),
]


@pytest.mark.parametrize(("key", "text", "expected"), YAML_CASES, ids=[t for _, t, _ in YAML_CASES])
def test_bad_yaml_value_names_key_file_and_fix(tmp_path, capsys, train_args, key, text, expected):
    path = tmp_path / "run.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == key
    msg = str(info.value)
    assert msg.startswith(f"{key} in {path}: got ") and expected in msg and ", e.g. " in msg, msg
    args = [a for a in train_args]
    args[args.index("--config") + 1] = path
    code, _, err = cli(capsys, *args, "--steps" if key != "train.steps" else "--lr", "1" if key != "train.steps"
                       else "0.01")
    assert_one_line_error(code, err, f"{key} in {path}", expected)
    assert not (tmp_path / "run").exists()


def test_retired_setting_is_one_line_exit_2(tmp_path, capsys, train_args):
    path = tmp_path / "run.yaml"
    path.write_text("data: {scale: 0.5}\n")
    args = [a for a in train_args]
    args[args.index("--config") + 1] = path
    code, _, err = cli(capsys, *args, "--steps", "1")
    assert_one_line_error(code, err, str(path), "'data.scale' is no longer a setting", "--diameter")
    assert not (tmp_path / "run").exists()


FLAG_CASES = [("--steps", "0"), ("--steps", "-3"), ("--lr", "0"), ("--lr", "-0.1"), ("--lr", "nan"),
              ("--batch-size", "0"), ("--crop-size", "-32"), ("--minutes", "0"), ("--minutes", "-1")]


@pytest.mark.parametrize(("flag", "value"), FLAG_CASES)
def test_bad_flag_is_named_as_the_flag(tmp_path, capsys, train_args, flag, value):
    extra = [flag, value] if flag == "--steps" else ["--steps", "1", flag, value]
    code, _, err = cli(capsys, *train_args, *extra)
    line = assert_one_line_error(code, err, f"error: {flag}: got ", f"e.g. {flag} ")
    assert "in " + str(train_args[train_args.index("--config") + 1]) not in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("device", ["gpu0", "cuda0", "cuda:x", "CPU", "tpu"])
def test_bad_device_lists_the_valid_forms(tmp_path, capsys, train_args, device):
    args = [a for a in train_args]
    args[args.index("--device") + 1] = device
    code, _, err = cli(capsys, *args, "--steps", "1")
    assert_one_line_error(code, err, f"--device {device}: not a device", "cpu, cuda, cuda:N", "mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_says_so(tmp_path, capsys, nuclei):
    code, _, err = cli(capsys, "predict", "--model", tmp_path, nuclei / "images", "--out", tmp_path / "p",
                       "--device", "cuda:0")
    assert_one_line_error(code, err, "--device cuda:0: CUDA is not available", "--device cpu")


def test_yaml_12_numbers_and_saved_run_configs_load(tmp_path):
    """``lr: 1e-3`` is a number (PyYAML alone reads it as text); a run's config.yaml (with version) loads."""
    path = tmp_path / "run.yaml"
    path.write_text("train: {lr: 1e-3, steps: 1_000, minutes: null}\ndata: {normalize: [0, 100]}\n")
    cfg = load_config(path)
    assert cfg.train.lr == 0.001 and cfg.train.steps == 1000 and cfg.data.normalize == (0.0, 100.0)
    save_config(cfg, tmp_path / "config.yaml", version="0.1.0")
    assert load_config(tmp_path / "config.yaml") == cfg
    base = RunConfig(method="segsort").replace(**{"model.width": 4})
    path.write_text("train: {steps: 7}\n")
    merged = load_config(path, base=base)
    assert (merged.method, merged.model.width, merged.train.steps, merged.train.lr) == ("segsort", 4, 7, 2e-3)


def test_api_error_names_the_key_without_a_file():
    with pytest.raises(ConfigError, match=r"^config train\.val_every: got 0; expected an integer >= 1, "
                                          r"e.g. train: \{val_every: 200\}$"):
        config_from_dict({"train": {"val_every": 0}})
    assert yaml.safe_load(yaml.safe_dump(RunConfig().to_dict())) == RunConfig().to_dict()
