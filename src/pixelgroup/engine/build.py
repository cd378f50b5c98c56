"""Build the pieces of a run from its config: the method's recipe, network, loss and grouping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .. import methods as _methods  # noqa: F401  (registers every method)
from ..config import RunConfig
from ..grouping.base import GROUPERS
from ..methods.base import METHODS, Method
from ..models.net import PixelEmbeddingNet


def get_method(cfg: RunConfig) -> Method:
    """The recipe of ``cfg.method`` (an unknown name raises listing the valid ones)."""
    return METHODS.get(cfg.method)


def build_model(cfg: RunConfig, *, in_channels: int) -> PixelEmbeddingNet:
    """The network for ``cfg.method`` with the heads that method declares, initialised as it says."""
    method = get_method(cfg)
    model = PixelEmbeddingNet(
        in_channels=in_channels,
        heads=method.head_channels(cfg),
        backbone=cfg.model.backbone,
        width=cfg.model.width,
        depth=cfg.model.depth,
        context=cfg.model.context,
        embedding_coords=method.default_embedding_coords(cfg),
    )
    if method.init_heads is not None:
        method.init_heads({name: head.out for name, head in model.heads.items()}, method.loss_settings(cfg))
    return model


def build_loss(cfg: RunConfig) -> nn.Module:
    """The method's loss from ``cfg.loss`` (keys checked against the loss's signature)."""
    return get_method(cfg).build_loss(cfg)


def embedding_coords(cfg: RunConfig) -> float:
    """``cfg.model.embedding_coords``, or the method's default when it is ``None``."""
    return get_method(cfg).default_embedding_coords(cfg)


def grouper_spec(cfg: RunConfig, calibration: Mapping[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """``(grouper name, keyword arguments)``: the method's defaults, then the values calibrated after
    training (``calibration``, a :class:`~pixelgroup.engine.calibrate.Calibration` as a dict, when
    it is for this grouper), then ``cfg.grouping`` (the user's values win).

    The loss-implied defaults apply to the method's own grouper only; another grouper
    (``grouping.name``) gets just ``grouping.params``. An unknown grouper name raises here.
    """
    method = get_method(cfg)
    name = cfg.grouping.name or method.grouper
    GROUPERS.get(name)
    params = method.grouper_defaults(cfg) if name == method.grouper else {}
    if calibration and calibration.get("grouper") == name:
        params.update(calibration.get("params", {}))
    params.update(cfg.grouping.params)
    return name, params
