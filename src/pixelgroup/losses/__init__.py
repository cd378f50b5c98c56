"""Losses: one file per method, each a pure function plus a thin module (registry ``LOSSES``)."""

from __future__ import annotations

from . import discriminative, foreground, spatial  # noqa: F401  (registration)
from .base import LOSSES
from .foreground import foreground_loss
from .lovasz import lovasz_hinge
from .spatial import spatial_embedding_loss

__all__ = ["LOSSES", "foreground_loss", "lovasz_hinge", "spatial_embedding_loss"]
