from __future__ import annotations

import pytest
import torch

from pixelgroup.models.net import PixelEmbeddingNet


def _net(**kw):
    args = dict(in_channels=1, heads={"offset": 2, "sigma": 1, "seed": 1}, width=8, depth=2)
    args.update(kw)
    return PixelEmbeddingNet(**args)


def test_named_outputs_and_shapes():
    net = _net()
    out = net(torch.randn(2, 1, 32, 48))
    assert out.offset.shape == (2, 2, 32, 48)
    assert out.sigma.shape == (2, 1, 32, 48)
    assert out.seed.shape == (2, 1, 32, 48)
    assert out.embedding is None
    one = out.select(1)
    assert one.offset.shape == (2, 32, 48)


def test_every_parameter_gets_a_gradient():
    net = _net(heads={"embedding": 4, "foreground": 1})
    out = net(torch.randn(2, 1, 16, 16))
    (out.embedding.pow(2).mean() + out.foreground.mean()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_bad_inputs_have_clear_messages():
    with pytest.raises(ValueError, match="unknown head"):
        _net(heads={"offsets": 2})
    net = _net()
    with pytest.raises(ValueError, match="multiples of 4"):
        net(torch.randn(1, 1, 30, 32))
    with pytest.raises(ValueError, match=r"expected \(B, 1, H, W\)"):
        net(torch.randn(1, 3, 32, 32))


def test_embedding_coords_adds_the_pixel_grid():
    net = _net(heads={"embedding": 3, "foreground": 1}, embedding_coords=0.5)
    for p in net.heads.parameters():
        torch.nn.init.zeros_(p)
    out = net(torch.randn(1, 1, 8, 12))
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(12.0), indexing="ij")
    assert torch.allclose(out.embedding[0, 0], ys * 0.5)
    assert torch.allclose(out.embedding[0, 1], xs * 0.5)
    assert torch.all(out.embedding[0, 2] == 0)
    with pytest.raises(ValueError, match="embedding_coords needs an embedding head"):
        _net(heads={"embedding": 1}, embedding_coords=0.5)
