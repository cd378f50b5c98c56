"""The ``segsort`` method: semantic segmentation by discriminative sorting of segments (Hwang et al. 2019).

Head: ``embedding`` (``model.embedding_dim`` channels, L2-normalised by the loss and the inference).
Loss: :class:`~pixelgroup.losses.segsort.SegSortLoss` from ``cfg.loss``.

Inference needs a *prototype bank*: after training, :meth:`SegSortMethod.fit_state` runs the network
over the annotated training images, clusters each embedding into segments (spherical k-means with
positions, grid-initialised), and keeps every segment's prototype (the normalised mean embedding of
its majority-class pixels) with that class, the image name and the segment's bounding box.
:meth:`SegSortMethod.predict_semantic` clusters a test image the same way and gives each segment the
majority class of its ``k`` most similar (cosine) bank prototypes; :meth:`SegSortMethod.explain`
returns those voters. The bank is bounded: at most ``max_per_class`` prototypes per class, a uniform
random (seeded) sample of that class's segments.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import RunConfig
from ..grouping.vmf import segment_labels, segment_prototypes, spherical_kmeans
from ..losses.segsort import SegSortLoss
from ..types import ModelOutput
from .base import Method, register_method

INFERENCE_DEFAULTS: dict[str, Any] = {
    "grid": (5, 5), "iterations": 10, "k": 15, "vote": "majority", "concentration": 10.0,
    "coord_weight": 1.0, "max_per_class": 2000, "seed": 0,
}
"""Inference settings. The authors': 5 x 5 grid, 10 k-means iterations, k = 15 neighbours, one vote
each (``vote="majority"``). ``vote="vmf"`` weighs each neighbour by ``exp(concentration * (sim - 1))``
so that far neighbours barely count (helps rare classes in small banks)."""


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


def _loss_kwargs(cfg: RunConfig) -> dict[str, Any]:
    valid = sorted(inspect.signature(SegSortLoss.__init__).parameters.keys() - {"self"})
    unknown = sorted(set(cfg.loss) - set(valid))
    if unknown:
        raise ValueError(f"method 'segsort': unknown loss key(s) {unknown}; valid keys: {valid}")
    return dict(cfg.loss)


def _inference_params(cfg: RunConfig | None, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults < ``cfg.loss`` (grid, iterations, concentration) < ``cfg.grouping.params`` < ``overrides``."""
    params = dict(INFERENCE_DEFAULTS)
    if cfg is not None:
        params.update({k: v for k, v in cfg.loss.items() if k in ("grid", "iterations", "concentration")})
        params.update(cfg.grouping.params)
    params.update(overrides)
    if params["vote"] not in ("majority", "vmf"):
        raise ValueError(f"segsort: vote must be 'majority' or 'vmf', got {params['vote']!r}")
    unknown = sorted(set(params) - set(INFERENCE_DEFAULTS))
    if unknown:
        raise ValueError(f"segsort: unknown setting(s) {unknown}; valid: {sorted(INFERENCE_DEFAULTS)}")
    params["grid"] = (int(params["grid"][0]), int(params["grid"][1]))
    return params


@torch.no_grad()
def _embed(model: nn.Module, image: Tensor) -> Tensor:
    """``(C, H, W)`` image -> ``(E, H, W)`` embedding, padding to the network's multiple."""
    h, w = image.shape[-2:]
    m = int(getattr(model, "multiple", 1))
    ph, pw = (-h) % m, (-w) % m
    x = image[None]
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect" if ph < h and pw < w else "replicate")
    out = model(x)
    if out.embedding is None:
        raise ValueError("segsort: the model has no 'embedding' head; was it trained with method 'segsort'?")
    return out.embedding[0, :, :h, :w]


def _samples(data: Iterable) -> Iterator[tuple[Tensor, Tensor, str]]:
    """``(image (C, H, W), classes (H, W), name)`` from a dataset of numpy samples or tensor batches."""
    indexable = hasattr(data, "__getitem__") and hasattr(data, "__len__")
    items = (data[i] for i in range(len(data))) if indexable else iter(data)
    for n, item in enumerate(items):
        if "classes" not in item:
            raise ValueError("segsort.fit_state: samples need 'classes' (use a semantic dataset)")
        image, classes, name = item["image"], item["classes"], item.get("name", f"image_{n:04d}")
        if isinstance(image, np.ndarray):  # one sample, (H, W, C)
            chw = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
            yield chw, torch.as_tensor(classes), name
            continue
        names = name if isinstance(name, (list, tuple)) else [name] * image.shape[0]
        for b in range(image.shape[0]):  # a batch, (B, C, H, W)
            yield image[b], classes[b], str(names[b])


