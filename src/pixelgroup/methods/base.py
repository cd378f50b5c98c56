"""What a method is: one declared recipe composing a network's heads, a loss and a grouper by name.

A :class:`Method` is a frozen record, registered once in :data:`METHODS` (see
:mod:`pixelgroup.methods.recipes` for the published ones). Every optional part is a declared field
with a neutral default: the engine (train, predict, evaluate) reads fields, never probes for hooks.

Training batches are dicts of tensors:
    ``image``      ``(B, C, H, W)`` float32, normalised.
    ``instances``  ``(B, H, W)`` int64, 0 = background, 1..N instances, -1 = ignore.
    ``classes``    ``(B, H, W)`` int64 semantic class per pixel, -1 = ignore (semantic / multi-class).
    ``segments``   ``(B, H, W)`` int64 over-segmentation (unsupervised SegSort), optional.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from ..config import RunConfig
from ..grouping.base import GROUPERS
from ..losses.base import LOSSES
from ..losses.semantic import SemanticTermLoss
from ..registry import Registry

Task = Literal["instance", "semantic"]

HeadInit = Callable[[Mapping[str, nn.Conv2d], Mapping[str, Any]], None]
"""``init(heads, loss_settings)``: initialise the heads' final convolutions in place."""


def _no_settings(_: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Method:
    """A published method as one recipe.

    Attributes:
        name: registry name (``--method``).
        task: ``"instance"`` (groupers return :class:`~pixelgroup.types.Instances`, selected by
            the mean AP_dsb over IoU 0.5:0.95) or ``"semantic"`` (groupers return ``(H, W)`` class
            maps, selected by mIoU).
        heads: ``cfg -> {head name: channels}`` of the network (validates the model settings).
        loss: :data:`~pixelgroup.losses.base.LOSSES` key; built by :meth:`build_loss` from ``cfg.loss``
            checked against the loss's signature.
        grouper: :data:`~pixelgroup.grouping.base.GROUPERS` key of the default grouping.
        loss_args: ``cfg -> kwargs`` the loss takes from the model settings (not from ``cfg.loss``),
            e.g. the number of classes.
        grouper_args: ``loss settings -> kwargs`` of the default grouper (and state builder) that the
            loss implies, so training and inference agree (e.g. a bandwidth from a margin). The loss
            settings are the loss's signature defaults updated with ``cfg.loss``.
        class_head: multi-class instances by a ``semantic`` head of ``K + 1`` logits and a
            cross-entropy term ``sem`` (weight ``loss.sem_weight``) when ``model.n_classes = K > 1``.
        embedding_coords: default of ``model.embedding_coords`` (semi-convolutional embedding).
        init_heads: optional in-place initialisation of the head convolutions.
        state: optional inference state built from the training data after training (and at every
            validation), ``state(samples, **params) -> dict`` where ``samples`` yields ``(name,
            output (C, H, W), classes (H, W))``; the grouper then receives it as ``state=``.
        explain: optional ``explain(output, state, k=...)`` listing why each segment got its class.
        calibrate: ``((grouping setting, candidates), ...)`` tuned on the held-out images after
            training (:mod:`pixelgroup.engine.calibrate`; ``min_size`` is added from the training
            objects' size wherever the grouper takes it).
    """

    name: str
    task: Task
    heads: Callable[[RunConfig], dict[str, int]]
    loss: str
    grouper: str
    loss_args: Callable[[RunConfig], dict[str, Any]] = _no_settings
    grouper_args: Callable[[Mapping[str, Any]], dict[str, Any]] = _no_settings
    class_head: bool = False
    embedding_coords: float = 0.0
    init_heads: HeadInit | None = None
    state: Callable[..., dict[str, Any]] | None = None
    explain: Callable[..., list] | None = None
    calibrate: tuple[tuple[str, tuple[float, ...]], ...] = ()

    @property
    def select_metric(self) -> str:
        """The validation score that selects ``best.pt`` (higher is better)."""
        return "miou" if self.task == "semantic" else "ap_dsb"

    def head_channels(self, cfg: RunConfig) -> dict[str, int]:
        """Named heads of the network and their channels, e.g. ``{"offset": 2, "sigma": 1, "seed": 1}``."""
        heads = dict(self.heads(cfg))
        if self.class_head:
            if cfg.model.n_classes < 1:
                raise ValueError(f"method '{self.name}': model.n_classes must be >= 1, got {cfg.model.n_classes}")
            if cfg.model.n_classes > 1:
                heads["semantic"] = cfg.model.n_classes + 1
        return heads

    def loss_settings(self, cfg: RunConfig) -> dict[str, Any]:
        """The loss's keyword arguments with their defaults, updated with ``cfg.loss`` (checked)."""
        return _settings(self, cfg)[0]

    def build_loss(self, cfg: RunConfig) -> nn.Module:
        """``loss(output, batch) -> dict`` of named terms with ``"total"``, from ``cfg.loss``."""
        settings, user = _settings(self, cfg)
        sem_weight = user.pop("sem_weight", None)
        loss = LOSSES.get(self.loss)(**self.loss_args(cfg), **user)
        if not self.class_head:
            return loss
        if cfg.model.n_classes > 1:
            weight = 1.0 if sem_weight is None else float(sem_weight)
            return SemanticTermLoss(loss, n_classes=cfg.model.n_classes, sem_weight=weight)
        if sem_weight is not None:
            raise ValueError(f"method '{self.name}': loss.sem_weight needs a semantic head (model.n_classes > 1); "
                             "remove it")
        return loss

    def grouper_defaults(self, cfg: RunConfig) -> dict[str, Any]:
        """Default-grouper keyword arguments implied by the loss settings (overridden by ``cfg.grouping``)."""
        return dict(self.grouper_args(self.loss_settings(cfg)))

    def default_embedding_coords(self, cfg: RunConfig) -> float:
        """``cfg.model.embedding_coords``, or this method's default when it is ``None``."""
        given = cfg.model.embedding_coords
        return float(self.embedding_coords if given is None else given)


def _settings(method: Method, cfg: RunConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(defaults updated with cfg.loss, cfg.loss)``; unknown keys raise listing the valid ones."""
    params = inspect.signature(LOSSES.get(method.loss)).parameters
    fixed = set(method.loss_args(cfg))
    valid = {k for k, p in params.items() if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD} - fixed
    if method.class_head:
        valid.add("sem_weight")
    user = dict(cfg.loss)
    unknown = sorted(set(user) - valid)
    if unknown:
        raise ValueError(f"method '{method.name}': unknown loss key(s) {unknown}; valid keys: {sorted(valid)}")
    defaults = {k: p.default for k, p in params.items() if k in valid and p.default is not p.empty}
    return {**defaults, **user}, user


def split_kwargs(params: Mapping[str, Any], *fns: Callable, where: str) -> list[dict[str, Any]]:
    """Give each function the keys of ``params`` its signature takes; a key none takes raises.

    Used where one settings block feeds two functions (a grouper and its state builder).
    """
    taken: list[dict[str, Any]] = []
    valid: set[str] = set()
    for fn in fns:
        sig = inspect.signature(fn).parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in sig):  # takes anything: it checks its own keys
            taken.append(dict(params))
            valid |= set(params)
            continue
        names = {p.name for p in sig
                 if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in ("output", "state")}
        valid |= names
        taken.append({k: v for k, v in params.items() if k in names})
    unknown = sorted(set(params) - valid)
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {unknown}; valid: {sorted(valid)}")
    return taken


METHODS: Registry[Method] = Registry("method")


def register_method(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS`; its loss and default grouper must be registered."""
    LOSSES.get(method.loss)
    GROUPERS.get(method.grouper)
    METHODS.add(method.name, method)
    return method
