"""Data: readers (registry ``DATASETS``), IO, synthetic data, training crops, checks."""

from __future__ import annotations

from . import cityscapes, coco, cvppp, folder, semantic, voc  # noqa: F401  (registration)
from .base import DATASETS
from .io import DataError, read_image, read_labels
from .open import open_dataset

__all__ = ["DATASETS", "DataError", "open_dataset", "read_image", "read_labels"]
