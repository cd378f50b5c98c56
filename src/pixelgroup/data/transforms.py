"""Training crops with augmentation, and padding helpers for whole-image inference."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F
from torch.utils.data import Dataset

LABEL_KEYS_SKIP = ("image", "name", "instance_classes")


def _crop_origin(rng: np.random.Generator, instances: np.ndarray | None, h: int, w: int, size: int,
                 p_foreground: float) -> tuple[int, int]:
    """Top-left corner of a ``size`` crop; with ``p_foreground`` centred near a foreground pixel."""
    max_y, max_x = max(0, h - size), max(0, w - size)
    if instances is not None and rng.random() < p_foreground:
        ys, xs = np.nonzero(instances > 0)
        if ys.size:
            k = rng.integers(ys.size)
            y0 = int(ys[k]) - size // 2 + int(rng.integers(-size // 4, size // 4 + 1))
            x0 = int(xs[k]) - size // 2 + int(rng.integers(-size // 4, size // 4 + 1))
            return int(np.clip(y0, 0, max_y)), int(np.clip(x0, 0, max_x))
    return int(rng.integers(max_y + 1)), int(rng.integers(max_x + 1))


def _pad_crop(arr: np.ndarray, y0: int, x0: int, size: int, fill: float) -> np.ndarray:
    """``arr[y0:y0+size, x0:x0+size]`` padded with ``fill`` where the image is smaller."""
    crop = arr[y0:y0 + size, x0:x0 + size]
    if crop.shape[0] == size and crop.shape[1] == size:
        return crop
    out = np.full((size, size, *arr.shape[2:]), fill, dtype=arr.dtype)
    out[:crop.shape[0], :crop.shape[1]] = crop
    return out


class TrainingCrops(Dataset):
    """Random square crops of a dataset, with flips and 90-degree rotations.

    Item ``i`` is a dict of tensors: ``image`` ``(C, s, s)`` float32, ``instances`` ``(s, s)`` int64
    and every other ``(H, W)`` integer array of the sample (``classes``, ``segments``), all cropped
    and augmented identically; padding (images smaller than the crop) is 0 in the image and -1
    (ignore) in label maps. Half of the crops are centred near a random foreground pixel so that
    sparse images still give signal. Deterministic: item ``i`` depends only on ``seed`` and ``i``.

    Args:
        dataset: a reader returning sample dicts (:mod:`pixelgroup.data.base`).
        crop_size: side ``s`` of the square crops, pixels.
        augment: random flips and 90-degree rotations.
        length: number of items (default ``len(dataset) * 100``).
        seed: base seed.
        p_foreground: probability of a foreground-centred crop.
    """

    def __init__(self, dataset, *, crop_size: int = 128, augment: bool = True, length: int | None = None,
                 seed: int = 0, p_foreground: float = 0.5) -> None:
        if crop_size < 8:
            raise ValueError(f"TrainingCrops: crop_size must be >= 8, got {crop_size}")
        if len(dataset) == 0:
            raise ValueError("TrainingCrops: the dataset is empty; add images to train on")
        self.dataset, self.crop_size, self.augment = dataset, crop_size, augment
        self.length = int(length) if length is not None else len(dataset) * 100
        self.seed, self.p_foreground = seed, p_foreground

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        rng = np.random.default_rng([self.seed, index])
        sample = self.dataset[int(rng.integers(len(self.dataset)))]
        image = sample["image"]
        h, w = image.shape[:2]
        labels = {k: v for k, v in sample.items()
                  if k not in LABEL_KEYS_SKIP and isinstance(v, np.ndarray) and v.shape == (h, w)}
        y0, x0 = _crop_origin(rng, labels.get("instances"), h, w, self.crop_size, self.p_foreground)
        image = _pad_crop(image, y0, x0, self.crop_size, 0.0)
        labels = {k: _pad_crop(v, y0, x0, self.crop_size, -1) for k, v in labels.items()}
        if self.augment:
            k, flip = int(rng.integers(4)), bool(rng.integers(2))
            image = _dihedral(image, k, flip)
            labels = {n: _dihedral(v, k, flip) for n, v in labels.items()}
        out = {"image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))}
        out.update({n: torch.from_numpy(np.ascontiguousarray(v).astype(np.int64)) for n, v in labels.items()})
        return out


def _dihedral(arr: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate by ``k`` quarter turns in the (y, x) plane, then optionally flip x."""
    arr = np.rot90(arr, k, axes=(0, 1))
    return arr[:, ::-1] if flip else arr


def pad_to_multiple(image: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad ``(..., H, W)`` at the bottom/right to multiples of ``multiple``; returns the old size."""
    h, w = image.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        squeeze = image.dim() == 3
        x = image[None] if squeeze else image
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
        image = x[0] if squeeze else x
    return image, (h, w)


def unpad(tensor: Tensor, size: tuple[int, int]) -> Tensor:
    """Undo :func:`pad_to_multiple`: crop ``(..., H', W')`` back to ``size = (H, W)``."""
    return tensor[..., : size[0], : size[1]]
