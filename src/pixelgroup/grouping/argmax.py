"""The ``argmax`` grouper: the class of every pixel from a semantic head (the ``softmax`` method)."""

from __future__ import annotations

import numpy as np

from ..types import ModelOutput
from .base import GROUPERS


@GROUPERS.register("argmax")
def argmax_grouping(output: ModelOutput) -> np.ndarray:
    """``(H, W)`` int64 arg-max class of one image's ``output.semantic (K, H, W)`` logits."""
    if output.semantic is None or output.semantic.dim() != 3:
        raise ValueError("argmax grouping: needs output.semantic of one image, (K, H, W)")
    return output.semantic.argmax(0).cpu().numpy().astype(np.int64)
