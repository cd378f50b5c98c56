from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.config import RunConfig, config_from_dict
from pixelgroup.grouping.base import group
from pixelgroup.losses.discriminative import DiscriminativeForegroundLoss, discriminative_loss
from pixelgroup.losses.foreground import foreground_loss
from pixelgroup.methods.base import METHODS
from pixelgroup.types import ModelOutput


def _batch(seed: int = 0, b: int = 2, side: int = 16):
    g = torch.Generator().manual_seed(seed)
    inst = torch.zeros(b, side, side, dtype=torch.long)
    inst[:, 1:7, 1:8], inst[:, 9:15, 2:9], inst[:, 3:12, 10:15] = 1, 2, 3
    inst[:, 0, :] = -1
    return {"image": torch.randn(b, 1, side, side, generator=g), "instances": inst}


def _fake_output(cfg: RunConfig, batch: dict, seed: int = 0) -> ModelOutput:
    g = torch.Generator().manual_seed(seed)
    b, _, h, w = batch["image"].shape
    heads = METHODS.get("discriminative").head_channels(cfg)
    return ModelOutput(
        **{k: torch.randn(b, c, h, w, generator=g, requires_grad=True) for k, c in heads.items()}
    )


def test_registered_with_heads_and_grouper():
    method = METHODS.get("discriminative")
    assert method.loss == "discriminative_fg"
    assert method.task == "instance" and method.grouper == "meanshift"
    cfg = config_from_dict({"method": "discriminative", "model": {"embedding_dim": 5}})
    assert method.head_channels(cfg) == {"embedding": 5, "foreground": 1}


def test_loss_terms_finite_and_backward_reaches_both_heads():
    cfg = config_from_dict({"method": "discriminative"})
    batch = _batch()
    out = _fake_output(cfg, batch)
    terms = METHODS.get("discriminative").build_loss(cfg)(out, batch)
    assert set(terms) == {"var", "dist", "reg", "fg", "total"}
    assert all(t.dim() == 0 and torch.isfinite(t) for t in terms.values())
    terms["total"].backward()
    for name in ("embedding", "foreground"):
        grad = getattr(out, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


def test_loss_kwargs_from_config_and_total_is_weighted_sum():
    loss_cfg = {"delta_v": 0.3, "delta_d": 2.0, "alpha": 2.0, "beta": 0.5, "gamma": 0.01, "fg_weight": 3.0}
    cfg = config_from_dict({"method": "discriminative", "loss": loss_cfg})
    batch = _batch(seed=1)
    out = _fake_output(cfg, batch, seed=1)
    terms = METHODS.get("discriminative").build_loss(cfg)(out, batch)
    kw = {k: v for k, v in loss_cfg.items() if k != "fg_weight"}
    disc = discriminative_loss(out.embedding, batch["instances"], **kw)
    fg = foreground_loss(out.foreground, batch["instances"])["total"]
    assert terms["fg"].item() == pytest.approx(fg.item())
    assert terms["total"].item() == pytest.approx(disc["total"].item() + 3.0 * fg.item(), rel=1e-6)
    assert terms["total"].item() == pytest.approx(
        2.0 * terms["var"].item() + 0.5 * terms["dist"].item() + 0.01 * terms["reg"].item() + 3.0 * fg.item(),
        rel=1e-6,
    )


def test_grouper_defaults_follow_delta_v():
    method = METHODS.get("discriminative")
    assert method.grouper_defaults(RunConfig(method="discriminative")) == {
        "bandwidth": 1.0,  # 2 * delta_v
        "kernel": "flat",
        "normalize": False,
    }
    cfg = config_from_dict({"method": "discriminative", "loss": {"delta_v": 0.3}})
    assert method.grouper_defaults(cfg)["bandwidth"] == pytest.approx(0.6)


def test_bad_config_and_missing_heads_raise():
    method = METHODS.get("discriminative")
    bad = config_from_dict({"method": "discriminative", "loss": {"delta": 1.0}})
    with pytest.raises(ValueError, match=r"unknown loss key\(s\) \['delta'\]; valid keys: .*delta_d"):
        method.build_loss(bad)
    with pytest.raises(ValueError, match="unknown loss key"):
        method.grouper_defaults(bad)
    with pytest.raises(ValueError, match="embedding_dim must be >= 1"):
        method.head_channels(config_from_dict({"model": {"embedding_dim": 0}}))
    with pytest.raises(ValueError, match="fg_weight must be >= 0"):
        DiscriminativeForegroundLoss(fg_weight=-1.0)
    batch = _batch()
    with pytest.raises(ValueError, match="'embedding' and 'foreground' heads"):
        DiscriminativeForegroundLoss()(ModelOutput(embedding=torch.zeros(2, 4, 16, 16)), batch)


@pytest.mark.parametrize("grouper", ["meanshift", "hdbscan"])
def test_zero_loss_embedding_is_grouped_exactly_with_method_defaults(grouper):
    # Means 2 * delta_d = 3 apart, every pixel within delta_v = 0.5 of its mean -> var = dist = 0;
    # the default grouper settings must then recover the instances exactly.
    import pixelgroup.grouping.hdbscan  # noqa: F401  (registers "hdbscan")
    import pixelgroup.grouping.meanshift_grouper  # noqa: F401  (registers "meanshift")

    cfg = RunConfig(method="discriminative")
    batch = _batch(seed=2, b=1)
    inst = batch["instances"].clamp_min(0)  # (1, H, W)
    g = torch.Generator().manual_seed(2)
    means = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 3.0]])
    noise = torch.nn.functional.normalize(torch.randn(1, 16, 16, 3, generator=g), dim=-1) * 0.4
    emb = (means[inst] + noise).permute(0, 3, 1, 2)  # (1, 3, H, W)
    terms = discriminative_loss(emb, batch["instances"])
    assert terms["var"].item() == 0.0 and terms["dist"].item() == 0.0
    fg = torch.where(inst > 0, 8.0, -8.0)[:, None].float()
    params = METHODS.get("discriminative").grouper_defaults(cfg) if grouper == "meanshift" else {}
    res = group(grouper, ModelOutput(embedding=emb[0], foreground=fg[0]), **params)
    truth = inst[0].numpy()
    pairs = {(int(a), int(b)) for a, b in zip(truth.ravel(), res.labels.ravel())}
    assert res.count == 3
    assert len(pairs) == len(np.unique(truth)) == len(np.unique(res.labels))
