"""Reading and writing images and label masks; percentile normalisation; listing input files.

Axis order: images are ``(H, W)`` or ``(H, W, C)`` channels-last, label images ``(H, W)``.
Every failure raises :class:`DataError` (a ``ValueError``) with one line naming the file and the fix.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile
import torch
from PIL import Image

from ..fileio import atomic_write
from ..ops.normalize import percentile_normalize  # one torch implementation, shared with TorchScript export

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
LABEL_SUFFIXES = (".tif", ".tiff", ".png")


class DataError(ValueError):
    """A file or folder that cannot be used as it is; the message names it and says how to fix it."""


def _check_file(path: Path, suffixes: Sequence[str], what: str) -> None:
    if path.suffix.lower() not in suffixes:
        hint = " (JPEG is lossy: save masks as PNG or TIFF)" if what == "mask" else ""
        raise DataError(
            f"{path}: unsupported {what} file type '{path.suffix}'{hint}; use one of {', '.join(suffixes)}"
        )
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found; check the path")


_warned_pages = False


def _check_tiff_axes(path: Path, axes: str, shape: tuple[int, ...]) -> None:
    """Refuse z-stacks and time series (axes Z or T in the file's metadata); say once that pages
    without axes metadata (``Q``/``I``) are read as channels."""
    global _warned_pages
    axes = "".join(a for a, n in zip(axes, shape) if n > 1)
    if any(a in axes for a in "ZT"):
        raise DataError(f"{path}: image is a {'z-stack' if 'Z' in axes else 'time series'} (axes {axes}, shape "
                        f"{shape}); save one plane or a projection as a 2D image")
    if len(axes) == 3 and axes[0] in "QI" and shape[-3] <= 4 and not _warned_pages:
        _warned_pages = True
        logger.warning("%s: its %d pages are read as channels (no axes metadata); if they are z-planes, "
                       "save one plane or a projection", path, shape[-3])


def _decode(path: Path, *, keep_palette: bool) -> tuple[np.ndarray, bool]:
    """The stored array and whether a 4th channel is alpha. Palette PNGs give indices if asked."""
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                page = tif.pages[0]
                rgba = page.photometric == tifffile.PHOTOMETRIC.RGB and bool(page.extrasamples)
                arr = tif.asarray()
                _check_tiff_axes(path, tif.series[0].axes, arr.shape)
                return arr, rgba
        with Image.open(path) as im:
            im.load()
            if im.mode == "P" and not keep_palette:
                im = im.convert("RGBA" if "transparency" in im.info else "RGB")
            elif im.mode in ("CMYK", "YCbCr", "HSV", "LAB", "PA"):
                im = im.convert("RGB")
            elif im.mode == "1":
                im = im.convert("L")
            arr = np.array(im)
            if im.mode == "LA":
                arr = arr[..., 0]
            return arr, im.mode == "RGBA"
    except DataError:
        raise
    except PermissionError:
        raise DataError(f"{path}: cannot read file (permission denied); make it readable "
                        f"(e.g. chmod a+r {path}) or run as a user who may read it") from None
    except OSError as exc:
        if not path.is_file() or exc.errno is not None:  # vanished, or an I/O error of the disk/share
            raise DataError(f"{path}: cannot read file ({exc.strerror or exc}); check the file and the disk") from None
        raise DataError(
            f"{path}: cannot read file ({type(exc).__name__}: {exc}); re-export it as TIFF or PNG"
        ) from None
    except Exception as exc:  # decoders raise many types; all mean "cannot read this file"
        raise DataError(
            f"{path}: cannot read file ({type(exc).__name__}: {exc}); re-export it as TIFF or PNG"
        ) from None


def _channels_last(arr: np.ndarray, path: Path) -> np.ndarray:
    """``(H, W)``, ``(H, W, C)`` or channels-first ``(C, H, W)`` (C <= 4) -> ``(H, W[, C])``."""
    while arr.ndim > 3 and arr.shape[0] == 1:  # ImageJ-style leading singleton axes (T, Z)
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] <= 4 < min(arr.shape[1:]) and arr.shape[-1] > 4:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] <= 4):
        return arr
    raise DataError(
        f"{path}: image has shape {arr.shape}; expected (H, W), (H, W, C) or (C, H, W) with C <= 4 "
        "(a 3D stack or time series? save one plane or a projection)"
    )


def read_image(path: str | Path) -> np.ndarray:
    """Read a 2D image, 8/16-bit or float, as stored (no rescaling).

    Args:
        path: ``.tif``/``.tiff`` (tifffile) or ``.png``/``.jpg``/``.jpeg`` (Pillow).

    Returns:
        ``(H, W)`` or ``(H, W, C)`` channels-last; an alpha channel is dropped (RGBA -> RGB) and a
        channels-first TIFF ``(C, H, W)``, C <= 4, is moved to channels-last.
    """
    path = Path(path)
    _check_file(path, IMAGE_SUFFIXES, "image")
    arr, has_alpha = _decode(path, keep_palette=False)
    arr = _channels_last(arr, path)
    if arr.ndim == 3 and arr.shape[-1] == 4 and has_alpha:
        arr = arr[..., :3]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DataError(f"{path}: unsupported pixel type {arr.dtype}; save as 8/16-bit integer or float")
    return np.ascontiguousarray(arr)


def _labels_2d(arr: np.ndarray, path: Path) -> np.ndarray:
    """Squeeze singleton axes; accept a grey mask stored as identical RGB channels; else raise."""
    arr = np.squeeze(arr) if arr.ndim > 2 else arr
    if arr.ndim == 3 and arr.shape[-1] in (3, 4) and (arr[..., :3] == arr[..., :1]).all():
        arr = arr[..., 0]
    if arr.ndim == 3 and min(arr.shape) <= 4:
        raise DataError(
            f"{path}: mask has {min(arr.shape)} channels (shape {arr.shape}); save a single-channel "
            "label image (0 = background, 1..N = instance ids), not an RGB rendering of the mask"
        )
    if arr.ndim != 2:
        raise DataError(f"{path}: mask has shape {arr.shape}; expected a 2D (H, W) label image")
    return arr


def read_labels(path: str | Path) -> np.ndarray:
    """Read an instance (or class) label image: 0 = background, other ids need not be contiguous.

    Integer and boolean masks of any width are accepted; float masks only if every value is a whole
    number. Palette PNGs give their palette indices.

    Returns:
        ``(H, W)`` int64.
    """
    path = Path(path)
    _check_file(path, LABEL_SUFFIXES, "mask")
    arr, _ = _decode(path, keep_palette=True)
    arr = _labels_2d(arr, path)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all() or not (arr == np.round(arr)).all():
            raise DataError(
                f"{path}: mask has non-integer values (labels damaged by interpolation?); save masks "
                "with nearest-neighbour resampling and an integer dtype (uint16 / int32)"
            )
    elif not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
        raise DataError(f"{path}: unsupported mask type {arr.dtype}; save an integer label image")
    if arr.dtype == np.uint64 and arr.max(initial=0) > np.iinfo(np.int64).max:
        raise DataError(f"{path}: mask ids exceed the int64 range; relabel them 1..N")
    labels = arr.astype(np.int64)
    low = labels.min(initial=0)
    if low < 0:
        raise DataError(
            f"{path}: mask has negative values (min {low}); use 0 for background and 1..N for instances"
        )
    return labels


def _label_array_for(path: Path, labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2 or not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise DataError(f"{path}: labels must be a 2D integer array, got {labels.dtype} {labels.shape}")
    low, high = int(labels.min(initial=0)), int(labels.max(initial=0))
    is_png = path.suffix.lower() == ".png"
    if is_png and (low < 0 or high > 65535):
        raise DataError(f"{path}: ids {low}..{high} do not fit a 16-bit PNG; write a .tif instead")
    if low >= 0 and high <= (255 if is_png else 65535):
        return labels.astype(np.uint8 if is_png else np.uint16)
    if is_png:
        return labels.astype(np.uint16)
    if low < np.iinfo(np.int32).min or high > np.iinfo(np.int32).max:
        raise DataError(f"{path}: ids {low}..{high} do not fit int32; relabel them 1..N")
    return labels.astype(np.int32)


def write_labels(path: str | Path, labels: np.ndarray) -> Path:
    """Write a ``(H, W)`` label image atomically.

    ``.tif``/``.tiff``: uint16 when the ids fit, else int32 (zlib-compressed). ``.png``: uint8 when
    the ids fit, else uint16.
    """
    path = Path(path)
    if path.suffix.lower() not in LABEL_SUFFIXES:
        raise DataError(f"{path}: cannot write labels as '{path.suffix}'; use .tif or .png")
    arr = _label_array_for(path, labels)
    buf = io.BytesIO()
    if path.suffix.lower() == ".png":
        Image.fromarray(arr).save(buf, format="PNG")
    else:
        tifffile.imwrite(buf, arr, compression="zlib")
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def write_image_png(path: str | Path, rgb_uint8: np.ndarray) -> Path:
    """Write a ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 image as PNG, atomically."""
    path = Path(path)
    arr = np.asarray(rgb_uint8)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] in (3, 4))):
        raise DataError(
            f"{path}: expected a uint8 (H, W), (H, W, 3) or (H, W, 4) array, got {arr.dtype} {arr.shape}; "
            "convert with np.clip(x, 0, 255).astype(np.uint8)"
        )
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG")
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def write_image_tiff(path: str | Path, image: np.ndarray) -> Path:
    """Write an ``(H, W)`` or ``(H, W, C)`` image of any numeric dtype as a zlib TIFF, atomically."""
    path = Path(path)
    arr = np.ascontiguousarray(image)
    photometric = "rgb" if arr.ndim == 3 and arr.shape[-1] == 3 and arr.dtype == np.uint8 else "minisblack"
    buf = io.BytesIO()
    tifffile.imwrite(buf, arr, photometric=photometric, compression="zlib")
    return atomic_write(path, lambda fh: fh.write(buf.getvalue()))


def normalize_percentile(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Map each channel's ``low`` and ``high`` percentiles to 0 and 1, without clipping.

    ``x' = (x - p_low) / (p_high - p_low + eps)`` with ``eps = 1e-20`` (as csbdeep / StarDist /
    Cellpose), so a constant channel becomes zeros rather than NaN.

    Args:
        image: ``(H, W)`` or ``(H, W, C)``, any numeric dtype.

    Returns:
        ``(H, W, C)`` float32.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    x = np.asarray(image)
    if x.ndim == 2:
        x = x[..., None]
    if x.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise ValueError("image contains NaN or inf; replace them (e.g. np.nan_to_num) before normalising")
    if x.size == 0:
        return x
    return percentile_normalize(torch.from_numpy(np.ascontiguousarray(x)), float(low), float(high)).numpy()


def normalized_image(image: np.ndarray, normalize: tuple[float, float] | None) -> np.ndarray:
    """A reader's sample image: ``(H, W, C)`` float32, percentile-normalised with ``normalize = (low,
    high)`` (:func:`normalize_percentile`) or, with ``None``, the stored values as float32.

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` as read by :func:`read_image`.
    """
    if normalize is None:
        return (image[..., None] if image.ndim == 2 else image).astype(np.float32)
    return normalize_percentile(image, *normalize)


def find_images(inputs: Sequence[str | Path], *, store: Callable[[Path], bool] | None = None) -> list[Path]:
    """Expand files and folders (not recursive) into a list of image files.

    Folders contribute their image files (suffixes in :data:`IMAGE_SUFFIXES`, hidden files skipped)
    in sorted order; files are kept in the given order; duplicates are dropped. ``store``: folders
    for which it is true are images themselves (e.g. ``*.zarr`` stores), given or inside a folder.
    """
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    is_store = store or (lambda _: False)
    found: list[Path] = []
    for item in map(Path, inputs):
        if is_store(item):
            found.append(item)
        elif item.is_dir():
            files = sorted(p for p in item.iterdir() if not p.name.startswith(".") and (
                (p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES) or is_store(p)))
            if not files:
                kinds = ", ".join(IMAGE_SUFFIXES) + (", stores" if store else "")
                raise DataError(f"{item}: folder has no images ({kinds}); check the folder")
            found.extend(files)
        elif item.is_file():
            _check_file(item, IMAGE_SUFFIXES, "image")
            found.append(item)
        else:
            raise DataError(f"{item}: no such file or folder; check the path")
    return list(dict.fromkeys(found))


def _images_in(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


def files_by_stem(folder: str | Path, suffixes: Sequence[str]) -> dict[str, list[Path]]:
    """Group the files of ``folder`` (not recursive, hidden files skipped) with one of ``suffixes`` by stem.

    Returns:
        ``stem -> [paths]`` in sorted order; a list longer than one is a clash (``a.png`` + ``a.tif``)
        for the caller to report.
    """
    by_stem: dict[str, list[Path]] = {}
    for path in _images_in(Path(folder), tuple(s.lower() for s in suffixes)):
        by_stem.setdefault(path.stem, []).append(path)
    return by_stem


def index_by_stem(
    folder: str | Path,
    what: str,
    *,
    suffixes: Sequence[str],
    skip: Callable[[str], bool] | None = None,
    duplicates: Literal["raise", "first"] = "raise",
    allow_empty: bool = False,
) -> dict[str, Path]:
    """Map stem -> file for the files of ``folder`` with one of ``suffixes`` (see :func:`files_by_stem`).

    Args:
        folder: the folder to list (not recursive).
        what: what the folder holds, for error messages (``"images"``, ``"ground-truth"``).
        suffixes: file suffixes to keep, e.g. :data:`IMAGE_SUFFIXES` or :data:`LABEL_SUFFIXES`.
        skip: stems to leave out (e.g. ``lambda stem: stem.endswith("_overlay")``).
        duplicates: ``"raise"`` on two files with the same stem, or ``"first"`` keeps the first in
            sorted order.
        allow_empty: return ``{}`` for a folder without matching files instead of raising.

    Raises:
        DataError: the folder does not exist, two files share a stem, or (unless ``allow_empty``) no
            file matches; one line naming the folder and the fix.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: {what} folder not found; check the path")
    found: dict[str, Path] = {}
    for stem, paths in files_by_stem(folder, suffixes).items():
        if skip is not None and skip(stem):
            continue
        if len(paths) > 1 and duplicates == "raise":
            raise DataError(
                f"{folder}: two {what} files named '{stem}' ({paths[0].name}, {paths[1].name}); keep one"
            )
        found[stem] = paths[0]
    if not found and not allow_empty:
        raise DataError(f"{folder}: no {what} files ({', '.join(suffixes)}) in this folder; add some")
    return found
