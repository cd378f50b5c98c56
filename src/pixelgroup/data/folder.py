"""The ``folder`` dataset: ``ROOT/images/NAME.<ext>`` paired with ``ROOT/masks/NAME.<ext>`` by stem."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from .base import DATASETS
from .io import IMAGE_SUFFIXES, LABEL_SUFFIXES, DataError, normalize_percentile, read_image, read_labels

logger = logging.getLogger(__name__)

_SHOW = 5  # names listed in an error message


def _listing(names: Sequence[str]) -> str:
    more = f" and {len(names) - _SHOW} more" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def _files_by_stem(folder: Path, suffixes: Sequence[str], what: str) -> dict[str, Path]:
    """Map stem -> file for the files of ``folder`` with one of ``suffixes``; duplicate stems raise."""
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder not found; a folder dataset is ROOT/images + ROOT/masks")
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if what == "masks" and suffix in (".jpg", ".jpeg"):
            raise DataError(f"{path}: JPEG masks are lossy and corrupt label ids; save masks as PNG or TIFF")
        if suffix not in suffixes:
            continue
        if path.stem in by_stem:
            raise DataError(
                f"{folder}: two {what} files share the name '{path.stem}' ({by_stem[path.stem].name}, "
                f"{path.name}); keep one"
            )
        by_stem[path.stem] = path
    return by_stem


@DATASETS.register("folder")
class FolderDataset(Dataset):
    """Images and instance masks paired by file stem.

    Layout: ``root/images/NAME.{tif,tiff,png,jpg,jpeg}`` and ``root/masks/NAME.{tif,tiff,png}``; every
    image needs a mask and every mask an image. A sample (see :mod:`pixelgroup.data.base`) is
    ``{"image": (H, W, C) float32 normalised, "instances": (H, W) int64, "name": str}``.

    Args:
        root: the dataset folder.
        normalize: ``(low, high)`` percentiles mapped to 0 and 1 per image and channel, or ``None``
            to keep raw intensities (as float32).
        names: restrict to these stems (e.g. one side of :func:`split_names`); ``None`` = all.
        cache_mb: keep decoded samples in memory up to this many megabytes (0 = never cache).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        normalize: tuple[float, float] | None = (1.0, 99.8),
        names: Sequence[str] | None = None,
        cache_mb: float = 1024.0,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found; check the path")
        images = _files_by_stem(self.root / "images", IMAGE_SUFFIXES, "images")
        masks = _files_by_stem(self.root / "masks", LABEL_SUFFIXES, "masks")
        if not images:
            raise DataError(f"{self.root / 'images'}: no images ({', '.join(IMAGE_SUFFIXES)}); add some")
        _check_pairs(self.root, images, masks)
        self.names: list[str] = sorted(images) if names is None else _subset(self.root, images, names)
        self._images = images
        self._masks = masks
        self.normalize = normalize
        self._cache: dict[int, dict[str, Any]] = {}
        self._cache_budget = int(cache_mb * 2**20)

    def __len__(self) -> int:
        return len(self.names)

    def image_path(self, index: int) -> Path:
        return self._images[self.names[index]]

    def mask_path(self, index: int) -> Path:
        return self._masks[self.names[index]]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index in self._cache:
            sample = self._cache[index]
            return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in sample.items()}
        sample = self._read(index)
        nbytes = sample["image"].nbytes + sample["instances"].nbytes
        if nbytes <= self._cache_budget:
            self._cache_budget -= nbytes
            self._cache[index] = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in sample.items()}
        return sample

    def _read(self, index: int) -> dict[str, Any]:
        image_path, mask_path = self.image_path(index), self.mask_path(index)
        image = read_image(image_path)
        instances = read_labels(mask_path)
        if image.shape[:2] != instances.shape:
            raise DataError(
                f"{image_path} has size {image.shape[:2]} but {mask_path} has size {instances.shape}; "
                "masks must have the image's height and width"
            )
        if self.normalize is None:
            image = (image[..., None] if image.ndim == 2 else image).astype(np.float32)
        else:
            image = normalize_percentile(image, *self.normalize)
        return {"image": image, "instances": instances, "name": self.names[index]}

    def __repr__(self) -> str:
        return f"FolderDataset(root={str(self.root)!r}, n={len(self)})"


def _check_pairs(root: Path, images: dict[str, Path], masks: dict[str, Path]) -> None:
    no_mask = sorted(set(images) - set(masks))
    if no_mask:
        raise DataError(
            f"{root / 'masks'}: no mask for {len(no_mask)} image(s): {_listing(no_mask)}; add "
            "masks/NAME.tif (or .png) with the image's name, or remove the images"
        )
    no_image = sorted(set(masks) - set(images))
    if no_image:
        raise DataError(
            f"{root / 'images'}: no image for {len(no_image)} mask(s): {_listing(no_image)}; add the "
            "images or remove the masks"
        )


def _subset(root: Path, images: dict[str, Path], names: Sequence[str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError("names must be a sequence of file stems, not a single string")
    unknown = sorted(set(names) - set(images))
    if unknown:
        raise DataError(f"{root}: unknown image name(s) {_listing(unknown)}; use stems of files in images/")
    return sorted(set(names))


def _rank(name: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}\0{name}".encode()).digest()


def split_names(names: Sequence[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """Split names into ``(train, val)``, deterministically and independently of the input order.

    Each name is ranked by a hash of ``(seed, name)``; the first ``round(val_fraction * n)`` go to
    validation (at least 1 when ``val_fraction > 0`` and ``n >= 2``, at most ``n - 1``). Adding
    images later moves few of the existing ones across the split. Both lists are sorted.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    unique = sorted(set(names))
    n_val = round(val_fraction * len(unique))
    if val_fraction > 0 and len(unique) >= 2:
        n_val = max(n_val, 1)
    n_val = min(n_val, max(len(unique) - 1, 0))  # always keep one training image
    ranked = sorted(unique, key=lambda name: _rank(name, seed))
    return sorted(ranked[n_val:]), sorted(ranked[:n_val])
