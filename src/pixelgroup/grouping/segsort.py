"""SegSort inference (Hwang et al. 2019): a prototype bank from annotated images, and the ``segsort``
grouper that labels each test segment by its nearest bank prototypes.

The *prototype bank* (:func:`build_prototype_bank`) clusters each training image's embedding into
segments (spherical k-means with positions, grid-initialised), and keeps every segment's prototype
(the normalised mean embedding of its majority-class pixels) with that class, the image name and the
segment's bounding box. The grouper (:func:`segsort_grouping`) clusters a test embedding the same
way and gives each segment the majority class of its ``k`` most similar (cosine) bank prototypes;
:func:`explain_segments` returns those voters. The bank is bounded: at most ``max_per_class``
prototypes per class, a uniform random (seeded) sample of that class's segments.

Running the network over the training images is the engine's job
(:func:`pixelgroup.engine.state.fit_state`); everything here works on embeddings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from ..ops.coords import pixel_grid
from ..ops.segments import segment_labels, segment_prototypes, spherical_kmeans
from ..types import ModelOutput
from .base import GROUPERS

Vote = Literal["majority", "vmf"]

BANK_DEFAULTS: dict[str, Any] = {"grid": (5, 5), "iterations": 10, "coord_weight": 1.0, "max_per_class": 2000,
                                 "seed": 0}
"""Bank settings. The authors': 5 x 5 grid, 10 k-means iterations. The grouper clusters test images
with the bank's ``grid``, ``iterations`` and ``coord_weight`` unless told otherwise."""


@dataclass
class Voter:
    """A bank prototype that voted for a test segment."""

    name: str  # training image it came from
    bbox: tuple[int, int, int, int]  # (y0, x0, y1, x1) of its segment, end exclusive
    class_index: int
    similarity: float  # cosine similarity to the test segment's prototype


@dataclass
class SegmentExplanation:
    """One test segment, its predicted class and the bank prototypes that voted."""

    mask: np.ndarray  # (H, W) bool
    predicted_class: int
    voters: list[Voter]


def image_prototypes(embedding: Tensor, classes: Tensor, params: Mapping[str, Any]) -> dict[str, Tensor]:
    """The bank entries of one annotated image, as the authors extract them.

    Args:
        embedding: ``(E, H, W)`` raw embedding.
        classes: ``(H, W)`` int class per pixel, ``< 0`` or 255 = ignore.
        params: ``grid``, ``iterations``, ``coord_weight``.

    Returns:
        ``{"prototypes" (S, E) unit, "labels" (S,), "bbox" (S, 4)}``: one entry per k-means segment of
        the annotated pixels, labelled by majority and averaged over its majority-class pixels only.
    """
    classes = classes.to(embedding.device).long()
    classes = classes.masked_fill(classes == 255, -1)
    segs = spherical_kmeans(embedding, grid=params["grid"], iterations=params["iterations"],
                            coord_weight=params["coord_weight"], valid=classes >= 0)
    if int(segs.max()) < 0:
        return {"prototypes": embedding.new_zeros(0, embedding.shape[0]),
                "labels": classes.new_zeros(0), "bbox": classes.new_zeros(0, 4)}
    labels = segment_labels(segs[None], classes[None])  # (S,), segments 0..S-1 all present
    majority = torch.where(segs >= 0, labels[segs.clamp_min(0)], torch.full_like(segs, -2))
    pure = torch.where(classes == majority, segs, torch.full_like(segs, -1))
    protos, _, _ = segment_prototypes(embedding[None].float(), pure[None])
    return {"prototypes": protos, "labels": labels, "bbox": _bboxes(segs, labels.numel())}


def build_prototype_bank(
    samples: Iterable[tuple[str, ModelOutput, Tensor]],
    *,
    grid: tuple[int, int] | list[int] = BANK_DEFAULTS["grid"],
    iterations: int = BANK_DEFAULTS["iterations"],
    coord_weight: float = BANK_DEFAULTS["coord_weight"],
    max_per_class: int = BANK_DEFAULTS["max_per_class"],
    seed: int = BANK_DEFAULTS["seed"],
) -> dict[str, Any]:
    """The prototype bank of annotated images (the ``segsort`` method's inference state).

    Args:
        samples: ``(name, output, classes)`` per image: ``output.embedding (E, H, W)``, ``classes
            (H, W)`` int (``< 0`` or 255 = ignore).
        grid, iterations, coord_weight: spherical k-means settings (also used at test time).
        max_per_class: most prototypes kept per class (a seeded uniform sample).
        seed: seed of that sample.

    Returns:
        The state dict (tensors on the CPU): ``prototypes (M, E)``, ``labels (M,)``, ``image_index
        (M,)`` into ``names``, ``bbox (M, 4)`` ``(y0, x0, y1, x1)``, ``params``.
    """
    params = {"grid": (int(grid[0]), int(grid[1])), "iterations": int(iterations),
              "coord_weight": float(coord_weight), "max_per_class": int(max_per_class), "seed": int(seed)}
    builder = _BankBuilder(params["max_per_class"], params["seed"])
    for name, output, classes in samples:
        if output.embedding is None or output.embedding.dim() != 3:
            raise ValueError("segsort: the bank needs output.embedding of one image, (E, H, W); "
                             "was the model trained with method 'segsort'?")
        builder.add(name, image_prototypes(output.embedding, classes, params))
    return builder.state(params)


