"""The ``discriminative`` method: a free Euclidean embedding trained with the discriminative loss of
De Brabandere, Neven & Van Gool (2017), plus a foreground head, grouped by mean shift.

Heads: ``embedding`` (``model.embedding_dim``), ``foreground`` (1).
Loss: :func:`~pixelgroup.losses.discriminative.discriminative_loss` on the embedding (terms
``var``, ``dist``, ``reg``) + ``fg_weight`` x :func:`~pixelgroup.losses.foreground.foreground_loss`
(BCE + Dice, term ``fg``). ``cfg.loss`` keys: ``delta_v, delta_d, alpha, beta, gamma, fg_weight``.
Grouper: ``meanshift`` with a flat kernel of radius ``delta_d`` on the raw (not normalised)
embedding (why: :meth:`DiscriminativeMethod.grouper_defaults`); ``hdbscan`` is a bandwidth-free
alternative (run config ``grouping: {name: hdbscan}``).

Multi-class (``model.n_classes = K > 1``; shared with ``hypersphere``): a ``semantic`` head of
``K + 1`` logits (background + classes) trained by cross-entropy against ``batch["classes"]``
(term ``sem``, weight ``loss.sem_weight``, default 1, pixels < 0 ignored); the groupers give each
instance the majority class of its pixels (:func:`~pixelgroup.grouping.classes.assign_classes`).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..losses.discriminative import DELTA_D, DELTA_V, DiscriminativeLoss
from ..losses.foreground import foreground_loss
from .base import Method, register_method


class DiscriminativeForegroundLoss(nn.Module):
    """``alpha var + beta dist + gamma reg + fg_weight fg`` on ``output.embedding``/``foreground``.

    Returns ``{"var", "dist", "reg", "fg", "total"}`` (``var``, ``dist``, ``reg`` unweighted; ``fg``
    = BCE + Dice of the foreground logits).
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
            raise ValueError(f"method 'discriminative': fg_weight must be >= 0, got {fg_weight}")
        self.embedding_loss = DiscriminativeLoss(delta_v=delta_v, delta_d=delta_d, alpha=alpha, beta=beta,
                                                 gamma=gamma)
        self.fg_weight = fg_weight

    def forward(self, output, batch) -> dict[str, Tensor]:
        if output.embedding is None or output.foreground is None:
            raise ValueError("method 'discriminative': the network needs 'embedding' and 'foreground' heads")
        out = self.embedding_loss(output, batch)
        fg = foreground_loss(output.foreground, batch["instances"])["total"]
        return {**out, "fg": fg, "total": out["total"] + self.fg_weight * fg}

    def extra_repr(self) -> str:
        return f"fg_weight={self.fg_weight}"


def semantic_cross_entropy(logits: Tensor, classes: Tensor) -> Tensor:
    """Mean cross-entropy of ``logits (B, K + 1, H, W)`` against ``classes (B, H, W)`` (0 =
    background, 1..K, < 0 ignored); 0 (still in the graph) when every pixel is ignored."""
    if logits.dim() != 4 or tuple(classes.shape) != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(
            f"semantic loss: logits {tuple(logits.shape)} must be (B, K + 1, H, W) and classes "
            f"{tuple(classes.shape)} (B, H, W) of the same B, H, W"
        )
    target = classes.long().clamp(min=-1)  # every negative value is ignore
    k = logits.shape[1] - 1
    top = int(target.max()) if target.numel() else 0
    if top > k:
        raise ValueError(
            f"semantic loss: the batch has class id {top} but model.n_classes = {k}; set model.n_classes "
            "to the dataset's number of object classes"
        )
    if not bool((target >= 0).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), target, ignore_index=-1)


