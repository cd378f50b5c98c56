"""Tiny datasets of each standard layout, built on the fly, with the samples a reader must return.

Every builder writes under ``root`` and returns ``{name: expected}`` where ``expected`` holds the
``instances``, ``classes`` and ``instance_classes`` a correct reader gives, derived from the
rectangles drawn here (not from any pixelgroup code). Rectangles are ``(y0, y1, x0, x1)``, end
exclusive.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image
from pycocotools import mask as mask_utils

VOC_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [7] * (3 * 250) + [224, 224, 192] * 2


def rect(shape: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    y0, y1, x0, x1 = box
    m = np.zeros(shape, bool)
    m[y0:y1, x0:x1] = True
    return m


def noise_image(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A textured uint8 image (never constant)."""
    return np.random.default_rng(seed).integers(20, 235, size=shape, dtype=np.uint8)


def save_palette_png(path: Path, ids: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(ids.astype(np.uint8))
    im.putpalette(VOC_PALETTE)
    assert im.mode == "P"
    im.save(path)


def save_png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _expected(instances: np.ndarray, classes: np.ndarray, instance_classes: list[int]) -> dict:
    return {
        "instances": instances.astype(np.int64),
        "classes": classes.astype(np.int64),
        "instance_classes": np.asarray(instance_classes, np.int64),
    }


# ---------------------------------------------------------------------------------------------- VOC
def make_voc(root: Path, n: int = 3, shape: tuple[int, int] = (40, 48)) -> dict[str, dict]:
    """VOCdevkit/VOC2012 with ``n`` images: a person (object 1, with a 255 border) and a car (object 3).

    The car's class map has a few person pixels: its majority class is still car (7).
    """
    base = root / "VOCdevkit" / "VOC2012"
    expected = {}
    for i in range(n):
        name = f"2007_{i:06d}"
        person, car = rect(shape, (4, 20, 4, 20)), rect(shape, (22, 36, 24, 44))
        border = rect(shape, (3, 21, 3, 21)) & ~person
        objects = np.zeros(shape, np.uint8)
        objects[person], objects[car], objects[border] = 1, 3, 255
        classes = np.zeros(shape, np.uint8)
        classes[person], classes[car], classes[border] = 15, 7, 255
        classes[22, 24:28] = 15  # 4 stray person pixels inside the car (majority stays car)
        save_png(base / "JPEGImages" / f"{name}.jpg", noise_image((*shape, 3), i))
        save_palette_png(base / "SegmentationObject" / f"{name}.png", objects)
        save_palette_png(base / "SegmentationClass" / f"{name}.png", classes)
        inst = np.zeros(shape, np.int64)
        inst[person], inst[car], inst[border] = 1, 2, -1
        cls = classes.astype(np.int64)
        cls[border] = -1
        expected[name] = _expected(inst, cls, [15, 7])
    sets = base / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    names = sorted(expected)
    (sets / "train.txt").write_text("\n".join(names[:-1]) + "\n")
    (sets / "val.txt").write_text(names[-1] + "\n")
    return expected


# --------------------------------------------------------------------------------------------- COCO
COCO_SHAPE = (48, 64)
COCO_CATEGORIES = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]  # sorted ids: cat = 1, dog = 2


def polygon(box: tuple[int, int, int, int]) -> list[float]:
    """A COCO polygon whose rasterisation is exactly the pixels of ``box``."""
    y0, y1, x0, x1 = box
    return [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": list(rle["size"]), "counts": rle["counts"].decode("ascii")}


def uncompressed_rle(mask: np.ndarray) -> dict:
    flat = mask.ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0, *counts]
    return {"size": list(mask.shape), "counts": counts}


