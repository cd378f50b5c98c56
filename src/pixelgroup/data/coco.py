"""The ``coco`` dataset: a COCO instances JSON (polygons, compressed and uncompressed RLE) + images.

``root`` is one of:
    * ``(image_folder, annotations_json)``;
    * a COCO folder ``ROOT/annotations/instances_TAG.json`` with images in ``ROOT/TAG/``,
      ``ROOT/images/TAG/`` or ``ROOT/images/`` (first that exists). With several annotation files
      ``split=TAG`` chooses one (e.g. ``split="val2017"``);
    * the ``.json`` itself, images found as above (``ROOT`` = the folder above ``annotations/``).

Overlaps: instances are painted largest first, so where two overlap the smaller one is on top and
owns the shared pixels (a large object overlapped by a small one is more likely behind it); an
instance left without pixels disappears. Crowd regions (``iscrowd=1``) become ignore (-1) in
``instances`` where no non-crowd instance lies, and keep their category in ``classes``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from ..ops.labels import relabel_consecutive
from .base import DATASETS
from .detect import coco_annotation_files
from .io import DataError
from .reader import Problem, SampleFiles, StandardReader, image_size

logger = logging.getLogger(__name__)

POLYGON_SLACK = 1.0  # pixels a polygon vertex may lie outside the image (COCO vertices touch the border)


def coco_paths(root: Any, split: str | None = None) -> tuple[Path, Path]:
    """``(image_folder, annotations_json)`` for any accepted form of ``root`` (see the module doc)."""
    if isinstance(root, (tuple, list)):
        if len(root) != 2:
            raise DataError(f"COCO root {root!r}: give (image_folder, annotations.json)")
        images, ann = Path(root[0]), Path(root[1])
    else:
        base = Path(root)
        files = coco_annotation_files(base)
        if split is not None:
            files = [f for f in files if f.stem == f"instances_{split}"]
        if len(files) != 1:
            have = ", ".join(f.stem for f in coco_annotation_files(base)) or "none"
            what = "no" if not files else "several"
            raise DataError(
                f"{base}: {what} annotations/instances_*.json match (found: {have}); pass split=TAG for "
                "instances_TAG.json, or root=(image_folder, annotations.json)"
            )
        ann = files[0]
        tag = ann.stem.removeprefix("instances_")
        if base.is_file():
            base = ann.parent.parent if ann.parent.name == "annotations" else ann.parent
        tried = [base / tag, base / "images" / tag, base / "images"]
        images = next((p for p in tried if p.is_dir()), tried[0])
    if not ann.is_file():
        raise DataError(f"{ann}: COCO annotations file not found; check the path")
    if not images.is_dir():
        raise DataError(f"{images}: COCO image folder not found; pass root=(image_folder, annotations.json)")
    return images, ann


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise DataError(f"{path}: cannot read COCO JSON ({why}); re-download or re-export it") from None
    missing = [k for k in ("images", "annotations", "categories") if not isinstance(data.get(k), list)]
    if missing:
        raise DataError(f"{path}: not a COCO instances file (no list '{missing[0]}'); use instances_*.json")
    return data


def check_annotation(ann: dict[str, Any], height: int, width: int, categories: dict[int, int]) -> str | None:
    """Why a COCO annotation cannot be used on an ``height x width`` image, or ``None`` when it can."""
    what = f"annotation {ann.get('id', '?')}"
    if ann.get("category_id") not in categories:
        return f"{what}: category_id {ann.get('category_id')} is not in the file's categories"
    seg = ann.get("segmentation")
    if isinstance(seg, list):
        for poly in seg:
            if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
                return f"{what}: a polygon needs an even number (>= 6) of coordinates x1, y1, x2, y2, ..."
            xy = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
            out = (xy < -POLYGON_SLACK).any(axis=1) | (xy[:, 0] > width + POLYGON_SLACK) | (
                xy[:, 1] > height + POLYGON_SLACK
            )
            if out.any():
                x, y = xy[np.argmax(out)]
                return f"{what}: polygon point (x={x:g}, y={y:g}) lies outside the {width}x{height} image"
        return None
    if isinstance(seg, dict) and "counts" in seg:
        if list(seg.get("size", [])) != [height, width]:
            return f"{what}: RLE size {seg.get('size')} differs from the image's [{height}, {width}]"
        counts = seg["counts"]
        if isinstance(counts, list) and sum(counts) != height * width:
            return f"{what}: uncompressed RLE counts sum to {sum(counts)}, not height*width {height * width}"
        if not isinstance(counts, (list, str, bytes)):
            return f"{what}: RLE counts must be a list or a string"
        return None
    return f"{what}: segmentation must be polygons (list) or RLE (dict with size and counts)"


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """``(H, W)`` bool mask of a COCO polygon list, uncompressed RLE or compressed RLE."""
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = seg
    return mask_utils.decode(rle).astype(bool)


@DATASETS.register("coco")
class COCODataset(StandardReader):
    """COCO instance annotations as label images.

    A sample: ``image`` ``(H, W, C)`` float32 normalised; ``instances`` ``(H, W)`` int64 (1..N, -1 =
    crowd); ``classes`` ``(H, W)`` int64 contiguous class 1..K; ``instance_classes`` ``(N,)``;
    ``name`` = the image file's stem. Images without annotations are kept (all background).

    Attributes:
        category_ids: COCO category id of class ``k`` at ``category_ids[k - 1]`` (sorted ids).
        image_ids: name -> COCO image id (for :func:`pixelgroup.data.writers.write_coco_results`).

    Args (the constructor is :class:`~pixelgroup.data.reader.StandardReader`'s):
        root: ``(image_folder, annotations_json)`` or a COCO folder (see the module doc).
        split: with a folder root, the ``TAG`` of ``annotations/instances_TAG.json`` to read.
        skip_bad: checks every image header when the reader is built.
    """

    format_name = "coco"

    def _open(self, root: Any, split: str | None) -> tuple[SampleFiles, list[Problem]]:
        self.image_dir, self.annotation_file = coco_paths(root, split)
        self.root = self.annotation_file
        data = _read_json(self.annotation_file)
        cats = sorted(data["categories"], key=lambda c: c["id"])
        self.category_ids = [int(c["id"]) for c in cats]
        self.class_names = ["background"] + [str(c.get("name", c["id"])) for c in cats]
        self._class_of = {cid: k + 1 for k, cid in enumerate(self.category_ids)}
        problems = self._index_images(data["images"])
        problems += self._index_annotations(data["annotations"])
        files = {
            name: {"image": self.image_dir / entry["file_name"], "annotations": self.annotation_file}
            for name, entry in self._entries.items()
        }
        return files, problems

    def _index_images(self, images: list[dict[str, Any]]) -> list[Problem]:
        self._entries: dict[str, dict[str, Any]] = {}
        self.image_ids: dict[str, int] = {}
        self._anns: dict[str, list[dict[str, Any]]] = {}
        problems = []
        for entry in images:
            missing = [k for k in ("id", "file_name", "height", "width") if k not in entry]
            if missing:
                where = self.annotation_file
                raise DataError(f"{where}: image entry {entry} has no '{missing[0]}'; fix the JSON")
            name = Path(entry["file_name"]).stem
            if name in self._entries:
                problems.append((name, f"{self.annotation_file}: two images are named '{name}'; rename one"))
                continue
            self._entries[name] = entry
            self.image_ids[name] = int(entry["id"])
            self._anns[name] = []
            path = self.image_dir / entry["file_name"]
            if not path.is_file():
                problems.append((name, f"{path}: image file not found; add it"))
        return problems

    def _index_annotations(self, anns: list[dict[str, Any]]) -> list[Problem]:
        by_id = {int(e["id"]): name for name, e in self._entries.items()}
        problems = []
        for ann in anns:
            name = by_id.get(int(ann.get("image_id", -1)))
            if name is None:
                what = f"annotation {ann.get('id', '?')}"
                why = f"{what} refers to image_id {ann.get('image_id')}, which is not in 'images'"
                problems.append((what, f"{self.annotation_file}: {why}"))
                continue
            entry = self._entries[name]
            why = check_annotation(ann, int(entry["height"]), int(entry["width"]), self._class_of)
            if why is not None:
                problems.append((name, f"{self.annotation_file}: {why} ({entry['file_name']})"))
            self._anns[name].append(ann)
        return problems

    def image_id(self, index: int) -> int:
        """COCO image id of sample ``index``."""
        return self.image_ids[self.names[index]]

    def _validate(self, name: str) -> None:
        self._check_size(name, image_size(self._files(name)["image"]))

    def _check_size(self, name: str, size: tuple[int, int]) -> tuple[int, int]:
        entry = self._entries[name]
        expected = (int(entry["height"]), int(entry["width"]))
        if tuple(size) != expected:
            raise DataError(
                f"{self._files(name)['image']} has size {tuple(size)} but {self.annotation_file} says "
                f"{expected}; use the image the annotations were made on"
            )
        return expected

    def _annotation(self, name: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
        height, width = self._check_size(name, size)
        masks, cls, crowd = [], [], np.zeros((height, width), bool)
        crowd_classes = np.zeros((height, width), np.int64)
        for ann in self._anns[name]:
            mask = decode_segmentation(ann["segmentation"], height, width)
            if ann.get("iscrowd", 0):
                crowd |= mask
                crowd_classes[mask] = self._class_of[ann["category_id"]]
            else:
                masks.append((-int(mask.sum()), int(ann.get("id", 0)), mask))
                cls.append(self._class_of[ann["category_id"]])
        order = sorted(range(len(masks)), key=lambda i: masks[i][:2])  # largest first, then by id
        painted = np.zeros((height, width), np.int64)
        for rank, i in enumerate(order):
            painted[masks[i][2]] = rank + 1
        instances, original = relabel_consecutive(np.where((painted == 0) & crowd, -1, painted))
        instance_classes = np.asarray([cls[order[r - 1]] for r in original], dtype=np.int64)
        lookup = np.concatenate([[0], instance_classes])
        classes = np.where(instances > 0, lookup[np.maximum(instances, 0)], crowd_classes)
        return {"instances": instances, "classes": classes, "instance_classes": instance_classes}
