"""Inference on whole images of any size: normalise, pad to the network's multiple, run, unpad, group."""

from __future__ import annotations

import logging
from itertools import chain
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch

from ..config import RunConfig
from ..data.io import normalize_percentile
from ..data.transforms import pad_to_multiple, unpad
from ..grouping.base import GROUPERS
from ..methods.base import split_kwargs
from ..models.fused import fuse_for_inference
from ..types import Instances, ModelOutput
from .build import build_model, get_method, grouper_spec
from .checkpoint import load_checkpoint, load_weights, resolve_checkpoint
from .diameter import check_diameter, median_diameter, resize_image, resize_result
from .tiling import ReadWindow, TiledResult, Tiling, group_tiled, read_outputs, resolve_tiling, tiled_outputs
from .tta import tta_forward, warn_if_no_effect

log = logging.getLogger(__name__)

AUTO_PROBES = (1.0, 0.5, 0.25, 0.125)
"""Scales at which ``diameter="auto"`` looks for the objects' size (see ``Segmenter._segment_auto``)."""
AUTO_MIN_SIDE = 32
"""No probe at a scale that makes the image's shorter side fewer pixels than this."""
AUTO_SAME_SCALE = 1.1
"""``diameter="auto"`` keeps the first pass when the scale it asks for is within this ratio of 1."""

Inference = Literal["auto", "plain", "fused", "bf16"]
"""How :class:`Segmenter` runs its network: ``"plain"``, the trained module as it is; ``"fused"``,
an inference copy with BatchNorm folded into the convolutions and fused kernels
(:mod:`pixelgroup.models.fused`), the same outputs to float32 rounding; ``"bf16"``, that copy in
bfloat16 (~3x faster on CPUs with native bfloat16 (AMX, AVX512-BF16); outputs differ by ~1e-2);
``"auto"`` (default): ``"bf16"`` on a CPU with native bfloat16, else ``"fused"``."""


def _cpu_has(check: str) -> bool:
    """One of torch's (private) CPU feature checks, ``False`` where this build has none."""
    fn = getattr(torch.cpu, check, None)
    try:
        return bool(fn()) if fn is not None else False
    except RuntimeError:
        return False


def amx_cpu() -> bool:
    """Whether this CPU has AMX tiles (bfloat16 matrix units: bfloat16 training ~2x faster)."""
    return _cpu_has("_is_amx_tile_supported")


def native_bf16_cpu() -> bool:
    """Whether this CPU computes bfloat16 natively (AMX tiles or AVX512-BF16), where bfloat16
    convolutions are faster than float32 ones (elsewhere they are emulated and slower)."""
    return amx_cpu() or _cpu_has("_is_avx512_bf16_supported")


def resolve_inference(inference: str, device: torch.device) -> str:
    """``"auto"`` -> ``"bf16"`` on a CPU with native bfloat16, else ``"fused"``; others as they are."""
    if inference != "auto":
        return inference
    return "bf16" if device.type == "cpu" and native_bf16_cpu() else "fused"


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


