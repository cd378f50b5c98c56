"""Training crops with flips, 90-degree rotations, zoom and intensity changes; padding for prediction.

Axis order: samples hold ``image`` ``(H, W, C)`` and label images ``(H, W)`` (numpy); the crops are
torch tensors ``image`` ``(C, h, w)`` and labels ``(h, w)``.
"""

from __future__ import annotations

import math
from collections.abc import Sized
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ..ops.resize import resize_image_to, resize_labels
from .io import DataError

IGNORE = -1
"""Label value of padded pixels: no loss, no metric."""

MIN_ITEMS_PER_EPOCH = 256
"""Default epoch length floor, so that a dataset of a few images still yields many crops per epoch."""


class TrainingCrops(Dataset):
    """Random (foreground-biased) square crops of a dataset's samples, randomly flipped, rotated and
    (optionally) zoomed and changed in intensity.

    Item ``i`` is a crop of sample ``i % len(dataset)``; its randomness comes only from
    ``(seed, epoch, i)``, so the crops are the same for any number of data-loader workers. Call
    :meth:`set_epoch` before each pass to get fresh crops (as with ``DistributedSampler``).

    Every ``(H, W)`` integer array of the sample (``instances``, ``classes``, ``segments``, ...) is
    cropped and augmented exactly like the image; other entries are dropped except ``name``.
    Images smaller than ``crop_size`` are padded: the image with 0, the label arrays with -1
    (ignore).

    Args:
        dataset: a map-style dataset of samples (see :mod:`pixelgroup.data.base`).
        crop_size: side of the square crops, pixels.
        augment: apply one of the 8 flips/90-degree rotations, uniformly at random, and the
            zoom and intensity change below.
        zoom: ``(low, high)``: magnify each crop by a factor drawn log-uniformly from this range
            (a window of ``crop_size / zoom`` pixels resampled to ``crop_size``: the image
            bilinearly, antialiased when shrinking, the label arrays by nearest neighbour);
            ``(1, 1)`` (the default) = no change.
        gain: ``(low, high)``: multiply each crop (all channels alike) by a gain drawn log-uniformly
            from this range; ``(1, 1)`` (the default) = no change.
        shift: then add an offset drawn uniformly from ``[-shift, shift]``; 0 = no change.
        length: items per epoch; default ``len(dataset) * ceil(256 / len(dataset))`` (at least 256).
        seed: base random seed.
        foreground_bias: probability that a crop is centred (with jitter) on a random foreground
            pixel rather than placed uniformly, so sparse images still give signal.
    """

    def __init__(
        self,
        dataset: Dataset,
        *,
        crop_size: int = 128,
        augment: bool = True,
        length: int | None = None,
        seed: int = 0,
        foreground_bias: float = 0.5,
        gain: tuple[float, float] = (1.0, 1.0),
        shift: float = 0.0,
        zoom: tuple[float, float] = (1.0, 1.0),
    ) -> None:
        n = len(dataset) if isinstance(dataset, Sized) else 0
        if n == 0:
            raise ValueError("TrainingCrops needs a non-empty map-style dataset")
        if crop_size < 1:
            raise ValueError(f"crop_size must be a positive number of pixels, got {crop_size}")
        if length is not None and length < 1:
            raise ValueError(f"length must be >= 1 items per epoch, got {length}")
        if not 0.0 <= foreground_bias <= 1.0:
            raise ValueError(f"foreground_bias is a probability in [0, 1], got {foreground_bias}")
        if not 0.0 < gain[0] <= gain[1] or not shift >= 0.0:
            raise ValueError(f"gain must be 0 < low <= high and shift >= 0, got gain={gain}, shift={shift}")
        if not 0.0 < zoom[0] <= zoom[1]:
            raise ValueError(f"zoom must be 0 < low <= high, got {zoom}")
        self.dataset = dataset
        self.crop_size = int(crop_size)
        self.augment = augment
        self.length = length if length is not None else n * math.ceil(MIN_ITEMS_PER_EPOCH / n)
        self.seed = seed
        self.foreground_bias = foreground_bias
        self.gain = (float(gain[0]), float(gain[1]))
        self.shift = float(shift)
        self.zoom = (float(zoom[0]), float(zoom[1]))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Vary the crops between passes; call before each epoch (before workers are started)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} crops")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        sample = self.dataset[index % len(self.dataset)]
        image, labels = _split_sample(sample)
        window = self._window(rng) if self.augment else self.crop_size
        y0, x0 = self._origin(rng, image.shape[:2], labels["instances"], window)
        image = _crop(image, y0, x0, window, 0.0)
        labels = {k: _crop(v, y0, x0, window, IGNORE) for k, v in labels.items()}
        if window != self.crop_size:
            size = (self.crop_size, self.crop_size)
            image = resize_image_to(image, size)
            labels = {k: resize_labels(v, size) for k, v in labels.items()}
        if self.augment:
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            image = _dihedral(image, k, flip)
            labels = {key: _dihedral(v, k, flip) for key, v in labels.items()}
            image = self._intensity(rng, image)
        out: dict[str, Any] = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))}
        out.update({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in labels.items()})
        if "name" in sample:
            out["name"] = sample["name"]
        return out

    def _intensity(self, rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
        """``image * gain + offset`` with a random gain and offset (the image itself when both are off)."""
        if self.gain == (1.0, 1.0) and self.shift == 0.0:
            return image
        gain = math.exp(rng.uniform(math.log(self.gain[0]), math.log(self.gain[1])))
        offset = rng.uniform(-self.shift, self.shift)
        return (image * np.float32(gain) + np.float32(offset)).astype(np.float32, copy=False)

    def _window(self, rng: np.random.Generator) -> int:
        """Side of the image window that becomes the crop: ``crop_size / zoom`` for a random zoom
        (``crop_size`` itself, drawing nothing, when the zoom is off)."""
        if self.zoom == (1.0, 1.0):
            return self.crop_size
        zoom = math.exp(rng.uniform(math.log(self.zoom[0]), math.log(self.zoom[1])))
        return max(1, round(self.crop_size / zoom))

    def _origin(
        self, rng: np.random.Generator, shape: tuple[int, int], instances: np.ndarray, cs: int
    ) -> tuple[int, int]:
        """Top-left corner ``(y0, x0)`` of a ``cs`` x ``cs`` window; negative when the image is smaller (padding)."""
        lo = [min(0, s - cs) for s in shape]  # ranges keep the crop inside the image, or the
        hi = [max(0, s - cs) for s in shape]  # image inside the crop when it is smaller
        if rng.random() < self.foreground_bias:
            foreground = np.flatnonzero(instances > 0)
            if foreground.size:
                py, px = np.unravel_index(foreground[rng.integers(foreground.size)], shape)
                jitter = rng.integers(-(cs // 4), cs // 4 + 1, size=2)
                y0, x0 = int(py) - cs // 2 + int(jitter[0]), int(px) - cs // 2 + int(jitter[1])
                return min(max(y0, lo[0]), hi[0]), min(max(x0, lo[1]), hi[1])
        return int(rng.integers(lo[0], hi[0] + 1)), int(rng.integers(lo[1], hi[1] + 1))


def _split_sample(sample: dict[str, Any]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``image`` as ``(H, W, C)`` float32 and the ``(H, W)`` integer label arrays, int64, checked."""
    name = sample.get("name", "?")
    image = np.asarray(sample["image"], dtype=np.float32)
    image = image[..., None] if image.ndim == 2 else image
    if image.ndim != 3:
        raise DataError(f"sample '{name}': image must be (H, W, C), got shape {image.shape}")
    labels = {}
    for key, value in sample.items():
        if key == "image" or not isinstance(value, np.ndarray) or value.ndim != 2:
            continue
        if not np.issubdtype(value.dtype, np.integer):
            raise DataError(f"sample '{name}': '{key}' must be an integer (H, W) label array, got {value.dtype}")
        if value.shape != image.shape[:2]:
            raise DataError(
                f"sample '{name}': '{key}' has shape {value.shape} but the image is {image.shape[:2]}; "
                "label arrays must match the image size"
            )
        labels[key] = value.astype(np.int64, copy=False)
    if "instances" not in labels:
        raise DataError(f"sample '{name}' has no (H, W) 'instances' array; the dataset must provide one")
    return image, labels


def _crop(array: np.ndarray, y0: int, x0: int, size: int, fill: float) -> np.ndarray:
    """``array[y0:y0+size, x0:x0+size]`` with out-of-image pixels set to ``fill`` (copy)."""
    h, w = array.shape[:2]
    out = np.full((size, size) + array.shape[2:], fill, dtype=array.dtype)
    ys, xs = max(y0, 0), max(x0, 0)
    ye, xe = min(y0 + size, h), min(x0 + size, w)
    out[ys - y0 : ye - y0, xs - x0 : xe - x0] = array[ys:ye, xs:xe]
    return out


def _dihedral(array: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate by ``k`` quarter turns in the (y, x) plane, then mirror left-right if ``flip``."""
    array = np.rot90(array, k, axes=(0, 1))
    return array[:, ::-1] if flip else array


def pad_to_multiple(image: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Pad the bottom and right edges so that H and W become multiples of ``multiple``.

    Reflect padding (replicate where the image is too small to reflect).

    Args:
        image: ``(C, H, W)`` or ``(B, C, H, W)``.

    Returns:
        ``(padded (..., H', W'), (H, W))``: the original size, for :func:`unpad`.
    """
    if image.ndim not in (3, 4):
        raise ValueError(f"expected a (C, H, W) or (B, C, H, W) tensor, got shape {tuple(image.shape)}")
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    h, w = image.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return image, (h, w)
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def unpad(x: Tensor | np.ndarray, size: tuple[int, int]) -> Tensor | np.ndarray:
    """Crop the last two axes back to ``size = (H, W)`` (undoes :func:`pad_to_multiple`)."""
    h, w = size
    if x.shape[-2] < h or x.shape[-1] < w:
        raise ValueError(f"cannot unpad shape {tuple(x.shape)} to the larger size {tuple(size)}")
    return x[..., :h, :w]
