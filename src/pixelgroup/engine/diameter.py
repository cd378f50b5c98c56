"""Object size: the median object diameter of a dataset, and rescaling images to a model's object size.

The *diameter* of an object is its equivalent diameter ``sqrt(4 area / pi)`` in pixels; a dataset's
object size is the median over its objects. Training stores it in the checkpoint
(``object_diameter``); ``Segmenter.segment(image, diameter=D)`` rescales the image by
``object_diameter / D`` so its objects have the training size, and the labels back (nearest).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from ..ops.resize import resize_image_to, resize_labels
from ..types import Instances

log = logging.getLogger(__name__)


def object_areas(labels: np.ndarray) -> np.ndarray:
    """Areas (pixels) of the objects 1..N of ``labels (H, W)`` (ids without pixels left out)."""
    ids = np.asarray(labels).reshape(-1).astype(np.int64)
    area = np.bincount(ids[ids > 0])[1:]
    return area[area > 0]


def equivalent_diameters(areas: np.ndarray) -> np.ndarray:
    """``sqrt(4 area / pi)`` of each area."""
    return np.sqrt(4.0 * np.asarray(areas) / math.pi)


def object_diameters(labels: np.ndarray) -> np.ndarray:
    """Equivalent diameters ``sqrt(4 area / pi)`` (pixels) of the objects 1..N of ``labels (H, W)``."""
    return equivalent_diameters(object_areas(labels))


def median_diameter(labels: np.ndarray) -> float | None:
    """Median equivalent diameter of the objects of ``labels (H, W)``; ``None`` without objects."""
    d = object_diameters(labels)
    return float(np.median(d)) if d.size else None


def dataset_areas(dataset, *, max_samples: int = 256) -> np.ndarray:
    """Areas (pixels) of the objects of the first ``max_samples`` samples of an instance dataset
    (samples with an ``"instances" (H, W)`` entry), ``(N,)``."""
    samples = (dataset[i] for i in range(min(len(dataset), max_samples)))
    areas = [object_areas(sample["instances"]) for sample in samples if "instances" in sample]
    return np.concatenate(areas) if areas else np.zeros(0, np.int64)


def dataset_diameter(dataset, *, max_samples: int = 256) -> float | None:
    """Median equivalent diameter over the objects of the first ``max_samples`` samples of an
    instance dataset (see :func:`dataset_areas`); ``None`` when it has none."""
    d = equivalent_diameters(dataset_areas(dataset, max_samples=max_samples))
    return float(np.median(d)) if d.size else None


SIZE_RANGE_PERCENTILES = (10.0, 90.0)
"""The training objects' size range recorded in a checkpoint: these percentiles of their diameters."""


def diameter_range(areas: np.ndarray) -> tuple[float, float] | None:
    """``(low, high)``: the :data:`SIZE_RANGE_PERCENTILES` of the equivalent diameters of ``areas
    (N,)`` (pixels); ``None`` without objects."""
    d = equivalent_diameters(areas)
    if not d.size:
        return None
    low, high = np.percentile(d, SIZE_RANGE_PERCENTILES)
    return float(low), float(high)


def check_diameter(diameter: float) -> float:
    value = float(diameter)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"diameter must be a positive number of pixels (or 'auto'), got {diameter!r}")
    return value


def resize_image(image: np.ndarray, factor: float) -> np.ndarray:
    """``(H, W, C)`` float32 image scaled by ``factor`` (bilinear; antialiased when shrinking)."""
    h, w = image.shape[:2]
    size = (max(1, round(h * factor)), max(1, round(w * factor)))
    return image if size == (h, w) else resize_image_to(image, size)


def resize_result(result: Instances | np.ndarray, size: tuple[int, int]) -> Instances | np.ndarray:
    """Instances (or a class map) resized to ``size = (H, W)`` (nearest); instances that vanish (a
    few pixels when shrinking) are dropped and the others renumbered 1..N in the same order."""
    if not isinstance(result, Instances):
        return resize_labels(result, size)
    labels = resize_labels(result.labels, size)
    present = np.unique(labels[labels > 0])  # ids in score order
    new_id = np.zeros(result.count + 1, np.int32)
    new_id[present] = np.arange(1, present.size + 1, dtype=np.int32)
    return Instances(new_id[labels], result.scores[present - 1], result.classes[present - 1])


SIZE_HINT_RATIO = 1.5
"""Found objects this many times larger (or smaller) than the model's training objects: say so."""


def size_hint(found: float | None, trained: float | None,
              trained_range: tuple[float, float] | None = None) -> str | None:
    """A one-line hint when objects of median diameter ``found`` (pixels, segmented without
    rescaling) are far from a model's training size: large objects tend to be split and small ones
    missed or merged, and ``--diameter`` rescales them. ``None`` when ``found`` is within
    :data:`SIZE_HINT_RATIO` of the training median ``trained``, or within the training objects'
    range ``trained_range = (low, high)`` (:func:`diameter_range`; a model trained on several sizes
    knows all of them), or when a size is unknown."""
    if not found or not trained:
        return None
    low, high = trained / SIZE_HINT_RATIO, trained * SIZE_HINT_RATIO
    if trained_range:
        low, high = min(low, trained_range[0]), max(high, trained_range[1])
    if low <= found <= high:
        return None
    spread = f", {trained_range[0]:.0f}-{trained_range[1]:.0f} px for most of them" if trained_range else ""
    return (f"the objects found are {found / trained:.1f}x the size this model was trained on ({found:.0f} px "
            f"across, median, against {trained:.0f} px{spread}); if they are split or merged, predict again with "
            f"--diameter auto (or their diameter in pixels; diameter= in Python)")
