"""Frozen run configuration, read from and written to YAML.

Every default lives here, once. The CLI builds a :class:`RunConfig` from an optional YAML file and
overrides only the flags the user set (``None`` flags are dropped).
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
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
        val_fraction: share held out for validation when no ``--val`` is given: of each image's
            longer side (a band at its end, ``val_split: regions``) or of the images (``images``).
        val_split: how validation is held out without ``--val``: ``regions`` (a band of every image
            large enough, with a margin so no object is in both parts; see
            :mod:`pixelgroup.data.regions`), ``images`` (whole images) or ``auto`` (regions below
            8 images, whole images from 8 on).
        augment: random flips and 90-degree rotations, and the zoom and intensity changes below.
        zoom: range of the random magnification of each training crop (log-uniform, as Cellpose's
            0.75-1.25 scale augmentation), so that objects a little larger or smaller than the
            training ones are still in distribution; ``[1, 1]`` = none.
        gain: range of the random intensity gain of each training crop (log-uniform; applied to the
            normalised image, as StarDist's example augmenter does), so that a test image
            normalised brighter or darker than the training images is still in distribution;
            ``[1, 1]`` = none.
        shift: largest random intensity offset of each training crop (uniform in ``[-shift,
            shift]``, normalised units); 0 = none.
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
    val_split: str = "auto"
    augment: bool = True
    zoom: tuple[float, float] = (0.75, 1.33)
    gain: tuple[float, float] = (0.6, 2.0)
    shift: float = 0.2


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
        ema: validate, select and save an exponential moving average of the weights (Polyak
            averaging, e.g. 0.999; the decay warms up as ``min(ema, (1 + n) / (10 + n))`` after
            ``n`` steps, so short runs average over their last tenth); 0 (default) = the raw weights.
        init: a run folder or checkpoint whose weights start this run: every module whose tensors
            all match by name and shape is copied (the backbone of a model trained on another task
            or dataset; heads of other sizes stay fresh). ``--resume`` takes precedence.
        precision: the network's forward while training: ``float32``, ``bfloat16`` (autocast; the
            losses compute in float32) or ``auto`` = ``bfloat16`` on CPUs with AMX units (Intel
            Sapphire Rapids and later: about 2x faster), ``float32`` elsewhere. Validation and
            prediction always run in float32.
    """

    steps: int = 2000
    minutes: float | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-4
    val_every: int = 200
    seed: int = 0
    num_workers: int = 0
    ema: float = 0.0
    init: str | None = None
    precision: str = "auto"


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


class ConfigError(ValueError):
    """A config value of the wrong type or out of range.

    The message names the setting where it came from: ``train.steps in run.yaml`` for a YAML key,
    ``--steps`` for a command-line flag (see :meth:`located`), and says what is expected with an example.
    """

    def __init__(self, key: str, value: Any, expected: str, example: Any, source: str | None = None) -> None:
        self.key, self.value, self.expected, self.example, self.source = key, value, expected, example, source
        got = f"{value!r} (text)" if isinstance(value, str) else repr(value)
        if source is not None and source.startswith("--"):
            where, fix = source, f"{source} {_yaml_inline(example)}"
        else:
            where = f"{key} in {source}" if source else f"config {key}"
            *section, leaf = key.split(".")
            fix = f"{leaf}: {_yaml_inline(example)}"
            fix = f"{section[0]}: {{{fix}}}" if section else fix
        super().__init__(f"{where}: got {got}; expected {expected}, e.g. {fix}")

    def located(self, source: str) -> ConfigError:
        """The same error, naming ``source`` (a YAML file, or a flag such as ``--steps``)."""
        return ConfigError(self.key, self.value, self.expected, self.example, source)


def _yaml_inline(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("\n...").strip()


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


# Type words and examples for the error messages; ranges beyond the type (checked after it). Limits that
# depend on the method (model.embedding_dim, model.n_sigma) are checked by the method itself.
_TYPE_WORDS = {int: "an integer", float: "a finite number", bool: "true or false", str: "text"}
_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "data.normalize": (lambda v: 0 <= v[0] < v[1] <= 100, "two percentiles 0 <= low < high <= 100"),
    "data.crop_size": (lambda v: v >= 1, ">= 1"),
    "data.batch_size": (lambda v: v >= 1, ">= 1"),
    "data.val_fraction": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "data.zoom": (lambda v: 0 < v[0] <= v[1], "two numbers 0 < low <= high"),
    "data.gain": (lambda v: 0 < v[0] <= v[1], "two numbers 0 < low <= high"),
    "data.shift": (lambda v: v >= 0, ">= 0"),
    "data.val_split": (lambda v: v in ("auto", "regions", "images"), "one of auto, regions, images"),
    "model.width": (lambda v: v >= 1, ">= 1"),
    "model.depth": (lambda v: v >= 1, ">= 1"),
    "model.n_classes": (lambda v: v >= 1, ">= 1"),
    "model.embedding_coords": (lambda v: v >= 0, ">= 0"),
    "train.steps": (lambda v: v >= 1, ">= 1"),
    "train.minutes": (lambda v: v > 0, "> 0 (or null for no time limit)"),
    "train.lr": (lambda v: v > 0, "> 0"),
    "train.weight_decay": (lambda v: v >= 0, ">= 0"),
    "train.val_every": (lambda v: v >= 1, ">= 1"),
    "train.seed": (lambda v: v >= 0, ">= 0"),
    "train.num_workers": (lambda v: v >= 0, ">= 0"),
    "train.ema": (lambda v: 0 <= v < 1, "in [0, 1) (0 = no averaging)"),
    "train.precision": (lambda v: v in ("auto", "float32", "bfloat16"), "one of auto, float32, bfloat16"),
}
_EXAMPLES = {"train.minutes": 30, "model.embedding_coords": 0.1, "data.split": "train", "model.context": "renet",
             "train.init": "runs/previous", "grouping.name": "seeded"}


