"""Frozen run configuration, read from and written to YAML.

Every default lives here, once. The CLI builds a :class:`RunConfig` from an optional YAML file and
overrides only the flags the user set (``None`` flags are dropped).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass(frozen=True)
class DataConfig:
    """How images are read and augmented.

    Attributes:
        format: dataset reader name (``folder`` = ``DIR/images`` + ``DIR/masks``, ``voc``, ``coco``,
            ``cityscapes``, ``cvppp``, ``semantic_folder``) or ``auto`` (detected from the layout).
        split: image-set of the standard formats (VOC ``train``/``val``, Cityscapes ``train``, ...).
        skip_bad: skip (and count) malformed samples instead of stopping.
        binary_masks: how a 0/1 (or 0/255) instance mask with several separate objects is meant:
            ``check`` (an error: ``pixelgroup check --fix`` labels the objects), ``objects`` (each
            mask is one object, as intended) or ``components`` (each connected component is an
            instance, labelled when reading; ``folder`` format).
        segments: over-segmentation for unsupervised SegSort (``semantic_folder`` only): ``auto``
            (``DIR/segments`` when present), ``files`` (required), or a method computing them
            (``felzenszwalb``, ``slic``, ``watershed``).
        normalize: per-image percentiles mapped to 0 and 1.
        crop_size: square training crop side, pixels (images smaller than this are padded).
        batch_size: training crops per step.
        val_fraction: share of the training images held out when no ``--val`` is given.
        augment: random flips and 90-degree rotations.
        scale: pixel-size rescaling applied to every image before the network (1 = none).
    """

    format: str = "auto"
    split: str | None = None
    skip_bad: bool = False
    binary_masks: str = "check"
    segments: str = "auto"
    normalize: tuple[float, float] = (1.0, 99.8)
    crop_size: int = 128
    batch_size: int = 8
    val_fraction: float = 0.15
    augment: bool = True
    scale: float = 1.0


@dataclass(frozen=True)
class ModelConfig:
    """The network.

    Attributes:
        backbone: registered backbone name.
        width: channels of the first level (doubled per level).
        depth: number of down-sampling levels.
        context: optional context module over the bottleneck (``renet``) or ``None``.
        embedding_dim: size of the free embedding (embedding methods).
        n_sigma: 1 = circular, 2 = elliptical bandwidth (``spatial``).
        n_classes: object classes (1 = class-agnostic instances).
        embedding_coords: add the pixel coordinates times this factor (units per pixel) to the
            first two embedding channels, a semi-convolutional embedding (Novotny et al., ECCV
            2018): objects that look alike are then told apart by where they are. ``None`` = the
            method's default (0.1 for ``discriminative``, 0 = off for the others).
    """

    backbone: str = "unet"
    width: int = 16
    depth: int = 3
    context: str | None = None
    embedding_dim: int = 8
    n_sigma: int = 2
    n_classes: int = 1
    embedding_coords: float | None = None


@dataclass(frozen=True)
class TrainConfig:
    """The optimisation.

    Attributes:
        steps: optimiser steps (the schedule is laid over these).
        minutes: wall-clock budget; training stops (and the schedule is compressed) when reached.
        lr: peak learning rate (AdamW, one-cycle/cosine schedule).
        weight_decay: AdamW weight decay.
        val_every: steps between validations (best checkpoint = best validation AP).
        seed: random seed for sampling, augmentation and initialisation.
        num_workers: data-loader worker processes.
        init: a run folder or checkpoint whose weights start this run: every module whose tensors
            all match by name and shape is copied (the backbone of a model trained on another task
            or dataset; heads of other sizes stay fresh). ``--resume`` takes precedence.
    """

    steps: int = 2000
    minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_every: int = 200
    seed: int = 0
    num_workers: int = 0
    init: str | None = None


@dataclass(frozen=True)
class GroupingConfig:
    """Which grouper turns the outputs into instances, and its keyword arguments.

    ``name=None`` means the method's default grouper.
    """

    name: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a run: saved as ``config.yaml`` beside every checkpoint."""

    method: str = "spatial"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: Mapping[str, Any] = field(default_factory=dict)
    grouping: GroupingConfig = field(default_factory=GroupingConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(dataclasses.asdict(self))

    def replace(self, **overrides: Any) -> RunConfig:
        """A copy with dotted overrides applied, e.g. ``replace(**{"train.steps": 100})``.

        ``None`` values are dropped so that unset CLI flags never shadow a default.
        """
        tree = self.to_dict()
        for key, value in overrides.items():
            if value is None:
                continue
            node = tree
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        return config_from_dict(tree)


def _plain(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _build(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    values = dict(values or {})
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"config: unknown key(s) {unknown} in '{where}'; valid keys: {sorted(known)}"
        )
    kwargs = {}
    for name, value in values.items():
        sub = _NESTED.get((cls, name))
        if sub is not None:
            kwargs[name] = _build(sub, value, f"{where}.{name}" if where else name)
        elif name == "normalize":
            kwargs[name] = tuple(float(v) for v in value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


_NESTED = {
    (RunConfig, "data"): DataConfig,
    (RunConfig, "model"): ModelConfig,
    (RunConfig, "train"): TrainConfig,
    (RunConfig, "grouping"): GroupingConfig,
}


def config_from_dict(values: Mapping[str, Any] | None) -> RunConfig:
    """Build a :class:`RunConfig`; unknown keys raise a ``ValueError`` listing the valid ones."""
    return _build(RunConfig, values, "")


def load_config(path: str | Path) -> RunConfig:
    """Read a YAML run config. Missing file or bad YAML raise with the file name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: a run config must be a YAML mapping, got {type(values).__name__}")
    try:
        return config_from_dict(values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


def save_config(cfg: RunConfig, path: str | Path, **extra: Any) -> None:
    """Write ``cfg`` (plus ``extra`` top-level keys such as the package version) atomically."""
    from .fileio import atomic_write_text

    doc = cfg.to_dict()
    doc.update(extra)
    atomic_write_text(Path(path), yaml.safe_dump(doc, sort_keys=False))
