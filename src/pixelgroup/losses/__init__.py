"""Losses: one file per method, each a pure function plus a thin module (registry ``LOSSES``)."""

from __future__ import annotations

from . import discriminative, foreground, hypersphere, segsort, semantic, spatial  # noqa: F401  (registration)
from .base import LOSSES
from .discriminative import discriminative_loss
from .foreground import foreground_loss
from .hypersphere import hypersphere_loss
from .lovasz import lovasz_hinge
from .segsort import segsort_loss
from .semantic import semantic_cross_entropy
from .spatial import spatial_embedding_loss

__all__ = ["LOSSES", "discriminative_loss", "foreground_loss", "hypersphere_loss", "lovasz_hinge", "segsort_loss",
           "semantic_cross_entropy", "spatial_embedding_loss"]