def _bboxes(segments: Tensor, n: int) -> Tensor:
    """``(n, 4)`` int64 ``(y0, x0, y1, x1)`` (end exclusive) of segments ``0..n-1`` of ``(H, W)``."""
    h, w = segments.shape
    ys = torch.arange(h, device=segments.device)[:, None].expand(h, w).reshape(-1)
    xs = torch.arange(w, device=segments.device)[None, :].expand(h, w).reshape(-1)
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
            raise ValueError("segsort.fit_state: no annotated pixels in the data; the bank would be empty")
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
            "segsort: no prototype bank; run SegSortMethod().fit_state(model, train_dataset, device) after "
            "training (pixelgroup train does it at every validation and stores it in the checkpoint)"
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


class SegSortMethod(Method):
    """SegSort: vMF embedding + segment clustering + k-nearest-neighbour labelling of segments."""

    name = "segsort"
    task = "semantic"
    default_grouper = ""

    def heads(self, cfg: RunConfig) -> dict[str, int]:
        if cfg.model.embedding_dim < 2:
            raise ValueError(
                f"method 'segsort': model.embedding_dim must be >= 2, got {cfg.model.embedding_dim}"
            )
        return {"embedding": cfg.model.embedding_dim}

    def build_loss(self, cfg: RunConfig) -> nn.Module:
        return SegSortLoss(**_loss_kwargs(cfg))

    def fit_state(
        self,
        model: nn.Module,
        data: Iterable,
        device: str | torch.device,
        *,
        cfg: RunConfig | None = None,
        max_images: int | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        """Build the prototype bank from annotated images.

        Args:
            model: the trained network (its mode is restored afterwards).
            data: a dataset of samples (``image (H, W, C)`` numpy, ``classes (H, W)``, ``name``) or an
                iterable of tensor batches (``image (B, C, H, W)``, ``classes (B, H, W)``, ``name``).
            device: where to run the network and the clustering.
            cfg: optional run config supplying ``grid``/``iterations`` (``cfg.loss``) and any of
                :data:`INFERENCE_DEFAULTS` (``cfg.grouping.params``).
            max_images: use only the first images.
            **params: overrides of :data:`INFERENCE_DEFAULTS`.

        Returns:
            The state dict (tensors on the CPU): ``prototypes (M, E)``, ``labels (M,)``,
            ``image_index (M,)`` into ``names``, ``bbox (M, 4)`` ``(y0, x0, y1, x1)``, ``params``.
        """
        params = _inference_params(cfg, params)
        builder = _BankBuilder(int(params["max_per_class"]), int(params["seed"]))
        was_training = model.training
        model.eval()
        try:
            for i, (image, classes, name) in enumerate(_samples(data)):
                if max_images is not None and i >= max_images:
                    break
                emb = _embed(model, image.to(device=device, dtype=torch.float32))
                builder.add(name, image_prototypes(emb, classes, params))
        finally:
            model.train(was_training)
        return builder.state(params)

    def predict_semantic(self, output: ModelOutput, state: Mapping[str, Any], **overrides: Any) -> np.ndarray:
        """``(H, W)`` int64 class per pixel of one image (``output`` tensors ``(C, H, W)``)."""
        segs, classes, _, _ = self._classify(output, state, overrides)
        return classes[segs].cpu().numpy()

    def explain(
        self, output: ModelOutput, state: Mapping[str, Any], k: int | None = None
    ) -> list[SegmentExplanation]:
        """Per test segment: its mask, predicted class and the ``k`` bank prototypes that voted."""
        segs, classes, idx, sims = self._classify(output, state, {} if k is None else {"k": k})
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

    def _classify(self, output: ModelOutput, state: Mapping[str, Any], overrides: Mapping[str, Any]):
        """``(segments (H, W), class per segment (S,), bank index (S, k), similarity (S, k))``."""
        _check_state(state)
        emb = output.embedding
        if emb is None or emb.dim() != 3:
            raise ValueError("segsort: predict needs output.embedding of one image, (E, H, W)")
        params = _inference_params(None, {**state["params"], **overrides})
        segs = spherical_kmeans(emb, grid=params["grid"], iterations=params["iterations"],
                                coord_weight=params["coord_weight"])
        protos, _, _ = segment_prototypes(emb[None].float(), segs[None])
        classes, idx, sims = _knn(protos, state, params)
        return segs, classes, idx, sims


register_method(SegSortMethod())
