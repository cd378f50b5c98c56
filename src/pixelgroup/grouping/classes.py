"""A dataset class for every instance: multi-class instance segmentation on top of grouping.

Convention (shared by the datasets, ``predict`` and ``evaluate``): object classes are the dataset's
class ids ``1..K`` (0 = background); :attr:`Instances.classes` holds them for a multi-class model,
and 0 for every instance of a class-agnostic one.

* :func:`assign_classes`: the embedding methods (``hypersphere``, ``discriminative``) grow a
  ``semantic`` head of ``K + 1`` logits (background + classes); each instance takes the majority
  class of its pixels. The ``meanshift`` and ``hdbscan`` groupers apply it whenever
  ``output.semantic`` is present.
* ``seeded_classes``: the default grouper of the ``spatial`` method; :func:`seeded_grouping`
  (one seed channel per object class, as in Neven et al. 2019) with seed channel ``c`` reported as
  class ``c + 1`` when there are ``K > 1`` channels, and 0 for a single class-agnostic channel.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..types import Instances, ModelOutput, as_numpy
from .base import GROUPERS
from .seeded import seeded_grouping


def assign_classes(instances: Instances, semantic_logits: Tensor | np.ndarray, *,
                   rescore: bool = True) -> Instances:
    """Give every instance the majority class of its pixels under a semantic head.

    Each pixel votes for ``argmax_c softmax(logits)_c``; votes for background (channel 0) are
    ignored, and instance ``i`` takes the object class with most votes (ties: the lower id). An
    instance whose pixels all vote background takes the object class of highest mean probability
    over its pixels. With ``rescore`` its score is multiplied by ``p_i``, the mean probability of
    that class over its pixels, so confidently classified instances rank first in per-class AP, and
    the instances are renumbered 1..N by decreasing new score (the groupers' convention).

    Args:
        instances: labels ``(H, W)`` 1..N, scores ``(N,)`` (classes are replaced).
        semantic_logits: ``(K + 1, H, W)`` raw class logits of ONE image, channel 0 = background,
            channel ``c`` = dataset class ``c``; tensor (any device) or array.
        rescore: multiply each score by the mean probability of the chosen class.

    Returns:
        A new :class:`Instances`: the same instances (renumbered when ``rescore``), ``classes (N,)``
        in ``1..K`` and the (re)scored ``scores (N,)``.
    """
    logits = torch.as_tensor(semantic_logits).detach().float()
    labels = instances.labels
    if logits.dim() != 3 or logits.shape[0] < 2 or tuple(logits.shape[1:]) != labels.shape:
        raise ValueError(
            f"assign_classes: semantic_logits must be (K + 1, H, W) = (>= 2, {labels.shape[0]}, "
            f"{labels.shape[1]}) like the labels, got {tuple(logits.shape)}; use output.select(i)"
        )
    n, c = instances.count, logits.shape[0]
    if n == 0:
        return Instances(labels, instances.scores, np.zeros(0, np.int32))
    prob = torch.softmax(logits.reshape(c, -1), dim=0)  # (C, H*W)
    lab = torch.from_numpy(labels.reshape(-1).astype(np.int64)).to(prob.device)  # (H*W,)
    inside = lab > 0
    vote = prob.argmax(dim=0)
    votes = torch.bincount((lab[inside] - 1) * c + vote[inside], minlength=n * c).reshape(n, c)
    votes[:, 0] = 0  # background votes do not count
    sums = torch.zeros(n + 1, c, device=prob.device).index_add_(0, lab, prob.T)  # (N + 1, C)
    area = torch.bincount(lab, minlength=n + 1).clamp(min=1)
    mean = (sums / area[:, None])[1:]  # (N, C) mean probability per instance
    classes = torch.where(votes.sum(dim=1) > 0, votes.argmax(dim=1), mean[:, 1:].argmax(dim=1) + 1)
    scores, classes = instances.scores, as_numpy(classes).astype(np.int32)
    if not rescore:
        return Instances(labels, scores, classes)
    scores = (scores * as_numpy(mean[torch.arange(n), torch.from_numpy(classes).long()])).astype(np.float32)
    order = np.argsort(-scores, kind="stable")  # renumber 1..N by decreasing new score
    new_id = np.zeros(n + 1, np.int32)
    new_id[order + 1] = np.arange(1, n + 1, dtype=np.int32)
    return Instances(new_id[labels], scores[order], classes[order])


@GROUPERS.register("seeded_classes")
def seeded_class_grouping(output: ModelOutput, **params: Any) -> Instances:
    """:func:`~pixelgroup.grouping.seeded.seeded_grouping` with dataset class ids.

    Same keyword arguments. ``output.seed`` of ``K > 1`` channels: the instances found in seed
    channel ``c`` get class ``c + 1`` (``1..K``); one channel: class 0 (class-agnostic).
    """
    instances = seeded_grouping(output, **params)
    if output.seed is not None and output.seed.shape[0] > 1:
        instances.classes = instances.classes + 1
    return instances


# the same settings as seeded_grouping, visible to help() and to the callers that read signatures
seeded_class_grouping.__signature__ = inspect.signature(seeded_grouping)
