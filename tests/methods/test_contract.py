"""One contract for every registered method (timm's tests/test_models.py in spirit): its loss gives
finite named terms with ``"total"`` and gradients to every parameter, it trains 2 steps through the
engine, predicts, and its checkpoint round-trips to the same predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pixelgroup
from pixelgroup.config import RunConfig
from pixelgroup.data.io import read_image
from pixelgroup.data.synth import write_synthetic
from pixelgroup.data.synth_semantic import write_synthetic_semantic
from pixelgroup.engine.build import build_loss, build_model, get_method
from pixelgroup.methods import METHODS
from pixelgroup.types import Instances

SMALL = {"model.width": 8, "model.depth": 2, "data.crop_size": 32, "data.batch_size": 2, "train.steps": 2,
         "train.val_every": 100, "data.augment": False}


def _config(name: str) -> RunConfig:
    cfg = RunConfig(method=name).replace(**SMALL)
    if METHODS.get(name).task == "semantic":
        cfg = cfg.replace(**{"model.n_classes": 6, "model.embedding_dim": 8})
    return cfg


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("contract")
    write_synthetic(root / "instance", kind="nuclei", n=3, size=64, seed=0)
    write_synthetic_semantic(root / "semantic", n=3, size=64, seed=0)
    return {"instance": root / "instance", "semantic": root / "semantic"}


def _batch(task: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    inst = torch.zeros(2, 32, 32, dtype=torch.long)
    inst[:, 4:14, 4:14], inst[:, 18:30, 16:28], inst[1, 2:8, 20:30] = 1, 2, 3
    classes = (inst > 0).long() * (1 + inst % 5) if task == "semantic" else (inst > 0).long()
    return {"image": torch.rand(2, 3, 32, 32, generator=g), "instances": inst, "classes": classes,
            "segments": inst.clone()}


@pytest.mark.parametrize("name", METHODS.names())
def test_recipe_declares_registered_parts(name):
    method = METHODS.get(name)
    assert method.name == name and method.task in ("instance", "semantic")
    heads = method.head_channels(_config(name))
    assert heads and all(isinstance(c, int) and c > 0 for c in heads.values())
    assert method.select_metric in ("ap_dsb", "miou")


@pytest.mark.parametrize("name", METHODS.names())
def test_loss_gives_finite_named_terms_and_gradients(name):
    cfg = _config(name)
    method = get_method(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, in_channels=3)
    batch = _batch(method.task)
    terms = build_loss(cfg)(model(batch["image"]), batch)
    assert "total" in terms and len(terms) >= 2
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values()), terms
    terms["total"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"parameters without a finite gradient: {missing[:5]}"


@pytest.mark.parametrize("name", METHODS.names())
def test_unknown_loss_key_lists_the_valid_ones(name):
    cfg = _config(name).replace(loss={"no_such_key": 1})
    with pytest.raises(ValueError, match=rf"method '{name}': unknown loss key\(s\) \['no_such_key'\]; valid keys"):
        build_loss(cfg)


@pytest.mark.parametrize("name", METHODS.names())
def test_trains_predicts_and_round_trips(name, datasets, tmp_path):
    cfg = _config(name)
    method = get_method(cfg)
    data = datasets[method.task]
    result = pixelgroup.fit(cfg, data=data, out=tmp_path / "run", device="cpu", progress=False)
    assert result.steps == 2 and (tmp_path / "run" / "best.pt").is_file()
    image = read_image(sorted((data / "images").iterdir())[0])
    seg = pixelgroup.load_model(tmp_path / "run")
    labels = seg.segment(image)
    assert labels.shape == image.shape[:2] and labels.dtype == np.int32 and labels.min() >= 0
    if method.task == "instance":
        inst = seg.segment_instances(image)
        assert isinstance(inst, Instances) and np.array_equal(inst.labels, labels)
    else:
        assert labels.max() < cfg.model.n_classes
    again = pixelgroup.load_model(tmp_path / "run" / "best.pt")
    assert np.array_equal(again.segment(image), labels)
