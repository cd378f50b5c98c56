"""Checkpoints: one self-contained ``.pt`` file (weights, config, method state), written atomically."""

from __future__ import annotations

import logging
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, config_from_dict
from ..fileio import atomic_torch_save

log = logging.getLogger(__name__)

BEST = "best.pt"
LAST = "last.pt"

# What a checkpoint may hold: exactly what torch.load(weights_only=True) rebuilds without running code.
_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


class UnsafeCheckpointError(ValueError):
    """A model file holds Python objects or code (pickle globals) and was refused unread."""


def _check_plain(obj: Any, where: str) -> None:
    """Raise ``TypeError`` unless ``obj`` is built only of dicts, lists, tuples, tensors and scalars."""
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"checkpoint entry {where}: key {k!r} is a {type(k).__name__}, not str or int")
            _check_plain(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
    else:
        raise TypeError(f"checkpoint entry {where} is a {type(obj).__name__}; a checkpoint holds only dicts, "
                        "lists, tensors, str, int, float, bool and None (convert it, e.g. numpy -> torch/float)")


def save_checkpoint(path: str | Path, *, cfg: RunConfig, model: torch.nn.Module, **extra: Any) -> Path:
    """Write ``{"config", "model", "version", **extra}`` to ``path`` atomically.

    Everything saved must be plain data (dicts, lists, tensors, str, int, float, bool, None), so that
    :func:`load_checkpoint` reads it back without unpickling any Python object.
    """
    from .. import __version__

    state = {
        "version": __version__,
        "config": cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
    _check_plain(state, "state")
    return atomic_torch_save(state, path)


def update_checkpoint(path: str | Path, **extra: Any) -> Path:
    """Add (or replace) plain-data entries of the checkpoint ``path``, atomically."""
    state = read_checkpoint(path)
    state.update(extra)
    _check_plain(state, "state")
    return atomic_torch_save(state, path)


def resolve_checkpoint(path: str | Path) -> Path:
    """A run folder resolves to its ``best.pt`` (else ``last.pt``); a file is returned as is."""
    path = Path(path)
    if path.is_dir():
        for name in (BEST, LAST):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"{path}: no {BEST} or {LAST} in this run folder; train first with 'pixelgroup train --out {path}'"
        )
    if not path.is_file():
        raise FileNotFoundError(f"model not found: {path}; give a run folder or a .pt checkpoint")
    return path


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict:
    """The raw state dict of the checkpoint file ``path``, read without running any code.

    The file is read with ``torch.load(weights_only=True)``: only tensors, dicts, lists, tuples, str,
    int, float, bool and None are rebuilt. A file that asks the unpickler for any other Python object
    (a function such as ``os.system``, a class) is refused with :class:`UnsafeCheckpointError` before
    anything in it runs; a damaged file raises ``ValueError``. Both messages name the file.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols; the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # The restricted unpickler refuses what it would have to import or call; a torch zip file it
        # refuses, or a plain pickle that asks for objects, is hostile (or foreign), not damaged.
        if "GLOBAL" not in str(err) and not zipfile.is_zipfile(path) and not _asks_for_objects(path):
            raise ValueError(f"{path}: not a readable pixelgroup checkpoint (damaged or truncated file: "
                             f"{_first_line(err)}); use another copy or retrain") from None
        found = re.search(r"(?:GLOBAL|Unsupported class) (\S+)", str(err))
        what = f" (it asks for {found.group(1)})" if found else ""
        raise UnsafeCheckpointError(
            f"{path}: refused for safety: the file contains code or Python objects{what} that a pixelgroup model "
            "file must not have; it was not loaded. Use a checkpoint written by pixelgroup train from a source "
            "you trust") from None
    except Exception as err:  # noqa: BLE001 - a torn zip, an empty file, a read error: a bad file
        raise ValueError(f"{path}: not a readable pixelgroup checkpoint (damaged or truncated file: "
                         f"{type(err).__name__}: {_first_line(err)}); use another copy or retrain") from None
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise ValueError(f"{path}: not a pixelgroup checkpoint (no config/model entries)")
    return state


def _asks_for_objects(path: Path) -> bool:
    """Whether the plain pickle ``path`` imports or calls anything (scanned, never executed)."""
    import pickletools

    try:
        with open(path, "rb") as fh:
            return any(op.name in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX")
                       for op, _, _ in pickletools.genops(fh))
    except Exception:  # noqa: BLE001 - not a pickle stream at all: damaged, not hostile
        return False


def _first_line(err: BaseException) -> str:
    lines = [line for line in str(err).splitlines() if line.strip()]
    return lines[0][:200] if lines else type(err).__name__


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[RunConfig, dict]:
    """Read a checkpoint (or a run folder's best one) safely: ``(config, state dict of the file)``.

    See :func:`read_checkpoint` for what is refused. A saved config that no longer passes the
    config checks raises ``ValueError`` naming the file.
    """
    path = resolve_checkpoint(path)
    state = read_checkpoint(path, map_location=map_location)
    try:
        cfg = config_from_dict(state["config"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: the config saved in this checkpoint is invalid: {err}") from None
    return cfg, state


def load_weights(model: torch.nn.Module, weights: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """``model.load_state_dict(weights)`` with one line naming the first mismatches instead of a dump."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    extra = [k for k in weights if k not in own]
    shapes = [f"{k} {list(weights[k].shape)} in the file vs {list(v.shape)} in the model"
              for k, v in own.items() if k in weights and tuple(weights[k].shape) != tuple(v.shape)]
    problems = shapes + [f"{k} missing from the file" for k in missing] + [f"{k} not in the model" for k in extra]
    if problems:
        more = f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""
        raise ValueError(
            f"{path}: the weights do not match the model built from its config: {'; '.join(problems[:2])}{more}; "
            "the config was changed after training (method, model.*, n_classes) or the file belongs to "
            "another run: restore the config the model was trained with, or retrain")
    model.load_state_dict(weights)


def init_weights(model: torch.nn.Module, path: str | Path) -> tuple[int, int]:
    """Copy into ``model`` every module of the checkpoint ``path`` whose tensors all match.

    Transfer learning: the backbone of a model trained on another task or dataset starts a new
    run, while heads of a different size (another method, embedding size or class count) and an
    input layer for other channels keep their fresh initialisation. A module (a convolution, a
    normalisation layer, ...) is copied whole or not at all: only when the checkpoint has every one
    of its tensors under the same name and with the same shape.

    Returns:
        ``(tensors copied, tensors in model)``.
    """
    path = resolve_checkpoint(path)
    state = read_checkpoint(path)
    own, theirs = model.state_dict(), state["model"]

    def module(key: str) -> str:
        return key.rsplit(".", 1)[0]

    bad = {module(k) for k, v in own.items() if k not in theirs or theirs[k].shape != v.shape}
    match = {k: theirs[k] for k in own if module(k) not in bad}
    if not any(v.is_floating_point() for v in match.values()):
        raise ValueError(
            f"{path}: no weight matches this model by name and shape; initialise "
            "from a run with the same backbone (model.backbone, width, depth)"
        )
    model.load_state_dict(match, strict=False)
    log.info("initialised %d of %d tensors from %s", len(match), len(own), path)
    return len(match), len(own)
