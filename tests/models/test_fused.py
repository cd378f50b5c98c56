"""The fused inference copy computes what the trained network computes, and changes nothing of it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelgroup.models import fused
from pixelgroup.models.fused import FusedNet, fold_batchnorm, fuse_for_inference
from pixelgroup.models.net import PixelEmbeddingNet

SPATIAL = {"offset": 2, "sigma": 2, "seed": 1}
EMBEDDING = {"embedding": 4, "foreground": 1, "semantic": 3}


def _trained_net(*, seed=0, **kw) -> PixelEmbeddingNet:
    """A network whose BatchNorm layers hold non-trivial running statistics and affine terms."""
    torch.manual_seed(seed)
    args = dict(in_channels=1, heads=SPATIAL, width=8, depth=2)
    args.update(kw)
    net = PixelEmbeddingNet(**args)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    net.train()
    with torch.no_grad():  # a few batches update the running statistics away from (0, 1)
        for _ in range(3):
            net(torch.randn(2, args["in_channels"], 32, 32) * 2 + 0.5)
    return net.eval()


VARIANTS = [
    dict(),
    dict(depth=3, width=4),
    dict(in_channels=3),
    dict(context="renet"),
    dict(heads=EMBEDDING, embedding_coords=0.25),
]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={v[k]}" for k in v) or "default")
@pytest.mark.parametrize("kernels", ["onednn", "onednn-out-of-place", "conv2d"])
def test_same_outputs_as_the_trained_network(variant, kernels, monkeypatch):
    if kernels != "onednn":  # without the in-place sum kernel, and the path of GPUs / builds without oneDNN
        monkeypatch.setattr(fused, "_POINTWISE_INTO", None)
    if kernels == "conv2d":
        monkeypatch.setattr(fused, "_POINTWISE", None)
    net = _trained_net(**variant)
    x = torch.randn(2, net.in_channels, 24, 40)
    with torch.no_grad():
        want, got = net(x), fuse_for_inference(net)(x)
    got = dict(got.items())
    assert set(got) == {name for name, _ in want.items()}
    for name, t in want.items():
        assert got[name].shape == t.shape and got[name].dtype == torch.float32
        assert got[name][0].is_contiguous()  # each image's (C', H, W): no copy before grouping
        torch.testing.assert_close(got[name], t, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: ",".join(f"{k}={v[k]}" for k in v) or "default")
def test_bfloat16_copy_is_close(variant):
    net = _trained_net(**variant)
    x = torch.randn(1, net.in_channels, 32, 32)
    with torch.no_grad():
        want, got = net(x), dict(fuse_for_inference(net, dtype=torch.bfloat16)(x).items())
    for name, t in want.items():
        assert got[name].dtype == torch.float32
        err = (got[name] - t).abs().max() / t.abs().max()
        assert 0 < err < 0.05, (name, err)  # bfloat16 (8-bit mantissa), not float32: close, not equal


def test_original_is_unchanged_and_shares_no_tensor():
    net = _trained_net(context="renet")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    copy = fuse_for_inference(net)
    with torch.no_grad():
        copy(torch.randn(1, 1, 16, 16))
    after = net.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    original = {t.data_ptr() for t in [*net.parameters(), *net.buffers()]}
    assert original.isdisjoint(t.data_ptr() for t in [*copy.parameters(), *copy.buffers()])
    assert not any(p.requires_grad for p in copy.parameters())
    assert all(p.requires_grad for p in net.parameters())


def test_training_mode_is_unaffected():
    # The copy is made from eval-mode statistics; the trained network still trains with batch statistics.
    net = _trained_net()
    fuse_for_inference(net)
    net.train()
    out = net(torch.randn(2, 1, 16, 16))
    (out.offset.square().mean() + out.sigma.mean() + out.seed.mean()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    bn = net.backbone.stem[1]
    assert bn.training and bn.num_batches_tracked.item() == 4  # 3 batches in _trained_net + this one


def test_fold_batchnorm_by_hand():
    # One output channel: conv weight 2, bias 1; BN mean 3, var 4 - eps, gamma 0.5, beta -1:
    # bn(conv(x)) = (2x + 1 - 3) * 0.5 / 2 - 1 = 0.5x - 1.5, so W' = 0.5 and b' = -1.5.
    conv = nn.Conv2d(1, 1, 1)
    bn = nn.BatchNorm2d(1).eval()
    with torch.no_grad():
        conv.weight.fill_(2.0)
        conv.bias.fill_(1.0)
        bn.running_mean.fill_(3.0)
        bn.running_var.fill_(4.0 - bn.eps)
        bn.weight.fill_(0.5)
        bn.bias.fill_(-1.0)
    w, b = fold_batchnorm(conv, bn)
    assert w.item() == pytest.approx(0.5) and b.item() == pytest.approx(-1.5)
    x = torch.randn(1, 1, 3, 3)
    torch.testing.assert_close(nn.functional.conv2d(x, w, b), bn(conv(x)))


def test_fold_batchnorm_needs_running_statistics():
    with pytest.raises(ValueError, match="no running statistics"):
        fold_batchnorm(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2, track_running_stats=False))


def test_same_input_checks_as_the_trained_network():
    copy = fuse_for_inference(_trained_net())
    with pytest.raises(ValueError, match="multiples of 4"):
        copy(torch.randn(1, 1, 30, 32))
    with pytest.raises(ValueError, match=r"expected \(B, 1, H, W\)"):
        copy(torch.randn(1, 3, 32, 32))


def test_other_networks_are_returned_as_they_are():
    other = nn.Conv2d(1, 1, 1)
    assert fuse_for_inference(other) is other
    double = _trained_net().double()
    assert fuse_for_inference(double) is double
    assert isinstance(fuse_for_inference(_trained_net()), FusedNet)


def test_max_pool_of_sub_grids_equals_max_pool2d():
    x = torch.randn(2, 3, 8, 12).contiguous(memory_format=torch.channels_last)
    assert torch.equal(fused._max_pool2(x), nn.functional.max_pool2d(x, 2))


def test_blocks_of_another_layout_are_refused():
    strided = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, stride=2), nn.BatchNorm2d(2), nn.ReLU(),
                            nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU())
    with pytest.raises(ValueError, match="expected \\(Conv2d 'same', BatchNorm2d, ReLU\\) x 2"):
        fused.FusedBlock(strided)
    with pytest.raises(ValueError, match="expected"):
        fused.FusedBlock(nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU()))
