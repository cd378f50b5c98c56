from __future__ import annotations

import pytest
import yaml

from pixelgroup.config import RunConfig, config_from_dict, load_config, save_config


def test_yaml_round_trip(tmp_path):
    cfg = RunConfig().replace(**{"method": "hypersphere", "train.steps": 7, "loss": {"margin": 0.3}})
    save_config(cfg, tmp_path / "c.yaml", version="x")
    doc = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert doc["version"] == "x"
    doc.pop("version")
    back = config_from_dict(doc)
    assert back == cfg


def test_none_overrides_are_dropped():
    cfg = RunConfig().replace(**{"train.steps": None, "train.lr": 0.1})
    assert cfg.train.steps == RunConfig().train.steps
    assert cfg.train.lr == 0.1


def test_unknown_key_lists_valid_keys(tmp_path):
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['stepz'\] in 'train'; valid keys"):
        config_from_dict({"train": {"stepz": 3}})
    p = tmp_path / "bad.yaml"
    p.write_text("train: {stepz: 3}\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        load_config(p)


def test_retired_setting_loads_from_saved_configs_and_is_refused_otherwise(tmp_path):
    # runs and model files written before data.scale was retired carry "scale: 1.0": they still load
    saved = RunConfig().to_dict()
    saved["data"]["scale"] = 1.0
    assert config_from_dict(saved) == RunConfig()
    p = tmp_path / "old.yaml"
    p.write_text("data: {scale: 1, crop_size: 64}\n")
    assert load_config(p).data.crop_size == 64
    # any other value did nothing before; now it says so, and what to do instead
    p.write_text("data: {scale: 0.5}\n")
    with pytest.raises(ValueError, match=r"old.yaml: config: 'data.scale' is no longer a setting .*--diameter"):
        load_config(p)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must be a YAML mapping"):
        load_config(p)


def test_config_is_frozen():
    cfg = RunConfig()
    with pytest.raises(AttributeError):
        cfg.method = "x"  # type: ignore[misc]
