"""Embedding tools beyond instances: boundary maps, ranked proposals, SegSort explanations."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from skimage.segmentation import find_boundaries
from skimage.transform import resize

from ..data.io import find_images, read_image, write_image_png
from ..data.proposals import write_proposals
from ..grouping.boundaries import embedding_boundaries
from ..grouping.proposals import embedding_proposals
from ..methods.base import split_kwargs
from .datasets import open_reader
from .outputs import plan_outputs
from .predict import class_colours
from .segmenter import Segmenter

log = logging.getLogger(__name__)


def _embedding(seg: Segmenter, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    out = seg.outputs(image)
    if out.embedding is None:
        raise ValueError(
            f"method '{seg.cfg.method}' has no free embedding; boundaries and proposals need a model trained "
            "with --method hypersphere, discriminative or segsort"
        )
    fg = torch.sigmoid(out.foreground[0]) if out.foreground is not None else None
    return out.embedding, fg


def boundaries_paths(seg: Segmenter, inputs: Sequence[str | Path], out: str | Path, *,
                     scales: tuple[int, ...] = (1, 2, 4), overwrite: bool = False) -> list[Path]:
    """Write ``NAME.png`` boundary-probability maps (8-bit, 255 = certain boundary) for every input.

    Outputs are checked first as in :func:`~pixelgroup.engine.outputs.plan_outputs` (existing maps
    are replaced only with ``overwrite``).
    """
    paths = find_images(inputs)
    plan = plan_outputs(paths, out, lambda p: [f"{p.stem}.png"], overwrite=overwrite)
    written = []
    for path in paths:
        emb, _ = _embedding(seg, read_image(path))
        prob = embedding_boundaries(emb, scales=scales).cpu().numpy()
        target = plan[path][0]
        write_image_png(target, np.round(prob * 255).astype(np.uint8))
        written.append(target)
    return written


def proposals_paths(seg: Segmenter, inputs: Sequence[str | Path], out: str | Path, *,
                    top_k: int = 100, overwrite: bool = False) -> list[Path]:
    """Write ``NAME.json``: ranked proposals as COCO-style RLE (``size``, ``counts``) with scores.

    Existing files are replaced only with ``overwrite`` (see :mod:`pixelgroup.engine.outputs`).
    """
    paths = find_images(inputs)
    plan = plan_outputs(paths, out, lambda p: [f"{p.stem}.json"], overwrite=overwrite)
    written = []
    for path in paths:
        emb, fg = _embedding(seg, read_image(path))
        props = embedding_proposals(emb, foreground=fg, top_k=top_k)
        target = plan[path][0]
        write_proposals(target, [m for m, _ in props], [s for _, s in props], image=str(path))
        written.append(target)
    return written


def _tile(image01: np.ndarray, size: int) -> np.ndarray:
    rgb = np.repeat(image01[..., :1], 3, axis=-1) if image01.shape[-1] != 3 else image01
    return (resize(np.clip(rgb, 0, 1), (size, size), order=1, anti_aliasing=True) * 255).astype(np.uint8)


def explain_image(seg: Segmenter, image_path: str | Path, out: str | Path, *, data_root: str | Path,
                  k: int | None = None, tile: int = 96, overwrite: bool = False) -> list[Path]:
    """For each predicted segment write ``NAME_segNNN.png``: the segment, then the training segments
    (image crops, coloured frame = their class) that voted for its label, most similar first.

    Panels of an earlier run for the same image are replaced only with ``overwrite``."""
    explain = seg.method.explain
    if explain is None:
        raise ValueError(f"method '{seg.cfg.method}' cannot explain its predictions; use a segsort model")
    image_path, out = find_images([image_path])[0], Path(out)
    plan_outputs([image_path], out, lambda p: [], overwrite=overwrite,
                 patterns=lambda p: [f"{p.stem}_seg[0-9][0-9][0-9]_class*.png"])
    train = open_reader(seg.cfg, data_root)
    lookup = {name: i for i, name in enumerate(train.names)}
    prepared = seg.prepare(read_image(image_path))
    settings = split_kwargs(seg.grouper_params, explain, seg.method.state or explain,
                            where=f"method '{seg.method.name}' grouping.params")[0]
    if k is not None:
        settings["k"] = k
    explanations = explain(seg.outputs(prepared, normalized=True), seg.state, **settings)
    palette = class_colours(256)
    written = []
    for s, ex in enumerate(explanations):
        view = np.clip(prepared, 0, 1)
        panel = [_outline(_tile_masked(view, ex.mask, tile), palette[ex.predicted_class])]
        for voter in ex.voters:
            if voter.name not in lookup:
                continue
            y0, x0, y1, x1 = voter.bbox
            crop = train[lookup[voter.name]]["image"][y0:y1, x0:x1]
            panel.append(_outline(_tile(np.clip(crop, 0, 1), tile), palette[voter.class_index]))
        target = out / f"{image_path.stem}_seg{s:03d}_class{ex.predicted_class}.png"
        write_image_png(target, np.concatenate(panel, axis=1))
        written.append(target)
    return written


def _tile_masked(view: np.ndarray, mask: np.ndarray, size: int) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return _tile(view, size)
    crop = view[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    rgb = _tile(crop, size)
    edge = find_boundaries(resize(mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1], (size, size), order=0))
    rgb[edge] = (255, 255, 0)
    return rgb


def _outline(rgb: np.ndarray, colour: np.ndarray, width: int = 3) -> np.ndarray:
    rgb = rgb.copy()
    rgb[:width], rgb[-width:], rgb[:, :width], rgb[:, -width:] = colour, colour, colour, colour
    return rgb
