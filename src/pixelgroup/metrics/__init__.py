"""Metrics: pure numpy functions on label images, and accumulators (update / compute / reset)."""

from __future__ import annotations

from .boundary import BoundaryEvaluator
from .coco import coco_segm_eval
from .instance import InstanceEvaluator
from .matching import iou_matrix, match
from .proposals import ProposalEvaluator
from .report import format_instance_table, format_semantic_table
from .semantic import ConfusionMatrix

__all__ = ["BoundaryEvaluator", "ConfusionMatrix", "InstanceEvaluator", "ProposalEvaluator", "coco_segm_eval",
           "format_instance_table", "format_semantic_table", "iou_matrix", "match"]
