"""Methods: which heads, loss and grouper make up each published method (registry ``METHODS``)."""

from __future__ import annotations

from . import discriminative, hypersphere, segsort, softmax, spatial  # noqa: F401  (registration)
from .base import METHODS, Method, register_method

__all__ = ["METHODS", "Method", "register_method"]
