"""Over-segmentations for unsupervised SegSort: computed with scikit-image, or read from files.

The paper trains unsupervised SegSort on HED-owt-ucm regions (HED contours turned into a region
hierarchy by the oriented watershed transform + ultrametric contour map, cut at one level). Neither
HED nor owt-ucm ships with Python, so :func:`oversegment` offers scikit-image stand-ins that also
produce a partition of the image into small, mostly uniform regions:

* ``felzenszwalb`` (default) - graph-based merging (Felzenszwalb & Huttenlocher 2004); follows
  colour/texture edges, region sizes adapt to the content.
* ``slic`` - k-means in (colour, position); compact, roughly equal-sized superpixels.
* ``watershed`` - compact watershed of the Sobel gradient from a regular grid of markers.

Users who have contour-based regions (e.g. the authors' HED-owt-ucm PNGs) put them in
``DIR/segments/NAME.png`` (or ``.tif``); :func:`read_segments` reads them. Every segmentation is
an ``(H, W)`` int64 label image with consecutive ids from 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from skimage import filters, segmentation

from ..ops.labels import partition_ids
from .io import DataError, read_image

OversegMethod = Literal["felzenszwalb", "slic", "watershed"]
SEGMENT_SUFFIXES = (".png", ".tif", ".tiff")


def _as_unit_float(image: np.ndarray) -> np.ndarray:
    """``(H, W)`` / ``(H, W, C)`` -> float64 ``(H, W, C)`` clipped to [0, 1] (integers by dtype range)."""
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"oversegment: image must be (H, W) or (H, W, C), got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        x = x / float(np.iinfo(x.dtype).max)
    x = x.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError("oversegment: image contains NaN or inf; replace them (np.nan_to_num) first")
    return np.clip(x, 0.0, 1.0)


def oversegment(
    image: np.ndarray,
    *,
    method: OversegMethod = "felzenszwalb",
    n_segments: int = 100,
    compactness: float | None = None,
    scale: float = 100.0,
) -> np.ndarray:
    """Partition an image into small regions (deterministic).

    Args:
        image: ``(H, W)`` or ``(H, W, C)``; float images are taken as normalised to about [0, 1]
            (values are clipped), integer images are scaled by their dtype's range.
        method: ``felzenszwalb``, ``slic`` or ``watershed`` (see the module docstring).
        n_segments: target number of regions (``slic``, ``watershed``); for ``felzenszwalb`` it
            sets the minimum region size ``H * W / (4 * n_segments)``.
        compactness: shape regularity (``slic``: default 10 for RGB, which it compares in Lab, and
            0.1 otherwise; ``watershed``: default 1e-3).
        scale: ``felzenszwalb`` merge threshold; larger gives larger regions.

    Returns:
        ``(H, W)`` int64 segment ids ``0..S-1``.
    """
    if n_segments < 1:
        raise ValueError(f"oversegment: n_segments must be >= 1, got {n_segments}")
    x = _as_unit_float(image)
    h, w, c = x.shape
    if method == "felzenszwalb":
        min_size = max(4, h * w // (4 * n_segments))
        labels = segmentation.felzenszwalb(x, scale=scale, sigma=0.8, min_size=min_size, channel_axis=-1)
    elif method == "slic":
        rgb = c == 3
        comp = compactness if compactness is not None else (10.0 if rgb else 0.1)
        labels = segmentation.slic(x, n_segments=n_segments, compactness=comp, convert2lab=rgb,
                                   start_label=0, channel_axis=-1)
    elif method == "watershed":
        gradient = np.max([filters.sobel(x[..., i]) for i in range(c)], axis=0)
        comp = compactness if compactness is not None else 1e-3
        labels = segmentation.watershed(gradient, markers=n_segments, compactness=comp)
    else:
        raise ValueError(f"oversegment: unknown method '{method}'; valid: felzenszwalb, slic, watershed")
    return partition_ids(labels)


def read_segments(path: str | Path) -> np.ndarray:
    """Read a user-supplied over-segmentation (PNG/TIFF; grey ids or one colour per region).

    Returns:
        ``(H, W)`` int64 consecutive ids from 0 (pixels with the same value/colour form one segment).
    """
    path = Path(path)
    if path.suffix.lower() not in SEGMENT_SUFFIXES:
        raise DataError(f"{path}: segments must be {', '.join(SEGMENT_SUFFIXES)} (JPEG corrupts region ids)")
    arr = np.asarray(read_image(path))
    if arr.ndim == 3:  # one colour per region: pack the channels into one integer key
        arr = arr.astype(np.int64)
        key = np.zeros(arr.shape[:2], np.int64)
        for i in range(arr.shape[-1]):
            key = key * 65536 + arr[..., i]
        arr = key
    if np.issubdtype(arr.dtype, np.floating) and not (arr == np.round(arr)).all():
        raise DataError(f"{path}: segment ids must be whole numbers; save them as an integer image")
    return partition_ids(arr)


def find_segments(root: str | Path, name: str) -> Path | None:
    """``root/segments/NAME.{png,tif,tiff}`` if it exists, else ``None``."""
    folder = Path(root) / "segments"
    for suffix in SEGMENT_SUFFIXES:
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None
