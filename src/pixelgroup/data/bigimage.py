"""Big images read lazily, window by window: tiled (Big)TIFF / OME-TIFF and Zarr / OME-Zarr.

A :class:`LazyImage` holds an open array-like (a zarr view of a TIFF through tifffile's
``aszarr()`` store, or a zarr array) and reads ``(h, w, C)`` windows on demand, so memory follows the
window, not the image. Stacks ``(T, Y, X[, C])`` give one :class:`LazyImage` per frame.

Normalisation of a big image (:func:`sample_percentiles`): the percentiles are estimated from a
subsample of at most :data:`SAMPLE_PIXELS` pixels, read as up to 64 windows of 256 x 256 spread on a
regular grid over the image; an image with fewer pixels is read whole, which gives exactly the
percentiles of :func:`~pixelgroup.data.io.normalize_percentile`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tifffile

from .io import TIFF_SUFFIXES, DataError, _check_file, find_images

log = logging.getLogger(__name__)

ZARR_SUFFIXES = (".zarr",)
SAMPLE_PIXELS = 4_000_000
"""Images up to this many pixels are read whole for normalisation; bigger ones are subsampled."""
_SAMPLE_WINDOW = 256


def import_zarr():
    """The ``zarr`` module (>= 3), or an ImportError saying how to install it."""
    try:
        import zarr
    except ImportError:
        raise ImportError("big images, OME-Zarr and saved outputs need zarr >= 3 (Python >= 3.11): "
                          "pip install 'zarr>=3'") from None
    return zarr


def is_zarr(path: str | Path) -> bool:
    """Whether ``path`` is a Zarr / OME-Zarr image store (a folder named ``*.zarr``, not the
    ``*.outputs.zarr`` that ``predict --save-outputs`` writes)."""
    path = Path(path)
    return path.is_dir() and path.suffix.lower() in ZARR_SUFFIXES and not path.name.endswith(".outputs.zarr")


def find_inputs(inputs: Sequence[str | Path]) -> list[Path]:
    """Image files and ``*.zarr`` stores from files and folders (a folder contributes both kinds)."""
    return find_images(inputs, store=is_zarr)


class LazyImage:
    """One 2D image read window by window.

    Args:
        array: array-like sliceable as numpy, with spatial axes and an optional channel axis.
        axes: one letter per axis of ``array``: ``Y``, ``X``, optionally ``C`` (channels, any position).
        name: for messages.
    """

    def __init__(self, array, axes: str, name: str = "image") -> None:
        if sorted(axes.replace("C", "")) != ["X", "Y"] or len(axes) != array.ndim or axes.count("C") > 1:
            raise DataError(f"{name}: cannot read an image with axes {axes!r} and shape {array.shape}; "
                            "expected Y, X and optionally one channel axis")
        self.array, self.axes, self.name = array, axes, name
        self.shape = (int(array.shape[axes.index("Y")]), int(array.shape[axes.index("X")]))
        self.channels = int(array.shape[axes.index("C")]) if "C" in axes else 1
        self.dtype = np.dtype(array.dtype)

    def window(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """Raw pixels of ``box (y0, y1, x0, x1)`` as ``(h, w, C)``."""
        y0, y1, x0, x1 = box
        index = tuple(slice(y0, y1) if a == "Y" else slice(x0, x1) if a == "X" else slice(None) for a in self.axes)
        win = np.asarray(self.array[index])
        order = [self.axes.index(a) for a in "YXC" if a in self.axes]
        win = np.transpose(win, order)
        return win if win.ndim == 3 else win[..., None]

    def read(self) -> np.ndarray:
        """The whole image ``(H, W, C)`` (small images only)."""
        return self.window((0, self.shape[0], 0, self.shape[1]))


def _tiff_array(path: Path):
    """``(zarr array, axes)`` of the first series of a TIFF, level 0 of a pyramid."""
    zarr = import_zarr()

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes
    store = tifffile.imread(path, aszarr=True, series=0, level=0)
    return zarr.open(store, mode="r"), axes


def _ome_zarr_array(path: Path):
    """``(zarr array, axes)`` of level 0 of an OME-Zarr image (NGFF 0.4 or 0.5), or of a plain array."""
    zarr = import_zarr()

    node = zarr.open(str(path), mode="r")
    if isinstance(node, zarr.Array):
        axes = {2: "YX", 3: "CYX"}.get(node.ndim)
        if axes is None:
            raise DataError(f"{path}: plain zarr array of shape {node.shape}; expected (Y, X) or (C, Y, X)")
        return node, axes
    attrs = dict(node.attrs)
    ms = (attrs.get("ome") or attrs).get("multiscales")
    if not ms:
        raise DataError(f"{path}: zarr group without OME-Zarr 'multiscales' metadata; "
                        "pass an OME-Zarr image or a plain zarr array")
    names = [a["name"] if isinstance(a, dict) else a for a in ms[0].get("axes", ["y", "x"])]
    axes = "".join({"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}.get(n.lower(), "Q") for n in names)
    return node[ms[0]["datasets"][0]["path"]], axes


class PlaneView:
    """A numpy-sliceable (read and write) view of ``array[index]`` for leading integer indices,
    e.g. frame ``t`` of a ``(T, H, W)`` zarr array: ``PlaneView(a, (t,))[y0:y1, x0:x1]``."""

    def __init__(self, array, index: tuple[int, ...]) -> None:
        self.array, self.index = array, tuple(index)
        self.shape = tuple(array.shape[len(self.index):])
        self.ndim, self.dtype = len(self.shape), array.dtype

    def _key(self, key) -> tuple:
        return self.index + (key if isinstance(key, tuple) else (key,))

    def __getitem__(self, key):
        return self.array[self._key(key)]

    def __setitem__(self, key, value) -> None:
        self.array[self._key(key)] = value


def _channel_axis(axes: str, shape: tuple[int, ...]) -> str:
    """An unnamed axis (Q, I) of at most 4 before Y, X in a 3D array is channels (channels-first TIFF)."""
    if "C" not in axes and len(axes) == 3 and axes[1:] == "YX" and axes[0] in "QI" and shape[0] <= 4:
        return "C" + axes[1:]
    return axes


def open_frames(path: str | Path) -> list[LazyImage]:
    """The 2D planes of an image file or store: one for a 2D image, ``T`` for a ``(T, Y, X[, C])``
    stack (any non-spatial, non-channel axis counts as frames: T, Z, Q, ...)."""
    path = Path(path)
    if is_zarr(path):
        array, axes = _ome_zarr_array(path)
    elif path.suffix.lower() in TIFF_SUFFIXES:
        _check_file(path, TIFF_SUFFIXES, "image")
        array, axes = _tiff_array(path)
    else:
        from .io import read_image

        image = read_image(path)
        return [LazyImage(image, "YX" if image.ndim == 2 else "YXC", path.name)]
    axes = _channel_axis(axes.replace("S", "C"), array.shape)
    extra = [i for i, a in enumerate(axes) if a not in "YXC"]
    if not extra:
        return [LazyImage(array, axes, path.name)]
    keep = [i for i, a in enumerate(axes) if a in "YXC"]
    lead = [array.shape[i] for i in extra]
    planes = []
    for flat in range(math.prod(lead)):
        idx = np.unravel_index(flat, lead)
        index = [slice(None)] * array.ndim
        for i, v in zip(extra, idx):
            index[i] = int(v)
        if extra != list(range(len(extra))):
            raise DataError(f"{path}: frame axes {axes!r} must come before Y, X (and C)")
        planes.append(LazyImage(PlaneView(array, tuple(index[:len(extra)])), "".join(axes[i] for i in keep),
                                f"{path.name}[{flat}]"))
    return planes


def sample_percentiles(image: LazyImage, low: float, high: float, *, to_channels=None,
                       max_pixels: int = SAMPLE_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """``(p_low (C,), p_high (C,))`` per channel, from the whole image when it has at most
    ``max_pixels`` pixels, else from up to ``max_pixels / 256^2`` windows of 256 x 256 on a grid.

    ``to_channels``: optional ``(h, w, C) -> (h, w, C')`` applied to each window first (the
    model's channel conversion)."""
    h, w = image.shape
    convert = to_channels or (lambda a: a)
    if h * w <= max_pixels:
        data = convert(image.read()).astype(np.float32)
    else:
        n = max(1, max_pixels // _SAMPLE_WINDOW**2)
        rows = max(1, round(math.sqrt(n * h / w)))
        cols = max(1, n // rows)
        ys = np.linspace(0, max(h - _SAMPLE_WINDOW, 0), rows).astype(int)
        xs = np.linspace(0, max(w - _SAMPLE_WINDOW, 0), cols).astype(int)
        data = np.stack([convert(image.window((y, min(y + _SAMPLE_WINDOW, h), x, min(x + _SAMPLE_WINDOW, w))))
                         .astype(np.float32) for y in ys for x in xs])
    flat = data.reshape(-1, data.shape[-1])
    if not np.isfinite(flat).all():
        raise ValueError(f"{image.name}: image contains NaN or inf; replace them before predicting")
    p_low, p_high = np.percentile(flat, [low, high], axis=0)
    return p_low.astype(np.float32), p_high.astype(np.float32)


def image_info(path: str | Path) -> tuple[tuple[int, ...], int]:
    """``(shape of the first plane (H, W), number of planes)`` without reading pixels."""
    frames = open_frames(path)
    return frames[0].shape, len(frames)


def ngff_labels_attrs(name: str, axes: str, chunk_scale: Sequence[float] | None = None) -> dict:
    """NGFF 0.4 attributes of a label image ``labels/NAME`` with axes like ``"yx"`` or ``"tyx"``."""
    kinds = {"t": "time", "y": "space", "x": "space"}
    scale = list(chunk_scale or [1.0] * len(axes))
    return {
        "multiscales": [{
            "version": "0.4", "name": name,
            "axes": [{"name": a, "type": kinds[a]} for a in axes],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
        }],
        "image-label": {"version": "0.4", "source": {"image": "../../"}},
    }


def dumps(obj) -> str:
    return json.dumps(obj, indent=1)
