"""The ``folder`` dataset: ``ROOT/images/NAME.<ext>`` paired with ``ROOT/masks/NAME.<ext>`` by stem."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from skimage.measure import label as connected_components
from torch.utils.data import Dataset

from .base import DATASETS
from .io import (
    IMAGE_SUFFIXES,
    LABEL_SUFFIXES,
    DataError,
    files_by_stem,
    normalized_image,
    read_image,
    read_labels,
)
from .reader import Problem, select_names

logger = logging.getLogger(__name__)

_SHOW = 5  # names listed in an error message


def _listing(names: Sequence[str]) -> str:
    more = f" and {len(names) - _SHOW} more" if len(names) > _SHOW else ""
    return ", ".join(names[:_SHOW]) + more


def _files_by_stem(folder: Path, suffixes: Sequence[str], what: str) -> tuple[dict[str, Path], list[Problem]]:
    """Map stem -> file for the files of ``folder`` with one of ``suffixes``, and the problems found.

    A stem used twice (``a.png`` + ``a.tif``) and a JPEG mask are problems of that stem.
    """
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder not found; a folder dataset is ROOT/images + ROOT/masks")
    problems: list[Problem] = []
    if what == "masks":
        problems += [
            (stem, f"{path}: JPEG masks are lossy and corrupt label ids; save it as PNG or TIFF")
            for stem, paths in files_by_stem(folder, (".jpg", ".jpeg")).items() for path in paths
        ]
    by_stem: dict[str, Path] = {}
    for stem, paths in files_by_stem(folder, suffixes).items():
        by_stem[stem] = paths[0]
        problems += [
            (stem, f"{folder}: two files share the name '{stem}' ({paths[0].name}, {extra.name}); keep one")
            for extra in paths[1:]
        ]
    problems.sort(key=lambda problem: problem[0])  # stable: in stem order, as the files are listed
    return by_stem, problems


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
        skip_bad: instead of raising on the first problem, read every sample up front and skip
            (and record in ``skipped``) the unpaired, duplicated, unreadable, mismatched or
            non-finite (NaN/inf pixels) ones.
        binary_masks: ``components`` labels the connected components (8-connectivity) of each
            binary (0/1 or 0/255) mask as instances; ``check``/``objects`` read masks as stored
            (``pixelgroup check`` reports binary masks with several objects under ``check``).

    Attributes:
        names: the sample stems, sorted.
        skipped: ``(name, reason)`` of every sample dropped because ``skip_bad=True``.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        normalize: tuple[float, float] | None = (1.0, 99.8),
        names: Sequence[str] | None = None,
        cache_mb: float = 1024.0,
        skip_bad: bool = False,
        binary_masks: str = "check",
    ) -> None:
        self.root = Path(root)
        self.binary_masks = binary_masks
        if not self.root.is_dir():
            raise DataError(f"{self.root}: dataset folder not found; check the path")
        self._images, problems = _files_by_stem(self.root / "images", IMAGE_SUFFIXES, "images")
        self._masks, mask_problems = _files_by_stem(self.root / "masks", LABEL_SUFFIXES, "masks")
        if not self._images:
            raise DataError(f"{self.root / 'images'}: no images ({', '.join(IMAGE_SUFFIXES)}); add some")
        problems += mask_problems + _pairing_problems(self.root, self._images, self._masks)
        listed = sorted(set(self._images) | set(self._masks) | {name for name, _ in problems})
        chosen = select_names(self.root, listed, names, what="image", hint="use stems of files in images/")
        problems = [(name, why) for name, why in problems if name in chosen]
        if problems and not skip_bad:
            others = sorted({name for name, _ in problems[1:]})
            more = f" ({len(problems)} problems in all; also: {_listing(others)})" if others else ""
            raise DataError(f"{problems[0][1]}{more}; or pass skip_bad=True to skip bad samples")
        self.normalize = normalize
        self._cache: dict[str, dict[str, Any]] = {}
        self._cache_budget = int(cache_mb * 2**20)
        self.skipped: list[Problem] = list(problems)
        bad = {name for name, _ in problems}
        self.names: list[str] = [name for name in chosen if name not in bad]
        if skip_bad:
            self._drop_unreadable()

    def _drop_unreadable(self) -> None:
        kept = []
        for name in self.names:
            try:
                self._cached_read(name)
                kept.append(name)
            except DataError as err:
                self.skipped.append((name, str(err)))
        self.names = kept
        if self.skipped:
            logger.warning(
                "%s: skipped %d bad sample(s), kept %d (first: %s); see the dataset's .skipped",
                self.root, len(self.skipped), len(self.names), self.skipped[0][1],
            )

    def __len__(self) -> int:
        return len(self.names)

    def sample_files(self, index: int) -> dict[str, Path]:
        """The files sample ``index`` is read from: ``{"image": ..., "mask": ...}``."""
        name = self.names[index]
        return {"image": self._images[name], "mask": self._masks[name]}

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = self._cached_read(self.names[index])
        return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in sample.items()}

    def _cached_read(self, name: str) -> dict[str, Any]:
        """The sample ``name``, from the cache when there; the caller must not modify it."""
        if name in self._cache:
            return self._cache[name]
        sample = self._read(name)
        nbytes = sample["image"].nbytes + sample["instances"].nbytes
        if nbytes <= self._cache_budget:
            self._cache_budget -= nbytes
            self._cache[name] = sample
        return sample

    def _read(self, name: str) -> dict[str, Any]:
        image_path, mask_path = self._images[name], self._masks[name]
        image = read_image(image_path)
        if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
            raise DataError(f"{image_path}: image has NaN or inf pixels; re-export it with finite values "
                            "(e.g. np.nan_to_num) or remove it")
        instances = read_labels(mask_path)
        if self.binary_masks == "components" and set(np.unique(instances).tolist()) - {0} in ({1}, {255}):
            instances = connected_components(instances > 0, connectivity=2).astype(np.int64)
        if image.shape[:2] != instances.shape:
            raise DataError(
                f"{image_path} has size {image.shape[:2]} but {mask_path} has size {instances.shape}; "
                "masks must have the image's height and width"
            )
        return {"image": normalized_image(image, self.normalize), "instances": instances, "name": name}

    def __repr__(self) -> str:
        return f"FolderDataset(root={str(self.root)!r}, n={len(self)}, skipped={len(self.skipped)})"


def _pairing_problems(root: Path, images: dict[str, Path], masks: dict[str, Path]) -> list[Problem]:
    problems = [
        (name, f"{images[name]}: no mask for this image; add masks/{name}.tif (or .png) or remove the image")
        for name in sorted(set(images) - set(masks))
    ]
    problems += [
        (name, f"{masks[name]}: no image for this mask; add images/{name}.<ext> or remove the mask")
        for name in sorted(set(masks) - set(images))
    ]
    return problems


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
