"""Inference on whole images of any size: normalise, pad to the network's multiple, run, unpad, group."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import RunConfig
from ..data.io import normalize_percentile
from ..data.transforms import pad_to_multiple, unpad
from ..grouping.base import group
from ..types import Instances, ModelOutput
from .build import build_model, get_method, grouper_spec
from .checkpoint import load_checkpoint, load_weights, resolve_checkpoint

log = logging.getLogger(__name__)


def _channels_last(image: np.ndarray, channels: int) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` -> ``(H, W, channels)``; grey images are repeated for RGB models."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {image.shape}")
    if image.shape[-1] == channels:
        return image
    if image.shape[-1] == 1:
        return np.repeat(image, channels, axis=-1)
    if channels == 1 and image.shape[-1] in (3, 4):
        return image[..., :3].astype(np.float32).mean(axis=-1, keepdims=True)
    raise ValueError(
        f"image has {image.shape[-1]} channels but the model was trained on {channels}; "
        "convert the image to the training data's channels"
    )


class Segmenter:
    """A trained model ready to segment numpy images.

    Example:
        >>> seg = pixelgroup.load_model("runs/nuclei")
        >>> labels = seg.segment(image)          # (H, W) int32, 0 = background

    Args:
        model: the network (moved to ``device``, set to eval mode).
        cfg: the run's config (method, normalisation, grouping).
        device: torch device for the network and the grouping.
        state: the method's inference state (e.g. SegSort's prototype bank), if any.
    """

    def __init__(self, model: torch.nn.Module, cfg: RunConfig, *, device: str | torch.device = "cpu",
                 state: dict | None = None) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.cfg = cfg
        self.method = get_method(cfg)
        self.state = state or {}
        self.grouper, self.grouper_params = grouper_spec(cfg)

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str | torch.device = "cpu") -> Segmenter:
        path = resolve_checkpoint(path)
        cfg, state = load_checkpoint(path)
        model = build_model(cfg, in_channels=int(state.get("in_channels", 1)))
        load_weights(model, state["model"], path)
        return cls(model, cfg, device=device, state=state.get("method_state"))

    @property
    def task(self) -> str:
        return self.method.task

    def prepare(self, image: np.ndarray, *, normalized: bool = False) -> np.ndarray:
        """Raw image -> normalised float32 ``(H, W, C)`` with the model's channels."""
        image = _channels_last(image, self.model.in_channels)
        if normalized:
            return image.astype(np.float32)
        low, high = self.cfg.data.normalize
        return normalize_percentile(image, low, high)

    @torch.no_grad()
    def outputs(self, image: np.ndarray, *, normalized: bool = False) -> ModelOutput:
        """Raw head outputs for one image: every tensor ``(C, H, W)`` on :attr:`device`."""
        x = torch.from_numpy(np.ascontiguousarray(self.prepare(image, normalized=normalized)))
        x = x.permute(2, 0, 1)[None].to(self.device)  # (1, C, H, W)
        x, size = pad_to_multiple(x, self.model.multiple)
        return self.model(x).select(0).apply(lambda t: unpad(t, size))

    def segment_instances(self, image: np.ndarray, *, normalized: bool = False) -> Instances:
        """Instances (labels, scores, classes) of one image."""
        if self.task != "instance":
            raise ValueError(f"method '{self.cfg.method}' is a semantic method; use segment()")
        return group(self.grouper, self.outputs(image, normalized=normalized), **self.grouper_params)

    def segment(self, image: np.ndarray, *, normalized: bool = False) -> np.ndarray:
        """``(H, W)`` int32: instance labels (instance methods) or class indices (semantic methods)."""
        if self.task == "semantic":
            out = self.outputs(image, normalized=normalized)
            labels = self.method.predict_semantic(out, self.state, **self.grouper_params)
            return np.asarray(labels, dtype=np.int32)
        return self.segment_instances(image, normalized=normalized).labels


def load_model(path: str | Path, *, device: str | torch.device = "cpu", **overrides: Any) -> Segmenter:
    """Load a run folder or checkpoint as a :class:`Segmenter`.

    ``overrides`` replace grouping parameters, e.g. ``load_model(run, seed_threshold=0.8)``.
    """
    seg = Segmenter.from_checkpoint(path, device=device)
    seg.grouper_params.update(overrides)
    return seg
