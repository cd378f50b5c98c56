"""Build the pieces of a run from its config."""

from __future__ import annotations

from typing import Any

from .. import methods as _methods  # noqa: F401  (registers every method)
from ..config import RunConfig
from ..methods.base import METHODS, Method
from ..models.net import PixelEmbeddingNet


def get_method(cfg: RunConfig) -> Method:
    return METHODS.get(cfg.method)


def build_model(cfg: RunConfig, *, in_channels: int) -> PixelEmbeddingNet:
    """The network for ``cfg.method`` with the heads that method asks for."""
    method = get_method(cfg)
    model = PixelEmbeddingNet(
        in_channels=in_channels,
        heads=method.heads(cfg),
        backbone=cfg.model.backbone,
        width=cfg.model.width,
        depth=cfg.model.depth,
        context=cfg.model.context,
        embedding_coords=embedding_coords(cfg),
    )
    init = getattr(method, "init_heads", None)
    if init is not None:
        init({name: head.out for name, head in model.heads.items()}, cfg=cfg)
    return model


def embedding_coords(cfg: RunConfig) -> float:
    """``cfg.model.embedding_coords``, or the method's default when it is ``None``."""
    if cfg.model.embedding_coords is not None:
        return float(cfg.model.embedding_coords)
    return float(getattr(get_method(cfg), "default_embedding_coords", 0.0))


def grouper_spec(cfg: RunConfig) -> tuple[str, dict[str, Any]]:
    """``(grouper name, keyword arguments)``: the method's defaults overridden by ``cfg.grouping``."""
    method = get_method(cfg)
    name = cfg.grouping.name or method.default_grouper
    params = dict(method.grouper_defaults(cfg)) if name == method.default_grouper else {}
    params.update(cfg.grouping.params)
    return name, params
