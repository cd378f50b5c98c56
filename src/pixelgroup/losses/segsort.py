"""SegSort loss (Hwang et al., ICCV 2019): discriminative sorting of segments on the unit sphere.

Every pixel embedding ``x_i`` (L2-normalised) is scored against segment prototypes ``mu_s`` (the
normalised mean embedding of each segment) with a von Mises-Fisher likelihood
``p(s | x_i) ∝ exp(kappa * x_i . mu_s)``.

Supervised (neighbourhood components analysis, as the authors' code): with ``C_i`` the prototypes of
pixel i's class other than its own segment ``s_i`` and ``D_i`` those of the other classes,

    loss_i = -log( sum_{s in C_i} e^{kappa x_i.mu_s} / sum_{s in C_i ∪ D_i} e^{kappa x_i.mu_s} ),

and when ``C_i`` is empty (the only segment of its class) the own segment takes its place:
``-log( e^{kappa x_i.mu_si} / (e^{kappa x_i.mu_si} + sum_{D_i}) )``.

Unsupervised (segments from an over-segmentation, no classes): every segment is its own class,
``loss_i = -log softmax_s(kappa x_i.mu_s)[s_i]``.

Prototypes from the last few batches (a :class:`PrototypeMemory`, detached) join the sets: with
their class in the supervised case, as negatives in the unsupervised one.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.segments import (
    refine_segments,
    segment_index,
    segment_labels,
    segment_prototypes,
    spherical_kmeans,
)
from .base import LOSSES

_EPS = 1e-12


class PrototypeMemory:
    """FIFO of detached segment prototypes and their classes from the last ``size_batches`` batches."""

    def __init__(self, size_batches: int = 2) -> None:
        if size_batches < 0:
            raise ValueError(f"PrototypeMemory: size_batches must be >= 0, got {size_batches}")
        self.size_batches = size_batches
        self._items: deque[tuple[Tensor, Tensor]] = deque(maxlen=max(size_batches, 1))

    def push(self, prototypes: Tensor, labels: Tensor) -> None:
        """Store ``prototypes (S, E)`` and ``labels (S,)`` (detached copies)."""
        if self.size_batches == 0:
            return
        self._items.append((prototypes.detach().clone(), labels.detach().clone()))

    def get(self) -> tuple[Tensor, Tensor] | None:
        """``(prototypes (M, E), labels (M,))`` of the stored batches, or ``None`` when empty."""
        if not self._items:
            return None
        return torch.cat([p for p, _ in self._items]), torch.cat([lab for _, lab in self._items])

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return sum(p.shape[0] for p, _ in self._items)


def _sample(idx: Tensor, max_pixels: int | None, generator: torch.Generator | None) -> Tensor:
    if max_pixels is None or idx.numel() <= max_pixels:
        return idx
    pick = torch.randperm(idx.numel(), generator=generator, device="cpu")[:max_pixels]
    return idx[pick.to(idx.device)]


def _check(embedding: Tensor, segments: Tensor, classes: Tensor | None) -> None:
    if embedding.dim() != 4:
        raise ValueError(f"segsort_loss: embedding must be (B, E, H, W), got {tuple(embedding.shape)}")
    want = (embedding.shape[0], *embedding.shape[2:])
    if segments.shape != want:
        raise ValueError(
            f"segsort_loss: segments {tuple(segments.shape)} do not match embedding {tuple(embedding.shape)}"
        )
    if classes is not None and classes.shape != want:
        raise ValueError(
            f"segsort_loss: classes {tuple(classes.shape)} do not match embedding {tuple(embedding.shape)}"
        )


def _nca(logits: Tensor, own: Tensor, proto_cls: Tensor | None, pix_cls: Tensor | None) -> Tensor:
    """Mean over rows of ``-log(sum_pos e^logit / sum_(pos | neg) e^logit)`` for ``logits (P, S)``.

    ``own (P,)`` is each pixel's own segment (column), ``proto_cls (S,)`` / ``pix_cls (P,)`` classes
    (``< 0`` = no class; ``None`` = unsupervised). Positives: the other segments of the pixel's class,
    or its own segment when there is none (always, unsupervised); negatives: every other segment.
    The class sums are one matmul (no ``(P, S)`` masks) after factoring out the row maximum, exact
    unless a pixel's positives are ``e^-87`` below its best segment (kappa > ~40 in float32), where
    that pixel's loss saturates near 87.
    """
    rows = torch.arange(own.numel(), device=own.device)
    own_only = torch.logsumexp(logits, 1) - logits[rows, own]  # -log softmax of the own segment
    if proto_cls is None or pix_cls is None:
        return own_only.mean()
    top = logits.max(1, keepdim=True).values.detach()
    others = (logits - top).exp().index_put((rows, own), logits.new_zeros(()))  # (P, S), own removed
    n_cls = int(max(int(proto_cls.max()), int(pix_cls.max()))) + 1
    one_hot = F.one_hot(proto_cls.clamp_min(0), n_cls).to(logits.dtype)
    one_hot = one_hot * (proto_cls >= 0)[:, None].to(logits.dtype)  # (S, C), no-class rows zero
    same = (others @ one_hot).gather(1, pix_cls[:, None]).squeeze(1)  # (P,)
    tiny = torch.finfo(logits.dtype).tiny
    with_others = torch.log(others.sum(1).clamp_min(tiny)) - torch.log(same.clamp_min(tiny))
    n_same = one_hot.sum(0)[pix_cls] - (proto_cls[own] == pix_cls).to(logits.dtype)
    return torch.where(n_same > 0, with_others, own_only).mean()


def _with_memory(
    protos: Tensor, labels: Tensor | None, memory: tuple[Tensor, Tensor] | None
) -> tuple[Tensor, Tensor | None]:
    """Append the memory prototypes ``(M, E)`` (and their labels when supervised)."""
    if memory is None or memory[0].numel() == 0:
        return protos, labels
    mem_p, mem_l = memory
    e = protos.shape[1]
    if mem_p.dim() != 2 or mem_p.shape[1] != e or mem_l.shape != mem_p.shape[:1]:
        raise ValueError(
            f"segsort_loss: memory must be (prototypes (M, {e}), labels (M,)), "
            f"got {tuple(mem_p.shape)} and {tuple(mem_l.shape)}"
        )
    protos = torch.cat([protos, F.normalize(mem_p.to(protos), dim=1, eps=_EPS)])
    if labels is not None:
        labels = torch.cat([labels, mem_l.to(labels)])
    return protos, labels


def segsort_loss(
    embedding: Tensor,
    segments: Tensor,
    classes: Tensor | None = None,
    *,
    concentration: float = 10.0,
    memory: tuple[Tensor, Tensor] | None = None,
    ignore: int = 255,
    max_pixels: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """SegSort loss of a batch (see the module docstring for the formulas).

    Args:
        embedding: ``(B, E, H, W)`` raw embedding (L2-normalised per pixel here).
        segments: ``(B, H, W)`` int segment ids per image, ``< 0`` = ignored pixel.
        classes: ``(B, H, W)`` int class per pixel (supervised), ``< 0`` or ``ignore`` = ignored;
            ``None`` = unsupervised (each segment is its own class).
        concentration: vMF concentration ``kappa``.
        memory: ``(prototypes (M, E), labels (M,))`` from earlier batches (labels unused when
            unsupervised: memory prototypes are negatives).
        ignore: class value treated as ignore besides negatives (PASCAL VOC's 255).
        max_pixels: score a uniform random subset of at most this many valid pixels (the
            prototypes still use every pixel); ``None`` = all pixels.
        generator: random generator of that subset.

    Returns:
        ``{"segsort", "total"}`` scalars (mean over scored pixels); 0 with a gradient when no pixel
        is valid.
    """
    return _segsort(embedding, segments, classes, concentration, memory, ignore, max_pixels, generator)[0]


def _segsort(
    embedding: Tensor,
    segments: Tensor,
    classes: Tensor | None,
    concentration: float,
    memory: tuple[Tensor, Tensor] | None,
    ignore: int,
    max_pixels: int | None,
    generator: torch.Generator | None,
) -> tuple[dict[str, Tensor], Tensor, Tensor | None]:
    """:func:`segsort_loss` plus the batch's prototypes ``(S, E)`` and their classes ``(S,)``."""
    _check(embedding, segments, classes)
    valid = segments >= 0
    if classes is not None:
        valid = valid & (classes >= 0) & (classes != ignore)
    seg = torch.where(valid, segments.long(), torch.full_like(segments.long(), -1))
    protos, _, _ = segment_prototypes(embedding, seg)  # (S, E)
    proto_cls = None if classes is None else segment_labels(seg, classes.long())  # (S,)
    own_all, _, _ = segment_index(seg)  # (B*H*W,)
    idx = _sample(torch.nonzero(own_all >= 0).squeeze(1), max_pixels, generator)
    if idx.numel() == 0:
        zero = embedding.sum() * 0.0
        return {"segsort": zero, "total": zero}, protos, proto_cls
    e = embedding.shape[1]
    x = F.normalize(embedding, dim=1, eps=_EPS).permute(0, 2, 3, 1).reshape(-1, e)[idx]  # (P, E)
    pix_cls = None if classes is None else classes.reshape(-1).long()[idx]  # None: own segment only
    all_protos, all_cls = _with_memory(protos, proto_cls, memory)
    loss = _nca(concentration * (x @ all_protos.t()), own_all[idx], all_cls, pix_cls)
    return {"segsort": loss, "total": loss}, protos, proto_cls


@LOSSES.register("segsort")
class SegSortLoss(nn.Module):
    """:func:`segsort_loss` on ``output.embedding`` with segments made as the authors do.

    Supervised: the detached embedding of each image is clustered by :func:`spherical_kmeans`
    (grid-initialised, with positions) over its annotated pixels, and the clusters are intersected
    with the ground-truth class regions (:func:`refine_segments`). Unsupervised: the segments are
    ``batch["segments"]`` (a contour / superpixel over-segmentation). The prototypes of each
    training batch are pushed to a :class:`PrototypeMemory` of ``memory_batches`` batches.

    Args:
        concentration: vMF concentration ``kappa`` (authors: 10).
        memory_batches: batches of prototypes kept as extra positives/negatives; each batch stores
            at most ``B * gy * gx`` prototypes (a random subset, as the authors). ``None`` = the
            authors' choice: 2 supervised, 0 unsupervised (their unsupervised loss has no memory).
        unsupervised: train on ``batch["segments"]`` without classes.
        grid: k-means initial grid ``(gy, gx)`` (authors: 5 x 5).
        iterations: k-means iterations (authors: 10).
        max_pixels: scored pixels per batch (random subset; the prototypes use every pixel), which
            bounds the ``(max_pixels, S)`` similarity matrix; ``None`` = all.
        ignore: class value ignored besides negatives.
    """

    def __init__(
        self,
        *,
        concentration: float = 10.0,
        memory_batches: int | None = None,
        unsupervised: bool = False,
        grid: tuple[int, int] | list[int] = (5, 5),
        iterations: int = 10,
        max_pixels: int | None = 4096,
        ignore: int = 255,
    ) -> None:
        super().__init__()
        if concentration <= 0:
            raise ValueError(f"SegSortLoss: concentration must be > 0, got {concentration}")
        self.concentration = float(concentration)
        self.unsupervised = bool(unsupervised)
        self.grid = (int(grid[0]), int(grid[1]))
        self.iterations = int(iterations)
        self.max_pixels = max_pixels
        self.ignore = int(ignore)
        if memory_batches is None:
            memory_batches = 0 if self.unsupervised else 2
        self.memory = PrototypeMemory(memory_batches)

    def segments(self, embedding: Tensor, batch: dict[str, Any]) -> tuple[Tensor, Tensor | None]:
        """The ``(B, H, W)`` segments and classes (``None`` when unsupervised) the loss uses."""
        if self.unsupervised:
            if batch.get("segments") is None:
                raise ValueError(
                    "unsupervised SegSort needs batch['segments'] (an over-segmentation); build the dataset "
                    "with segments='felzenszwalb' or provide DIR/segments/NAME.png"
                )
            return batch["segments"].long(), None
        classes = batch.get("classes")
        if classes is None:
            raise ValueError(
                "supervised SegSort needs batch['classes']; set loss.unsupervised: true to train without"
            )
        classes = classes.long().masked_fill(classes == self.ignore, -1)
        clusters = spherical_kmeans(embedding.detach(), grid=self.grid, iterations=self.iterations,
                                    valid=classes >= 0)
        return refine_segments(clusters, classes), classes

    def forward(self, output, batch: dict[str, Any]) -> dict[str, Tensor]:
        embedding = output.embedding
        if embedding is None:
            raise ValueError("SegSortLoss: the model output has no 'embedding' head")
        segments, classes = self.segments(embedding, batch)
        terms, protos, labels = _segsort(embedding, segments, classes, self.concentration, self.memory.get(),
                                         self.ignore, self.max_pixels, None)
        if self.training and torch.is_grad_enabled():
            self._remember(protos.detach(), labels, cap=embedding.shape[0] * self.grid[0] * self.grid[1])
        return terms

    def _remember(self, protos: Tensor, labels: Tensor | None, *, cap: int) -> None:
        """Push at most ``cap = B * gy * gx`` of this batch's prototypes (a random subset, as the authors)."""
        if labels is None:  # unsupervised: memory prototypes are negatives only
            labels = torch.full((protos.shape[0],), -2, dtype=torch.long, device=protos.device)
        if protos.shape[0] > cap:
            pick = torch.randperm(protos.shape[0])[:cap].to(protos.device)
            protos, labels = protos[pick], labels[pick]
        self.memory.push(protos, labels)
