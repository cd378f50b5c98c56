"""Hypersphere pair loss of Kong & Fowlkes (2018), "Recurrent Pixel Embedding for Instance Grouping",
CVPR, arXiv:1712.08273.

Pixels are embedded on the unit sphere; with ``x`` the L2-normalised embedding the pair similarity is

    s_ij = (1 + cos(x_i, x_j)) / 2                       in [0, 1]

and with ``g(i)`` the group of pixel ``i`` (background = one more group), ``n_g`` the pixel count of
group ``g``, ``w_i = 1 / n_g(i)`` and ``W_ij = w_i w_j / sum_kl w_k w_l`` (instance-aware weighting:
every group weighs the same, whatever its size):

    pull  = sum_{g(i) == g(j)} W_ij (1 - s_ij)
    push  = sum_{g(i) != g(j)} W_ij max(0, s_ij - margin)
    total = pull + push

Sums run over ordered pairs including ``i == j`` (which cost 0), as in the authors' code. Since
``sum_k w_k = G`` (the number of groups), ``W_ij = 1 / (n_g(i) n_g(j) G^2)`` and the pull term needs
no pairs: ``pull = 1 / G^2 sum_g (1 - ||mean_{i in g} x_i||^2) / 2``. The push hinge needs pairs and
costs ``O(N^2)`` memory on the ``N`` pixels kept, which is why pixels are randomly sampled down to
``max_pixels`` per image (the authors sample at most 4000).

``normalize="terms"`` (an option of ours) divides each term by the weight of its own pairs instead
(``1 / G`` for pull, ``(G - 1) / G`` for push), so that pull is not ``G - 1`` times weaker than push
when a crop holds many objects.

Hard pair mining (``hard_mining=q``) is an option of ours: the released code has no explicit
mining (it samples pixels at random), the paper attributes its "hard pixel pair mining" to the loss
applied after every recurrent mean-shift iteration, which only leaves the pairs that grouping has
not already resolved. With ``q`` set, each term keeps only the fraction ``q`` of its pairs with the
largest per-pair loss, and the kept weights are rescaled to the term's full weight.

Training (:func:`recurrent_hypersphere_loss`, module :class:`HypersphereLoss` registered as
``"hypersphere"``): the sampled pixels are moved by ``T`` differentiable mean-shift steps
(:class:`~pixelgroup.ops.recurrent.RecurrentMeanShift`) and the loss is applied after every
step, weight 1 each, averaged; the module adds the foreground loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.recurrent import Kernel, RecurrentMeanShift
from .base import LOSSES
from .foreground import foreground_loss

TERMS = ("pull", "push")
NORMALIZE = ("pairs", "terms")
_EPS = 1e-12


def _check_options(margin: float, hard_mining: float | None, normalize: str, where: str) -> None:
    """One-line errors for the options shared by every entry point (``where`` names it)."""
    if not 0.0 <= margin < 1.0:
        raise ValueError(f"{where}: margin must be in [0, 1) (a similarity s = (1 + cos) / 2), got {margin}")
    if hard_mining is not None and not 0.0 < hard_mining <= 1.0:
        raise ValueError(f"{where}: hard_mining must be None or in (0, 1], got {hard_mining}")
    if normalize not in NORMALIZE:
        raise ValueError(f"{where}: normalize must be one of {', '.join(NORMALIZE)}, got {normalize!r}")


def _hard_sum(values: Tensor, weights: Tensor, fraction: float) -> Tensor:
    """``sum(weights * values)`` over the ``fraction`` largest ``values``, rescaled to the full weight.

    Args:
        values: ``(P,)`` per-pair losses.
        weights: ``(P,)`` pair weights.
    """
    n = values.numel()
    if n == 0:
        return values.sum()
    k = max(1, math.ceil(fraction * n))
    threshold = torch.kthvalue(values.detach(), n - k + 1).values  # the k-th largest value
    keep = values >= threshold  # ties at the threshold are all kept
    kept_weight = weights[keep].sum()
    scale = weights.sum() / kept_weight.clamp_min(_EPS)
    return (values[keep] * weights[keep]).sum() * scale


def hypersphere_pair_loss(
    points: Tensor,
    groups: Tensor,
    *,
    margin: float = 0.5,
    hard_mining: float | None = None,
    normalize: str = "pairs",
) -> dict[str, Tensor]:
    """The hypersphere loss on already-sampled points (one image, or one recurrent iteration).

    Args:
        points: ``(N, E)`` embeddings (L2-normalised here).
        groups: ``(N,)`` integer group ids (any values; background is just one more group).
        margin: push pairs of different groups until ``s_ij <= margin`` (0.5 = orthogonal).
        hard_mining: ``None`` (all pairs) or the fraction of hardest pairs kept per term.
        normalize: ``"pairs"`` (the paper: ``W_ij`` sums to 1 over all pairs, so with ``G`` groups
            pull carries weight ``1 / G`` and push ``(G - 1) / G``) or ``"terms"`` (each term is
            the ``W``-weighted mean over its own pairs: pull ``G`` times, push ``G / (G - 1)``
            times the ``"pairs"`` value, both of order 1 whatever the number of groups).

    Returns:
        ``{"pull", "push", "total"}`` scalars. ``N == 0`` gives zeros (still connected to the graph).
    """
    if points.dim() != 2 or groups.shape != points.shape[:1]:
        raise ValueError(
            f"hypersphere_pair_loss: points must be (N, E) and groups (N,), got {tuple(points.shape)} "
            f"and {tuple(groups.shape)}"
        )
    _check_options(margin, hard_mining, normalize, "hypersphere_pair_loss")
    if points.shape[0] == 0:
        zero = points.sum() * 0.0
        return {"pull": zero, "push": zero, "total": zero}
    x = F.normalize(points, dim=1, eps=_EPS)
    _, g, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    n_groups = counts.numel()
    counts = counts.to(x.dtype)
    w = 1.0 / counts[g]  # (N,)
    norm = float(n_groups) ** 2  # sum_kl w_k w_l = (sum_k w_k)^2 = G^2
    zero = x.sum() * 0.0
    if n_groups < 2 and hard_mining is None:
        sim = same = None  # no pair is needed
    else:
        sim = 0.5 * (1.0 + x @ x.T)  # (N, N) s_ij
        same = g[:, None] == g[None, :]  # (N, N)
    if hard_mining is None:
        mean = x.new_zeros(n_groups, x.shape[1]).index_add_(0, g, x) / counts[:, None]  # (G, E)
        pull = 0.5 * (1.0 - (mean * mean).sum(dim=1)).sum() / norm
        push = zero if sim is None else w @ (sim - margin).clamp_min(0.0).masked_fill(same, 0.0) @ w / norm
    else:
        pair_w = w[:, None] * w[None, :] / norm  # (N, N) W_ij
        pull = _hard_sum((1.0 - sim)[same], pair_w[same], hard_mining)
        push = _hard_sum((sim - margin).clamp_min(0.0)[~same], pair_w[~same], hard_mining)
    if normalize == "terms":  # same-group pairs weigh sum_g n_g^2 / (n_g^2 G^2) = 1 / G in all
        pull = pull * n_groups
        push = push * (n_groups / (n_groups - 1)) if n_groups > 1 else push
    return {"pull": pull, "push": push, "total": pull + push}


def sample_pixels(
    embedding: Tensor,
    instances: Tensor,
    *,
    max_pixels: int | None = 4000,
    generator: torch.Generator | None = None,
) -> list[tuple[Tensor, Tensor]]:
    """Per image, the embeddings and group ids of up to ``max_pixels`` random non-ignored pixels.

    Args:
        embedding: ``(B, E, H, W)``.
        instances: ``(B, H, W)`` integer labels; negative = ignored, 0 (background) is a group.
        max_pixels: pixels kept per image, uniformly at random without replacement (``None`` = all).
        generator: CPU ``torch.Generator`` for the sampling (``None`` = torch's global RNG).

    Returns:
        One ``(points (N_b, E), groups (N_b,))`` pair per image.
    """
    if max_pixels is not None and max_pixels < 1:
        raise ValueError(f"sample_pixels: max_pixels must be None or >= 1, got {max_pixels}")
    b, e = embedding.shape[:2]
    flat = embedding.reshape(b, e, -1)  # (B, E, H*W)
    labels = instances.reshape(b, -1)  # (B, H*W)
    out = []
    for i in range(b):
        idx = torch.nonzero(labels[i] >= 0).squeeze(1)  # (V,)
        if max_pixels is not None and idx.numel() > max_pixels:
            perm = torch.randperm(idx.numel(), generator=generator)[:max_pixels]
            idx = idx[perm.to(idx.device)]
        out.append((flat[i][:, idx].T, labels[i][idx]))
    return out


def _check(embedding: Tensor, instances: Tensor) -> None:
    if embedding.dim() != 4 or not embedding.is_floating_point():
        raise ValueError(
            f"hypersphere_loss: embedding must be a float (B, E, H, W) tensor, got {tuple(embedding.shape)} "
            f"{embedding.dtype}"
        )
    if instances.shape != (embedding.shape[0], *embedding.shape[2:]):
        raise ValueError(
            f"hypersphere_loss: instances {tuple(instances.shape)} must be (B, H, W) matching "
            f"embedding {tuple(embedding.shape)}"
        )
    if instances.is_floating_point() or instances.dtype == torch.bool:
        raise ValueError(f"hypersphere_loss: instances must be an integer tensor, got {instances.dtype}")


def _mean_over_images(per_image: list[dict[str, Tensor]], like: Tensor) -> dict[str, Tensor]:
    """Average each term over the images that had pixels (zeros on the graph of ``like`` if none)."""
    if not per_image:
        zero = like.sum() * 0.0
        return {"pull": zero, "push": zero, "total": zero}
    return {k: torch.stack([t[k] for t in per_image]).mean() for k in (*TERMS, "total")}


def hypersphere_loss(
    embedding: Tensor,
    instances: Tensor,
    *,
    margin: float = 0.5,
    max_pixels: int | None = 4000,
    hard_mining: float | None = None,
    normalize: str = "pairs",
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Hypersphere pull / push loss of a pixel embedding (no recurrent grouping; see the module doc).

    Args:
        embedding: ``(B, E, H, W)`` raw embedding (L2-normalised here).
        instances: ``(B, H, W)`` integer labels; 0 = background (one more group), < 0 ignored.
        margin: similarity ``s = (1 + cos) / 2`` above which pairs of different groups are pushed.
        max_pixels: random pixels kept per image (``None`` = all: exact, ``O((HW)^2)`` memory).
        hard_mining: ``None`` or the fraction of hardest pairs kept per term.
        normalize: ``"pairs"`` (paper) or ``"terms"``, see :func:`hypersphere_pair_loss`.
        generator: CPU ``torch.Generator`` for the pixel sampling.

    Returns:
        ``{"pull", "push", "total"}`` scalars, each the mean over the images with at least one
        non-ignored pixel (images without any are left out of the mean).
    """
    _check(embedding, instances)
    _check_options(margin, hard_mining, normalize, "hypersphere_loss")
    samples = sample_pixels(embedding, instances, max_pixels=max_pixels, generator=generator)
    per_image = [
        hypersphere_pair_loss(p, g, margin=margin, hard_mining=hard_mining, normalize=normalize)
        for p, g in samples
        if len(g) > 0
    ]
    return _mean_over_images(per_image, embedding)


def recurrent_hypersphere_loss(
    embedding: Tensor,
    instances: Tensor,
    *,
    margin: float = 0.5,
    max_pixels: int | None = 512,
    iterations: int = 5,
    bandwidth: float = 0.1,
    kernel: Kernel = "vmf",
    hard_mining: float | None = None,
    normalize: str = "pairs",
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The paper's training loss: the hypersphere loss after every recurrent mean-shift iteration.

    Per image, up to ``max_pixels`` random non-ignored pixels (background included, as one group)
    are unit-normalised and moved by :class:`RecurrentMeanShift` (``iterations`` steps of
    bandwidth ``bandwidth``); :func:`hypersphere_pair_loss` is applied to ``X0, X1, ..., XT``, each
    with weight 1, and averaged over the ``T + 1`` iterations, then over the images. Gradients flow
    back through the mean-shift steps, so the loss on ``Xt`` only asks the embedding to fix what
    ``t`` steps of grouping do not. ``iterations=0`` is :func:`hypersphere_loss` on ``X0``.

    Returns:
        ``{"pull", "push", "total"}`` plus ``"loop{t}"``, the total after iteration ``t``
        (``t = 0..T``), all batch means over the images with at least one non-ignored pixel.
    """
    _check(embedding, instances)
    _check_options(margin, hard_mining, normalize, "recurrent_hypersphere_loss")
    shift = RecurrentMeanShift(bandwidth=bandwidth, iterations=iterations, kernel=kernel)
    samples = sample_pixels(embedding, instances, max_pixels=max_pixels, generator=generator)
    per_image = []
    for points, groups in samples:
        if groups.numel() == 0:
            continue
        steps = [hypersphere_pair_loss(x, groups, margin=margin, hard_mining=hard_mining,
                                       normalize=normalize)
                 for x in shift(points)]  # X0, X1, ..., XT
        terms = {k: torch.stack([t[k] for t in steps]).mean() for k in (*TERMS, "total")}
        terms.update({f"loop{t}": step["total"] for t, step in enumerate(steps)})
        per_image.append(terms)
    if not per_image:
        zero = embedding.sum() * 0.0
        loops = {f"loop{t}": zero for t in range(iterations + 1)}
        return {"pull": zero, "push": zero, "total": zero, **loops}
    return {k: torch.stack([t[k] for t in per_image]).mean() for k in per_image[0]}


@LOSSES.register("hypersphere")
class HypersphereLoss(nn.Module):
    """Recurrent hypersphere loss on ``output.embedding`` plus the foreground loss on
    ``output.foreground``, against ``batch["instances"]``.

    Terms: ``pull``, ``push`` (means over images and iterations), ``loop0..loopT`` (per-iteration
    totals), ``fg`` (BCE + Dice of :func:`foreground_loss`) and
    ``total = pull + push + fg_weight * fg``. Arguments are those of
    :func:`recurrent_hypersphere_loss` (the config's ``loss`` section) plus ``fg_weight``.
    """

    def __init__(
        self,
        *,
        margin: float = 0.5,
        max_pixels: int | None = 512,
        iterations: int = 5,
        bandwidth: float = 0.1,
        kernel: Kernel = "vmf",
        hard_mining: float | None = None,
        normalize: str = "pairs",
        fg_weight: float = 1.0,
    ) -> None:
        super().__init__()
        _check_options(margin, hard_mining, normalize, "HypersphereLoss")
        RecurrentMeanShift(bandwidth=bandwidth, iterations=iterations, kernel=kernel)  # validates
        self.kwargs = {"margin": margin, "max_pixels": max_pixels, "iterations": iterations,
                       "bandwidth": bandwidth, "kernel": kernel, "hard_mining": hard_mining,
                       "normalize": normalize}
        self.fg_weight = fg_weight

    def forward(self, output, batch) -> dict[str, Tensor]:
        if output.embedding is None or output.foreground is None:
            raise ValueError("HypersphereLoss: the network needs an 'embedding' and a 'foreground' head")
        out = recurrent_hypersphere_loss(output.embedding, batch["instances"], **self.kwargs)
        out["fg"] = foreground_loss(output.foreground, batch["instances"])["total"]
        out["total"] = out["total"] + self.fg_weight * out["fg"]
        return out

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in {**self.kwargs, "fg_weight": self.fg_weight}.items())
