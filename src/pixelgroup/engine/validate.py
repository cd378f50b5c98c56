"""Validation: a model (a :class:`~pixelgroup.engine.segmenter.Segmenter`) segments a dataset and is
scored with the same grouping and metric as ``predict`` + ``evaluate``."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metrics.instance import InstanceEvaluator
from ..metrics.semantic import ConfusionMatrix
from .segmenter import Segmenter


def evaluate_segmenter(seg: Segmenter, dataset, *, n_classes: int | None = None) -> dict[str, Any]:
    """Segment every image of ``dataset`` (already normalised samples) and score it.

    Instance methods: :class:`InstanceEvaluator` results (with per-class COCO AP for a multi-class
    model on samples carrying ``instance_classes``); semantic methods: mIoU and friends.
    """
    if seg.task == "semantic":
        cm = ConfusionMatrix(n_classes or seg.cfg.model.n_classes, ignore_index=-1)
        for i in range(len(dataset)):
            sample = dataset[i]
            cm.update(sample["classes"], seg.segment(sample["image"], normalized=True))
        return cm.compute()
    ev = InstanceEvaluator()
    multi_class = seg.cfg.model.n_classes > 1
    for i in range(len(dataset)):
        sample = dataset[i]
        inst = seg.segment_instances(sample["image"], normalized=True)
        gt = np.where(sample["instances"] < 0, 0, sample["instances"])
        if multi_class and sample.get("instance_classes") is not None:
            ev.update(gt, inst.labels, scores=inst.scores, gt_classes=sample["instance_classes"],
                      pred_classes=inst.classes)
        else:
            ev.update(gt, inst.labels, scores=inst.scores)
    return ev.compute()
