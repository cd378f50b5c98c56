"""Grouping: pure functions from one image's head outputs to instances or classes (registry ``GROUPERS``)."""

from __future__ import annotations

from ..ops.recurrent import RecurrentMeanShift
from ..ops.segments import spherical_kmeans
from . import argmax, hdbscan, meanshift_grouper, seeded, segsort  # noqa: F401  (registration)
from .base import GROUPERS, group
from .boundaries import embedding_boundaries
from .mean_shift import mean_shift
from .meanshift_grouper import meanshift_grouping
from .proposals import embedding_proposals
from .seeded import seeded_grouping

__all__ = ["GROUPERS", "RecurrentMeanShift", "embedding_boundaries", "embedding_proposals", "group",
           "mean_shift", "meanshift_grouping", "seeded_grouping", "spherical_kmeans"]
