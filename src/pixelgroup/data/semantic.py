"""The ``semantic_folder`` dataset: images with per-pixel class maps (PASCAL VOC ``SegmentationClass`` style).

Layout::

    ROOT/images/NAME.{png,jpg,jpeg,tif,tiff}
    ROOT/classes/NAME.{png,tif,tiff}     class index per pixel, 0 = background, 255 = ignore
    ROOT/classes.txt                     optional, one class name per line (line i = class i)
    ROOT/segments/NAME.{png,tif,tiff}    optional over-segmentation (unsupervised SegSort)

Palette PNGs (as VOC's) are read as their palette indices. 255 becomes -1 (ignore) in the sample.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from scipy import ndimage
from torch.utils.data import Dataset

from .base import DATASETS
from .io import (
    IMAGE_SUFFIXES,
    LABEL_SUFFIXES,
    DataError,
    index_by_stem,
    normalized_image,
    read_image,
    read_labels,
)
from .overseg import find_segments, oversegment, read_segments
from .reader import select_names

logger = logging.getLogger(__name__)

IGNORE = 255
SegmentsSource = Literal["auto", "files", "felzenszwalb", "slic", "watershed"]


def read_class_names(path: str | Path) -> list[str]:
    """Class names from a text file, one per line (blank lines at the end ignored)."""
    lines = Path(path).read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    names = [line.strip() for line in lines]
    if not names or any(not n for n in names):
        raise DataError(f"{path}: need one non-empty class name per line (line i = class i, background 0)")
    return names


def instances_from_classes(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of every foreground class region (8-connectivity).

    Args:
        classes: ``(H, W)`` int, 0 = background, ``< 0`` = ignore.

    Returns:
        ``instances (H, W)`` int64 (0 = background, -1 = ignore, 1..N) and ``instance_classes (N,)``.
    """
    instances = np.where(classes < 0, -1, 0).astype(np.int64)
    owners: list[int] = []
    for c in np.unique(classes[classes > 0]):
        comp, n = ndimage.label(classes == c, structure=np.ones((3, 3), bool))
        instances[comp > 0] = comp[comp > 0] + len(owners)
        owners.extend([int(c)] * n)
    return instances, np.asarray(owners, dtype=np.int64)


