"""Grouping: pure functions from one image's head outputs to instances (registry ``GROUPERS``)."""

from __future__ import annotations

from . import hdbscan, seeded  # noqa: F401  (registration)
from .base import GROUPERS, group
from .seeded import seeded_grouping

__all__ = ["GROUPERS", "group", "seeded_grouping"]