def _type_ok(value: Any, hint: Any) -> tuple[bool, str]:
    """Whether ``value`` fits the annotation ``hint``, and the words for what ``hint`` expects."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        ok, words = _type_ok(value, inner[0])
        return value is None or ok, f"{words} or null"
    if origin is tuple:
        n = len(args)
        ok = isinstance(value, (list, tuple)) and len(value) == n and all(_is_number(v) for v in value)
        return ok, f"a list of {n} numbers"
    if origin is not None and issubclass(origin, Mapping):
        return isinstance(value, Mapping), "a mapping of keys to values"
    if hint is float:
        return _is_number(value), "a finite number"
    if hint is int:
        return _is_int(value), "an integer"
    if hint in (bool, str):
        return isinstance(value, hint), _TYPE_WORDS[hint]
    return True, ""


def _check_value(f: dataclasses.Field, hint: Any, value: Any, key: str) -> None:
    """Raise :class:`ConfigError` unless ``value`` fits the field ``f`` (type ``hint``) and its range."""
    example = _EXAMPLES.get(key, f.default if f.default is not dataclasses.MISSING else None)
    ok, words = _type_ok(value, hint)
    check, rule = _RANGES.get(key, (None, ""))
    if typing.get_origin(hint) is tuple and rule:  # "two percentiles 0 <= low < high", not "a list of 2 numbers"
        words, rule = rule, ""
    expected = f"{words.removesuffix(' or null')} {rule}".strip()
    if words.endswith(" or null") and "null" not in expected:
        expected += " (or null)"
    if not ok or (check is not None and value is not None and not check(value)):
        raise ConfigError(key, value, expected, example)


_RETIRED: dict[str, tuple[Any, str]] = {
    "data.scale": (1.0, "it never rescaled the images; to segment objects of another size, give their "
                        "diameter at prediction (--diameter, segment(image, diameter=...))"),
}
"""Settings that are gone: ``key: (value, why)``. Configs saved with the value (every run and model
file written before) still load, the key dropped; any other value is an error saying why."""


def _build(cls: type, values: Mapping[str, Any] | None, where: str) -> Any:
    values = dict(values or {})
    for name in [n for n in values if f"{where}.{n}" in _RETIRED]:
        value, why = _RETIRED[f"{where}.{name}"]
        if values.pop(name) != value:
            raise ValueError(f"config: '{where}.{name}' is no longer a setting ({why}); remove it")
    known = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"config: unknown key(s) {unknown} in '{where}'; valid keys: {sorted(known)}"
        )
    kwargs = {}
    for name, value in values.items():
        key = f"{where}.{name}" if where else name
        sub = _NESTED.get((cls, name))
        if sub is not None:
            if value is not None and not isinstance(value, Mapping):
                first = dataclasses.fields(sub)[0]
                raise ConfigError(key, value, f"a mapping of {key} settings", {first.name: first.default})
            kwargs[name] = _build(sub, value, key)
            continue
        _check_value(known[name], hints[name], value, key)
        if typing.get_origin(hints[name]) is tuple:
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
    """Build a :class:`RunConfig`; unknown keys raise a ``ValueError`` listing the valid ones, a value of
    the wrong type or out of range a :class:`ConfigError` naming the key, what is expected and an example."""
    return _build(RunConfig, values, "")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 numbers: ``1e-3`` is a float (PyYAML's YAML 1.1 rules read it as text)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_config(path: str | Path, *, base: RunConfig | None = None) -> RunConfig:
    """Read a YAML run config. Missing file or bad YAML raise with the file name.

    Keys the file leaves out take their value from ``base`` (default: the defaults). A top-level
    ``version`` key, as :func:`save_config` writes beside each checkpoint, is ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        values = yaml.load(path.read_text(), Loader=_Loader) or {}  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if not isinstance(values, Mapping):
        raise ValueError(f"{path}: a run config must be a YAML mapping, got {type(values).__name__}")
    values = {k: v for k, v in values.items() if k != "version"}
    if base is not None:
        values = _merge(base.to_dict(), values)
    try:
        return config_from_dict(values)
    except ConfigError as err:
        raise err.located(str(path)) from None
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None


def _merge(tree: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``tree`` with ``over`` applied key by key (nested sections merged, not replaced)."""
    out = dict(tree)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(out.get(k), dict) and isinstance(v, Mapping) and k in (
            "data", "model", "train", "grouping") else v
    return out


def save_config(cfg: RunConfig, path: str | Path, **extra: Any) -> None:
    """Write ``cfg`` (plus ``extra`` top-level keys such as the package version) atomically."""
    from .fileio import atomic_write_text

    doc = cfg.to_dict()
    doc.update(extra)
    atomic_write_text(Path(path), yaml.safe_dump(doc, sort_keys=False))