@DATASETS.register("semantic_folder")
class SemanticFolderDataset(Dataset):
    """Images with class maps, paired by file stem (see the module docstring for the layout).

    A sample is ``{"image": (H, W, C) float32, "classes": (H, W) int64 (-1 = ignore), "instances":
    (H, W) int64 (connected components of each foreground class, for crop sampling), "instance_classes":
    (N,), "segments": (H, W) int64 (when available), "name": str}``.

    Args:
        root: the dataset folder.
        normalize: per-image, per-channel percentiles mapped to 0 and 1, or ``None`` (raw float32).
        names: restrict to these stems; ``None`` = every image.
        segments: ``"auto"`` reads ``ROOT/segments`` when that folder exists (else no segments);
            ``"files"`` requires it; ``"felzenszwalb"`` / ``"slic"`` / ``"watershed"`` compute an
            over-segmentation of the normalised image (:func:`pixelgroup.data.overseg.oversegment`);
            ``None`` gives no segments.
        cache_mb: keep decoded samples in memory up to this many megabytes.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        normalize: tuple[float, float] | None = (1.0, 99.8),
        names: Sequence[str] | None = None,
        segments: SegmentsSource | None = "auto",
        cache_mb: float = 1024.0,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found; check the path")
        if segments not in (None, "auto", "files", "felzenszwalb", "slic", "watershed"):
            raise ValueError(f"segments='{segments}'; use auto, files, felzenszwalb, slic, watershed or None")
        for sub in ("images", "classes"):
            if not (self.root / sub).is_dir():
                raise DataError(f"{self.root / sub}: {sub} folder not found; expected ROOT/images and ROOT/classes")
        self._images = index_by_stem(self.root / "images", "images", suffixes=IMAGE_SUFFIXES, allow_empty=True)
        self._classes = index_by_stem(self.root / "classes", "classes", suffixes=LABEL_SUFFIXES, allow_empty=True)
        if not self._images:
            raise DataError(f"{self.root / 'images'}: no images ({', '.join(IMAGE_SUFFIXES)}); add some")
        self.names: list[str] = self._select(names)
        if segments == "auto":
            segments = "files" if (self.root / "segments").is_dir() else None
        self.segments = segments
        if segments == "files":
            missing = [n for n in self.names if find_segments(self.root, n) is None]
            if missing:
                raise DataError(f"{self.root / 'segments'}: no segments for {missing[0]} "
                                f"({len(missing)} image(s) missing); add segments/{missing[0]}.png")
        self.normalize = normalize
        txt = self.root / "classes.txt"
        self._class_names = read_class_names(txt) if txt.is_file() else None
        self._cache: dict[int, dict[str, Any]] = {}
        self._cache_budget = int(cache_mb * 2**20)

    def _select(self, names: Sequence[str] | None) -> list[str]:
        chosen = select_names(self.root, list(self._images), names, what="image", hint="use stems of images/ files")
        no_label = [n for n in chosen if n not in self._classes]
        if no_label:
            raise DataError(f"{self.root / 'classes'}: no class map for image '{no_label[0]}' "
                            f"({len(no_label)} missing); add classes/{no_label[0]}.png")
        return chosen

    @property
    def class_names(self) -> list[str]:
        """From ``classes.txt``, else ``class_0 .. class_{K-1}`` with K = 1 + the largest index found."""
        if self._class_names is None:
            top = max(int(self._read_classes(i).max(initial=0)) for i in range(len(self)))
            self._class_names = [f"class_{i}" for i in range(top + 1)]
        return self._class_names

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index in self._cache:
            return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in self._cache[index].items()}
        sample = self._read(index)
        nbytes = sum(v.nbytes for v in sample.values() if isinstance(v, np.ndarray))
        if nbytes <= self._cache_budget:
            self._cache_budget -= nbytes
            self._cache[index] = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in sample.items()}
        return sample

    def _read_classes(self, index: int) -> np.ndarray:
        path = self._classes[self.names[index]]
        classes = read_labels(path)
        if self._class_names is not None:
            bad = classes[(classes != IGNORE) & (classes >= len(self._class_names))]
            if bad.size:
                raise DataError(f"{path}: class index {int(bad.max())} >= {len(self._class_names)} classes "
                                f"listed in {self.root / 'classes.txt'}; fix the map or add the class name")
        return np.where(classes == IGNORE, -1, classes).astype(np.int64)

    def _read(self, index: int) -> dict[str, Any]:
        name = self.names[index]
        image = read_image(self._images[name])
        classes = self._read_classes(index)
        if image.shape[:2] != classes.shape:
            raise DataError(f"{self._images[name]} has size {image.shape[:2]} but {self._classes[name]} has "
                            f"size {classes.shape}; class maps must have the image's height and width")
        image = normalized_image(image, self.normalize)
        instances, owners = instances_from_classes(classes)
        sample = {"image": image, "classes": classes, "instances": instances, "instance_classes": owners,
                  "name": name}
        if self.segments is not None:
            sample["segments"] = self._segments(name, image)
        return sample

    def _segments(self, name: str, image: np.ndarray) -> np.ndarray:
        if self.segments == "files":
            path = find_segments(self.root, name)
            segments = read_segments(path)
            if segments.shape != image.shape[:2]:
                raise DataError(f"{path} has size {segments.shape} but the image has {image.shape[:2]}; "
                                "segments must have the image's height and width")
            return segments
        return oversegment(image, method=self.segments)

    def __repr__(self) -> str:
        return f"SemanticFolderDataset(root={str(self.root)!r}, n={len(self)}, segments={self.segments!r})"
