"""Spatial validation split: hold out a band of each annotated image instead of whole images.

With one or a few annotated images (the common case in microscopy: one large field with a hundred
nuclei), holding out whole images either is impossible or costs half of the annotations. Instead,
each image that is large enough gives a band at its far end (the last rows of a tall image, the
last columns of a wide one) to validation and keeps the rest for training.

The cut is placed, near the requested fraction, where the fewest objects cross it. Objects that
cross it stay (cut) in the training part, and validation starts only after their last pixel: the
pixels in between (the *margin*) are used by neither part, so no object seen in training is scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage
from torch.utils.data import Dataset

MIN_BAND = 32
"""Thinnest validation band (and training part), pixels: a thinner one holds hardly an object."""


@dataclass(frozen=True)
class RegionCut:
    """Where one image is cut: along ``axis`` (0 = rows, 1 = columns), training is ``[0, train_end)``
    and validation ``[val_start, size)``; ``crossing`` objects cross the cut (margin between)."""

    axis: int
    size: int
    train_end: int
    val_start: int
    crossing: int

    @property
    def margin(self) -> int:
        return self.val_start - self.train_end


def object_extents(instances: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """``(first, last)`` index along ``axis`` of every object of ``instances (H, W)`` (> 0 = objects),
    each ``(N,)`` int."""
    labels = np.where(instances > 0, instances, 0).astype(np.int64, copy=False)
    boxes = [b for b in ndimage.find_objects(labels) if b is not None]
    first = np.array([b[axis].start for b in boxes], dtype=np.int64)
    last = np.array([b[axis].stop - 1 for b in boxes], dtype=np.int64)
    return first, last


def choose_cut(instances: np.ndarray | None, shape: tuple[int, int], fraction: float,
               *, min_band: int = MIN_BAND) -> RegionCut | None:
    """The cut of an ``(H, W)`` image giving about ``fraction`` of its longer side to validation.

    Among the positions within a quarter of the band's width around the target, the one crossed by
    the fewest objects of ``instances`` (``None``: no objects, the target itself) wins, the one
    nearest the target on ties. ``None`` when the image is too small for a validation band and a
    training part of at least ``min_band`` pixels each.
    """
    axis = 0 if shape[0] >= shape[1] else 1
    size = int(shape[axis])
    band = int(round(fraction * size))
    if band < min_band or size - band < min_band:
        return None
    target = size - band
    slack = max(1, band // 4)
    candidates = np.arange(max(min_band, target - slack), min(size - min_band, target + slack) + 1)
    if instances is None or not (instances > 0).any():
        return RegionCut(axis, size, target, target, 0)
    first, last = object_extents(instances, axis)
    # an object crosses cut c (training [0, c), validation [c, size)) when first < c <= last
    crossing = ((first[None, :] < candidates[:, None]) & (last[None, :] >= candidates[:, None]))
    counts = crossing.sum(axis=1)
    best = np.lexsort((np.abs(candidates - target), counts))[0]
    cut = int(candidates[best])
    crossers = crossing[best]
    val_start = int(last[crossers].max()) + 1 if crossers.any() else cut
    if size - val_start < min_band // 2:
        return None
    return RegionCut(axis, size, cut, val_start, int(counts[best]))


def crop_sample(sample: dict[str, Any], axis: int, start: int, stop: int, tag: str) -> dict[str, Any]:
    """``sample`` restricted to ``[start, stop)`` along ``axis`` (every array with the image's
    ``(H, W)`` leading shape); the name gets ``tag``. Other entries are kept as they are."""
    hw = sample["image"].shape[:2]
    index = (slice(None), slice(start, stop)) if axis == 1 else (slice(start, stop),)
    out: dict[str, Any] = {}
    for key, value in sample.items():
        if isinstance(value, np.ndarray) and value.ndim >= 2 and value.shape[:2] == hw:
            out[key] = np.ascontiguousarray(value[index])
        else:
            out[key] = value
    out["name"] = f"{sample.get('name', 'image')}{tag}"
    return out


_DATASET_FACTS = ("class_names", "n_classes")


class SampleList(Dataset):
    """A map-style dataset over samples held in memory (the parts of a spatial split)."""

    def __init__(self, samples: Sequence[dict[str, Any]], *, like: Any = None) -> None:
        self.samples = list(samples)
        self.names = [str(s.get("name", f"image_{i:04d}")) for i, s in enumerate(self.samples)]
        for attr in _DATASET_FACTS:  # what a reader says of its whole dataset
            if getattr(like, attr, None) is not None:
                setattr(self, attr, getattr(like, attr))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.samples[index]


@dataclass(frozen=True)
class RegionSplit:
    """The result of :func:`split_regions`: training and validation datasets and what was done."""

    train: SampleList
    val: SampleList
    cuts: dict[str, RegionCut]
    fraction: float
    val_objects: int

    def describe(self) -> str:
        n = len(self.cuts)
        whole = len(self.train) - n
        crossing = sum(c.crossing for c in self.cuts.values())
        text = (f"validation: a band of {self.fraction:.0%} at the end of {n} image(s) "
                f"({self.val_objects} objects; {crossing} crossing the cut(s) stay in training, margins "
                f"{', '.join(str(c.margin) for c in self.cuts.values())} px)")
        return text + (f"; {whole} image(s) too small to cut train whole" if whole else "")


def count_objects(sample: dict[str, Any]) -> int:
    """Number of instances in a sample's ``"instances" (H, W)`` map (0 without one)."""
    inst = sample.get("instances")
    if inst is None:
        return 0
    ids = np.unique(inst)
    return int((ids > 0).sum())


def split_regions(dataset, fraction: float, *, min_val_objects: int = 20, max_fraction: float = 0.3,
                  min_band: int = MIN_BAND) -> RegionSplit | None:
    """Cut every sample of ``dataset`` (a map-style dataset of samples, see
    :mod:`pixelgroup.data.base`) into a training part and a validation band (:func:`choose_cut`).

    The band starts at ``fraction`` of each image and widens (by 0.05 up to ``max_fraction``) until
    validation holds ``min_val_objects`` objects. Images too small to cut are trained on whole.
    ``None`` when no image can be cut, even with a band of ``max_fraction``.
    """
    samples = [dataset[i] for i in range(len(dataset))]
    fractions = [fraction] + [f for f in np.arange(fraction + 0.05, max_fraction + 1e-9, 0.05)]
    result = None
    for f in fractions:
        train, val, cuts, n_val = [], [], {}, 0
        for sample in samples:
            cut = choose_cut(sample.get("instances"), sample["image"].shape[:2], float(f), min_band=min_band)
            if cut is None:
                train.append(sample)
                continue
            part_val = crop_sample(sample, cut.axis, cut.val_start, cut.size, "[val]")
            train.append(crop_sample(sample, cut.axis, 0, cut.train_end, "[train]"))
            val.append(part_val)
            cuts[str(sample.get("name"))] = cut
            n_val += count_objects(part_val)
        if not val:
            continue  # a wider band may fit
        result = RegionSplit(SampleList(train, like=dataset), SampleList(val, like=dataset), cuts, float(f), n_val)
        if n_val >= min_val_objects:
            break
    return result
