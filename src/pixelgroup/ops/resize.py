"""Resizing an image and its label arrays to a given size with the same pixel centres.

Pixel ``i`` of the output samples the input at ``(i + 0.5) * h / H`` (``align_corners=False``), for the
image bilinearly (antialiased when it shrinks) and for labels by nearest neighbour, so an object's
pixels in the image and in its labels stay aligned.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_image_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``(h, w, C)`` image resized to ``size = (H, W)`` as float32 (bilinear; antialiased when shrinking)."""
    h, w = image.shape[:2]
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]  # (1, C, h, w)
    y = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=size[0] < h or size[1] < w)
    return y[0].permute(1, 2, 0).numpy()


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of ``labels (h, w)`` to ``size = (H, W)`` (pixel centres)."""
    h, w = labels.shape
    rows = np.minimum(((np.arange(size[0]) + 0.5) * h / size[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(size[1]) + 0.5) * w / size[1]).astype(np.int64), w - 1)
    return labels[rows[:, None], cols[None, :]]
