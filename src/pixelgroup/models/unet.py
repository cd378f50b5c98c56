"""A compact U-Net backbone: full-resolution features for per-pixel heads."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .base import BACKBONES


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


@BACKBONES.register("unet")
class UNet(nn.Module):
    """U-Net with ``depth`` max-pool levels; channels ``width * 2**level``.

    Args:
        in_channels: image channels C.
        width: channels of the full-resolution level.
        depth: number of 2x down-samplings; input sides must be multiples of ``2**depth``.
        context: optional shape-preserving module applied to the bottleneck features.

    Forward: ``(B, C, H, W) -> (B, width, H, W)``.
    """

    def __init__(self, *, in_channels: int, width: int = 32, depth: int = 3, context: nn.Module | None = None):
        super().__init__()
        if depth < 1:
            raise ValueError(f"UNet: depth must be >= 1, got {depth}")
        chans = [width * 2**i for i in range(depth + 1)]
        self.stem = _block(in_channels, chans[0])
        self.down = nn.ModuleList(_block(chans[i], chans[i + 1]) for i in range(depth))
        self.context = context if context is not None else nn.Identity()
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(chans[i + 1], chans[i], 2, stride=2) for i in reversed(range(depth))
        )
        self.fuse = nn.ModuleList(_block(2 * chans[i], chans[i]) for i in reversed(range(depth)))
        self.out_channels = chans[0]
        self.bottleneck_channels = chans[-1]
        self.multiple = 2**depth

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(F.max_pool2d(skips[-1], 2)))
        y = self.context(skips.pop())
        for up, fuse in zip(self.up, self.fuse):
            y = fuse(torch.cat([up(y), skips.pop()], dim=1))
        return y
