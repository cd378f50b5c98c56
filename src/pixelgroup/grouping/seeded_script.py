""":func:`~pixelgroup.grouping.seeded.seeded_grouping` in TorchScript-able torch (for the exported pipeline).

The same computation as the numpy version, in float64 like its ``_prepare``: the embedding
``coords + tanh(offset)``, the precision ``exp(10 clamp(sigma, max=8))``, the seed probability
``sigmoid(seed)`` (float32, compared with the thresholds in float32 as numpy 2 does). The numpy
version looks each proposal up in a box of an embedding index, an exact pre-filter: a full scan
of the foreground finds the same pixel sets.
Candidates are visited in the same order (stable sort by decreasing seed), and instances are
painted by the same rule (``_paint``: higher score first, an instance left with fewer than
``min_size`` free pixels is dropped). Labels are 1..N in decreasing score order.
"""

from __future__ import annotations

from typing import Optional  # noqa: UP035 - TorchScript needs typing.Optional

import torch
from torch import Tensor


def _group_channel(emb: Tensor, precision: Tensor, prob: Tensor, fg_threshold: float, seed_threshold: float,
                   min_size: int, min_unclustered: float, max_instances: Optional[int],  # noqa: UP045
                   ) -> tuple[list[float], list[Tensor]]:
    """Accepted ``(scores, flat pixel indices)`` of one seed channel ``prob (H*W,)``, best first."""
    fg = torch.nonzero(prob > fg_threshold).reshape(-1)  # (P,) flat foreground indices
    scores: list[float] = []
    pixels: list[Tensor] = []
    if fg.numel() == 0:
        return scores, pixels
    s = prob[fg]
    e = emb[:, fg]  # (2, P)
    p = precision[:, fg]  # (2, P)
    candidates = torch.nonzero(s > seed_threshold).reshape(-1)
    order = torch.sort(-s[candidates], stable=True).indices
    candidates = candidates[order]
    unclustered = torch.ones(fg.numel(), dtype=torch.bool)
    unlabelled = torch.ones(fg.numel(), dtype=torch.bool)
    visit: list[int] = candidates.tolist()
    for j in visit:
        if not bool(unclustered[j]):
            continue
        if max_instances is not None and len(scores) >= max_instances:
            break
        py, px = float(p[0, j]), float(p[1, j])
        dy = e[0] - e[0, j]
        dx = e[1] - e[1, j]
        inside = py * dy * dy + px * dx * dx < 0.6931471805599453  # ln 2 (TorchScript: no globals)
        proposal = torch.nonzero(inside).reshape(-1)
        share = float(unclustered[proposal].sum()) / proposal.numel()
        fresh = proposal[unlabelled[proposal]]
        unclustered[proposal] = False
        if share >= min_unclustered and fresh.numel() >= min_size:
            unlabelled[fresh] = False
            scores.append(float(s[j]))
            pixels.append(fg[fresh])
    return scores, pixels


def seeded_labels(offset: Tensor, sigma: Tensor, seed: Tensor, coord_scale: float, fg_threshold: float = 0.5,
                  seed_threshold: float = 0.9, min_size: int = 36, min_unclustered: float = 0.5,
                  max_instances: Optional[int] = None) -> Tensor:  # noqa: UP045
    """``(H, W)`` int32 instance labels of one image's raw heads: ``offset (2, H, W)`` (y, x),
    ``sigma (1 or 2, H, W)``, ``seed (K, H, W)`` logits; parameters as ``seeded_grouping``."""
    h, w = offset.shape[1], offset.shape[2]
    ys = torch.arange(h, dtype=torch.float64) * coord_scale
    xs = torch.arange(w, dtype=torch.float64) * coord_scale
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))  # (2, H, W)
    emb = (grid + torch.tanh(offset.double())).reshape(2, -1)  # (2, H*W)
    precision = torch.exp(10.0 * sigma.double().clamp(max=8.0)).reshape(sigma.shape[0], -1).expand(2, -1)
    prob = torch.sigmoid(seed.float()).reshape(seed.shape[0], -1)  # (K, H*W)
    all_scores: list[float] = []
    all_pixels: list[Tensor] = []
    for c in range(prob.shape[0]):
        scores, pixels = _group_channel(emb, precision, prob[c], fg_threshold, seed_threshold, min_size,
                                        min_unclustered, max_instances)
        all_scores += scores
        all_pixels += pixels
    labels = torch.zeros(h * w, dtype=torch.int32)
    if len(all_scores) == 0:
        return labels.reshape(h, w)
    order = torch.sort(-torch.tensor(all_scores, dtype=torch.float64), stable=True).indices
    n = 0
    ranked: list[int] = order.tolist()
    for i in ranked:
        if max_instances is not None and n >= max_instances:
            break
        px = all_pixels[i]
        free = px[labels[px] == 0]
        if free.numel() < min_size:
            continue
        n += 1
        labels[free] = n
    return labels.reshape(h, w)
