"""Foreground head loss shared by the embedding methods: binary cross-entropy + soft Dice."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import LOSSES


def foreground_loss(logits: Tensor, instances: Tensor, *, dice_weight: float = 1.0) -> dict[str, Tensor]:
    """BCE + Dice of a foreground logit map against ``instances > 0``.

    Args:
        logits: ``(B, 1, H, W)`` raw foreground logits.
        instances: ``(B, H, W)`` integer labels; 0 = background, > 0 foreground, < 0 ignored.
        dice_weight: weight of the soft Dice term.

    Returns:
        ``{"bce", "dice", "total"}`` scalars; ``total = bce + dice_weight * dice``.
    """
    if logits.dim() != 4 or logits.shape[1] != 1:
        raise ValueError(f"foreground_loss: logits must be (B, 1, H, W), got {tuple(logits.shape)}")
    if instances.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"foreground_loss: instances {tuple(instances.shape)} do not match logits {tuple(logits.shape)}"
        )
    logits = logits[:, 0]
    valid = (instances >= 0).to(logits.dtype)
    target = (instances > 0).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=valid, reduction="sum")
    bce = bce / valid.sum().clamp_min(1.0)
    prob = torch.sigmoid(logits) * valid
    inter = (prob * target).sum(dim=(1, 2))
    denom = prob.sum(dim=(1, 2)) + (target * valid).sum(dim=(1, 2))
    dice = (1.0 - (2.0 * inter + 1.0) / (denom + 1.0)).mean()
    return {"bce": bce, "dice": dice, "total": bce + dice_weight * dice}


@LOSSES.register("foreground")
class ForegroundLoss(nn.Module):
    """Module form of :func:`foreground_loss` on ``output.foreground`` and ``batch["instances"]``."""

    def __init__(self, *, dice_weight: float = 1.0) -> None:
        super().__init__()
        self.dice_weight = dice_weight

    def forward(self, output, batch) -> dict[str, Tensor]:
        return foreground_loss(output.foreground, batch["instances"], dice_weight=self.dice_weight)
