"""Recurrent context modules for the backbone bottleneck.

``ReNet`` follows Visin et al. (2015), "ReNet: A Recurrent Neural Network Based Alternative to
Convolutional Networks" (arXiv:1505.00393): a bidirectional RNN sweeps every row of the feature map
(left-right and right-left), then a second bidirectional RNN sweeps every column of the result
(top-bottom and bottom-top). After the two sweeps each output pixel has seen the whole map, which a
stack of 3x3 convolutions only achieves after ~max(h, w) / 2 layers. The instance-seg project of
this family (an RNN over the embedding features, "significantly improves the results") is the
motivation for offering it here.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .base import CONTEXTS

Cell = Literal["gru", "lstm"]
_CELLS: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}


@CONTEXTS.register("renet")
class ReNet(nn.Module):
    """Bidirectional row sweep, then bidirectional column sweep, fused with the input by a 1x1 conv.

    Shape-preserving: ``(B, C, h, w) -> (B, C, h, w)`` for any ``h, w >= 1``, so it drops into any
    backbone's bottleneck. All rows (then all columns) of all images are one RNN batch.

    Args:
        channels: ``C``, channels of the input and of the output.
        cell: recurrent cell, ``"gru"`` (default, fewer parameters) or ``"lstm"``.
        hidden: hidden size of each direction; default ``max(1, channels // 2)`` so that the
            bidirectional output has ~``C`` channels.

    Example:
        >>> ctx = ReNet(64)
        >>> ctx(torch.randn(2, 64, 8, 12)).shape
        torch.Size([2, 64, 8, 12])
    """

    def __init__(self, channels: int, *, cell: Cell = "gru", hidden: int | None = None) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"ReNet: channels must be >= 1, got {channels}")
        if cell not in _CELLS:
            raise ValueError(f"ReNet: cell must be one of {sorted(_CELLS)}, got {cell!r}")
        hidden = max(1, channels // 2) if hidden is None else hidden
        if hidden < 1:
            raise ValueError(f"ReNet: hidden must be >= 1 (or None for channels // 2), got {hidden}")
        rnn = _CELLS[cell]
        self.channels = channels
        self.hidden = hidden
        self.row_rnn = rnn(channels, hidden, batch_first=True, bidirectional=True)
        self.col_rnn = rnn(2 * hidden, hidden, batch_first=True, bidirectional=True)
        self.fuse = nn.Conv2d(channels + 2 * hidden, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, h, w)`` features -> ``(B, C, h, w)`` features with whole-map context."""
        if x.dim() != 4 or x.shape[1] != self.channels:
            raise ValueError(f"ReNet: expected (B, {self.channels}, h, w) features, got {tuple(x.shape)}")
        b, c, h, w = x.shape
        rows = x.permute(0, 2, 3, 1).reshape(b * h, w, c)  # (B*h, w, C): every row is a sequence
        rows, _ = self.row_rnn(rows)  # (B*h, w, 2H)
        k = rows.shape[-1]
        cols = rows.reshape(b, h, w, k).transpose(1, 2).reshape(b * w, h, k)  # (B*w, h, 2H)
        cols, _ = self.col_rnn(cols)  # (B*w, h, 2H)
        context = cols.reshape(b, w, h, k).permute(0, 3, 2, 1)  # (B, 2H, h, w)
        return self.fuse(torch.cat([x, context], dim=1))

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}"
