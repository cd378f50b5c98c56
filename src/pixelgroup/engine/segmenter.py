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
from ..grouping.base import GROUPERS
from ..methods.base import split_kwargs
from ..types import Instances, ModelOutput
from .build import build_model, get_method, grouper_spec
from .checkpoint import load_checkpoint

log = logging.getLogger(__name__)


ACCEPTED = "(H, W) or channels-last (H, W, C) with C = 1 or the model's channels (RGB(A) also for grey models)"


def _channels_last(image: np.ndarray, channels: int) -> np.ndarray:
    """``(H, W)`` or ``(H, W, C)`` -> ``(H, W, channels)``; grey images are repeated for RGB models.

    The channel axis is always the last one. ``C`` may be ``channels``, 1 (repeated), or 3/4 for a
    one-channel model (RGB(A) -> mean of R, G, B). Anything else raises a ``ValueError`` naming the
    shape: empty images, a first axis of at most 4 with a last axis above 4 (channels-first
    ``(C, H, W)`` or a z-stack / time series: never guessed, pass ``np.moveaxis(image, 0, -1)`` or
    one plane), more than 3 axes, and non-numeric pixels.
    """
    image = np.asarray(image)
    shape = tuple(image.shape)
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool) or np.iscomplexobj(image):
        raise ValueError(f"image has dtype {image.dtype}; pass a real-valued numeric array of shape {ACCEPTED}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"image has shape {shape}; expected {ACCEPTED} (one image at a time: a batch or "
                         "stack must be split into planes)")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image has shape {shape}: no pixels; expected {ACCEPTED} with H, W >= 1")
    c = image.shape[-1]
    if c > 4 and c != channels:
        first = f"channels-first (C, H, W) or a stack of {shape[0]} planes" if shape[0] <= 4 else "a stack"
        raise ValueError(f"image has shape {shape}: the last axis ({c}) is not a channel count; looks like {first}. "
                         f"Pass (H, W, C): np.moveaxis(image, 0, -1) for channels, or one plane image[i]; "
                         f"accepted: {ACCEPTED}")
    if c == channels:
        return image
    if c == 1:
        return np.repeat(image, channels, axis=-1)
    if channels == 1 and c in (3, 4):
        return image[..., :3].astype(np.float32).mean(axis=-1, keepdims=True)
    raise ValueError(
        f"image has shape {shape}: {c} channels but the model was trained on {channels}; "
        "convert the image to the training data's channels"
    )


@torch.no_grad()
def forward_padded(model: torch.nn.Module, x: torch.Tensor) -> ModelOutput:
    """Head outputs of ONE image ``x (1, C, H, W)``: padded to the network's multiple, run, unpadded;
    every tensor ``(C', H, W)``."""
    x, size = pad_to_multiple(x, model.multiple)
    return model(x).select(0).apply(lambda t: unpad(t, size))


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
        cfg, state = load_checkpoint(path)
        model = build_model(cfg, in_channels=int(state.get("in_channels", 1)))
        model.load_state_dict(state["model"])
        return cls(model, cfg, device=device, state=state.get("method_state"))

    @property
    def task(self) -> str:
        return self.method.task

    def prepare(self, image: np.ndarray, *, normalized: bool = False) -> np.ndarray:
        """Raw image -> normalised float32 ``(H, W, C)`` with the model's channels."""
        image = _channels_last(image, self.model.in_channels)
        if not np.isfinite(image).all():
            n = int((~np.isfinite(image)).sum())
            raise ValueError(f"image has {n} NaN or inf pixel value(s); replace them (e.g. np.nan_to_num) "
                             "before segmenting")
        if normalized:
            return image.astype(np.float32)
        low, high = self.cfg.data.normalize
        return normalize_percentile(image, low, high)

    @torch.no_grad()
    def outputs(self, image: np.ndarray, *, normalized: bool = False) -> ModelOutput:
        """Raw head outputs for one image: every tensor ``(C, H, W)`` on :attr:`device`."""
        x = torch.from_numpy(np.ascontiguousarray(self.prepare(image, normalized=normalized)))
        x = x.permute(2, 0, 1)[None].to(self.device)  # (1, C, H, W)
        return forward_padded(self.model, x)

    def group(self, output: ModelOutput) -> Instances | np.ndarray:
        """The grouper's result on one image's outputs: :class:`Instances` (instance methods) or an
        ``(H, W)`` class map (semantic methods). A method with an inference state passes it on."""
        fn = GROUPERS.get(self.grouper)
        with_state = self.method.state is not None and self.grouper == self.method.grouper
        # the settings of a stateful method feed its state builder too: each takes its own keys
        fns = (fn, self.method.state) if with_state else (fn,)
        kwargs = split_kwargs(self.grouper_params, *fns, where=f"grouper '{self.grouper}' (grouping.params)")[0]
        return fn(output, state=self.state, **kwargs) if with_state else fn(output, **kwargs)

    def segment_instances(self, image: np.ndarray, *, normalized: bool = False) -> Instances:
        """Instances (labels, scores, classes) of one image."""
        if self.task != "instance":
            raise ValueError(f"method '{self.cfg.method}' is a semantic method; use segment()")
        return self.group(self.outputs(image, normalized=normalized))

    def segment(self, image: np.ndarray, *, normalized: bool = False) -> np.ndarray:
        """``(H, W)`` int32: instance labels (instance methods) or class indices (semantic methods)."""
        result = self.group(self.outputs(image, normalized=normalized))
        labels = result.labels if isinstance(result, Instances) else result
        return np.asarray(labels, dtype=np.int32)


def load_model(path: str | Path, *, device: str | torch.device = "cpu", **overrides: Any) -> Segmenter:
    """Load a run folder or checkpoint as a :class:`Segmenter`.

    ``overrides`` replace grouping parameters, e.g. ``load_model(run, seed_threshold=0.8)``.
    """
    seg = Segmenter.from_checkpoint(path, device=device)
    seg.grouper_params.update(overrides)
    return seg
