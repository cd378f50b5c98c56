"""Recurrent pixel embedding on the hypersphere (Kong & Fowlkes, CVPR 2018) as a method.

Heads: ``embedding`` (``cfg.model.embedding_dim`` channels) and ``foreground`` (1 logit), plus
``semantic`` (``K + 1`` logits) when ``model.n_classes = K > 1``.
Loss: :class:`~pixelgroup.losses.hypersphere.HypersphereLoss` with ``cfg.loss`` as keyword
arguments (``margin``, ``max_pixels``, ``iterations``, ``bandwidth``, ``kernel``, ``hard_mining``,
``fg_weight``), plus the cross-entropy term ``sem`` (weight ``sem_weight``) of a multi-class model
(:class:`~pixelgroup.methods.discriminative.SemanticTermLoss`). Grouper: ``meanshift`` on the
foreground pixels' unit embeddings; each instance takes the majority class of the semantic head.

Grouping bandwidth rule. The push term drives pixels of different instances to a similarity
``s = (1 + cos) / 2 <= margin``, i.e. a chord distance ``||x_i - x_j|| = sqrt(2 - 2 cos) >=
2 sqrt(1 - margin)`` on the unit sphere (sqrt(2), orthogonal, for the default margin 0.5), while
the pull term drives an instance to a point. The vMF kernel ``exp((cos - 1) / h^2)`` is the
Gaussian ``exp(-d^2 / (2 h^2))`` of the chord distance ``d``, which separates two modes only when
they are more than about ``2 h`` apart. We take ``h = sqrt((1 - margin) / 8)`` (0.25 at margin
0.5): instances at the margin are ``4 sqrt(2) h`` apart, and two instances already separate when
they are a third of the way there, which a trained embedding reaches long before the margin. (A
wider ``h = sqrt(1 - margin) / 2`` merged neighbours that were not yet at the margin: on the
hypersphere benchmark's models, held-out AP_dsb@0.5 peaked at h = 0.25-0.3 for every model, and
0.354 lost 0.002-0.11.)
"""

from __future__ import annotations

import math
from typing import Any

from torch import nn

from ..config import RunConfig
from ..grouping import mean_shift as _mean_shift  # noqa: F401  (registers the "meanshift" grouper)
from ..losses.base import LOSSES
from ..losses.hypersphere import HypersphereLoss  # noqa: F401  (registers the "hypersphere" loss)
from .base import Method, register_method
from .discriminative import add_semantic_term, semantic_heads

DEFAULT_MARGIN = 0.5


def grouping_bandwidth(margin: float) -> float:
    """The vMF mean-shift bandwidth matched to the loss margin: ``sqrt((1 - margin) / 8)``."""
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"grouping_bandwidth: margin must be in [0, 1), got {margin}")
    return math.sqrt((1.0 - margin) / 8.0)


class HypersphereMethod(Method):
    """Unit-sphere embedding trained with the recurrent mean-shift hypersphere loss."""

    name = "hypersphere"
    task = "instance"
    default_grouper = "meanshift"

    def heads(self, cfg: RunConfig) -> dict[str, int]:
        return {"embedding": cfg.model.embedding_dim, "foreground": 1, **semantic_heads(cfg)}

    def build_loss(self, cfg: RunConfig) -> nn.Module:
        kwargs = dict(cfg.loss)
        sem_weight = kwargs.pop("sem_weight", None)
        try:
            loss = LOSSES.get("hypersphere")(**kwargs)
        except TypeError as err:
            raise ValueError(
                f"hypersphere: bad 'loss' config {dict(cfg.loss)} ({err}); valid keys: margin, max_pixels, "
                "iterations, bandwidth, kernel, hard_mining, normalize, fg_weight, sem_weight"
            ) from None
        return add_semantic_term(loss, cfg, sem_weight=sem_weight)

    def grouper_defaults(self, cfg: RunConfig) -> dict[str, Any]:
        margin = float(cfg.loss.get("margin", DEFAULT_MARGIN))
        return {"bandwidth": grouping_bandwidth(margin), "kernel": "vmf", "normalize": True}


register_method(HypersphereMethod())