def _weights_key(model: torch.nn.Module) -> tuple:
    """Identity, in-place version and storage of every parameter and buffer: changes whenever a weight
    does (optimiser steps, ``load_state_dict``, BatchNorm statistics, a move to another device)."""
    return tuple((id(t), t._version, t.data_ptr()) for t in chain(model.parameters(), model.buffers()))


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
        object_diameter: median object diameter of the training data, pixels (for ``diameter=``).
        object_diameter_range: ``(low, high)``, the 10th and 90th percentiles of the training
            objects' diameters (for the size hint of ``predict``); ``None`` when not recorded.
        calibration: grouping values calibrated after training (``Calibration.to_dict()``), used
            unless ``cfg.grouping.params`` gives them; ``None``: the method's defaults.
        inference: how the network runs (:data:`Inference`); also settable later,
            ``seg.inference = "plain"``.
    """

    def __init__(self, model: torch.nn.Module, cfg: RunConfig, *, device: str | torch.device = "cpu",
                 state: dict | None = None, object_diameter: float | None = None,
                 calibration: dict | None = None, inference: Inference = "auto",
                 object_diameter_range: tuple[float, float] | None = None) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.inference = inference
        self._fused: tuple[tuple, torch.nn.Module] | None = None  # (key, inference copy of self.model)
        self.cfg = cfg
        self.method = get_method(cfg)
        self.state = state or {}
        self.calibration = calibration
        self.grouper, self.grouper_params = grouper_spec(cfg, calibration)
        self.object_diameter = None if object_diameter is None else float(object_diameter)
        self.object_diameter_range = (None if object_diameter_range is None
                                      else (float(object_diameter_range[0]), float(object_diameter_range[1])))

    @classmethod
    def from_checkpoint(cls, path: str | Path, *, device: str | torch.device = "cpu",
                        inference: Inference = "auto") -> Segmenter:
        path = resolve_checkpoint(path)
        cfg, state = load_checkpoint(path)
        model = build_model(cfg, in_channels=int(state.get("in_channels", 1)))
        load_weights(model, state["model"], path)
        return cls(model, cfg, device=device, state=state.get("method_state"),
                   object_diameter=state.get("object_diameter"), calibration=state.get("calibration"),
                   inference=inference, object_diameter_range=state.get("object_diameter_range"))

    @property
    def task(self) -> str:
        return self.method.task

    @property
    def inference(self) -> Inference:
        """How the network runs: ``"auto"``, ``"plain"``, ``"fused"`` or ``"bf16"`` (:data:`Inference`)."""
        return self._inference

    @inference.setter
    def inference(self, value: Inference) -> None:
        if value not in get_args(Inference):
            raise ValueError(f"Segmenter: inference must be one of {list(get_args(Inference))}, got {value!r}")
        self._inference = value

    @property
    def network(self) -> torch.nn.Module:
        """The module that computes the outputs: :attr:`model` itself (``inference="plain"``, or the
        model in training mode) or its fused inference copy, remade whenever the model's weights,
        their device or :attr:`inference` change. ``state_dict`` and checkpoints are always the model's."""
        how = resolve_inference(self.inference, self.device)
        if how == "plain" or self.model.training:
            return self.model
        dtype = torch.bfloat16 if how == "bf16" else torch.float32
        key = (dtype, _weights_key(self.model))
        if self._fused is None or self._fused[0] != key:
            self._fused = (key, fuse_for_inference(self.model, dtype=dtype))
        return self._fused[1]

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
    def outputs(self, image: np.ndarray, *, normalized: bool = False, tta: bool = False) -> ModelOutput:
        """Raw head outputs for one image: every tensor ``(C, H, W)`` on :attr:`device`.

        ``tta``: average over the 8 flips/rotations (:mod:`pixelgroup.engine.tta`)."""
        x = torch.from_numpy(np.ascontiguousarray(self.prepare(image, normalized=normalized)))
        x = x.permute(2, 0, 1)[None].to(self.device)  # (1, C, H, W)
        if not tta:
            return forward_padded(self.network, x)
        warn_if_no_effect(list(self.method.head_channels(self.cfg)))
        x, size = pad_to_multiple(x, self.model.multiple)
        return self.forward_batch(x, tta=True).select(0).apply(lambda t: unpad(t, size))

    @torch.no_grad()
    def forward_batch(self, x: torch.Tensor, *, tta: bool = False) -> ModelOutput:
        """Raw outputs ``(B, C', H, W)`` on :attr:`device` of a batch ``x (B, C, H, W)`` (any device,
        H and W multiples of the network's multiple)."""
        x = x.to(self.device)
        return tta_forward(self.network, x) if tta else self.network(x)

    def tiling_for(self, shape: tuple[int, int], *, tile: int | None = None, halo: int | None = None) -> Tiling | None:
        """The tiling of an ``(H, W)`` image (``None``: one pass); see :func:`resolve_tiling`."""
        return resolve_tiling(shape, tile=tile, halo=halo, multiple=self.model.multiple)

    def segment_tiled(self, read_window: ReadWindow, shape: tuple[int, int], tiling: Tiling, labels, *,
                      tta: bool = False, new_array=None, progress: bool = False) -> tuple[TiledResult, dict]:
        """Tiled prediction (:mod:`pixelgroup.engine.tiling`) of an image read window by window.

        Writes ``labels`` (an ``(H, W)`` zero int array: numpy, zarr, ...) in place and returns the
        instances' scores/classes and the stitched raw outputs ``{head: (C, H, W) array}``
        (arrays made by ``new_array(name, shape)``, default numpy)."""
        if tta:
            warn_if_no_effect(list(self.method.head_channels(self.cfg)))
        arrays = tiled_outputs(lambda x: self.forward_batch(x, tta=tta), read_window, shape, tiling,
                               multiple=self.model.multiple, new_array=new_array, progress=progress)
        result = group_tiled(lambda box: read_outputs(arrays, box, self.device), self.group, shape, tiling, labels,
                             task=self.task, progress=progress)
        return result, arrays

    def group(self, output: ModelOutput) -> Instances | np.ndarray:
        """The grouper's result on one image's outputs: :class:`Instances` (instance methods) or an
        ``(H, W)`` class map (semantic methods). A method with an inference state passes it on."""
        fn = GROUPERS.get(self.grouper)
        with_state = self.method.state is not None and self.grouper == self.method.grouper
        # the settings of a stateful method feed its state builder too: each takes its own keys
        fns = (fn, self.method.state) if with_state else (fn,)
        kwargs = split_kwargs(self.grouper_params, *fns, where=f"grouper '{self.grouper}' (grouping.params)")[0]
        return fn(output, state=self.state, **kwargs) if with_state else fn(output, **kwargs)

    def segment_instances(self, image: np.ndarray, *, normalized: bool = False, tile: int | None = None,
                          halo: int | None = None, tta: bool = False, progress: bool = False,
                          diameter: float | str | None = None) -> Instances:
        """Instances (labels, scores, classes) of one image.

        ``tile``: block side for tiled prediction (``None``: automatic above 2048 x 2048 pixels,
        ``0``: one pass); ``halo``: grouping context per side, pixels; ``tta``: flips/rotations;
        ``diameter``: the objects' diameter in this image, pixels: the image is rescaled by
        ``object_diameter / diameter`` to the training object size and the labels back (nearest);
        ``"auto"``: estimated from passes at the image's scale and coarser ones (:meth:`_segment_auto`);
        ``None`` (default): no rescaling."""
        if self.task != "instance":
            raise ValueError(f"method '{self.cfg.method}' is a semantic method; use segment()")
        return self._segment_at(image, diameter, normalized=normalized, tile=tile, halo=halo, tta=tta,
                                progress=progress)

    def segment(self, image: np.ndarray, *, normalized: bool = False, tile: int | None = None,
                halo: int | None = None, tta: bool = False, progress: bool = False,
                diameter: float | str | None = None) -> np.ndarray:
        """``(H, W)`` int32: instance labels (instance methods) or class indices (semantic methods).
        Keywords as :meth:`segment_instances`."""
        result = self._segment_at(image, diameter, normalized=normalized, tile=tile, halo=halo, tta=tta,
                                  progress=progress)
        labels = result.labels if isinstance(result, Instances) else result
        return np.asarray(labels, dtype=np.int32)

    def rescale_factor(self, diameter: float) -> float:
        """Scale that gives objects of ``diameter`` pixels the training object size."""
        if self.object_diameter is None:
            raise ValueError("this model does not record its training object size (object_diameter); retrain it "
                             "with this version, or segment without diameter")
        return self.object_diameter / check_diameter(diameter)

    def _segment_at(self, image: np.ndarray, diameter: float | str | None, **kw) -> Instances | np.ndarray:
        """:meth:`_segment` at the scale that ``diameter`` asks for, labels at the input size."""
        if diameter is None:
            return self._segment(image, **kw)
        self.rescale_factor(1.0)  # fails early when the model does not record its object size
        prepared = self.prepare(image, normalized=kw.pop("normalized"))
        if diameter == "auto":
            return self._segment_auto(prepared, **kw)
        factor = self.rescale_factor(diameter)
        result = self._segment(resize_image(prepared, factor), normalized=True, **kw)
        return resize_result(result, prepared.shape[:2])

    def estimate_diameter(self, image: np.ndarray, *, normalized: bool = False, tile: int | None = None,
                          halo: int | None = None) -> float | None:
        """The objects' median diameter in ``image`` (pixels), as ``diameter="auto"`` estimates it
        (:meth:`_auto_estimate`); ``None`` when a pass at the image's own scale finds no object."""
        prepared = self.prepare(image, normalized=normalized)
        kw = {"tile": tile, "halo": halo, "tta": False, "progress": False}
        return self._auto_estimate(prepared, kw)[0]

    def _auto_estimate(self, prepared: np.ndarray, kw: dict[str, Any]) -> tuple[float | None, Instances]:
        """``(diameter, first pass)``: the objects' diameter (input pixels) from passes at the scales of
        :data:`AUTO_PROBES`, and the pass at scale 1 (run with ``kw``; ``None`` when it finds nothing).

        The estimate is the median object diameter of the coarsest probe at which the objects found
        still measure at least the low end of the training sizes (the checkpoint's 10th percentile,
        else half the median). Objects much larger than the training ones are cut by the network into
        pieces of about the training size, so a pass at their own scale underestimates them; a coarser
        pass sees them whole, down to the scale where they become too small to trust, where probing
        stops (objects near the training size: probes at 1/2 and 1/4, ~0.3 of a pass). When no coarser
        probe qualifies (objects at or below the training size), the first pass's estimate is used.
        The probes run without test-time augmentation: they only measure."""
        self.rescale_factor(1.0)  # fails early when the model does not record its object size
        if self.task != "instance":
            raise ValueError("diameter='auto' needs an instance method; give the diameter in pixels")
        low = self.object_diameter_range[0] if self.object_diameter_range else self.object_diameter / 2
        first = self._segment(prepared, normalized=True, **kw)
        found = median_diameter(first.labels)
        if found is None:
            log.info("diameter auto: no object found at scale 1")
            return None, first
        estimate, at = found, 1.0
        probe_kw = {**kw, "tta": False, "progress": False}
        for scale in AUTO_PROBES[1:]:
            if min(prepared.shape[:2]) * scale < AUTO_MIN_SIDE:
                break
            probe = median_diameter(self._segment(resize_image(prepared, scale), normalized=True, **probe_kw).labels)
            if probe is None or probe < low:
                break
            estimate, at = probe / scale, scale
        log.info("diameter auto: median object diameter %.1f px (from the pass at scale %g; %.1f px at scale 1)",
                 estimate, at, found)
        return estimate, first

    def _segment_auto(self, prepared: np.ndarray, **kw) -> Instances:
        """``diameter="auto"``: the size from :meth:`_auto_estimate`, then one pass at the scale that
        gives it the training size, run as asked. The first pass is kept when that scale is within
        :data:`AUTO_SAME_SCALE` of 1, or when it found nothing. Labels at the input size."""
        estimate, result = self._auto_estimate(prepared, kw)
        factor = self.auto_factor(estimate)
        if factor != 1.0:
            result = self._segment(resize_image(prepared, factor), normalized=True, **kw)
        return resize_result(result, prepared.shape[:2])

    def auto_factor(self, estimate: float | None) -> float:
        """The scale ``diameter="auto"`` segments at for an estimated diameter (:meth:`estimate_diameter`):
        :meth:`rescale_factor`, or 1 when that is within :data:`AUTO_SAME_SCALE` of 1 or nothing was found."""
        if estimate is None:
            return 1.0
        factor = self.rescale_factor(estimate)
        return 1.0 if abs(np.log(factor)) <= np.log(AUTO_SAME_SCALE) else factor

    def _segment(self, image: np.ndarray, *, normalized: bool, tile: int | None, halo: int | None, tta: bool,
                 progress: bool) -> Instances | np.ndarray:
        prepared = self.prepare(image, normalized=normalized)
        tiling = self.tiling_for(prepared.shape[:2], tile=tile, halo=halo)
        if tiling is None:
            return self.group(self.outputs(prepared, normalized=True, tta=tta))
        labels = np.zeros(prepared.shape[:2], np.int32)
        result, _ = self.segment_tiled(lambda b: prepared[b[0]:b[1], b[2]:b[3]], prepared.shape[:2], tiling,
                                       labels, tta=tta, progress=progress)
        if self.task == "semantic":
            return labels
        return Instances(labels, result.scores, result.classes)


def load_model(path: str | Path, *, device: str | torch.device = "cpu", cache_dir: str | Path | None = None,
               inference: Inference = "auto", **overrides: Any) -> Segmenter:
    """Load a run folder, checkpoint or model name (``"nuclei"``, see :mod:`pixelgroup.engine.zoo`)
    as a :class:`Segmenter`. A path that exists wins over a name; ``cache_dir``: the user model folder.

    ``overrides`` replace grouping parameters, e.g. ``load_model(run, seed_threshold=0.8)``;
    ``inference``: how the network runs (:data:`Inference`).
    """
    from .zoo import resolve_model

    seg = Segmenter.from_checkpoint(resolve_model(path, cache_dir=cache_dir), device=device, inference=inference)
    seg.grouper_params.update(overrides)
    return seg
