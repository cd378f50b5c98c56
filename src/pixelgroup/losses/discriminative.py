"""Discriminative loss of De Brabandere, Neven & Van Gool (2017), "Semantic Instance Segmentation
with a Discriminative Loss Function", arXiv:1708.02551.

For one image with ``C`` instances (label 0 = background and negative labels = ignore are left out),
``mu_c`` the mean embedding of instance ``c`` and ``N_c`` its pixel count:

    var  = 1/C sum_c 1/N_c sum_{i in c} max(0, ||mu_c - x_i|| - delta_v)^2
    dist = 1/(C(C-1)) sum_{cA != cB} max(0, 2 delta_d - ||mu_cA - mu_cB||)^2      (0 when C < 2)
    reg  = 1/C sum_c ||mu_c||
    total = alpha var + beta dist + gamma reg

Each term is computed per image and averaged over the batch; an image without instances contributes
0 to every term (it still counts in the batch mean). ``||.||`` is the Euclidean norm.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import LOSSES
from .foreground import foreground_loss

DELTA_V = 0.5
DELTA_D = 1.5

TERMS = ("var", "dist", "reg")


def _safe_norm(v: Tensor) -> Tensor:
    """Euclidean norm over the last axis whose gradient is 0 (not NaN) at the zero vector.

    ``sqrt(max(|v|^2, tiny))``: below ``tiny`` (the smallest normal float, ~1e-38 in float32) the
    clamp cuts the gradient, so ``d||v||/dv`` is 0 at ``v = 0``; elsewhere it is exact.
    """
    sq = (v * v).sum(dim=-1)
    return torch.sqrt(torch.clamp(sq, min=torch.finfo(sq.dtype).tiny))


def _image_terms(x: Tensor, labels: Tensor, delta_v: float, delta_d: float) -> dict[str, Tensor]:
    """The three terms for one image.

    Args:
        x: ``(P, E)`` embeddings of the image's pixels.
        labels: ``(P,)`` integer instance ids (<= 0 are left out).
    """
    keep = torch.nonzero(labels > 0).squeeze(1)  # (N,)
    if keep.numel() == 0:
        zero = x.sum() * 0.0  # keeps the graph connected so backward() works on an empty batch
        return dict.fromkeys(TERMS, zero)
    # index_select (not boolean/fancy indexing): its backward is a fast index_add on CPU
    x = x.index_select(0, keep)  # (N, E)
    _, inverse, counts = torch.unique(labels[keep], return_inverse=True, return_counts=True)
    n_inst = counts.numel()
    counts = counts.to(x.dtype)
    mu = x.new_zeros(n_inst, x.shape[1]).index_add_(0, inverse, x) / counts[:, None]  # (C, E)

    pull = torch.clamp(_safe_norm(mu.index_select(0, inverse) - x) - delta_v, min=0.0) ** 2  # (N,)
    var = (x.new_zeros(n_inst).index_add_(0, inverse, pull) / counts).mean()

    if n_inst > 1:
        pair = _safe_norm(mu[:, None, :] - mu[None, :, :])  # (C, C)
        push = torch.clamp(2.0 * delta_d - pair, min=0.0) ** 2
        off_diag = ~torch.eye(n_inst, dtype=torch.bool, device=x.device)
        dist = (push * off_diag).sum() / (n_inst * (n_inst - 1))
    else:
        dist = x.sum() * 0.0
    reg = _safe_norm(mu).mean()
    return {"var": var, "dist": dist, "reg": reg}


def _check(embedding: Tensor, instances: Tensor, delta_v: float, delta_d: float) -> None:
    if embedding.dim() != 4:
        raise ValueError(f"discriminative_loss: embedding must be (B, E, H, W), got {tuple(embedding.shape)}")
    if not embedding.is_floating_point():
        raise ValueError(f"discriminative_loss: embedding must be floating point, got {embedding.dtype}")
    if instances.shape != (embedding.shape[0], *embedding.shape[2:]):
        raise ValueError(
            f"discriminative_loss: instances {tuple(instances.shape)} must be (B, H, W) matching "
            f"embedding {tuple(embedding.shape)}"
        )
    if instances.is_floating_point() or instances.dtype == torch.bool:
        raise ValueError(f"discriminative_loss: instances must be an integer tensor, got {instances.dtype}")
    if delta_v < 0 or delta_d <= 0:
        raise ValueError(
            f"discriminative_loss: need delta_v >= 0 and delta_d > 0, "
            f"got delta_v={delta_v}, delta_d={delta_d}"
        )


def discriminative_loss(
    embedding: Tensor,
    instances: Tensor,
    *,
    delta_v: float = DELTA_V,
    delta_d: float = DELTA_D,
    alpha: float = 1.0,
    beta: float = 1.0,
    gamma: float = 0.001,
) -> dict[str, Tensor]:
    """Discriminative (pull / push / regularisation) loss on a free pixel embedding.

    Args:
        embedding: ``(B, E, H, W)`` raw embedding.
        instances: ``(B, H, W)`` integer labels; 0 = background, 1..N instances, < 0 ignored.
        delta_v: pull margin: pixels within ``delta_v`` of their instance mean cost nothing.
        delta_d: push margin: instance means at least ``2 * delta_d`` apart cost nothing.
        alpha: weight of ``var``.
        beta: weight of ``dist``.
        gamma: weight of ``reg``.

    Returns:
        ``{"var", "dist", "reg", "total"}`` scalars (unweighted terms; ``total`` is weighted), each
        the mean over the batch of the per-image value.

    Memory is linear in the number of pixels plus ``C^2`` for the pairwise term.
    """
    _check(embedding, instances, delta_v, delta_d)
    if embedding.dtype in (torch.float16, torch.bfloat16):  # norms and means in float32 under autocast
        embedding = embedding.float()
    b, e = embedding.shape[:2]
    flat = embedding.reshape(b, e, -1).transpose(1, 2).contiguous()  # (B, H*W, E)
    labels = instances.reshape(b, -1)  # (B, H*W)
    per_image = [_image_terms(flat[i], labels[i], delta_v, delta_d) for i in range(b)]
    out = {k: torch.stack([t[k] for t in per_image]).mean() for k in TERMS}
    out["total"] = alpha * out["var"] + beta * out["dist"] + gamma * out["reg"]
    return out


@LOSSES.register("discriminative")
class DiscriminativeLoss(nn.Module):
    """Module form of :func:`discriminative_loss` on ``output.embedding`` and ``batch["instances"]``."""

    def __init__(
        self,
        *,
        delta_v: float = DELTA_V,
        delta_d: float = DELTA_D,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.001,
    ) -> None:
        super().__init__()
        self.kwargs = {"delta_v": delta_v, "delta_d": delta_d, "alpha": alpha, "beta": beta, "gamma": gamma}

    def forward(self, output, batch) -> dict[str, Tensor]:
        if output.embedding is None:
            raise ValueError(
                "DiscriminativeLoss: output.embedding is None; the network needs an 'embedding' head"
            )
        return discriminative_loss(output.embedding, batch["instances"], **self.kwargs)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.kwargs.items())


@LOSSES.register("discriminative_fg")
class DiscriminativeForegroundLoss(nn.Module):
    """``alpha var + beta dist + gamma reg + fg_weight fg`` on ``output.embedding``/``foreground``.

    Returns ``{"var", "dist", "reg", "fg", "total"}`` (``var``, ``dist``, ``reg`` unweighted; ``fg``
    = BCE + Dice of the foreground logits, :func:`~pixelgroup.losses.foreground.foreground_loss`).
    """

    def __init__(
        self,
        *,
        delta_v: float = DELTA_V,
        delta_d: float = DELTA_D,
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.001,
        fg_weight: float = 1.0,
    ) -> None:
        super().__init__()
        if fg_weight < 0:
            raise ValueError(f"discriminative loss: fg_weight must be >= 0, got {fg_weight}")
        self.embedding_loss = DiscriminativeLoss(delta_v=delta_v, delta_d=delta_d, alpha=alpha, beta=beta,
                                                 gamma=gamma)
        self.fg_weight = fg_weight

    def forward(self, output, batch) -> dict[str, Tensor]:
        if output.embedding is None or output.foreground is None:
            raise ValueError("discriminative loss: the network needs 'embedding' and 'foreground' heads")
        out = self.embedding_loss(output, batch)
        fg = foreground_loss(output.foreground, batch["instances"])["total"]
        return {**out, "fg": fg, "total": out["total"] + self.fg_weight * fg}

    def extra_repr(self) -> str:
        return f"fg_weight={self.fg_weight}"