def make_coco(root: Path) -> dict[str, dict]:
    """``root/annotations/instances_val.json`` + ``root/val/*.png``, 3 images.

    img_a: cat polygon (ann 1), dog compressed RLE (ann 2, 600 px) with a 4x4 cat uncompressed RLE
    on it (ann 3, smaller -> on top), a crowd of cats (ann 4, uncompressed RLE) -> ignore.
    img_b: one dog polygon of two parts. img_c: no annotations.
    """
    shape = COCO_SHAPE
    boxes = {
        "cat": (4, 20, 4, 24), "dog": (10, 30, 30, 60), "small": (14, 18, 36, 40), "crowd": (36, 46, 2, 30)
    }
    anns = [
        {"id": 1, "image_id": 1, "category_id": 3, "iscrowd": 0, "segmentation": [polygon(boxes["cat"])]},
        {"id": 2, "image_id": 1, "category_id": 7, "iscrowd": 0,
         "segmentation": compressed_rle(rect(shape, boxes["dog"]))},
        {"id": 3, "image_id": 1, "category_id": 3, "iscrowd": 0,
         "segmentation": uncompressed_rle(rect(shape, boxes["small"]))},
        {"id": 4, "image_id": 1, "category_id": 3, "iscrowd": 1,
         "segmentation": uncompressed_rle(rect(shape, boxes["crowd"]))},
        {"id": 5, "image_id": 2, "category_id": 7, "iscrowd": 0,
         "segmentation": [polygon((2, 10, 2, 12)), polygon((30, 40, 40, 50))]},
    ]
    for ann in anns:
        m = mask_utils.decode(_as_rle(ann["segmentation"]))
        ann["area"], ann["bbox"] = float(m.sum()), [0.0, 0.0, 1.0, 1.0]
    images = [
        {"id": k + 1, "file_name": f"img_{c}.png", "height": shape[0], "width": shape[1]}
        for k, c in enumerate("abc")
    ]
    for k, entry in enumerate(images):
        save_png(root / "val" / entry["file_name"], noise_image((*shape, 3), 10 + k))
    write_json(root / "annotations" / "instances_val.json",
               {"images": images, "annotations": anns, "categories": COCO_CATEGORIES})
    # expected: painted largest first -> dog (600 px) = 1, cat polygon (320 px) = 2, small cat = 3
    dog, cat, small, crowd = (rect(shape, boxes[k]) for k in ("dog", "cat", "small", "crowd"))
    inst_a = np.zeros(shape, np.int64)
    inst_a[dog], inst_a[cat], inst_a[small], inst_a[crowd] = 1, 2, 3, -1
    cls_a = np.zeros(shape, np.int64)
    cls_a[dog], cls_a[cat], cls_a[small], cls_a[crowd] = 2, 1, 1, 1
    inst_b = (rect(shape, (2, 10, 2, 12)) | rect(shape, (30, 40, 40, 50))).astype(np.int64)
    empty = np.zeros(shape, np.int64)
    return {
        "img_a": _expected(inst_a, cls_a, [2, 1, 1]),
        "img_b": _expected(inst_b, inst_b * 2, [2]),
        "img_c": _expected(empty, empty, []),
    }


def _as_rle(seg):
    h, w = COCO_SHAPE
    if isinstance(seg, list):
        return mask_utils.merge(mask_utils.frPyObjects(seg, h, w))
    return mask_utils.frPyObjects(seg, h, w) if isinstance(seg["counts"], list) else seg


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def edit_coco(root: Path, edit) -> None:
    """Apply ``edit(data)`` to the fixture's JSON in place."""
    path = root / "annotations" / "instances_val.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


# --------------------------------------------------------------------------------------- Cityscapes
CITY_SHAPE = (32, 64)


def make_cityscapes(root: Path, split: str = "train", city: str = "aachen", n: int = 2) -> dict[str, dict]:
    """gtFine + leftImg8bit: a person 24000, cars 26000 and 26001, a bicycle 33000, a person group
    region (label 24 without instance id -> ignore), a building (label 11 -> background)."""
    shape = CITY_SHAPE
    expected = {}
    for i in range(n):
        name = f"{city}_{i:06d}_000019"
        ids = np.full(shape, 7, np.uint16)  # road
        ids[0:6, :] = 11  # building
        parts = {
            24000: (8, 20, 2, 8), 26000: (10, 20, 12, 30), 26001: (10, 20, 32, 44), 33000: (22, 30, 50, 60)
        }
        for v, box in parts.items():
            ids[rect(shape, box)] = v
        group = rect(shape, (22, 30, 2, 14))
        ids[group] = 24
        gt = root / "gtFine" / split / city / f"{name}_gtFine_instanceIds.png"
        save_png(gt, ids)
        image = root / "leftImg8bit" / split / city / f"{name}_leftImg8bit.png"
        save_png(image, noise_image((*shape, 3), 20 + i))
        inst = np.zeros(shape, np.int64)
        cls = np.zeros(shape, np.int64)
        for k, (v, c) in enumerate([(24000, 1), (26000, 3), (26001, 3), (33000, 8)]):
            inst[rect(shape, parts[v])], cls[rect(shape, parts[v])] = k + 1, c
        inst[group], cls[group] = -1, 1
        expected[name] = _expected(inst, cls, [1, 3, 3, 8])
    return expected


