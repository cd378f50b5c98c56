"""The spatial-embedding loss as implemented before the vectorised rewrite (commit 3f119db), frozen.

A per-image loop over dense ``(instances, pixels)`` memberships with one ``topk`` Lovász call per
chunk of instances. Kept only to pin the current implementation's values and gradients
(``tests/losses/test_spatial_speed.py``) and as the "old" side of ``benchmarks/train_throughput.py``.
Lovász ``tol``: the top ``k`` errors of every row are sorted, ``k`` = the largest number of errors
above ``tol`` among the chunk's rows; with ``lovasz_tol = 0`` the loss is exact.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from pixelgroup.losses.lovasz import lovasz_hinge
from pixelgroup.losses.spatial import _check_inputs
from pixelgroup.ops.coords import DEFAULT_COORD_SCALE, sigma_precision, spatial_embedding
from pixelgroup.types import ModelOutput

Center = Literal["medoid", "centroid", "mean"]

MEDOID_MAX_POINTS = 64
_CHUNK_ELEMENTS = 1 << 24


def reference_spatial_loss(
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
        lovasz_tol: pixels whose hinge error is below this are left out of the Lovász sort (a
            ``topk`` instead of a full sort: several times faster on CPU; each instance's loss is
            at most ``lovasz_tol`` below the exact value). 0 = exact.

    Returns:
        ``{"instance", "var", "seed", "total"}`` scalar tensors.
    """
    offset, sigma, seed = _check_inputs(output, instances, classes, center, coord_scale)
    if offset.dtype in (torch.float16, torch.bfloat16):  # exp(10 s) overflows half precision
        offset, sigma, seed = offset.float(), sigma.float(), seed.float()
    emb = spatial_embedding(offset, scale=coord_scale)  # (B, 2, H, W)
    seed_prob = torch.sigmoid(seed)
    per_image = [
        _image_terms(
            emb[b], sigma[b], seed_prob[b], instances[b], None if classes is None else classes[b],
            coord_scale=coord_scale, center=center, foreground_weight=foreground_weight, lovasz_tol=lovasz_tol,
        )
        for b in range(offset.shape[0])
    ]
    instance, var, seed_term = (torch.stack(t).mean() for t in zip(*per_image))
    # "+ 0 * sum" keeps every head in the graph (empty or all-ignore crops still backpropagate).
    anchor = (offset.sum() + sigma.sum() + seed.sum()) * 0.0
    total = w_instance * instance + w_var * var + w_seed * seed_term + anchor
    return {"instance": instance, "var": var, "seed": seed_term, "total": total}


