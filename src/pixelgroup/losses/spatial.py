"""Spatial-embedding loss of Neven et al. (CVPR 2019), with EmbedSeg's medoid centres.

Per image, with ``e_i = coords_i + tanh(offset_i)`` (units, see :mod:`pixelgroup.ops.coords`):

* every instance ``k`` has a centre ``C_k`` (medoid / centroid of its pixels, or the mean of its
  embeddings) and a bandwidth ``s_k = mean_{i in k} sigma_i`` (raw, per axis);
* membership ``phi_k(i) = exp(-sum_d exp(10 s_k,d) (e_i,d - C_k,d)^2)``;
* ``instance`` = mean over instances of ``lovasz_hinge(2 phi_k - 1, [i in k])`` over all pixels;
* ``var`` = mean over instances of ``mean_{i in k, d} (sigma_i,d - s_k,d.detach())^2``;
* ``seed`` = ``(sum_bg seed^2 + foreground_weight * sum_{i in k} (seed_i - phi_k(i).detach())^2)
  / n_pixels`` on ``sigmoid(seed)``.

Each term is averaged over the images of the batch; ``total = w_instance * instance + w_var * var
+ w_seed * seed``. Pixels labelled ``< 0`` are ignored everywhere (and do not count in ``n_pixels``).
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple, get_args

import torch
from torch import Tensor, nn

from ..ops.coords import DEFAULT_COORD_SCALE, check_coord_scale, sigma_precision, spatial_embedding
from ..ops.medoids import medoids
from ..types import ModelOutput
from .base import LOSSES
from .lovasz import lovasz_hinge_segments

Center = Literal["medoid", "centroid", "mean"]

_CHUNK_ELEMENTS = 1 << 24
"""Budget of elements per vectorised chunk (instances x pixels, or candidates x references)."""


def spatial_embedding_loss(
    output: ModelOutput,
    instances: Tensor,
    *,
    classes: Tensor | None = None,
    coord_scale: float = DEFAULT_COORD_SCALE,
    center: Center = "medoid",
    w_instance: float = 1.0,
    w_var: float = 10.0,
    w_seed: float = 1.0,
    foreground_weight: float = 10.0,
    lovasz_tol: float = 1e-3,
) -> dict[str, Tensor]:
    """Spatial-embedding loss of a batch (see the module docstring for the formulas).

    Args:
        output: raw heads ``offset (B, 2, H, W)`` (y, x), ``sigma (B, S, H, W)`` with S = 1 or 2,
            ``seed (B, K, H, W)`` logits.
        instances: ``(B, H, W)`` int64, 0 = background, 1..N instances, < 0 = ignore.
        classes: ``(B, H, W)`` int64 object class in ``[0, K)`` at instance pixels (< 0 = unknown);
            required when K > 1: an instance trains the seed channel of its majority class.
        coord_scale: units per pixel of the coordinate grid (must match the grouper).
        center: ``"medoid"`` (EmbedSeg), ``"centroid"`` (Neven ``to_center=True``) or ``"mean"``
            of the instance's predicted embeddings (Neven ``to_center=False``).
        w_instance, w_var, w_seed: term weights (authors: 1, 10, 1).
        foreground_weight: weight of instance pixels in the seed term (authors: 10).
        lovasz_tol: the pixels whose hinge error for an instance is at most this (background
            pixels with ``phi < tol / 2``, its own pixels with ``phi > 1 - tol / 2``) are left out
            of that instance's Lovász sort, which then covers only its neighbourhood in embedding
            space: several times faster; each instance's loss is at most ``lovasz_tol`` below the
            exact value. 0 = exact.

    Returns:
        ``{"instance", "var", "seed", "total"}`` scalar tensors.
    """
    offset, sigma, seed = _check_inputs(output, instances, classes, center, coord_scale)
    if offset.dtype in (torch.float16, torch.bfloat16):  # exp(10 s) overflows half precision
        offset, sigma, seed = offset.float(), sigma.float(), seed.float()
    emb = spatial_embedding(offset, scale=coord_scale)  # (B, 2, H, W)
    instance, var, seed_term = (
        t.mean()
        for t in _batch_terms(
            emb, sigma, torch.sigmoid(seed), instances, classes,
            coord_scale=coord_scale, center=center, foreground_weight=foreground_weight, lovasz_tol=lovasz_tol,
        )
    )
    # "+ 0 * sum" keeps every head in the graph (empty or all-ignore crops still backpropagate).
    anchor = (offset.sum() + sigma.sum() + seed.sum()) * 0.0
    total = w_instance * instance + w_var * var + w_seed * seed_term + anchor
    return {"instance": instance, "var": var, "seed": seed_term, "total": total}


def _check_inputs(
    output: ModelOutput, instances: Tensor, classes: Tensor | None, center: str, coord_scale: float
) -> tuple[Tensor, Tensor, Tensor]:
    offset, sigma, seed = output.offset, output.sigma, output.seed
    if offset is None or sigma is None or seed is None:
        raise ValueError("spatial loss: output needs the offset, sigma and seed heads (method 'spatial')")
    if offset.dim() != 4 or offset.shape[1] != 2:
        raise ValueError(f"spatial loss: offset must be (B, 2, H, W), got {tuple(offset.shape)}")
    b, _, h, w = offset.shape
    if sigma.dim() != 4 or sigma.shape[1] not in (1, 2) or sigma.shape[2:] != (h, w):
        raise ValueError(f"spatial loss: sigma must be (B, 1 or 2, {h}, {w}), got {tuple(sigma.shape)}")
    if seed.dim() != 4 or seed.shape[1] < 1 or seed.shape[2:] != (h, w):
        raise ValueError(f"spatial loss: seed must be (B, K, {h}, {w}), got {tuple(seed.shape)}")
    if sigma.shape[0] != b or seed.shape[0] != b or tuple(instances.shape) != (b, h, w):
        raise ValueError(
            f"spatial loss: instances {tuple(instances.shape)} must be (B, H, W) = {(b, h, w)} "
            "like the outputs"
        )
    if instances.is_floating_point() or instances.dtype == torch.bool:
        raise ValueError(f"spatial loss: instances must be an integer label tensor, got {instances.dtype}")
    if center not in get_args(Center):
        raise ValueError(f"spatial loss: center must be one of {get_args(Center)}, got {center!r}")
    check_coord_scale(coord_scale)
    k = seed.shape[1]
    if k > 1:
        if classes is None or tuple(classes.shape) != (b, h, w):
            raise ValueError(f"spatial loss: {k} seed channels need batch['classes'] of shape {(b, h, w)}")
        if bool((classes[instances > 0] >= k).any()):
            raise ValueError(f"spatial loss: classes at instance pixels must be in [0, {k}) (object class)")
    return offset, sigma, seed


class _Instances(NamedTuple):
    """The instances of a batch, numbered ``0..N-1`` in (image, label) order."""

    fg: Tensor  # (F,) flat (B*H*W) indices of the instance pixels, increasing
    owner: Tensor  # (F,) instance of each, in [0, N)
    label: Tensor  # (N,) label value of each instance
    image: Tensor  # (N,) image of each instance
    counts: Tensor  # (N,) pixels per instance


def _find_instances(labels: Tensor) -> _Instances:
    """The instances of ``labels (B, H, W)``."""
    flat = labels.reshape(-1)
    fg = (flat > 0).nonzero().squeeze(1)  # (F,)
    lab = flat.index_select(0, fg)
    top = int(lab.max()) + 1 if fg.numel() else 1
    keys, owner = torch.unique((fg // labels[0].numel()) * top + lab, return_inverse=True)
    return _Instances(fg, owner, keys % top, keys // top, torch.bincount(owner, minlength=keys.numel()))


def _batch_terms(
    emb: Tensor,
    sigma: Tensor,
    seed: Tensor,
    labels: Tensor,
    classes: Tensor | None,
    *,
    coord_scale: float,
    center: Center,
    foreground_weight: float,
    lovasz_tol: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """``(B,)`` instance, var and seed terms of each image: ``emb (B, 2, H, W)``, ``sigma (B, S, H, W)``,
    ``seed (B, K, H, W)`` probabilities, ``labels (B, H, W)``.

    All the instances of the batch at once: per-instance sums are scatter reductions over the
    instance pixels, and the Lovász hinges of all instances are one segmented sort of the
    (instance, pixel) pairs whose hinge error exceeds ``lovasz_tol`` (see :func:`_memberships`).
    """
    n_img = labels.shape[0]
    inst = _find_instances(labels)
    e = emb.transpose(0, 1).reshape(2, -1)  # (2, B*H*W)
    sig_fg = sigma.transpose(0, 1).reshape(sigma.shape[1], -1).index_select(1, inst.fg)  # (S, F)
    counts = inst.counts.to(e.dtype)
    sig_mean = _scatter_mean(sig_fg, inst.owner, counts)  # (S, N)
    sq = (sig_fg - sig_mean.detach().index_select(1, inst.owner)).square().mean(dim=0)  # (F,)
    var = _scatter_mean(sq[None], inst.owner, counts)[0]  # (N,)
    centres = _centres(center, e, inst, labels.shape[1:], coord_scale)  # (2, N)
    inst_loss, own_phi = _memberships(e, labels, sigma_precision(sig_mean), centres, inst, lovasz_tol)
    inst_class = _instance_classes(classes, inst, seed.shape[1])
    seed_term = _seed_term(seed, labels, inst.fg, inst_class.index_select(0, inst.owner), own_phi,
                           foreground_weight)
    per_image = torch.bincount(inst.image, minlength=n_img).clamp(min=1).to(e.dtype)  # (B,)
    inst_loss, var = (v.new_zeros(n_img).index_add(0, inst.image, v) / per_image for v in (inst_loss, var))
    return inst_loss, var, seed_term


def _scatter_mean(values: Tensor, index: Tensor, counts: Tensor) -> Tensor:
    """Per-group mean of ``values (C, F)`` grouped by ``index (F,)`` -> ``(C, N)``."""
    return values.new_zeros(values.shape[0], counts.shape[0]).index_add(1, index, values) / counts


def _centres(center: Center, e: Tensor, inst: _Instances, size: tuple[int, int], scale: float) -> Tensor:
    """``(2, N)`` centres (y, x) in units; ``e (2, B*H*W)`` embeddings, ``size = (H, W)``."""
    counts = inst.counts.to(e.dtype)
    if center == "mean":
        return _scatter_mean(e.index_select(1, inst.fg), inst.owner, counts)
    h, w = size
    local = inst.fg % (h * w)
    pix = torch.stack([local // w, local % w])  # (2, F) integer positions (y, x)
    if center == "centroid":
        return _scatter_mean(pix.to(e.dtype), inst.owner, counts) * scale
    # image by image, as before batching: which instances share a medoid chunk decides the float
    # rounding of the summed distances, and so which of two equally central pixels wins
    out = e.new_empty(2, counts.numel())
    n0 = f0 = 0
    n_per_image = torch.bincount(inst.image, minlength=1).tolist()
    for n, f in zip(n_per_image, torch.bincount(inst.fg // (h * w), minlength=1).tolist()):
        if n:
            med = medoids(pix[:, f0 : f0 + f].t(), inst.owner[f0 : f0 + f] - n0, inst.counts[n0 : n0 + n])
            out[:, n0 : n0 + n] = med.t().to(e.dtype) * scale
        n0, f0 = n0 + n, f0 + f
    return out


def _memberships(
    e: Tensor, labels: Tensor, precision: Tensor, centres: Tensor, inst: _Instances, tol: float
) -> tuple[Tensor, Tensor]:
    """Lovász hinge of every instance over the valid pixels of its image, and the membership of
    each instance pixel to its own instance.

    Args:
        e: ``(2, B*H*W)`` embeddings; ``labels``: ``(B, H, W)``; ``precision``: ``(S, N)``;
            ``centres``: ``(2, N)``.
        tol: the (instance, pixel) pairs whose hinge error is ``<= tol`` are left out of the
            instance's sort; they would come last in it, so each loss is at most ``tol`` below the
            exact one (``tol = 0``: exact, as ``relu`` zeroes the others).

    Returns:
        ``(N,)`` losses and ``(F,)`` detached ``phi_owner(i)`` of the instance pixels.
    """
    def dist2(pix: Tensor, k: Tensor) -> Tensor:  # (M,) exponents d2 of pixels pix to instances k
        diff = e.index_select(1, pix) - centres.index_select(1, k)  # (2, M)
        return (diff.square() * precision.index_select(1, k)).sum(dim=0)

    with torch.no_grad():
        own_d2 = dist2(inst.fg, inst.owner)
        ks, pix = _pairs_above(e, labels, precision, centres, inst, own_d2, tol)
    member = labels.reshape(-1).index_select(0, pix) == inst.label.index_select(0, ks)
    n = centres.shape[1]
    logits = 2.0 * torch.exp(-dist2(pix, ks)) - 1.0
    losses = lovasz_hinge_segments(logits, member, ks, n_segments=n, positives=inst.counts)
    return losses, torch.exp(-own_d2)


def _pairs_above(
    e: Tensor, labels: Tensor, precision: Tensor, centres: Tensor, inst: _Instances, own_d2: Tensor, tol: float
) -> tuple[Tensor, Tensor]:
    """``(instances, pixels)``, both ``(M,)``: the pairs of an instance and a valid pixel of its image
    whose hinge error exceeds ``tol``: its own pixels with ``2 - 2 phi > tol`` (from their exponents
    ``own_d2 (F,)``) and the other pixels with ``2 phi > tol``, found without gradient as ``d2 < far``
    on each image's (instances, pixels) exponents, one matrix product per chunk of instances.
    Expanded squares round d2 by about ``eps * precision * |e|^2``, so a pair whose error is within
    a fraction of a percent of ``tol`` may fall on the other side of it; such pairs add at most
    about ``tol`` to a loss either way."""
    far = -math.log(tol / 2) if tol > 0 else math.inf  # background pairs: kept when d2 < far
    near = -math.log1p(-tol / 2) if tol < 2 else math.inf  # own pixels: kept when d2 > near
    own = (own_d2 > near).nonzero().squeeze(1)
    found_k, found_p = [inst.owner.index_select(0, own)], [inst.fg.index_select(0, own)]
    hw = labels[0].numel()
    flat = labels.reshape(-1)
    n0 = 0
    for b, n_b in enumerate(torch.bincount(inst.image, minlength=labels.shape[0]).tolist()):
        valid = (flat[b * hw : (b + 1) * hw] >= 0).nonzero().squeeze(1) + b * hw  # (P,)
        ey, ex = e.index_select(1, valid)
        powers = torch.stack([ey * ey, ey, ex * ex, ex, torch.ones_like(ey)])  # (5, P)
        chunk = max(1, _CHUNK_ELEMENTS // (4 * max(1, valid.numel())))
        for a in range(n0, n0 + n_b, chunk):
            z = min(n0 + n_b, a + chunk)
            (cy, cx), py, px = centres[:, a:z], precision[0, a:z], precision[-1, a:z]
            coef = torch.stack([py, -2 * py * cy, px, -2 * px * cx, py * cy * cy + px * cx * cx], dim=1)  # (c, 5)
            k, j = (coef @ powers < far).nonzero(as_tuple=True)  # (c, P) -> pairs
            k, p = k + a, valid.index_select(0, j)
            other = (flat.index_select(0, p) != inst.label.index_select(0, k)).nonzero().squeeze(1)
            found_k.append(k.index_select(0, other))
            found_p.append(p.index_select(0, other))
        n0 += n_b
    return torch.cat(found_k), torch.cat(found_p)


def _instance_classes(classes: Tensor | None, inst: _Instances, k: int) -> Tensor:
    """``(N,)`` seed channel of each instance: its majority class, -1 if it has none (K > 1)."""
    n = inst.counts.numel()
    if k == 1:
        return torch.zeros(n, dtype=torch.long, device=inst.fg.device)
    cls = classes.reshape(-1).index_select(0, inst.fg).long()
    ok = (cls >= 0) & (cls < k)
    votes = torch.zeros(n, k, device=cls.device)
    votes.index_put_((inst.owner[ok], cls[ok]), torch.ones_like(cls[ok], dtype=votes.dtype), accumulate=True)
    return votes.argmax(dim=1).masked_fill(votes.sum(dim=1) == 0, -1)


def _seed_term(
    seed: Tensor, labels: Tensor, fg: Tensor, pix_class: Tensor, own_phi: Tensor, foreground_weight: float
) -> Tensor:
    """``(B,)`` seed regression of ``seed (B, K, H, W)`` per image, over its valid pixels.

    Every channel regresses 0, except an instance pixel's own class channel, which regresses its
    ``own_phi`` with weight ``foreground_weight``; pixels of instances of unknown class are skipped.
    """
    n_img, k = seed.shape[:2]
    hw = labels[0].numel()
    sd = seed.reshape(n_img, k, hw)  # (B, K, H*W)
    valid = (labels.reshape(n_img, 1, hw) >= 0).to(sd.dtype)  # (B, 1, H*W)
    weight = valid.expand(n_img, k, hw).clone(memory_format=torch.contiguous_format)
    target = sd.new_zeros(sd.shape)  # contiguous, whatever the layout of seed
    at = (fg // hw * k + pix_class) * hw + fg % hw  # (F,) flat index in (B, K, H*W) of the own channel
    known = (pix_class >= 0).nonzero().squeeze(1)
    if known.numel() < fg.numel():  # all channels of pixels of unknown class: weight 0
        unknown = (pix_class < 0).nonzero().squeeze(1)
        first = fg.index_select(0, unknown) // hw * k * hw + fg.index_select(0, unknown) % hw
        weight.view(-1).index_fill_(0, (first[:, None] + hw * torch.arange(k, device=fg.device)).reshape(-1), 0.0)
    at = at.index_select(0, known)
    weight.view(-1).index_fill_(0, at, foreground_weight)
    target.view(-1).index_copy_(0, at, own_phi.index_select(0, known))
    return (weight * (sd - target) ** 2).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp(min=1)


@LOSSES.register("spatial")
class SpatialEmbeddingLoss(nn.Module):
    """Module form of :func:`spatial_embedding_loss` on ``output`` and ``batch["instances"]``
    (and ``batch["classes"]`` for per-class seeds). Keyword arguments as the function."""

    def __init__(
        self,
        *,
        coord_scale: float = DEFAULT_COORD_SCALE,
        center: Center = "medoid",
        w_instance: float = 1.0,
        w_var: float = 10.0,
        w_seed: float = 1.0,
        foreground_weight: float = 10.0,
        lovasz_tol: float = 1e-3,
        n_classes: int = 1,
    ) -> None:
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"spatial loss: n_classes must be >= 1, got {n_classes}")
        if center not in get_args(Center):
            raise ValueError(f"spatial loss: center must be one of {get_args(Center)}, got {center!r}")
        self.coord_scale = check_coord_scale(coord_scale)
        self.center = center
        self.weights = {"w_instance": float(w_instance), "w_var": float(w_var), "w_seed": float(w_seed)}
        self.foreground_weight = float(foreground_weight)
        self.lovasz_tol = float(lovasz_tol)
        self.n_classes = int(n_classes)

    def forward(self, output: ModelOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return spatial_embedding_loss(
            output,
            batch["instances"],
            classes=self._seed_channels(batch.get("classes")),
            coord_scale=self.coord_scale,
            center=self.center,
            foreground_weight=self.foreground_weight,
            lovasz_tol=self.lovasz_tol,
            **self.weights,
        )

    def _seed_channels(self, classes: Tensor | None) -> Tensor | None:
        """Dataset class ids ``1..K`` -> seed channel ``0..K-1`` for ``n_classes = K > 1``.

        Background (0) and ignore (-1) become negative, i.e. unknown, which the loss only reads at
        instance pixels. With ``n_classes = 1`` the classes pass unchanged (the functional form's
        convention: channel indices).
        """
        if self.n_classes == 1:
            return classes
        if classes is None:
            raise ValueError(
                f"spatial loss: model.n_classes = {self.n_classes} needs batch['classes']; train on a "
                "dataset with classes (voc, coco, cityscapes) or set model.n_classes: 1"
            )
        top = int(classes.max()) if classes.numel() else 0
        if top > self.n_classes:
            raise ValueError(
                f"spatial loss: the batch has class id {top} but model.n_classes = {self.n_classes}; "
                "set model.n_classes to the dataset's number of object classes"
            )
        return classes - 1

    def extra_repr(self) -> str:
        weights = ", ".join(f"{k}={v:g}" for k, v in self.weights.items())
        return (
            f"n_classes={self.n_classes}, coord_scale={self.coord_scale:g}, center={self.center!r}, {weights}, "
            f"foreground_weight={self.foreground_weight:g}"
        )
