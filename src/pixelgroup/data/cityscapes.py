"""The ``cityscapes`` dataset: fine instance annotations of the 8 Cityscapes "thing" classes.

Layout::

    gtFine/SPLIT/CITY/NAME_gtFine_instanceIds.png     (NAME = CITY_SEQUENCE_FRAME)
    leftImg8bit/SPLIT/CITY/NAME_leftImg8bit.png

A pixel value ``v >= 1000`` is instance ``v % 1000`` of label id ``v // 1000``; ``v < 1000`` is a
bare label id. Label ids 24-28 and 31-33 (person, rider, car, truck, bus, train, motorcycle,
bicycle) become classes 1..8; their pixels without an instance id (crowd "group" regions) are
ignore (-1) in ``instances`` and keep their class in ``classes``; every other label is background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ops.labels import relabel_consecutive
from .base import DATASETS
from .detect import cityscapes_root
from .io import DataError, read_labels
from .reader import Problem, SampleFiles, StandardReader, check_size, files_with_suffix

INSTANCE_CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
INSTANCE_LABEL_IDS = (24, 25, 26, 27, 28, 31, 32, 33)
"""Cityscapes label id of class ``k`` (1..8) at ``INSTANCE_LABEL_IDS[k - 1]``."""
MAX_LABEL_ID = 33
GT_SUFFIX = "_gtFine_instanceIds.png"
IMAGE_SUFFIX = "_leftImg8bit.png"

_CLASS_OF_LABEL = np.zeros(MAX_LABEL_ID + 1, np.int64)  # label id -> class 0..8
_CLASS_OF_LABEL[list(INSTANCE_LABEL_IDS)] = np.arange(1, len(INSTANCE_LABEL_IDS) + 1)


@DATASETS.register("cityscapes")
class CityscapesDataset(StandardReader):
    """Cityscapes fine instance segmentation.

    A sample: ``image`` ``(H, W, 3)`` float32 normalised; ``instances`` ``(H, W)`` int64 (1..N in
    ascending order of the stored ids, -1 = group regions); ``classes`` ``(H, W)`` int64 0..8;
    ``instance_classes`` ``(N,)`` 1..8; ``name`` = ``CITY_SEQUENCE_FRAME``. Constructor: see
    :class:`~pixelgroup.data.reader.StandardReader`.

    Args:
        root: the folder holding ``gtFine/`` and ``leftImg8bit/``.
        split: ``train``, ``val`` or ``test``; ``None`` = every split folder of ``gtFine/`` except
            ``test`` (whose public labels are empty placeholders).
        skip_bad: reads every label image when the reader is built.
    """

    format_name = "cityscapes"

    def _open(self, root: str | Path, split: str | None) -> tuple[SampleFiles, list[Problem]]:
        base = cityscapes_root(Path(root))
        if base is None:
            raise DataError(f"{root}: not a Cityscapes folder (no gtFine/ + leftImg8bit/); check the path")
        self.root = base
        self.class_names = ["background", *INSTANCE_CLASSES]
        self.label_ids = list(INSTANCE_LABEL_IDS)
        files: SampleFiles = {}
        problems = []
        for sp in self._splits(split):
            problems += self._list_split(sp, files)
        return files, problems

    def _splits(self, split: str | None) -> list[str]:
        have = sorted(p.name for p in (self.root / "gtFine").iterdir() if p.is_dir())
        if split is None:
            return [s for s in have if s != "test"]
        if split not in have:
            have_text = ", ".join(have) or "none"
            raise DataError(f"{self.root / 'gtFine' / split}: split not found; available: {have_text}")
        return [split]

    def _list_split(self, split: str, files: SampleFiles) -> list[Problem]:
        """Add the samples of ``split`` to ``files``; the problems found."""
        problems = []
        gt_dir, image_dir = self.root / "gtFine" / split, self.root / "leftImg8bit" / split
        gts = files_with_suffix(gt_dir, GT_SUFFIX, "*/*")
        images = files_with_suffix(image_dir, IMAGE_SUFFIX, "*/*")
        for name in sorted(set(gts) | set(images)):
            if name in files:
                problems.append((name, f"{gts.get(name, images.get(name))}: '{name}' appears in two splits"))
            elif name not in images:
                problems.append((name, f"{gts[name]}: no image {name}{IMAGE_SUFFIX} in {image_dir}; add it"))
            elif name not in gts:
                problems.append((name, f"{images[name]}: image without its label {name}{GT_SUFFIX}; add it"))
            else:
                files[name] = {"image": images[name], "instance_ids": gts[name]}
        return problems

    def _annotation(self, name: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
        files = self._files(name)
        ids = read_labels(files["instance_ids"])
        check_size(size, ids, files["image"], files["instance_ids"])
        label = np.where(ids >= 1000, ids // 1000, ids)
        not_thing = _CLASS_OF_LABEL[np.minimum(label, MAX_LABEL_ID)] == 0
        bad = (label > MAX_LABEL_ID) | ((ids >= 1000) & not_thing)
        if bad.any():
            v = int(ids[bad][0])
            raise DataError(
                f"{files['instance_ids']}: value {v} (label id {v // 1000 if v >= 1000 else v}) is outside "
                f"the Cityscapes table (label ids 0-{MAX_LABEL_ID}, instance ids only for 24-28 and 31-33)"
            )
        classes = _CLASS_OF_LABEL[label]
        group = (ids < 1000) & (classes > 0)
        instances, original = relabel_consecutive(np.where(group, -1, np.where(ids >= 1000, ids, 0)))
        instance_classes = _CLASS_OF_LABEL[original // 1000].astype(np.int64)
        return {"instances": instances, "classes": classes, "instance_classes": instance_classes}
