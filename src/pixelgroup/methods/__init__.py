"""Methods: each published method as one declared recipe of heads, loss and grouper (registry ``METHODS``)."""

from __future__ import annotations

from . import recipes  # noqa: F401  (registration)
from .base import METHODS, Method, register_method
from .recipes import grouping_bandwidth

__all__ = ["METHODS", "Method", "grouping_bandwidth", "register_method"]
