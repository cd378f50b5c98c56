"""Prediction on files and folders: label images, score sidecars and overlays, written atomically."""

from __future__ import annotations

import colorsys
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from skimage.segmentation import find_boundaries

from ..data.bigimage import find_inputs
from ..data.io import DataError, read_image, write_image_png, write_labels
from ..fileio import atomic_write_text
from .diameter import median_diameter, size_hint
from .outputs import plan_outputs
from .predict_big import BigOptions, is_finished, needs_lazy, predict_file, result_paths, stem
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


@dataclass
class PredictReport:
    """What :func:`predict_paths` did.

    Attributes:
        written: the label image of every input segmented, in input order.
        failed: ``(input, reason)`` of every input that could not be segmented (bad file, NaN, shape).
        skipped: inputs whose results were in the output folder already (not redone).
    """

    written: list[Path] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)


def output_names(seg: Segmenter, *, overlays: bool) -> Callable[[Path], list[str]]:
    """The names :func:`predict_paths` writes for one input ``NAME.ext``."""
    main = ["{}.png"] if seg.task == "semantic" else ["{}.tif", "{}.json"]
    extra = ["{}_overlay.png"] if overlays else []
    return lambda path: [pattern.format(path.stem) for pattern in main + extra]


def predict_paths(seg: Segmenter, inputs: Sequence[str | Path], out: str | Path, *,
                  overlays: bool = False, progress: bool = True, big: BigOptions | None = None,
                  overwrite: bool = False, strict: bool = False, diameter: float | str | None = None) -> PredictReport:
    """Segment every image in ``inputs`` (files, folders, ``*.zarr`` stores) and write results to ``out``.

    Instance methods write ``NAME.tif`` (int32 labels, same height and width as the input) and
    ``NAME.json`` (per-instance id, score, class, area); semantic methods write ``NAME.png``
    (class indices). ``overlays`` adds ``NAME_overlay.png``. Every file is written atomically.
    ``big``: tiling, TTA, stacks, output format and saved outputs (:mod:`pixelgroup.engine.predict_big`;
    big images, zarr stores and those options go through it). ``diameter``: the objects' size in the
    inputs, pixels or ``"auto"`` (see :meth:`Segmenter.segment`; not for big images, stacks, zarr).

    An input whose results are all in ``out`` already is skipped (a re-run finishes an interrupted
    folder) unless ``overwrite``. Before anything is written the outputs of the others are checked
    (:func:`~pixelgroup.engine.outputs.plan_outputs`): ``out`` must not hold an input, two inputs must
    not share a stem, and a file that exists is replaced only with ``overwrite``. An input that cannot
    be read or segmented (unreadable file, NaN/inf pixels, unsupported shape) is recorded in
    ``failed`` and the others are still done; ``strict=True`` raises on the first one instead.
    """
    from tqdm.auto import tqdm

    big, out = big or BigOptions(), Path(out)
    job = plan_prediction(seg, inputs, out, overlays=overlays, big=big, overwrite=overwrite)
    sizes: list[float] = []
    for path in tqdm(job.todo, desc="predict", disable=not progress):
        try:
            job.report.written.append(predict_one(seg, path, out, job.targets[path], lazy=job.lazy[path],
                                                  big=big, overlays=overlays, progress=progress, diameter=diameter,
                                                  sizes=sizes))
        except (DataError, ValueError) as err:
            job.report.failed.append((path, failure(path, err, strict=strict)))
    report_size(seg, sizes)
    return job.report


def report_size(seg: Segmenter, sizes: list[float]) -> None:
    """Log, once per run, the median diameter of the objects found (``sizes``: one median per image
    segmented without rescaling) against the model's training objects: a warning with the fix
    (:func:`~pixelgroup.engine.diameter.size_hint`) when they are far off, else an info line."""
    if not sizes or not seg.object_diameter:
        return
    found = float(np.median(sizes))
    hint = size_hint(found, seg.object_diameter, seg.object_diameter_range)
    if hint:
        log.warning("%s", hint)
    else:
        spread = seg.object_diameter_range
        log.info("objects found: %.0f px across (median); the model's training objects: %.0f px%s", found,
                 seg.object_diameter, f" ({spread[0]:.0f}-{spread[1]:.0f} px for most)" if spread else "")


@dataclass
class PredictionJob:
    """What a prediction over many inputs will do: the inputs to segment (``todo``) with their output
    files (``targets``, in :func:`output_names` order) and whether each goes the big-image way
    (``lazy``); ``report`` already lists the inputs skipped because their results exist."""

    todo: list[Path]
    targets: dict[Path, list[Path]]
    lazy: dict[Path, bool]
    report: PredictReport


