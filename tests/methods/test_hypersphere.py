from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from pixelgroup.config import config_from_dict
from pixelgroup.grouping.base import group
from pixelgroup.losses.hypersphere import HypersphereLoss
from pixelgroup.methods.base import METHODS
from pixelgroup.methods.recipes import grouping_bandwidth
from pixelgroup.types import ModelOutput


def _batch(b: int = 2, side: int = 16) -> dict:
    inst = torch.zeros(b, side, side, dtype=torch.int64)
    inst[:, 1:7, 1:8], inst[:, 9:15, 2:9], inst[:, 3:12, 10:15] = 1, 2, 3
    inst[:, 0, :] = -1
    return {"image": torch.randn(b, 1, side, side), "instances": inst}


def test_registered_with_heads_and_grouper():
    method = METHODS.get("hypersphere")
    assert method.loss == "hypersphere"
    assert method.task == "instance" and method.grouper == "meanshift"
    cfg = config_from_dict({"method": "hypersphere", "model": {"embedding_dim": 6}})
    assert method.head_channels(cfg) == {"embedding": 6, "foreground": 1}


def test_build_loss_from_config_and_backward():
    loss_cfg = {"iterations": 2, "max_pixels": 64, "margin": 0.4}
    cfg = config_from_dict({"method": "hypersphere", "loss": loss_cfg})
    loss = METHODS.get("hypersphere").build_loss(cfg)
    assert isinstance(loss, HypersphereLoss) and loss.kwargs["margin"] == 0.4
    batch = _batch()
    g = torch.Generator().manual_seed(0)
    out = ModelOutput(embedding=torch.randn(2, 8, 16, 16, generator=g, requires_grad=True),
                      foreground=torch.randn(2, 1, 16, 16, generator=g, requires_grad=True))
    terms = loss(out, batch)
    assert set(terms) == {"pull", "push", "fg", "loop0", "loop1", "loop2", "total"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    terms["total"].backward()
    for name in ("embedding", "foreground"):
        grad = getattr(out, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_bad_loss_config():
    cfg = config_from_dict({"method": "hypersphere", "loss": {"delta_v": 0.5}})
    with pytest.raises(ValueError, match="valid keys"):
        METHODS.get("hypersphere").build_loss(cfg)


def test_grouper_defaults_follow_margin():
    # margin 0.5 -> instances >= sqrt(2) apart on the sphere -> h = sqrt(0.5 / 8) = 0.25
    method = METHODS.get("hypersphere")
    defaults = method.grouper_defaults(config_from_dict({"method": "hypersphere"}))
    assert defaults == {"bandwidth": pytest.approx(0.25), "kernel": "vmf", "normalize": True}
    tight = method.grouper_defaults(config_from_dict({"method": "hypersphere", "loss": {"margin": 0.75}}))
    assert tight["bandwidth"] == pytest.approx(math.sqrt(0.25 / 8))
    with pytest.raises(ValueError, match="margin"):
        grouping_bandwidth(1.0)


def test_perfect_embedding_zero_loss_and_grouped_back():
    # Each instance (and the background) on its own basis vector, a confident foreground map:
    # the embedding terms are 0 and the default grouper returns the instances.
    batch = _batch(b=1)
    inst = batch["instances"].clamp_min(0)
    emb = torch.nn.functional.one_hot(inst, 8).permute(0, 3, 1, 2).float()
    fg = torch.where(inst > 0, 20.0, -20.0)[:, None].float()
    cfg = config_from_dict({"method": "hypersphere", "loss": {"max_pixels": None}})
    method = METHODS.get("hypersphere")
    terms = method.build_loss(cfg)(ModelOutput(embedding=emb, foreground=fg), batch)
    assert terms["pull"].item() < 1e-6 and terms["push"].item() < 1e-6
    one = ModelOutput(embedding=emb[0], foreground=fg[0])
    result = group("meanshift", one, **method.grouper_defaults(cfg))
    assert result.count == 3
    assert adjusted_rand_score(inst[0].numpy().ravel(), result.labels.ravel()) == 1.0
    assert np.all(result.scores > 0.99)
