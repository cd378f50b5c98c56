"""The ``softmax`` method: pixel-wise classification, the baseline SegSort is compared against.

Head: ``semantic`` (``model.n_classes`` logits, class 0 = background). Loss: cross-entropy over the
annotated pixels (``classes`` -1 or 255 ignored). Prediction: the arg-max class of every pixel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..losses.base import LOSSES
from ..types import ModelOutput
from .base import Method, register_method


def semantic_cross_entropy(logits: Tensor, classes: Tensor, *, ignore: int = 255) -> dict[str, Tensor]:
    """Mean cross-entropy of ``logits (B, K, H, W)`` against ``classes (B, H, W)``.

    Pixels with a class ``< 0`` or equal to ``ignore`` are left out; with none left the loss is 0
    (with a gradient). Classes ``>= K`` raise.

    Returns:
        ``{"cross_entropy", "total"}`` scalars.
    """
    if logits.dim() != 4 or classes.shape != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"semantic_cross_entropy: need logits (B, K, H, W) and classes (B, H, W), "
            f"got {tuple(logits.shape)} and {tuple(classes.shape)}"
        )
    target = classes.long().masked_fill((classes < 0) | (classes == ignore), -100)
    top = int(target.max()) if target.numel() else -1
    if top >= logits.shape[1]:
        raise ValueError(
            f"semantic_cross_entropy: class {top} found but the head has {logits.shape[1]} classes; "
            "set model.n_classes to the number of classes including background"
        )
    if (target >= 0).any():
        loss = F.cross_entropy(logits, target, ignore_index=-100)
    else:
        loss = logits.sum() * 0.0
    return {"cross_entropy": loss, "total": loss}


@LOSSES.register("softmax")
class SemanticCrossEntropyLoss(nn.Module):
    """Module form of :func:`semantic_cross_entropy` on ``output.semantic`` and ``batch["classes"]``."""

    def __init__(self, *, ignore: int = 255) -> None:
        super().__init__()
        self.ignore = int(ignore)

    def forward(self, output: ModelOutput, batch: dict[str, Any]) -> dict[str, Tensor]:
        if output.semantic is None:
            raise ValueError("softmax loss: the model output has no 'semantic' head")
        if batch.get("classes") is None:
            raise ValueError("softmax loss: batch has no 'classes'; use a semantic dataset (semantic_folder)")
        return semantic_cross_entropy(output.semantic, batch["classes"], ignore=self.ignore)


class SoftmaxMethod(Method):
    """Per-pixel softmax classification."""

    name = "softmax"
    task = "semantic"
    default_grouper = ""

    def heads(self, cfg: RunConfig) -> dict[str, int]:
        if cfg.model.n_classes < 2:
            raise ValueError(
                "method 'softmax': model.n_classes must be >= 2 (background + classes), "
                f"got {cfg.model.n_classes}"
            )
        return {"semantic": cfg.model.n_classes}

    def build_loss(self, cfg: RunConfig) -> nn.Module:
        unknown = sorted(set(cfg.loss) - {"ignore"})
        if unknown:
            raise ValueError(f"method 'softmax': unknown loss key(s) {unknown}; valid keys: ['ignore']")
        return SemanticCrossEntropyLoss(**dict(cfg.loss))

    def fit_state(
        self, model: nn.Module, data: Iterable, device: str | torch.device, **_: Any
    ) -> dict[str, Any]:
        """No inference state (kept so the engine can treat every semantic method alike)."""
        return {}

    def predict_semantic(
        self, output: ModelOutput, state: Mapping[str, Any] | None = None, **settings: Any
    ) -> np.ndarray:
        """``(H, W)`` int64 arg-max class of one image's ``output.semantic (K, H, W)``."""
        if settings:
            raise ValueError(f"softmax: no inference settings, got {sorted(settings)} (grouping.params)")
        if output.semantic is None or output.semantic.dim() != 3:
            raise ValueError("softmax: predict needs output.semantic of one image, (K, H, W)")
        return output.semantic.argmax(0).cpu().numpy().astype(np.int64)


register_method(SoftmaxMethod())
