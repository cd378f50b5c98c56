from __future__ import annotations

import pytest
import torch
from torch import nn

from pixelgroup.models.base import CONTEXTS
from pixelgroup.models.context import ReNet


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("shape", [(2, 16, 8, 8), (1, 16, 5, 11), (3, 16, 1, 7)])
def test_shape_preserved(cell, shape):
    ctx = ReNet(shape[1], cell=cell)
    out = ctx(torch.randn(shape))
    assert out.shape == shape
    assert torch.isfinite(out).all()


def test_registered_and_built_from_channels_only():
    assert CONTEXTS.get("renet") is ReNet
    ctx = CONTEXTS.get("renet")(32)
    assert ctx.hidden == 16
    assert ReNet(1).hidden == 1
    assert ReNet(8, hidden=5)(torch.randn(1, 8, 3, 4)).shape == (1, 8, 3, 4)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gradient_reaches_every_parameter(cell):
    torch.manual_seed(0)
    ctx = ReNet(8, cell=cell)
    x = torch.randn(2, 8, 6, 9, requires_grad=True)
    ctx(x).square().mean().backward()
    for name, p in ctx.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0


def test_context_is_non_local_unlike_a_3x3_conv():
    torch.manual_seed(0)
    h, w = 12, 16
    x = torch.randn(1, 8, h, w)
    y = x.clone()
    y[0, :, 3, 5] += 1.0  # change one input pixel
    ctx, conv = ReNet(8).eval(), nn.Conv2d(8, 8, 3, padding=1).eval()
    with torch.no_grad():
        dctx = (ctx(y) - ctx(x)).abs().sum(1)[0]  # (h, w)
        dconv = (conv(y) - conv(x)).abs().sum(1)[0]
    far = [(3, w - 1), (3, 0), (h - 1, 5), (0, 5), (h - 1, w - 1)]  # same row, same column, corner
    for yy, xx in far:
        assert dctx[yy, xx] > 1e-6, (yy, xx)
        assert dconv[yy, xx] == 0.0, (yy, xx)
    assert (dctx > 1e-6).all()  # after the row then column sweep every pixel sees the change


def test_batched_rows_match_a_per_row_loop():
    # reference: run the row RNN on each row and the column RNN on each column separately
    torch.manual_seed(1)
    ctx = ReNet(4, hidden=3).eval()
    x = torch.randn(2, 4, 3, 5)
    with torch.no_grad():
        rows = torch.stack(
            [torch.stack([ctx.row_rnn(x[b, :, i].T[None])[0][0] for i in range(3)]) for b in range(2)]
        )  # (B, h, w, 2H)
        cols = torch.stack(
            [torch.stack([ctx.col_rnn(rows[b, :, j][None])[0][0] for j in range(5)], 1) for b in range(2)]
        )  # (B, h, w, 2H)
        ref = ctx.fuse(torch.cat([x, cols.permute(0, 3, 1, 2)], 1))
        assert torch.allclose(ctx(x), ref, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "x", "match"),
    [
        ({"channels": 8}, torch.zeros(1, 4, 5, 5), r"expected \(B, 8, h, w\)"),
        ({"channels": 8}, torch.zeros(8, 5, 5), r"expected \(B, 8, h, w\)"),
        ({"channels": 8, "cell": "rnn"}, None, "cell must be one of"),
        ({"channels": 8, "hidden": 0}, None, "hidden must be >= 1"),
        ({"channels": 0}, None, "channels must be >= 1"),
    ],
)
def test_bad_input_raises(kwargs, x, match):
    with pytest.raises(ValueError, match=match):
        ReNet(**kwargs)(x)
