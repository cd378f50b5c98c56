"""Networks: backbones (registry ``BACKBONES``), context modules (``CONTEXTS``), the shared net."""

from __future__ import annotations

from . import context, unet  # noqa: F401  (registers "unet", "renet")
from .base import BACKBONES, CONTEXTS
from .net import PixelEmbeddingNet

__all__ = ["BACKBONES", "CONTEXTS", "PixelEmbeddingNet"]