def plan_prediction(seg: Segmenter, inputs: Sequence[str | Path], out: Path, *, overlays: bool, big: BigOptions,
                    overwrite: bool) -> PredictionJob:
    """Find the inputs, skip the finished ones (unless ``overwrite``) and check every output path
    before anything is written (see :func:`predict_paths`)."""
    paths = find_inputs(inputs)
    lazy = {path: needs_lazy(path, big) for path in paths}
    report = PredictReport()
    for path in paths:
        if not overwrite and is_finished(out, path, seg.task, big, lazy=lazy[path]):
            report.skipped.append(path)
    if report.skipped:
        log.info("%d input(s) already have results in %s, skipped (--overwrite to redo them)", len(report.skipped), out)
    todo = [path for path in paths if path not in report.skipped]
    names = output_names(seg, overlays=overlays)

    def planned(path: Path) -> list[str]:
        if not lazy[path]:
            return names(path)
        files = [p.name for p in result_paths(out, stem(path), seg.task, big.out_format)]
        return files + ([f"{stem(path)}.outputs.zarr"] if big.save_outputs else [])

    targets = plan_outputs(todo, out, planned, overwrite=overwrite)
    return PredictionJob(todo, targets, lazy, report)


def failure(path: Path, err: Exception, *, strict: bool) -> str:
    """The one-line reason an input failed; raises instead with ``strict``."""
    reason = str(err) if str(path) in str(err) else f"{path}: {err}"
    if strict:
        raise DataError(f"{reason} (stopped: --strict)") from None
    log.debug("skipping %s: %s", path, reason)
    return reason


def predict_one(seg: Segmenter, path: Path, out: Path, targets: list[Path], *, lazy: bool, big: BigOptions,
                overlays: bool = False, progress: bool = False, diameter: float | str | None = None,
                tiler=None, sizes: list[float] | None = None) -> Path:
    """Segment one input and write its results to ``targets``; returns the label file. Bad input
    raises :class:`DataError`/``ValueError`` naming the file. ``diameter``: see
    :meth:`Segmenter.segment`; ``tiler``: see :func:`~pixelgroup.engine.predict_big.predict_file`;
    ``sizes``: the median diameter of the instances found is appended to it (images segmented
    without rescaling and with objects only; big images, stacks and zarr stores too, from the areas
    counted tile by tile)."""
    if lazy:
        if diameter is not None:
            raise DataError(f"{path}: --diameter is not supported for big images, stacks or zarr stores; "
                            "resize the image to the model's object size instead")
        if overlays:
            log.info("%s: no overlay for a big image, stack or zarr store", path.name)
        return predict_file(seg, path, out, big, progress=progress, tiler=tiler, sizes=sizes)
    image = read_image(path)
    if not np.isfinite(image).all():
        raise DataError(f"{path}: image has NaN or inf pixels; replace them (e.g. np.nan_to_num) "
                        "or re-export the image")
    prepared = seg.prepare(image)
    kwargs = {**big.segment_kwargs(), "diameter": diameter}
    result = seg.segment(prepared, normalized=True, progress=progress, **kwargs) if seg.task == "semantic" \
        else seg.segment_instances(prepared, normalized=True, progress=progress, **kwargs)
    if sizes is not None and diameter is None and seg.task == "instance":
        found = median_diameter(result.labels)
        if found is not None:
            sizes.append(found)
    return _write(seg, path, prepared, result, targets)


def _write(seg: Segmenter, path: Path, prepared: np.ndarray, result, targets: list[Path]) -> Path:
    """Write one input's results to ``targets`` (in :func:`output_names` order); the label file."""
    if seg.task == "semantic":
        write_labels(targets[0], result.astype(np.uint8))
        if len(targets) > 1:
            vis = (0.5 * overlay(_display(prepared), np.zeros_like(result))
                   + 0.5 * class_colours(256)[result]).astype(np.uint8)
            write_image_png(targets[1], vis)
        return targets[0]
    write_labels(targets[0], result.labels)
    areas = np.bincount(result.labels.ravel(), minlength=result.count + 1)[1:]
    doc = {"image": str(path), "method": seg.cfg.method, "instances": [
        {"id": i + 1, "score": float(s), "class": int(c), "area": int(a)}
        for i, (s, c, a) in enumerate(zip(result.scores, result.classes, areas))]}
    atomic_write_text(targets[1], json.dumps(doc, indent=1))
    if len(targets) > 2:
        write_image_png(targets[2], overlay(_display(prepared), result.labels))
    return targets[0]


def _display(prepared: np.ndarray) -> np.ndarray:
    """Normalised image -> [0, 1] for display (already percentile-normalised, just clip)."""
    return np.clip(prepared, 0.0, 1.0)
