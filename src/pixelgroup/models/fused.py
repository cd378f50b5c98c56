"""Inference copies of trained networks: BatchNorm folded into convolutions, fused kernels.

:func:`fuse_for_inference` turns a :class:`~pixelgroup.models.net.PixelEmbeddingNet` with a U-Net
backbone into a :class:`FusedNet` that computes the same outputs (to float32 rounding) faster:

* every ``conv -> BatchNorm -> ReLU`` becomes one convolution with the BatchNorm folded into its
  weight and bias (running statistics, i.e. eval mode) and the ReLU fused into the kernel (oneDNN's
  ``mkldnn::_convolution_pointwise`` on CPU, where PyTorch has it; plain ``conv2d`` + ``relu_``
  elsewhere);
* the decoder's ``cat([up, skip]) -> conv`` is two convolutions, the second added in place into
  the first's result, so the largest tensor of the network (twice the full-resolution width) is
  never built;
* max-pooling is the maximum of the four strided sub-grids (the same values, faster).

``dtype=torch.bfloat16`` computes the backbone in bfloat16 (the heads and a context module in
float32): ~3x faster on CPUs with AMX, outputs within ~1e-2 of float32.
* the heads (1x1 convolutions on the same features) are one matrix product, whose outputs are
  contiguous ``(B, C, H, W)``.

The copy shares nothing with the original's parameters: training, ``state_dict`` and checkpoints
are those of the original network, which stays as it was. A copy made before the weights change
is stale; :class:`pixelgroup.engine.segmenter.Segmenter` rebuilds it when they do.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..ops.coords import pixel_grid
from ..types import ModelOutput
from .net import PixelEmbeddingNet, check_image
from .unet import UNet

_POINTWISE = getattr(torch.ops.mkldnn, "_convolution_pointwise", None) if torch.backends.mkldnn.is_available() else None
"""oneDNN convolution with a fused element-wise epilogue (the kernel ``torch.compile`` uses on CPU)."""
_POINTWISE_INTO = getattr(torch.ops.mkldnn, "_convolution_pointwise_", None) if _POINTWISE is not None else None
"""The same, adding the convolution into an existing tensor (one full-size allocation less)."""


def fold_batchnorm(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[Tensor, Tensor]:
    """Weight ``(O, I, k, k)`` and bias ``(O,)`` of one convolution equal to ``bn(conv(x))`` in eval mode.

    ``bn(z) = (z - mean) * g / sqrt(var + eps) + beta``; with ``s = g / sqrt(var + eps)``:
    ``W' = W * s`` (per output channel) and ``b' = (b - mean) * s + beta`` (``b = 0`` without bias).
    Computed in float64, returned in the convolution's dtype.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm: the BatchNorm has no running statistics (track_running_stats=False)")
    with torch.no_grad():
        var, mean = bn.running_var.double(), bn.running_mean.double()
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(var)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(var)
        scale = gamma / torch.sqrt(var + bn.eps)  # (O,)
        weight = conv.weight.double() * scale.reshape(-1, 1, 1, 1)
        bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(var)
        bias = (bias - mean) * scale + beta
    dtype = conv.weight.dtype
    return weight.to(dtype), bias.to(dtype)


def _conv(x: Tensor, weight: Tensor, bias: Tensor | None, *, relu: bool, add: Tensor | None = None) -> Tensor:
    """``relu?(conv2d(x, weight, bias, padding=k // 2) + add?)`` for ``x (B, I, H, W)``: ``(B, O, H, W)``.

    ``add`` (same shape as the result) is overwritten: the result may be written into it."""
    pad = weight.shape[-1] // 2
    if _POINTWISE is not None and x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16):
        args = ([pad, pad], [1, 1], [1, 1], 1)
        if add is None:
            return _POINTWISE(x, weight, bias, *args, "relu" if relu else "none", [], "")
        if _POINTWISE_INTO is not None:
            y = _POINTWISE_INTO.binary(add, x, weight, bias, *args, "add", 1.0, None, [], None)
            return y.relu_() if relu else y
        return _POINTWISE.binary(x, add, weight, bias, *args, "add", None, "relu" if relu else "none", [], "")
    y = add.add_(F.conv2d(x, weight, bias, padding=pad)) if add is not None else F.conv2d(x, weight, bias, padding=pad)
    return y.relu_() if relu else y


