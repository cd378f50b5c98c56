"""Opening a run's datasets: format detection, the pre-training data check, the validation split."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import data as _data  # noqa: F401  (registers the dataset readers)
from ..config import RunConfig
from ..data.check import check_dataset
from ..data.detect import detect_format
from ..data.folder import split_names
from ..data.open import open_dataset
from ..data.regions import MIN_BAND, count_objects, split_regions
from .build import get_method
from .errors import TrainingError

log = logging.getLogger(__name__)


def open_reader(cfg: RunConfig, root: str | Path, *, names=None, split: str | None = None):
    """The dataset reader of ``cfg.data.format`` (``auto``: detected from ``root``'s layout) with the
    run's normalisation, ``skip_bad`` and over-segmentation settings."""
    segments = None if cfg.data.segments == "auto" else cfg.data.segments
    fmt = detect_format(root) if cfg.data.format == "auto" else cfg.data.format
    binary = "components" if fmt == "folder" and cfg.data.binary_masks == "components" else None
    return open_dataset(root, format=fmt, normalize=cfg.data.normalize, names=names, split=split,
                        skip_bad=cfg.data.skip_bad, segments=segments, binary_masks=binary)


def check_before_training(cfg: RunConfig, root: str | Path) -> None:
    """Run ``pixelgroup check`` on ``root``; stop with its report when it finds errors."""
    if not Path(root).exists():
        raise FileNotFoundError(f"training data not found: {root}; give the dataset folder with --data")
    fmt = detect_format(root) if cfg.data.format == "auto" else cfg.data.format
    if fmt == "semantic_folder":  # its reader checks pairs, sizes and class ids when opened
        return
    binary = cfg.data.binary_masks if get_method(cfg).task == "instance" else "objects"
    report = check_dataset(root, format=fmt, max_samples=500, binary_masks=binary)
    for problem in report.warnings:
        log.warning("%s: %s (%s)", problem.file, problem.message, problem.fix)
    if report.blocking or (not report.ok and not cfg.data.skip_bad):
        how = "fix them" if report.blocking else "fix them or pass skip_bad (data.skip_bad: true)"
        raise TrainingError(f"{root} has problems; {how}:\n" + report.format())


def check_n_classes(cfg: RunConfig, reader) -> None:
    """Instance methods: ``model.n_classes`` must be 1 (class-agnostic instances, on any dataset) or
    the reader's number of object classes ``len(reader.class_names) - 1`` (multi-class instances)."""
    if get_method(cfg).task != "instance":
        return
    n, names = cfg.model.n_classes, getattr(reader, "class_names", None)
    k = len(names) - 1 if names else None
    if n == 1:
        if k is not None and k > 1:
            log.info("training class-agnostic instances; set model.n_classes: %d to predict the dataset's "
                     "%d classes too", k, k)
        return
    if k is None:
        raise TrainingError(f"model.n_classes = {n} but this dataset has no classes; use a dataset with classes "
                            "(voc, coco, cityscapes) or set model.n_classes: 1")
    if n != k:
        raise TrainingError(f"model.n_classes = {n} but the dataset has {k} object classes; set model.n_classes: "
                            f"{k} (or 1 for class-agnostic instances)")


REGION_SPLIT_BELOW = 8
"""``data.val_split: auto`` holds out regions of the images below this many images, whole images from it on."""


COUNT_OBJECTS_UP_TO = 200
"""The log counts the objects of held-out whole images up to this many images (each is read once more)."""


@dataclass(frozen=True)
class Datasets:
    """The training and validation datasets of a run, and how validation was chosen (for the log)."""

    train: Any
    val: Any
    how: str


def open_datasets(cfg: RunConfig, data: str | Path, val: str | Path | None) -> Datasets:
    """The training and validation datasets; without ``val`` a deterministic part of ``data`` is held
    out: a band of each image (``data.val_split: regions``, see :mod:`pixelgroup.data.regions`) or
    whole images (``images``); ``auto`` takes regions below 8 images."""
    full = open_reader(cfg, data, split=cfg.data.split)
    if val is not None:
        val_ds = open_reader(cfg, val, split="val" if cfg.data.split else None)
        return Datasets(full, val_ds, f"validation: {len(val_ds)} image(s) of {val}")
    mode = cfg.data.val_split
    if mode == "auto":
        mode = "regions" if len(full.names) < REGION_SPLIT_BELOW else "images"
    if mode == "regions":
        split = split_regions(full, cfg.data.val_fraction)
        if split is not None:
            return Datasets(split.train, split.val, split.describe())
        if len(full.names) < 2:
            raise TrainingError(
                f"{data}: only {len(full.names)} image(s), too small to hold out a validation band of at least "
                f"{MIN_BAND} px; pass --val DIR with validation images, or annotate a larger image")
        log.info("the images are too small to hold out a band of each; holding out whole images instead")
    elif len(full.names) < 2:
        raise TrainingError(
            f"{data}: only {len(full.names)} image(s); data.val_split: images needs at least 2 to hold out a "
            "validation image: set data.val_split: regions (a band of the image), or pass --val DIR")
    train_names, val_names = split_names(full.names, cfg.data.val_fraction, cfg.train.seed)
    val_ds = open_reader(cfg, data, names=val_names, split=cfg.data.split)
    how = f"validation: {len(val_names)} of {len(full.names)} images held out"
    if get_method(cfg).task == "instance" and len(val_ds) <= COUNT_OBJECTS_UP_TO:
        how += f" ({sum(count_objects(val_ds[i]) for i in range(len(val_ds)))} objects)"
    return Datasets(open_reader(cfg, data, names=train_names, split=cfg.data.split), val_ds, how)