def _image_terms(
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
    """(instance, var, seed) of one image: ``emb (2, H, W)``, ``sigma (S, H, W)``, ``seed (K, H, W)``
    probabilities, ``labels (H, W)``."""
    zero = emb.new_zeros(())
    valid = (labels.reshape(-1) >= 0).nonzero().squeeze(1)  # (P,) flat indices of used pixels
    n_valid = valid.numel()
    if n_valid == 0:
        return zero, zero, zero
    lab = labels.reshape(-1)[valid]
    e = emb.reshape(2, -1)[:, valid]  # (2, P)
    sig = sigma.reshape(sigma.shape[0], -1)[:, valid]  # (S, P)
    sd = seed.reshape(seed.shape[0], -1)[:, valid]  # (K, P)
    fg = (lab > 0).nonzero().squeeze(1)  # (F,) positions (in P) of instance pixels
    if fg.numel() == 0:
        return zero, zero, (sd * sd).sum() / n_valid
    ids, owner = torch.unique(lab[fg], return_inverse=True)  # owner (F,) in [0, N)
    n = ids.numel()
    counts = torch.bincount(owner, minlength=n).to(e.dtype)  # (N,)
    sig_fg = sig[:, fg].t()  # (F, S)
    sig_mean = _scatter_mean(sig_fg, owner, counts)  # (N, S)
    sq = ((sig_fg - sig_mean.detach()[owner]) ** 2).mean(dim=1)  # (F,)
    var = (_scatter_mean(sq[:, None], owner, counts)[:, 0]).mean()
    centres = _centres(
        center, e[:, fg], valid[fg], owner, counts, width=labels.shape[1], scale=coord_scale
    )
    inst, own_phi = _membership_terms(e, sigma_precision(sig_mean), centres, fg, owner, lovasz_tol)
    inst_class = _instance_classes(classes, valid[fg], owner, n, sd.shape[0])
    seed_term = _seed_term(sd, fg, inst_class[owner], own_phi, foreground_weight) / n_valid
    return inst.mean(), var, seed_term


def _scatter_mean(values: Tensor, index: Tensor, counts: Tensor) -> Tensor:
    """Per-group mean of ``values (F, C)`` grouped by ``index (F,)`` -> ``(N, C)``."""
    out = values.new_zeros(counts.shape[0], values.shape[1]).index_add(0, index, values)
    return out / counts[:, None]


def _centres(
    center: Center, e_fg: Tensor, flat: Tensor, owner: Tensor, counts: Tensor, *, width: int, scale: float
) -> Tensor:
    """``(N, 2)`` centres (y, x) in units.

    ``e_fg (2, F)``: embeddings of the instance pixels; ``flat (F,)``: their raster indices.
    """
    if center == "mean":
        return _scatter_mean(e_fg.t(), owner, counts)
    pix = torch.stack([flat // width, flat % width], dim=1)  # (F, 2) integer positions (y, x)
    if center == "centroid":
        return _scatter_mean(pix.to(e_fg.dtype), owner, counts) * scale
    return _medoids(pix, owner, counts.long()).to(e_fg.dtype) * scale


def _medoids(pix: Tensor, owner: Tensor, counts: Tensor) -> Tensor:
    """Per-instance medoid: the pixel minimising the summed Euclidean distance to the others.

    Every pixel is a candidate; its summed distance is taken over at most ``MEDOID_MAX_POINTS``
    reference pixels of its instance (all of them for smaller instances, so the medoid is exact;
    an evenly strided subset in raster order otherwise). Ties go to the first pixel in raster
    order; integer coordinates keep the result deterministic and translation invariant. Work is
    ``sum_k n_k * min(n_k, M)``, batched over instances of similar size.

    Args:
        pix: ``(F, 2)`` integer pixel positions (y, x) in raster order; ``owner``: ``(F,)``
            instance index in ``[0, N)``; ``counts``: ``(N,)`` pixels per instance.

    Returns:
        ``(N, 2)`` float32 pixel positions.
    """
    # float32: integer differences and squared distances below 2^24 are exact (any device).
    pts = pix.to(torch.float32)[torch.sort(owner, stable=True).indices]  # grouped, raster order kept
    starts = torch.cumsum(counts, 0) - counts  # (N,)
    by_size = torch.argsort(counts, stable=True)
    sizes = counts[by_size].tolist()
    out = pts.new_empty(counts.numel(), 2)
    a = 0
    while a < len(sizes):
        b = a + 1  # grow the chunk of similar-sized instances within the element budget
        while b < len(sizes) and (b + 1 - a) * sizes[b] * min(sizes[b], MEDOID_MAX_POINTS) <= _CHUNK_ELEMENTS:
            b += 1
        ks = by_size[a:b]
        out[ks] = _medoid_chunk(pts, starts[ks], counts[ks])
        a = b
    return out


def _medoid_chunk(pts: Tensor, starts: Tensor, counts: Tensor) -> Tensor:
    """Medoids of ``c`` instances stored at ``pts[start : start + count]`` -> ``(c, 2)``."""
    def gather(n_cols: int, pos: Tensor) -> Tensor:  # (c, n_cols) positions -> (c, n_cols, 2)
        return pts[starts[:, None] + torch.minimum(pos, counts[:, None] - 1)]

    j = torch.arange(int(counts.max()), device=pts.device)
    candidates = gather(j.numel(), j[None].expand(counts.numel(), -1))  # (c, n, 2)
    m = counts.clamp(max=MEDOID_MAX_POINTS)  # (c,) references per instance
    r = torch.arange(int(m.max()), device=pts.device)
    refs = gather(r.numel(), (2 * r[None] + 1) * counts[:, None] // (2 * m[:, None]))  # (c, m, 2)
    dist = torch.cdist(candidates, refs, compute_mode="donot_use_mm_for_euclid_dist")  # (c, n, m)
    cost = (dist * (r[None] < m[:, None])[:, None, :]).sum(dim=-1)  # (c, n)
    cost = cost.masked_fill(j[None] >= counts[:, None], float("inf"))
    best = cost.argmin(dim=1)  # first minimum on ties = first in raster order
    return candidates[torch.arange(counts.numel(), device=pts.device), best]


def _membership_terms(
    e: Tensor, precision: Tensor, centres: Tensor, fg: Tensor, owner: Tensor, tol: float
) -> tuple[Tensor, Tensor]:
    """Lovász hinge per instance and each instance pixel's own membership.

    Args:
        e: ``(2, P)`` embeddings; ``precision``: ``(N, S)``; ``centres``: ``(N, 2)``;
            ``fg``: ``(F,)`` positions of instance pixels in ``P``; ``owner``: ``(F,)`` their instance.

    Returns:
        ``(N,)`` losses and ``(F,)`` detached ``phi_owner(i)``. Memory is ``O(N * P)``, computed in
        chunks of instances.
    """
    n_pix, n = e.shape[1], centres.shape[0]
    member = torch.full((n_pix,), -1, dtype=torch.long, device=e.device)
    member[fg] = owner
    own_phi = e.new_zeros(fg.shape[0])
    chunk = max(1, _CHUNK_ELEMENTS // (4 * n_pix))
    losses = []
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        d2 = ((e[None] - centres[a:b, :, None]) ** 2 * precision[a:b, :, None]).sum(dim=1)  # (c, P)
        phi = torch.exp(-d2)
        ks = torch.arange(a, b, device=e.device)
        losses.append(lovasz_hinge(2.0 * phi - 1.0, member[None] == ks[:, None], tol=tol))
        sel = (owner >= a) & (owner < b)
        own_phi[sel] = phi.detach()[owner[sel] - a, fg[sel]]
    return torch.cat(losses), own_phi


def _instance_classes(classes: Tensor | None, flat: Tensor, owner: Tensor, n: int, k: int) -> Tensor:
    """``(N,)`` seed channel of each instance: its majority class, -1 if it has none (K > 1)."""
    if k == 1:
        return torch.zeros(n, dtype=torch.long, device=owner.device)
    cls = classes.reshape(-1)[flat].long()
    ok = (cls >= 0) & (cls < k)
    votes = torch.zeros(n, k, device=owner.device)
    votes.index_put_((owner[ok], cls[ok]), torch.ones_like(cls[ok], dtype=votes.dtype), accumulate=True)
    return votes.argmax(dim=1).masked_fill(votes.sum(dim=1) == 0, -1)


def _seed_term(
    sd: Tensor, fg: Tensor, pix_class: Tensor, own_phi: Tensor, foreground_weight: float
) -> Tensor:
    """Un-normalised seed regression of ``sd (K, P)``.

    Every channel regresses 0, except an instance pixel's own class channel, which regresses its
    ``own_phi`` with weight ``foreground_weight``; pixels of instances of unknown class are skipped.
    """
    target = torch.zeros_like(sd)
    weight = torch.ones_like(sd)
    known = pix_class >= 0
    weight[:, fg[~known]] = 0.0
    target[pix_class[known], fg[known]] = own_phi[known]
    weight[pix_class[known], fg[known]] = foreground_weight
    return (weight * (sd - target) ** 2).sum()