class FusedBlock(nn.Module):
    """Two ``conv3x3 -> BN -> ReLU`` of :func:`pixelgroup.models.unet._block` as two fused convolutions.

    With ``split`` the first convolution takes its input as two tensors ``(a, b)`` instead of
    ``cat([a, b], 1)``: its weight is split along the input channels at ``split`` and the two
    partial convolutions are summed in the second kernel.
    """

    def __init__(self, block: nn.Sequential, *, split: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        _check_block(block)
        w1, b1 = (t.to(dtype) for t in fold_batchnorm(block[0], block[1]))
        w2, b2 = (t.to(dtype) for t in fold_batchnorm(block[3], block[4]))
        self.split = split
        if split is None:
            self.register_buffer("w1", _pack(w1))
        else:
            self.register_buffer("w1a", _pack(w1[:, :split]))
            self.register_buffer("w1b", _pack(w1[:, split:]))
        self.register_buffer("b1", b1)
        self.register_buffer("w2", _pack(w2))
        self.register_buffer("b2", b2)

    def forward(self, x: Tensor, skip: Tensor | None = None) -> Tensor:
        if self.split is None:
            y = _conv(x, self.w1, self.b1, relu=True)
        else:  # conv(cat([x, skip])) = conv_a(x) + conv_b(skip); the bias once
            y = _conv(x, self.w1a, None, relu=True, add=_conv(skip, self.w1b, self.b1, relu=False))
        return _conv(y, self.w2, self.b2, relu=True)


def _check_block(block: nn.Sequential) -> None:
    """Raise ``ValueError`` unless ``block`` is ``(Conv2d, BatchNorm2d, ReLU) x 2`` with the convolutions
    :func:`_conv` computes: square odd kernel, stride 1, zero 'same' padding, no dilation, no groups."""
    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU) * 2
    layout = len(block) == len(kinds) and all(type(m) is k for m, k in zip(block, kinds))
    if not (layout and _same_conv(block[0]) and _same_conv(block[3])):
        raise ValueError(f"FusedBlock: expected (Conv2d 'same', BatchNorm2d, ReLU) x 2, got {block}")


