"""The ``spatial`` method: spatial embeddings + learned clustering bandwidth (Neven et al., CVPR 2019).

Heads: ``offset`` (2, y/x), ``sigma`` (``model.n_sigma``), ``seed`` (``model.n_classes``).
Loss: :class:`~pixelgroup.losses.spatial.SpatialEmbeddingLoss` built from ``cfg.loss``.
Grouper: ``seeded_classes`` (``seeded`` grouping reporting dataset class ids), given the loss's
``coord_scale`` so training and inference agree.

Multi-class (``model.n_classes = K > 1``, as in the paper): one seed channel per object class. The
batch's ``classes`` hold dataset ids 1..K at object pixels; :class:`ObjectClassSpatialLoss` shifts
them so that class ``c`` trains seed channel ``c - 1``, and the grouper reports the instances of
channel ``c - 1`` as class ``c``.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from ..config import RunConfig
from ..grouping import classes as _classes  # noqa: F401  (registers the default grouper "seeded_classes")
from ..grouping.coords import DEFAULT_COORD_SCALE, raw_sigma_for_radius
from ..losses.spatial import SpatialEmbeddingLoss
from ..types import ModelOutput
from .base import Method, register_method

INIT_RADIUS_PX = 6.0
"""Initial bandwidth: membership 0.5 at this many pixels. The authors' init (sigma bias 1 at 1/1023
units per pixel) gives 5.7 px; we keep that radius whatever ``coord_scale`` is."""


def _loss_kwargs(cfg: RunConfig) -> dict[str, Any]:
    """``cfg.loss`` as keyword arguments, unknown keys rejected with the valid ones listed."""
    valid = sorted(inspect.signature(SpatialEmbeddingLoss.__init__).parameters.keys() - {"self"})
    unknown = sorted(set(cfg.loss) - set(valid))
    if unknown:
        raise ValueError(f"method 'spatial': unknown loss key(s) {unknown}; valid keys: {valid}")
    return dict(cfg.loss)


class ObjectClassSpatialLoss(SpatialEmbeddingLoss):
    """:class:`SpatialEmbeddingLoss` for ``n_classes = K > 1`` seed channels on dataset class ids.

    ``batch["classes"]`` ``(B, H, W)`` holds 1..K at object pixels (0 = background, -1 = ignore);
    the loss wants the seed channel ``0..K-1``, so it gets ``classes - 1`` (background and ignore
    become negative, i.e. unknown, which the loss only reads at instance pixels). Other keyword
    arguments as :class:`SpatialEmbeddingLoss`.
    """

    def __init__(self, *, n_classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if n_classes < 2:
            raise ValueError(f"method 'spatial': ObjectClassSpatialLoss needs n_classes >= 2, got {n_classes}")
        self.n_classes = int(n_classes)

    def forward(self, output: ModelOutput, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        classes = batch.get("classes")
        if classes is None:
            raise ValueError(
                f"method 'spatial': model.n_classes = {self.n_classes} needs batch['classes']; train on a "
                "dataset with classes (voc, coco, cityscapes) or set model.n_classes: 1"
            )
        top = int(classes.max()) if classes.numel() else 0
        if top > self.n_classes:
            raise ValueError(
                f"method 'spatial': the batch has class id {top} but model.n_classes = {self.n_classes}; "
                "set model.n_classes to the dataset's number of object classes"
            )
        return super().forward(output, {**batch, "classes": classes - 1})

    def extra_repr(self) -> str:
        return f"n_classes={self.n_classes}, {super().extra_repr()}"


class SpatialMethod(Method):
    """Spatial embeddings with a learned (circular or elliptical) clustering bandwidth."""

    name = "spatial"
    task = "instance"
    default_grouper = "seeded_classes"

    def heads(self, cfg: RunConfig) -> dict[str, int]:
        if cfg.model.n_sigma not in (1, 2):
            raise ValueError(f"method 'spatial': model.n_sigma must be 1 or 2, got {cfg.model.n_sigma}")
        if cfg.model.n_classes < 1:
            raise ValueError(f"method 'spatial': model.n_classes must be >= 1, got {cfg.model.n_classes}")
        return {"offset": 2, "sigma": cfg.model.n_sigma, "seed": cfg.model.n_classes}

    def build_loss(self, cfg: RunConfig) -> nn.Module:
        if cfg.model.n_classes > 1:
            return ObjectClassSpatialLoss(n_classes=cfg.model.n_classes, **_loss_kwargs(cfg))
        return SpatialEmbeddingLoss(**_loss_kwargs(cfg))

    def grouper_defaults(self, cfg: RunConfig) -> dict[str, Any]:
        return {"coord_scale": float(_loss_kwargs(cfg).get("coord_scale", DEFAULT_COORD_SCALE))}

    def init_heads(self, heads: dict[str, nn.Conv2d], *, cfg: RunConfig | None = None) -> None:
        """Authors' output initialisation: zero offsets (every pixel starts as its own centre) and a
        constant bandwidth of ``INIT_RADIUS_PX`` pixels (zero weights, bias set); the seed head keeps
        its default initialisation (sigmoid ~ 0.5), as in the authors' code."""
        scale = DEFAULT_COORD_SCALE if cfg is None else self.grouper_defaults(cfg)["coord_scale"]
        sigma_bias = raw_sigma_for_radius(INIT_RADIUS_PX, scale=scale)
        with torch.no_grad():
            for name, value in (("offset", 0.0), ("sigma", sigma_bias)):
                conv = heads.get(name)
                if conv is None:
                    continue
                conv.weight.zero_()
                if conv.bias is not None:
                    conv.bias.fill_(value)


register_method(SpatialMethod())
