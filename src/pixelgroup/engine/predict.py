"""Prediction on files and folders: label images, score sidecars and overlays, written atomically."""

from __future__ import annotations

import colorsys
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from skimage.segmentation import find_boundaries

from ..data.io import read_image, write_image_png, write_labels
from ..fileio import atomic_write_text
from .predict_big import BigOptions, is_finished, needs_lazy, predict_file
from .segmenter import Segmenter

log = logging.getLogger(__name__)


def instance_colours(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 distinct colours (golden-ratio hue walk, full saturation)."""
    hues = (np.arange(n) * 0.618033988749895) % 1.0
    rgb = np.array([colorsys.hsv_to_rgb(h, 0.9, 1.0) for h in hues], np.float64).reshape(n, 3)
    return (rgb * 255).astype(np.uint8)


def overlay(image01: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Instance contours in distinct colours on a grey/RGB image. ``image01`` (H, W, C) in [0, 1]."""
    base = np.clip(image01, 0, 1)
    base = np.repeat(base[..., :1], 3, axis=-1) if base.shape[-1] != 3 else base
    rgb = (base * 255).astype(np.uint8)
    n = int(labels.max()) if labels.size else 0
    if n:
        edges = find_boundaries(labels, mode="inner")
        rgb[edges] = instance_colours(n)[labels[edges] - 1]
    return rgb


def class_colours(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 palette for class maps (PASCAL VOC's bit-interleaved palette)."""
    cmap = np.zeros((n, 3), np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def predict_paths(seg: Segmenter, inputs: Sequence[str | Path], out: str | Path, *,
                  overlays: bool = False, progress: bool = True, big: BigOptions | None = None,
                  overwrite: bool = False) -> list[Path]:
    """Segment every image in ``inputs`` (files, folders, ``*.zarr`` stores) and write results to ``out``.

    Instance methods write ``NAME.tif`` (int32 labels, same height and width as the input) and
    ``NAME.json`` (per-instance id, score, class, area); semantic methods write ``NAME.png``
    (class indices). ``overlays`` adds ``NAME_overlay.png``. ``big``: tiling, TTA, stacks, output
    format and saved outputs (:mod:`pixelgroup.engine.predict_big`; big images, zarr stores and
    those options go through it). Files whose results exist are skipped unless ``overwrite``.
    """
    from tqdm.auto import tqdm

    from ..data.bigimage import find_inputs

    out = Path(out)
    big = big or BigOptions()
    paths = find_inputs(inputs)
    written = []
    for path in tqdm(paths, desc="predict", disable=not progress):
        lazy = needs_lazy(path, big)
        if not overwrite and is_finished(out, path, seg.task, big, lazy=lazy):
            log.info("%s: results exist, skipped (--overwrite to redo)", path.name)
            continue
        if lazy:
            if overlays:
                log.info("%s: no overlay for a big image, stack or zarr store", path.name)
            written.append(predict_file(seg, path, out, big, progress=progress))
            continue
        image = read_image(path)
        prepared = seg.prepare(image)
        if seg.task == "semantic":
            classes = seg.segment(prepared, normalized=True, progress=progress, **big.segment_kwargs())
            target = write_labels(out / f"{path.stem}.png", classes.astype(np.uint8))
            if overlays:
                vis = (0.5 * overlay(_display(prepared), np.zeros_like(classes))
                       + 0.5 * class_colours(256)[classes]).astype(np.uint8)
                write_image_png(out / f"{path.stem}_overlay.png", vis)
        else:
            inst = seg.segment_instances(prepared, normalized=True, progress=progress, **big.segment_kwargs())
            target = write_labels(out / f"{path.stem}.tif", inst.labels)
            areas = np.bincount(inst.labels.ravel(), minlength=inst.count + 1)[1:]
            doc = {"image": str(path), "method": seg.cfg.method, "instances": [
                {"id": i + 1, "score": float(s), "class": int(c), "area": int(a)}
                for i, (s, c, a) in enumerate(zip(inst.scores, inst.classes, areas))]}
            atomic_write_text(out / f"{path.stem}.json", json.dumps(doc, indent=1))
            if overlays:
                write_image_png(out / f"{path.stem}_overlay.png", overlay(_display(prepared), inst.labels))
        written.append(Path(target) if target is not None else out / path.stem)
    return written


def _display(prepared: np.ndarray) -> np.ndarray:
    """Normalised image -> [0, 1] for display (already percentile-normalised, just clip)."""
    return np.clip(prepared, 0.0, 1.0)