def _same_conv(conv: nn.Conv2d) -> bool:
    k = conv.kernel_size[0]
    return (conv.kernel_size == (k, k) and k % 2 == 1 and conv.stride == (1, 1) and conv.padding == (k // 2, k // 2)
            and conv.dilation == (1, 1) and conv.groups == 1 and conv.padding_mode == "zeros")


def _pack(weight: Tensor) -> Tensor:
    """A conv weight in the memory format of the activations (channels-last), made once."""
    return weight.contiguous(memory_format=torch.channels_last)


def _max_pool2(x: Tensor) -> Tensor:
    """``F.max_pool2d(x, 2)`` for even H, W ``(B, C, H, W) -> (B, C, H/2, W/2)``, as the maximum of
    the four strided sub-grids: the same values, ~2x faster on channels-last CPU tensors."""
    return torch.maximum(torch.maximum(x[..., ::2, ::2], x[..., ::2, 1::2]),
                         torch.maximum(x[..., 1::2, ::2], x[..., 1::2, 1::2]))


class FusedUNet(nn.Module):
    """Inference copy of a :class:`~pixelgroup.models.unet.UNet` (same forward, same outputs).

    The context module (if any) and the up-sampling transposed convolutions (no BatchNorm to fold)
    are copied as they are, in eval mode.
    """

    def __init__(self, unet: UNet, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.dtype = dtype
        self.stem = FusedBlock(unet.stem, dtype=dtype)
        self.down = nn.ModuleList(FusedBlock(block, dtype=dtype) for block in unet.down)
        self.context = copy.deepcopy(unet.context).eval().requires_grad_(False)
        self.up = copy.deepcopy(unet.up).eval().requires_grad_(False).to(dtype)
        self.fuse = nn.ModuleList(FusedBlock(block, split=up.out_channels, dtype=dtype)
                                  for up, block in zip(unet.up, unet.fuse))
        self.out_channels = unet.out_channels
        self.multiple = unet.multiple

    def forward(self, x: Tensor) -> Tensor:
        skips = [self.stem(x.to(self.dtype))]
        for block in self.down:
            skips.append(block(_max_pool2(skips[-1])))
        bottom = skips.pop()
        y = self.context(bottom.float()).to(self.dtype) if self.dtype != torch.float32 else self.context(bottom)
        for up, fuse in zip(self.up, self.fuse):
            y = fuse(up(y), skips.pop())
        return y


class FusedNet(nn.Module):
    """Inference copy of a :class:`~pixelgroup.models.net.PixelEmbeddingNet` with a U-Net backbone.

    Forward: ``image (B, C, H, W) -> ModelOutput``, as the original (same checks, same heads, the
    same ``embedding_coords``), every head output contiguous ``(B, C', H, W)`` float32.
    """

    def __init__(self, net: PixelEmbeddingNet, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        if not isinstance(net.backbone, UNet):
            raise ValueError(f"FusedNet: needs a UNet backbone, got {type(net.backbone).__name__}")
        self.backbone = FusedUNet(net.backbone, dtype=dtype)
        self.in_channels = net.in_channels
        self.multiple = net.multiple
        self.embedding_coords = net.embedding_coords
        self.names = list(net.heads)
        self.sizes = [head.out.out_channels for head in net.heads.values()]
        with torch.no_grad():
            weight = torch.cat([head.out.weight.flatten(1) for head in net.heads.values()])  # (sum C', C_feat)
            bias = torch.cat([head.out.bias for head in net.heads.values()])  # (sum C',)
        self.register_buffer("head_weight", weight.detach().clone())
        self.register_buffer("head_bias", bias.detach().clone()[:, None])  # (sum C', 1)

    def forward(self, image: Tensor) -> ModelOutput:
        check_image(image, in_channels=self.in_channels, multiple=self.multiple)
        feats = self.backbone(image.contiguous(memory_format=torch.channels_last)).float()  # (B, F, H, W)
        b, f, h, w = feats.shape
        rows = feats.permute(0, 2, 3, 1).reshape(b, h * w, f)  # (B, H*W, F): a view when channels-last
        out = torch.baddbmm(self.head_bias, self.head_weight.expand(b, -1, -1), rows.transpose(1, 2))  # (B, C', H*W)
        out = out.reshape(b, -1, h, w)
        heads = dict(zip(self.names, out.split(self.sizes, dim=1)))
        if self.embedding_coords and "embedding" in heads:
            emb = heads["embedding"]
            grid = pixel_grid(h, w, scale=self.embedding_coords, device=emb.device, dtype=emb.dtype)  # (2, H, W)
            heads["embedding"] = torch.cat([emb[:, :2] + grid, emb[:, 2:]], dim=1)
        return ModelOutput(**heads)


def fuse_for_inference(model: nn.Module, *, dtype: torch.dtype = torch.float32) -> nn.Module:
    """A fused inference copy (:class:`FusedNet`) of a float32 U-Net :class:`PixelEmbeddingNet`, on
    the model's device, in eval mode, computing in ``dtype`` (float32 or bfloat16); any other
    network is returned as it is (nothing to fuse)."""
    if not isinstance(model, PixelEmbeddingNet) or not isinstance(model.backbone, UNet):
        return model
    if any(p.dtype != torch.float32 for p in model.parameters()):
        return model
    return FusedNet(model, dtype=dtype).eval()
