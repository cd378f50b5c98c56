"""Named outputs shared by models, losses, grouping and the engine.

Axis order everywhere: images ``(B, C, H, W)``, label images ``(B, H, W)`` or ``(H, W)``,
coordinates ``(y, x)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np
import torch
from torch import Tensor


@dataclass
class ModelOutput:
    """Raw (pre-activation) per-pixel head outputs of a :class:`PixelEmbeddingNet`.

    Every field is optional: a method asks for the heads it needs. Tensors are ``(B, C, H, W)``
    for a batch, or ``(C, H, W)`` after :meth:`select`. Activations (tanh, sigmoid, exp, L2
    normalisation) are applied by the method's loss and grouper, never by the network.

    Attributes:
        offset: ``(B, 2, H, W)`` spatial offsets, channel order (y, x) (``spatial``).
        sigma: ``(B, S, H, W)`` clustering bandwidth, S = 1 (circular) or 2 (elliptical, (y, x)).
        seed: ``(B, K, H, W)`` seediness logits, K = 1 or one per class (``spatial``).
        embedding: ``(B, E, H, W)`` free embedding (``hypersphere``, ``discriminative``, ``segsort``).
        foreground: ``(B, 1, H, W)`` foreground logits (embedding methods).
        semantic: ``(B, K, H, W)`` class logits (multi-class instances, softmax baseline).
    """

    offset: Tensor | None = None
    sigma: Tensor | None = None
    seed: Tensor | None = None
    embedding: Tensor | None = None
    foreground: Tensor | None = None
    semantic: Tensor | None = None

    def items(self) -> list[tuple[str, Tensor]]:
        """The heads that are present, as ``(name, tensor)`` pairs."""
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def select(self, index: int) -> ModelOutput:
        """The outputs of one image of the batch: every tensor becomes ``(C, H, W)``."""
        return replace(self, **{k: v[index] for k, v in self.items()})

    def apply(self, fn) -> ModelOutput:
        """A copy with ``fn`` applied to every present tensor (e.g. cropping, ``.cpu()``)."""
        return replace(self, **{k: fn(v) for k, v in self.items()})


@dataclass
class Instances:
    """The result of grouping one image.

    Attributes:
        labels: ``(H, W)`` int32, 0 = background, 1..N instances.
        scores: ``(N,)`` float32, confidence of instance ``i + 1`` (higher = more confident).
        classes: ``(N,)`` int32 class index of instance ``i + 1`` (0 when single-class).
    """

    labels: np.ndarray
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    classes: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int32)
        self.scores = np.asarray(self.scores, dtype=np.float32)
        n = int(self.labels.max()) if self.labels.size else 0
        if self.scores.shape != (n,):
            raise ValueError(f"Instances: {n} labels but scores of shape {self.scores.shape}")
        if self.classes is None:
            self.classes = np.zeros(n, np.int32)
        self.classes = np.asarray(self.classes, dtype=np.int32)

    @property
    def count(self) -> int:
        return int(self.scores.shape[0])


def as_numpy(x: Tensor | np.ndarray) -> np.ndarray:
    """A numpy view/copy of a tensor on any device."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)
