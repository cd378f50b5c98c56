"""Test-time augmentation over the dihedral group D4 (4 rotations x optional mirror).

The network runs on the 8 transformed images; every output is transformed back before averaging.
What "back" means depends on the head (:data:`HEAD_KINDS`):

* ``vector`` (``offset``, channels ``(y, x)``): the field is moved back AND each vector is mapped by
  the inverse linear map (a quarter turn sends ``(vy, vx)`` to ``(-vx, vy)``; a mirror negates ``vx``).
  Raw (pre-``tanh``) offsets are averaged; ``tanh`` is odd, so the sign changes commute with it.
* ``axes`` (``sigma``): with 2 channels ``(y, x)`` they swap under odd quarter turns; 1 channel is a
  scalar.
* ``scalar`` (``seed``, ``foreground``, ``semantic`` logits): moved back only; logits are averaged.
* ``free`` (``embedding``): a learned embedding is not equivariant (the 8 transforms may embed the
  same object at 8 unrelated points), so averaging it is meaningless: the identity transform's
  embedding is used. Methods built on a free embedding (``hypersphere``, ``discriminative``) get TTA
  on their ``foreground``/``semantic`` heads only; ``segsort`` (embedding only) gets none.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import Tensor

from ..types import ModelOutput

log = logging.getLogger(__name__)

HEAD_KINDS = {"offset": "vector", "sigma": "axes", "seed": "scalar", "foreground": "scalar",
              "semantic": "scalar", "embedding": "free"}
"""How each head transforms under a rotation or mirror of the image."""

D4 = tuple((k, flip) for flip in (False, True) for k in range(4))
"""The 8 transforms ``(k, flip)``: rotate by ``k`` quarter turns (``torch.rot90`` on ``(H, W)``),
then mirror left-right if ``flip``. ``(0, False)`` is the identity."""


def transform(x: Tensor, k: int, flip: bool) -> Tensor:
    """Apply ``(k, flip)`` to the last two axes ``(..., H, W)``."""
    x = torch.rot90(x, k, dims=(-2, -1))
    return x.flip(-1) if flip else x


def invert(x: Tensor, k: int, flip: bool, kind: str = "scalar") -> Tensor:
    """Undo ``(k, flip)`` on an output ``(B, C, H', W')`` of head kind ``kind`` (see :data:`HEAD_KINDS`)."""
    if flip:
        x = x.flip(-1)
    x = torch.rot90(x, -k, dims=(-2, -1))
    if kind == "vector":
        vy, vx = x[:, 0], x[:, 1]
        if flip:  # the mirror's linear map A_F: (vy, vx) -> (vy, -vx), its own inverse
            vx = -vx
        for _ in range(k % 4):  # inverse quarter turn: (vy, vx) -> (vx, -vy)
            vy, vx = vx, -vy
        x = torch.stack([vy, vx], dim=1)
    elif kind == "axes" and x.shape[1] == 2 and k % 2:
        x = x.flip(1)
    return x


def tta_forward(forward: Callable[[Tensor], ModelOutput], x: Tensor) -> ModelOutput:
    """Average of ``forward`` over the 8 transforms of ``x (B, C, H, W)`` (H, W multiples of the
    network's multiple), each output transformed back; free embeddings from the identity only."""
    sums: dict[str, Tensor] = {}
    free: dict[str, Tensor] = {}
    for k, flip in D4:
        out = forward(transform(x, k, flip))
        for name, t in out.items():
            kind = HEAD_KINDS.get(name, "free")
            if kind == "free":
                if (k, flip) == (0, False):
                    free[name] = t
                continue
            back = invert(t, k, flip, kind).float()
            sums[name] = back if name not in sums else sums[name] + back
    return ModelOutput(**{name: s / len(D4) for name, s in sums.items()}, **free)


def warn_if_no_effect(heads: list[str]) -> None:
    """Log once that TTA only averages equivariant heads when the model has a free embedding."""
    if "embedding" in heads:
        averaged = [h for h in heads if HEAD_KINDS.get(h, "free") != "free"]
        log.warning("TTA: the free 'embedding' head is not equivariant and is taken from the identity "
                    "transform; averaged heads: %s", ", ".join(averaged) or "none (TTA has no effect)")
