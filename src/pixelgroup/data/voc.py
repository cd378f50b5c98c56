"""The ``voc`` dataset: PASCAL VOC 2012 instance segmentation (SegmentationObject + SegmentationClass).

Layout (``root`` may also be its parent holding ``VOC2012/`` or ``VOCdevkit/VOC2012/``)::

    JPEGImages/NAME.jpg
    SegmentationObject/NAME.png   palette PNG, instance index per pixel, 0 = background, 255 = border
    SegmentationClass/NAME.png    palette PNG, class 0..20 per pixel, 255 = border
    ImageSets/Segmentation/{train,val,trainval}.txt
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ops.labels import relabel_consecutive
from .base import DATASETS
from .detect import voc_root
from .io import DataError, read_labels
from .reader import Problem, SampleFiles, StandardReader, check_size

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
VOC_IGNORE = 255


@DATASETS.register("voc")
class VOCDataset(StandardReader):
    """PASCAL VOC 2012 object instances with their classes.

    A sample: ``image`` ``(H, W, 3)`` float32 normalised; ``instances`` ``(H, W)`` int64 (VOC's
    object indices renumbered 1..N, border 255 -> -1); ``classes`` ``(H, W)`` int64 (0..20, border
    -> -1); ``instance_classes`` ``(N,)`` the majority class of each instance's non-border pixels;
    ``name``. Constructor: see :class:`~pixelgroup.data.reader.StandardReader`.

    Args:
        root: the ``VOC2012`` folder (or a parent holding ``VOC2012/`` or ``VOCdevkit/VOC2012/``).
        split: ``ImageSets/Segmentation/{split}.txt`` (``train``, ``val``, ``trainval``); ``None`` =
            every ``SegmentationObject/*.png``.
        skip_bad: skip samples with missing or malformed files (checked when the reader is built).
    """

    format_name = "voc"

    def _open(self, root: str | Path, split: str | None) -> tuple[SampleFiles, list[Problem]]:
        base = voc_root(Path(root))
        if base is None:
            raise DataError(
                f"{root}: not a VOC 2012 folder (no JPEGImages/ + SegmentationObject/ in it, in VOC2012/ "
                "or in VOCdevkit/VOC2012/); check the path"
            )
        self.root = base
        self.class_names = list(VOC_CLASSES)
        files, problems = {}, []
        for name in self._listed(split):
            files[name] = {
                "image": base / "JPEGImages" / f"{name}.jpg",
                "objects": base / "SegmentationObject" / f"{name}.png",
                "classes": base / "SegmentationClass" / f"{name}.png",
            }
            missing = [p for p in files[name].values() if not p.is_file()]
            if missing:
                problems.append((name, f"{missing[0]}: file not found for VOC sample '{name}'; add it"))
        return files, problems

    def _listed(self, split: str | None) -> list[str]:
        if split is None:
            return sorted(p.stem for p in (self.root / "SegmentationObject").glob("*.png"))
        sets = self.root / "ImageSets" / "Segmentation"
        path = sets / f"{split}.txt"
        if not path.is_file():
            have = sorted(p.stem for p in sets.glob("*.txt")) or ["(none)"]
            raise DataError(f"{path}: split '{split}' not found; available: {', '.join(have)}")
        return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]

    def _annotation(self, name: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
        files = self._files(name)
        objects, classes = read_labels(files["objects"]), read_labels(files["classes"])
        check_size(size, objects, files["image"], files["objects"])
        check_size(size, classes, files["image"], files["classes"])
        bad = (classes >= len(VOC_CLASSES)) & (classes != VOC_IGNORE)
        if bad.any():
            raise DataError(
                f"{files['classes']}: class id {int(classes[bad][0])} outside VOC's table 0..20 "
                f"(255 = border); fix the annotation or remove '{name}'"
            )
        classes = np.where(classes == VOC_IGNORE, -1, classes)
        instances, original = relabel_consecutive(np.where(objects == VOC_IGNORE, -1, objects))
        instance_classes = _majority_class(instances, classes, len(original))
        empty = np.flatnonzero(instance_classes == 0)
        if empty.size:
            raise DataError(
                f"{files['objects']}: object {int(original[empty[0]])} has no object-class pixels in "
                f"{files['classes']}; the two annotations of '{name}' disagree"
            )
        return {"instances": instances, "classes": classes, "instance_classes": instance_classes}


def _majority_class(instances: np.ndarray, classes: np.ndarray, n: int) -> np.ndarray:
    """``(N,)`` most frequent class >= 1 under each instance 1..N (0 when it has none)."""
    k = len(VOC_CLASSES)
    keep = (instances > 0) & (classes > 0)
    votes = np.bincount((instances[keep] - 1) * k + classes[keep], minlength=n * k).reshape(n, k)
    return np.where(votes.any(axis=1), votes.argmax(axis=1), 0).astype(np.int64)