class SemanticTermLoss(nn.Module):
    """An instance loss plus ``sem_weight`` x :func:`semantic_cross_entropy` of ``output.semantic``.

    Returns the wrapped loss's terms, ``"sem"`` and ``"total" = base total + sem_weight * sem``.

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

    def forward(self, output, batch) -> dict[str, Tensor]:
        if output.semantic is None or output.semantic.shape[1] != self.n_classes + 1:
            got = None if output.semantic is None else tuple(output.semantic.shape)
            raise ValueError(f"semantic loss: needs a 'semantic' head of {self.n_classes + 1} channels, got {got}")
        if batch.get("classes") is None:
            raise ValueError(
                f"semantic loss: model.n_classes = {self.n_classes} needs batch['classes']; train on a dataset "
                "with classes (voc, coco, cityscapes) or set model.n_classes: 1"
            )
        terms = self.base(output, batch)
        sem = semantic_cross_entropy(output.semantic, batch["classes"])
        return {**{k: v for k, v in terms.items() if k != "total"}, "sem": sem,
                "total": terms["total"] + self.sem_weight * sem}

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}, sem_weight={self.sem_weight:g}"


def semantic_heads(cfg: RunConfig) -> dict[str, int]:
    """``{"semantic": K + 1}`` for ``model.n_classes = K > 1``, else ``{}``."""
    if cfg.model.n_classes < 1:
        raise ValueError(f"method '{cfg.method}': model.n_classes must be >= 1, got {cfg.model.n_classes}")
    return {"semantic": cfg.model.n_classes + 1} if cfg.model.n_classes > 1 else {}


def add_semantic_term(loss: nn.Module, cfg: RunConfig, *, sem_weight: float | None) -> nn.Module:
    """``loss`` itself for a class-agnostic model, a :class:`SemanticTermLoss` around it otherwise."""
    if cfg.model.n_classes > 1:
        weight = 1.0 if sem_weight is None else float(sem_weight)
        return SemanticTermLoss(loss, n_classes=cfg.model.n_classes, sem_weight=weight)
    if sem_weight is not None:
        raise ValueError(
            f"method '{cfg.method}': loss.sem_weight needs a semantic head (model.n_classes > 1); remove it"
        )
    return loss


def _loss_kwargs(cfg: RunConfig) -> dict[str, Any]:
    """``cfg.loss`` as keyword arguments, unknown keys rejected with the valid ones listed."""
    valid = sorted(inspect.signature(DiscriminativeForegroundLoss.__init__).parameters.keys() - {"self"})
    valid.append("sem_weight")
    unknown = sorted(set(cfg.loss) - set(valid))
    if unknown:
        raise ValueError(f"method 'discriminative': unknown loss key(s) {unknown}; valid keys: {valid}")
    return dict(cfg.loss)


class DiscriminativeMethod(Method):
    """Discriminative-loss embedding + foreground, mean-shift grouping."""

    name = "discriminative"
    task = "instance"
    default_grouper = "meanshift"
    default_embedding_coords = 0.1
    """Semi-convolutional embedding by default: with the pure embedding (``model.embedding_coords:
    0``, the paper's setting) crowded images of look-alike nuclei need thousands of steps before
    every pair of the ~40 instances of a crop is ``2 delta_d`` apart; adding 0.1 x the pixel
    coordinates makes neighbours ~2 units apart from the start (benchmarks/discriminative_context.py)."""

    def heads(self, cfg: RunConfig) -> dict[str, int]:
        if cfg.model.embedding_dim < 1:
            raise ValueError(
                f"method 'discriminative': model.embedding_dim must be >= 1, got {cfg.model.embedding_dim}"
            )
        return {"embedding": cfg.model.embedding_dim, "foreground": 1, **semantic_heads(cfg)}

    def build_loss(self, cfg: RunConfig) -> nn.Module:
        kwargs = _loss_kwargs(cfg)
        sem_weight = kwargs.pop("sem_weight", None)
        return add_semantic_term(DiscriminativeForegroundLoss(**kwargs), cfg, sem_weight=sem_weight)

    def grouper_defaults(self, cfg: RunConfig) -> dict[str, Any]:
        """Flat-kernel mean shift of radius ``2 delta_v`` on the raw embedding (the paper's rule).

        At zero loss every pixel lies within ``delta_v`` of its instance mean and the means are at
        least ``2 delta_d`` apart, so any radius in ``[delta_v, 2 delta_d - delta_v)`` separates the
        instances; the paper thresholds at ``2 delta_v`` (a ball of that radius around any pixel's
        embedding holds its instance). The lower end matters before convergence: with crowded
        nuclei the means of neighbours are still closer than ``2 delta_d``, and ``delta_d`` as the
        radius merged them (held-out AP_dsb@0.5 0.70 -> 0.94 on synthetic nuclei, same model).
        """
        delta_v = float(_loss_kwargs(cfg).get("delta_v", DELTA_V))
        return {"bandwidth": 2.0 * delta_v, "kernel": "flat", "normalize": False}


register_method(DiscriminativeMethod())
