"""Pixel-wise class cross-entropy: the ``softmax`` baseline's loss, and the ``sem`` term that gives
instance methods a class head (multi-class instances).

One function, :func:`semantic_cross_entropy`, serves both: logits ``(B, K, H, W)`` against classes
``(B, H, W)`` in ``0..K-1``; negative classes and ``ignore`` (255, the VOC border) are left out.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..types import ModelOutput
from .base import LOSSES


def semantic_cross_entropy(logits: Tensor, classes: Tensor, *, ignore: int = 255) -> dict[str, Tensor]:
    """Mean cross-entropy of ``logits (B, K, H, W)`` against ``classes (B, H, W)``.

    Pixels with a class ``< 0`` or equal to ``ignore`` are left out; with none left the loss is 0
    (still in the graph). Classes ``>= K`` raise (the head is too small for the data).

    Returns:
        ``{"cross_entropy", "total"}`` scalars (the same value).
    """
    if logits.dim() != 4 or tuple(classes.shape) != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"semantic_cross_entropy: need logits (B, K, H, W) and classes (B, H, W), "
            f"got {tuple(logits.shape)} and {tuple(classes.shape)}"
        )
    target = classes.long().masked_fill((classes < 0) | (classes == ignore), -100)
    top = int(target.max()) if target.numel() else -1
    if top >= logits.shape[1]:
        raise ValueError(
            f"semantic_cross_entropy: class {top} found but the head has {logits.shape[1]} classes "
            "(background included); set model.n_classes to the dataset's number of classes"
        )
    if bool((target >= 0).any()):
        loss = F.cross_entropy(logits.float(), target, ignore_index=-100)
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


class SemanticTermLoss(nn.Module):
    """An instance loss plus ``sem_weight`` x :func:`semantic_cross_entropy` of ``output.semantic``.

    The class head has ``K + 1`` logits (0 = background, 1..K object classes) trained against
    ``batch["classes"]`` (< 0 ignored). Returns the wrapped loss's terms, ``"sem"`` and
    ``"total" = base total + sem_weight * sem``.

    Args:
        base: the instance loss, ``base(output, batch) -> dict`` with ``"total"``.
        n_classes: K object classes (the semantic head has ``K + 1`` channels).
        sem_weight: weight of the cross-entropy term, >= 0.
    """

    def __init__(self, base: nn.Module, *, n_classes: int, sem_weight: float = 1.0) -> None:
        super().__init__()
        if sem_weight < 0:
            raise ValueError(f"semantic loss: sem_weight must be >= 0, got {sem_weight}")
        self.base, self.n_classes, self.sem_weight = base, int(n_classes), float(sem_weight)

    def forward(self, output: ModelOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if output.semantic is None or output.semantic.shape[1] != self.n_classes + 1:
            got = None if output.semantic is None else tuple(output.semantic.shape)
            raise ValueError(f"semantic loss: needs a 'semantic' head of {self.n_classes + 1} channels, got {got}")
        if batch.get("classes") is None:
            raise ValueError(
                f"semantic loss: model.n_classes = {self.n_classes} needs batch['classes']; train on a dataset "
                "with classes (voc, coco, cityscapes) or set model.n_classes: 1"
            )
        terms = self.base(output, batch)
        sem = semantic_cross_entropy(output.semantic, batch["classes"], ignore=-1)["total"]
        return {**{k: v for k, v in terms.items() if k != "total"}, "sem": sem,
                "total": terms["total"] + self.sem_weight * sem}

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}, sem_weight={self.sem_weight:g}"