# -------------------------------------------------------------------------------------------- CVPPP
CVPPP_SHAPE = (36, 40)


def make_cvppp(root: Path) -> dict[str, dict]:
    """A1/plant001 (palette label, leaf indices 2 and 5), A2/plant002 (RGB-rendered label, 2 leaves)."""
    shape = CVPPP_SHAPE
    leaf1, leaf2 = rect(shape, (4, 16, 4, 18)), rect(shape, (20, 32, 10, 30))
    ids = np.zeros(shape, np.uint8)
    ids[leaf1], ids[leaf2] = 5, 2
    rgba = np.dstack([noise_image((*shape, 3), 30), np.full(shape, 255, np.uint8)])
    save_png(root / "A1" / "plant001_rgb.png", rgba)
    save_palette_png(root / "A1" / "plant001_label.png", ids)
    save_png(root / "A1" / "plant001_fg.png", ((ids > 0) * 255).astype(np.uint8))  # ignored by the reader
    colours = np.zeros((*shape, 3), np.uint8)
    colours[leaf1], colours[leaf2] = (200, 40, 40), (40, 200, 40)
    save_png(root / "A2" / "plant002_rgb.png", noise_image((*shape, 3), 31))
    save_png(root / "A2" / "plant002_label.png", colours)
    inst1 = np.zeros(shape, np.int64)
    inst1[leaf2], inst1[leaf1] = 1, 2  # stored ids 2 < 5
    # RGB: unique packed colours ascending: (40, 200, 40) < (200, 40, 40)
    inst2 = np.zeros(shape, np.int64)
    inst2[leaf2], inst2[leaf1] = 1, 2
    return {
        "A1_plant001": _expected(inst1, inst1 > 0, [1, 1]),
        "A2_plant002": _expected(inst2, inst2 > 0, [1, 1]),
    }


# ------------------------------------------------------------------------------------------- folder
def make_folder(root: Path, n: int = 3, shape: tuple[int, int] = (32, 32)) -> dict[str, np.ndarray]:
    """``images/`` + ``masks/`` with two rectangles per mask (ids 1, 2). Returns name -> mask."""
    masks = {}
    for i in range(n):
        name = f"img{i}"
        mask = np.zeros(shape, np.uint16)
        mask[rect(shape, (2, 12, 2, 12))], mask[rect(shape, (16, 28, 14, 30))] = 1, 2
        (root / "images").mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(root / "images" / f"{name}.tif", noise_image(shape, 40 + i))
        save_png(root / "masks" / f"{name}.png", mask.astype(np.uint8))
        masks[name] = mask.astype(np.int64)
    return masks


# ------------------------------------------------------------------------------------- evaluation
def coco_gt_from_samples(samples: list[dict], image_ids: list[int]) -> dict:
    """A COCO ground-truth dict of label-image samples (category id = instance class)."""
    images, anns = [], []
    cats = set()
    for sample, image_id in zip(samples, image_ids):
        h, w = sample["instances"].shape
        images.append({"id": image_id, "file_name": f"{sample['name']}.png", "height": h, "width": w})
        for k, c in enumerate(sample["instance_classes"]):
            m = sample["instances"] == k + 1
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": int(c), "iscrowd": 0,
                         "segmentation": compressed_rle(m), "area": float(m.sum()), "bbox": [0, 0, 1, 1]})
            cats.add(int(c))
    categories = [{"id": c, "name": str(c)} for c in sorted(cats)]
    return {"images": images, "annotations": anns, "categories": categories}


def coco_ap(gt: dict, results_json: Path) -> float:
    """pycocotools ``COCOeval(iouType="segm")`` AP@[.5:.95] of a results file against ``gt``."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(str(results_json)), iouType="segm")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[0])
