"""Export a model: ``onnx`` (the network), ``torchscript`` (the whole spatial pipeline), ``bioimageio``.

* ``onnx``: the network alone; input ``image (1, C, H, W)`` float32, normalised, ``H`` and ``W``
  multiples of the network's multiple (dynamic); one output per head, named after it (``offset``,
  ``sigma``, ``seed``, ...), raw (pre-activation) like :class:`~pixelgroup.types.ModelOutput`.
* ``torchscript``: the whole pipeline of the ``spatial`` method in one file: a raw float32 image
  ``(H, W)`` or ``(H, W, C)`` in, ``(H, W)`` int32 labels out, identical to ``Segmenter.segment``
  (percentile normalisation, channels, padding, network, seeded grouping; see
  :mod:`pixelgroup.grouping.seeded_script`). Load it with ``torch.jit.load`` (no pixelgroup needed).
* ``bioimageio``: a bioimage.io model package (:mod:`pixelgroup.engine.bioimageio`).
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Literal, Optional  # noqa: UP035 - TorchScript needs Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..grouping.seeded import seeded_grouping
from ..grouping.seeded_script import seeded_labels
from ..ops.normalize import percentile_normalize
from .checkpoint import load_checkpoint, resolve_checkpoint
from .export_net import export_onnx, head_names, traced_network
from .segmenter import Segmenter, load_model
from .zoo import generated_card, get_model

log = logging.getLogger(__name__)

ExportFormat = Literal["torchscript", "onnx", "bioimageio"]
FORMATS: tuple[str, ...] = ("torchscript", "onnx", "bioimageio")


class SegmentPipeline(nn.Module):
    """Raw image ``(H, W)`` or ``(H, W, C)`` float32 -> ``(H, W)`` int32 labels (spatial method)."""

    def __init__(self, network: torch.jit.ScriptModule, *, in_channels: int, multiple: int, low: float,
                 high: float, params: dict) -> None:
        super().__init__()
        self.network = network
        self.in_channels, self.multiple, self.low, self.high = in_channels, multiple, float(low), float(high)
        self.coord_scale = float(params["coord_scale"])
        self.fg_threshold, self.seed_threshold = float(params["fg_threshold"]), float(params["seed_threshold"])
        self.min_size, self.min_unclustered = int(params["min_size"]), float(params["min_unclustered"])
        self.max_instances: int = -1 if params["max_instances"] is None else int(params["max_instances"])

    def channels_last(self, image: Tensor) -> Tensor:
        if image.dim() == 2:
            image = image.unsqueeze(-1)
        if image.dim() != 3 or image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError("expected a float32 image (H, W) or (H, W, C) with H, W >= 1")
        c = image.shape[-1]
        if c == self.in_channels:
            return image.float()
        if c == 1:
            return image.float().repeat(1, 1, self.in_channels)
        if self.in_channels == 1 and (c == 3 or c == 4):
            return image[:, :, :3].float().mean(dim=-1, keepdim=True)
        raise ValueError("the image's channels do not match the model's (C = 1 or the model's channels)")

    def forward(self, image: Tensor) -> Tensor:
        x = self.channels_last(image)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("image has NaN or inf pixel values")
        x = percentile_normalize(x, self.low, self.high).permute(2, 0, 1).unsqueeze(0)  # (1, C, H, W)
        h, w = x.shape[2], x.shape[3]
        m = self.multiple
        ph, pw = (m - h % m) % m, (m - w % m) % m
        if ph > 0 or pw > 0:
            x = F.pad(x, [0, pw, 0, ph], mode="reflect" if ph < h and pw < w else "replicate")
        offset, sigma, seed = self.network(x)
        max_instances: Optional[int] = None  # noqa: UP045 - TorchScript
        if self.max_instances >= 0:
            max_instances = self.max_instances
        return seeded_labels(offset[0, :, :h, :w], sigma[0, :, :h, :w], seed[0, :, :h, :w], self.coord_scale,
                             self.fg_threshold, self.seed_threshold, self.min_size, self.min_unclustered,
                             max_instances)


def grouping_params(seg: Segmenter) -> dict:
    """Every parameter of the seeded grouper: its defaults updated with the model's settings."""
    defaults = {k: p.default for k, p in inspect.signature(seeded_grouping).parameters.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY}
    unknown = set(seg.grouper_params) - set(defaults)
    if unknown:
        raise ValueError(f"grouping parameters {sorted(unknown)} are not supported by the TorchScript export")
    return {**defaults, **seg.grouper_params}


def scripted_pipeline(seg: Segmenter) -> torch.jit.ScriptModule:
    """The whole ``spatial`` pipeline as one TorchScript module (see the module docstring)."""
    if seg.cfg.method != "spatial" or seg.grouper not in ("seeded", "seeded_classes"):
        raise ValueError(f"the torchscript pipeline covers the spatial method with the seeded grouper; this model "
                         f"is '{seg.cfg.method}' with '{seg.grouper}': export --format onnx (the network) instead")
    if head_names(seg) != ["offset", "sigma", "seed"]:
        raise ValueError(f"unexpected heads {head_names(seg)} for the spatial pipeline")
    if seg.grouper == "seeded_classes" and seg.cfg.model.n_classes > 1:
        raise ValueError("the torchscript pipeline returns class-agnostic labels; multi-class models: export onnx")
    low, high = seg.cfg.data.normalize
    pipe = SegmentPipeline(traced_network(seg), in_channels=seg.model.in_channels, multiple=seg.model.multiple,
                           low=low, high=high, params=grouping_params(seg))
    return torch.jit.script(pipe.eval())


def export_model(model: str | Path, out: str | Path, *, format: ExportFormat, cache_dir: str | Path | None = None,
                 overwrite: bool = False) -> Path:
    """Export ``model`` (run folder, checkpoint or model name) to ``out`` in ``format``; refuses to
    replace an existing ``out`` unless ``overwrite``."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format '{format}'; valid formats: {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists already; pass --overwrite to replace it")
    seg = load_model(model, device="cpu", cache_dir=cache_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "onnx":
        return export_onnx(seg, out)
    if format == "torchscript":
        scripted_pipeline(seg).save(str(out))
        return out
    from .bioimageio import export_bioimageio

    return export_bioimageio(seg, out, name=Path(str(model)).stem, card=model_card(model, cache_dir=cache_dir),
                             overwrite=overwrite)


def model_card(model: str | Path, *, cache_dir: str | Path | None = None) -> str:
    """The card of a named model, a run folder's ``card.md``, or one generated from the checkpoint."""
    path = Path(model)
    if not path.exists():
        return get_model(str(model), cache_dir=cache_dir).card
    if (path / "card.md").is_file():
        return (path / "card.md").read_text(encoding="utf-8")
    checkpoint = resolve_checkpoint(path)
    cfg, state = load_checkpoint(checkpoint)
    return generated_card(path.stem, checkpoint, cfg, state)
