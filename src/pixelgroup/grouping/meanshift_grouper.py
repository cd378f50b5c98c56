"""The ``meanshift`` grouper: instances of one image by mean shift of its foreground embeddings.

The clustering itself is :func:`~pixelgroup.grouping.mean_shift.mean_shift`; this module picks the
foreground pixels, scores and ranks the clusters, and assigns classes from a semantic head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..types import Instances, ModelOutput
from .base import GROUPERS
from .classes import assign_classes
from .mean_shift import Kernel, mean_shift


def _check_output(output: ModelOutput, fg_threshold: float, min_size: int) -> Tensor:
    emb = output.embedding
    if emb is None:
        raise ValueError("meanshift_grouping: output.embedding is None; the network needs an embedding head")
    if emb.dim() != 3:
        raise ValueError(f"meanshift_grouping: the embedding must be (E, H, W), got {tuple(emb.shape)}")
    if not 0.0 <= fg_threshold < 1.0:
        raise ValueError(f"meanshift_grouping: fg_threshold must be in [0, 1), got {fg_threshold}")
    if min_size < 1:
        raise ValueError(f"meanshift_grouping: min_size must be >= 1, got {min_size}")
    return emb


def _cluster_scores(x: Tensor, labels: Tensor, prob: Tensor, n: int, bandwidth: float) -> Tensor:
    """``(n,)`` mean foreground probability x ``exp(-mean ||x - mean_c||^2 / (2 h^2))`` per cluster."""
    counts = torch.bincount(labels, minlength=n).to(x.dtype).clamp_min(1.0)  # (n,)
    mean = x.new_zeros(n, x.shape[1]).index_add_(0, labels, x) / counts[:, None]
    spread = x.new_zeros(n).index_add_(0, labels, ((x - mean[labels]) ** 2).sum(1)) / counts
    fg = x.new_zeros(n).index_add_(0, labels, prob.to(x.dtype)) / counts
    return fg * torch.exp(-spread / (2.0 * bandwidth**2))


@GROUPERS.register("meanshift")
def meanshift_grouping(
    output: ModelOutput,
    *,
    bandwidth: float,
    kernel: Kernel = "gaussian",
    normalize: bool = False,
    fg_threshold: float = 0.5,
    min_size: int = 16,
    seed: int = 0,
) -> Instances:
    """Instances of one image by mean shift of its foreground pixels' embeddings.

    Foreground = ``sigmoid(output.foreground) > fg_threshold`` (every pixel when there is no
    foreground head). The foreground embeddings (L2-normalised when ``normalize``, as the
    hypersphere method needs) are clustered by :func:`mean_shift`; clusters smaller than
    ``min_size`` pixels become background. Disconnected pieces of one cluster stay ONE instance:
    the embedding, not the image plane, decides identity (an occluded object may be split).

    Score of an instance = its mean foreground probability x ``exp(-v / (2 h^2))``, ``v`` the mean
    squared distance of its embeddings to their mean and ``h`` the bandwidth (1 for a point-like
    cluster, small for a diffuse one). Labels ``1..N`` are ordered by decreasing score.

    With a ``semantic`` head (``(K + 1, H, W)`` logits, multi-class models) every instance gets
    its majority class and its score is multiplied by that class's mean probability
    (:func:`~pixelgroup.grouping.classes.assign_classes`).

    Args:
        output: one image's raw outputs: ``embedding (E, H, W)``, optional ``foreground (1, H, W)``.
        bandwidth, kernel, seed: passed to :func:`mean_shift`.
        normalize: L2-normalise the embedding first (always done for the ``"vmf"`` kernel).
        fg_threshold: foreground probability threshold.
        min_size: smallest instance kept, pixels.

    Returns:
        :class:`Instances` with ``labels (H, W)``, ``scores (N,)`` and ``classes (N,)`` (1..K with a
        semantic head, else 0).
    """
    emb = _check_output(output, fg_threshold, min_size)
    e, h, w = emb.shape
    if output.foreground is not None:
        prob = torch.sigmoid(output.foreground.detach().float()[0].reshape(h * w))  # (H*W,)
    else:
        prob = torch.ones(h * w, device=emb.device)
    fg = torch.nonzero(prob > fg_threshold).squeeze(1)
    x = emb.detach().float().reshape(e, h * w)[:, fg].T  # (F, E)
    if normalize or kernel == "vmf":  # mean_shift normalises for "vmf"; the scores must match
        x = F.normalize(x, dim=1)
    labels = torch.zeros(h * w, dtype=torch.int64, device=emb.device)
    if fg.numel() == 0:
        return Instances(labels.reshape(h, w).cpu().numpy())
    cl = mean_shift(x, bandwidth=bandwidth, kernel=kernel, seed=seed)  # (F,) 0..K-1
    n = int(cl.max()) + 1
    big = torch.bincount(cl, minlength=n) >= min_size  # (K,)
    scores = _cluster_scores(x, cl, prob[fg], n, bandwidth)
    ranked = torch.where(big, scores, torch.full_like(scores, -1.0))  # too small: last
    order = torch.argsort(ranked, descending=True, stable=True)
    order = order[: int(big.sum())]
    new_id = torch.zeros(n, dtype=torch.int64, device=emb.device)
    new_id[order] = torch.arange(1, order.numel() + 1, device=emb.device)
    labels[fg] = new_id[cl]
    inst = Instances(labels.reshape(h, w).cpu().numpy(), scores=scores[order].cpu().numpy())
    return inst if output.semantic is None else assign_classes(inst, output.semantic)