def _bboxes(segments: Tensor, n: int) -> Tensor:
    """``(n, 4)`` int64 ``(y0, x0, y1, x1)`` (end exclusive) of segments ``0..n-1`` of ``(H, W)``."""
    h, w = segments.shape
    ys, xs = pixel_grid(h, w, device=segments.device, dtype=torch.long).reshape(2, -1)  # (H*W,) each
    seg = segments.reshape(-1)
    keep = seg >= 0
    out = []
    for coord, big in ((ys, h), (xs, w)):
        lo = torch.full((n,), big, dtype=torch.long, device=seg.device).scatter_reduce(
            0, seg[keep], coord[keep], reduce="amin")
        hi = torch.full((n,), -1, dtype=torch.long, device=seg.device).scatter_reduce(
            0, seg[keep], coord[keep], reduce="amax")
        out.append((lo, hi + 1))
    return torch.stack([out[0][0], out[1][0], out[0][1], out[1][1]], dim=1)


class _BankBuilder:
    """Per-class bounded uniform sample of prototypes (bottom-k of seeded random keys)."""

    def __init__(self, max_per_class: int, seed: int) -> None:
        if max_per_class < 1:
            raise ValueError(f"segsort: max_per_class must be >= 1, got {max_per_class}")
        self.cap = max_per_class
        self.rng = np.random.default_rng(seed)
        self.names: list[str] = []
        self.seen: set[int] = set()
        fields = ("prototypes", "labels", "bbox", "image", "key")
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in fields}

    def add(self, name: str, entry: Mapping[str, Tensor]) -> None:
        n = int(entry["labels"].numel())
        if n == 0:
            return
        self.names.append(name)
        self.parts["prototypes"].append(entry["prototypes"].detach().float().cpu().numpy())
        self.parts["labels"].append(entry["labels"].cpu().numpy().astype(np.int64))
        self.parts["bbox"].append(entry["bbox"].cpu().numpy().astype(np.int64))
        self.parts["image"].append(np.full(n, len(self.names) - 1, np.int64))
        self.parts["key"].append(self.rng.random(n))
        self.seen.update(self.parts["labels"][-1].tolist())
        if sum(len(k) for k in self.parts["key"]) > 2 * self.cap * len(self.seen):
            self._prune()

    def _prune(self) -> dict[str, np.ndarray]:
        cols = {k: np.concatenate(v) if v else np.zeros(0) for k, v in self.parts.items()}
        keep = []
        for c in np.unique(cols["labels"]):
            idx = np.flatnonzero(cols["labels"] == c)
            keep.append(idx[np.argsort(cols["key"][idx], kind="stable")[: self.cap]])
        keep = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
        cols = {k: v[keep] for k, v in cols.items()}
        self.parts = {k: [v] for k, v in cols.items()}
        return cols

    def state(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cols = self._prune()
        if cols["labels"].size == 0:
            raise ValueError("segsort: no annotated pixels in the data; the bank would be empty")
        used, image = np.unique(cols["image"], return_inverse=True)
        return {
            "kind": "segsort_bank",
            "prototypes": torch.from_numpy(cols["prototypes"].astype(np.float32)),
            "labels": torch.from_numpy(cols["labels"]),
            "image_index": torch.from_numpy(image.astype(np.int64)),
            "bbox": torch.from_numpy(cols["bbox"]),
            "names": [self.names[i] for i in used],
            "params": {**params, "grid": list(params["grid"])},
        }


def _check_state(state: Mapping[str, Any] | None) -> None:
    if not state or state.get("kind") != "segsort_bank":
        raise ValueError(
            "segsort: no prototype bank (state=); build it with pixelgroup.engine.state.fit_state(method, model, "
            "train_dataset, device) after training (pixelgroup train does it at every validation and stores it "
            "in the checkpoint)"
        )


def _knn(
    queries: Tensor, state: Mapping[str, Any], params: Mapping[str, Any]
) -> tuple[Tensor, Tensor, Tensor]:
    """Vote of the ``k`` nearest bank prototypes: ``(class (S,), bank index (S, k), similarity (S, k))``.

    ``majority``: one vote per neighbour, ties to the class with the larger summed similarity;
    ``vmf``: votes weighted by ``exp(concentration * (similarity - 1))``.
    """
    bank = state["prototypes"].to(queries)
    labels = state["labels"].to(queries.device)
    k = max(1, min(int(params["k"]), bank.shape[0]))
    sims, idx = (queries @ bank.t()).topk(k, dim=1)  # (S, k)
    votes = labels[idx]  # (S, k)
    n_cls = int(labels.max()) + 1
    score = torch.zeros(queries.shape[0], n_cls, dtype=queries.dtype, device=queries.device)
    if params["vote"] == "vmf":
        weight = torch.exp(float(params["concentration"]) * (sims - 1.0))
    else:
        weight = torch.ones_like(sims) + 0.49 * sims / k  # the tie-break term sums to < 0.49 in size
    score.scatter_add_(1, votes, weight)
    return score.argmax(1), idx, sims


def _clustering(state: Mapping[str, Any], grid, iterations, coord_weight) -> dict[str, Any]:
    bank = state.get("params", {})
    pick = {"grid": grid, "iterations": iterations, "coord_weight": coord_weight}
    out = {k: (bank.get(k, BANK_DEFAULTS[k]) if v is None else v) for k, v in pick.items()}
    out["grid"] = (int(out["grid"][0]), int(out["grid"][1]))
    return out


def _classify(output: ModelOutput, state: Mapping[str, Any], params: Mapping[str, Any]):
    """``(segments (H, W), class per segment (S,), bank index (S, k), similarity (S, k))``."""
    _check_state(state)
    if params["vote"] not in ("majority", "vmf"):
        raise ValueError(f"segsort: vote must be 'majority' or 'vmf', got {params['vote']!r}")
    emb = output.embedding
    if emb is None or emb.dim() != 3:
        raise ValueError("segsort: grouping needs output.embedding of one image, (E, H, W)")
    segs = spherical_kmeans(emb, grid=params["grid"], iterations=params["iterations"],
                            coord_weight=params["coord_weight"])
    protos, _, _ = segment_prototypes(emb[None].float(), segs[None])
    classes, idx, sims = _knn(protos, state, params)
    return segs, classes, idx, sims


@GROUPERS.register("segsort")
def segsort_grouping(
    output: ModelOutput,
    *,
    state: Mapping[str, Any],
    k: int = 15,
    vote: Vote = "majority",
    concentration: float = 10.0,
    grid: tuple[int, int] | list[int] | None = None,
    iterations: int | None = None,
    coord_weight: float | None = None,
) -> np.ndarray:
    """``(H, W)`` int64 class per pixel of one image by k-nearest-prototype voting of its segments.

    Args:
        output: ``embedding (E, H, W)`` of one image.
        state: the prototype bank (:func:`build_prototype_bank`).
        k: neighbours that vote (the authors': 15).
        vote: ``"majority"`` (one vote each, the authors') or ``"vmf"`` (weights
            ``exp(concentration * (similarity - 1))``, so far neighbours barely count).
        concentration: vMF concentration of the ``vmf`` vote.
        grid, iterations, coord_weight: test-time clustering; ``None`` = the bank's settings.
    """
    params = {"k": k, "vote": vote, "concentration": concentration,
              **_clustering(state, grid, iterations, coord_weight)}
    segs, classes, _, _ = _classify(output, state, params)
    return classes[segs].cpu().numpy()


def explain_segments(
    output: ModelOutput, state: Mapping[str, Any], *, k: int = 15, vote: Vote = "majority",
    concentration: float = 10.0, grid=None, iterations: int | None = None, coord_weight: float | None = None,
) -> list[SegmentExplanation]:
    """Per test segment: its mask, predicted class and the ``k`` bank prototypes that voted
    (settings as :func:`segsort_grouping`)."""
    params = {"k": k, "vote": vote, "concentration": concentration,
              **_clustering(state, grid, iterations, coord_weight)}
    segs, classes, idx, sims = _classify(output, state, params)
    names, image_index = state["names"], state["image_index"]
    bbox, labels = state["bbox"], state["labels"]
    result = []
    for s in range(classes.numel()):
        voters = [
            Voter(name=names[int(image_index[j])], bbox=tuple(int(v) for v in bbox[j]),
                  class_index=int(labels[j]), similarity=float(sim))
            for j, sim in zip(idx[s].tolist(), sims[s].tolist())
        ]
        result.append(SegmentExplanation((segs == s).cpu().numpy(), int(classes[s]), voters))
    return result
