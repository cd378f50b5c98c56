"""Grouping: pure functions from one image's head outputs to instances (registry ``GROUPERS``)."""

from __future__ import annotations

from . import hdbscan, seeded  # noqa: F401  (registration; mean_shift registers on the import below)
from .base import GROUPERS, group
from .boundaries import embedding_boundaries
from .mean_shift import mean_shift, meanshift_grouping
from .proposals import embedding_proposals
from .recurrent import RecurrentMeanShift
from .seeded import seeded_grouping
from .vmf import spherical_kmeans

__all__ = ["GROUPERS", "RecurrentMeanShift", "embedding_boundaries", "embedding_proposals", "group",
           "mean_shift", "meanshift_grouping", "seeded_grouping", "spherical_kmeans"]
