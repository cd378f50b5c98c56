"""Tests of the ``spatial`` method: heads, loss and grouper wiring, head initialisation, and a small
end-to-end fit (free per-pixel outputs trained by the loss, then grouped)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from pixelgroup.config import RunConfig, config_from_dict
from pixelgroup.grouping.base import GROUPERS, group
from pixelgroup.losses.spatial import SpatialEmbeddingLoss
from pixelgroup.methods.base import METHODS
from pixelgroup.methods.recipes import INIT_RADIUS_PX
from pixelgroup.ops.coords import DEFAULT_COORD_SCALE, sigma_precision
from pixelgroup.types import ModelOutput


def test_registered_with_heads_and_default_grouper():
    method = METHODS.get("spatial")
    assert method.loss == "spatial"
    assert method.task == "instance" and method.grouper in GROUPERS
    assert method.head_channels(RunConfig()) == {"offset": 2, "sigma": 2, "seed": 1}
    cfg = config_from_dict({"model": {"n_sigma": 1, "n_classes": 3}})
    assert method.head_channels(cfg) == {"offset": 2, "sigma": 1, "seed": 3}
    with pytest.raises(ValueError, match="n_sigma must be 1 or 2"):
        method.head_channels(config_from_dict({"model": {"n_sigma": 3}}))


def test_build_loss_and_grouper_defaults_share_coord_scale():
    method = METHODS.get("spatial")
    default = RunConfig()
    loss = method.build_loss(default)
    assert isinstance(loss, SpatialEmbeddingLoss) and loss.coord_scale == DEFAULT_COORD_SCALE
    assert method.grouper_defaults(default) == {"coord_scale": DEFAULT_COORD_SCALE}
    cfg = config_from_dict({"loss": {"coord_scale": 0.01, "center": "centroid", "w_var": 5.0}})
    loss = method.build_loss(cfg)
    assert (loss.coord_scale, loss.center, loss.weights["w_var"]) == (0.01, "centroid", 5.0)
    assert method.grouper_defaults(cfg) == {"coord_scale": 0.01}
    bad = config_from_dict({"loss": {"coord_sacle": 0.01}})
    with pytest.raises(ValueError, match=r"unknown loss key\(s\) \['coord_sacle'\]; valid keys: \[.*'center"):
        method.build_loss(bad)


def test_init_heads_sets_zero_offsets_and_initial_radius():
    heads = {name: nn.Conv2d(8, c, 1) for name, c in {"offset": 2, "sigma": 2, "seed": 1}.items()}
    seed_before = heads["seed"].weight.detach().clone()
    cfg = config_from_dict({"loss": {"coord_scale": 1 / 100}})
    METHODS.get("spatial").init_heads(heads, METHODS.get("spatial").loss_settings(cfg))
    assert not heads["offset"].weight.any() and not heads["offset"].bias.any()
    assert not heads["sigma"].weight.any()
    # membership exp(-p r^2) at the initial radius is 0.5 in the configured units
    p = sigma_precision(heads["sigma"].bias.detach())
    assert torch.exp(-p * (INIT_RADIUS_PX / 100) ** 2) == pytest.approx([0.5, 0.5])
    assert torch.equal(heads["seed"].weight, seed_before)
    spatial = METHODS.get("spatial")
    spatial.init_heads({"sigma": heads["sigma"]}, spatial.loss_settings(RunConfig()))  # default scale, missing heads ok
    p = sigma_precision(heads["sigma"].bias.detach())
    assert math.exp(-p[0].item() * (INIT_RADIUS_PX * DEFAULT_COORD_SCALE) ** 2) == pytest.approx(0.5)


def squares():
    lab = np.zeros((28, 36), np.int64)
    lab[2:10, 3:12] = 1
    lab[4:13, 20:30] = 2
    lab[16:25, 6:14] = 3
    lab[17:26, 22:33] = 4
    return lab


@pytest.mark.parametrize("center", ["medoid", "mean"])
def test_fit_free_outputs_then_group(center):
    # Training per-pixel outputs (no network) with the method's loss, initialised like init_heads,
    # must give outputs that the method's grouper, with the method's defaults, turns back into
    # the labels: the loss and the grouper agree on coordinates, bandwidth and seeds.
    method = METHODS.get("spatial")
    cfg = config_from_dict({"loss": {"center": center}})
    lab = squares()
    h, w = lab.shape
    heads = {name: nn.Conv2d(1, c, 1) for name, c in method.head_channels(cfg).items()}
    method.init_heads(heads, method.loss_settings(cfg))
    params = {
        name: conv.bias.detach()[None, :, None, None].repeat(1, 1, h, w).requires_grad_(True)
        for name, conv in heads.items()
    }
    lrs = {"offset": 4e-3, "sigma": 1e-2, "seed": 0.1}  # about 1 px per step for the offsets
    opt = torch.optim.Adam([{"params": [params[k]], "lr": lrs[k]} for k in params])
    loss_fn = method.build_loss(cfg)
    batch = {"instances": torch.from_numpy(lab)[None]}
    first = None
    for _ in range(60):
        terms = loss_fn(ModelOutput(**params), batch)
        first = first if first is not None else terms["total"].item()
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
    assert terms["total"].item() < 0.1 * first
    out = ModelOutput(**params).select(0)
    res = group(method.grouper, out, **{**method.grouper_defaults(cfg), "min_size": 20})
    assert res.count == 4
    for k in range(1, 5):
        j = np.bincount(res.labels[lab == k]).argmax()
        iou = ((lab == k) & (res.labels == j)).sum() / ((lab == k) | (res.labels == j)).sum()
        assert j > 0 and iou > 0.9
