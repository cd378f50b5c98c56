"""Open a dataset by format name (or auto-detected), without a run config.

:func:`open_dataset` is the one place that turns "a root and a few options" into a registered reader
(:data:`pixelgroup.data.base.DATASETS`): options a reader does not take are refused by name instead
of failing deep inside its constructor.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import cityscapes, coco, cvppp, folder, semantic, voc  # noqa: F401  (registers the readers)
from .base import DATASETS
from .detect import detect_format
from .io import DataError


def open_dataset(
    root: str | Path | Any,
    *,
    format: str = "auto",  # shadows the builtin on purpose: the name users pass (--format)
    normalize: tuple[float, float] | None = (1.0, 99.8),
    names: Sequence[str] | None = None,
    split: str | None = None,
    skip_bad: bool = False,
    segments: str | None = None,
    binary_masks: str | None = None,
) -> Any:
    """The reader of ``format`` on ``root``: ``DATASETS.get(format)(root, normalize=..., names=..., ...)``.

    ``split``, ``skip_bad`` and ``segments`` are passed only when given (not ``None`` / ``True``), so
    each reader keeps its own default; a reader that does not take one of them raises.

    Args:
        root: the dataset (a folder; for ``coco`` also ``(image_folder, annotations_json)`` or the JSON).
        format: a name of ``DATASETS`` (``folder``, ``semantic_folder``, ``voc``, ``coco``,
            ``cityscapes``, ``cvppp``) or ``"auto"`` (:func:`~pixelgroup.data.detect.detect_format`).
        normalize: ``(low, high)`` percentiles mapped to 0 and 1 per image and channel, or ``None``.
        names: restrict to these sample names.
        split: the part to read (VOC image set, COCO annotation tag, Cityscapes split, CVPPP folder).
        skip_bad: skip and record bad samples instead of raising (readers with ``skip_bad``).
        segments: over-segmentation source of ``semantic_folder`` (``auto``, ``files``,
            ``felzenszwalb``, ``slic``, ``watershed``); ``None`` = the reader's default.
        binary_masks: how the ``folder`` reader reads a 0/1 or 0/255 mask (``check``, ``objects``,
            ``components`` = its connected components); ``None`` = the reader's default.

    Returns:
        The reader: a ``torch`` ``Dataset`` of sample dicts (see :mod:`pixelgroup.data.base`).

    Raises:
        DataError: ``format="auto"`` and the layout is unknown or ambiguous; the reader refuses
            ``root``; or it does not take one of the given options (the message names both).
        KeyError: ``format`` is not registered (the message lists the valid names).
    """
    fmt = detect_format(root) if format == "auto" else format
    reader = DATASETS.get(fmt)
    options: dict[str, Any] = {"split": split, "skip_bad": skip_bad or None, "segments": segments,
                               "binary_masks": binary_masks}
    given = {key: value for key, value in options.items() if value is not None}
    taken = inspect.signature(reader).parameters
    refused = [key for key in given if key not in taken]
    if "split" in refused:
        raise DataError(f"dataset format '{fmt}' has no splits (split={split!r}); drop --split / split=")
    if refused:
        accepted = ", ".join(key for key in options if key in taken) or "none of them"
        raise DataError(
            f"dataset format '{fmt}' does not take {refused[0]}={given[refused[0]]!r}; leave it unset "
            f"(this format takes: {accepted})"
        )
    return reader(root, normalize=normalize, names=names, **given)
