"""Checkpoints: one self-contained ``.pt`` file (weights, config, method state), written atomically."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from ..config import RunConfig, config_from_dict
from ..fileio import atomic_torch_save

log = logging.getLogger(__name__)

BEST = "best.pt"
LAST = "last.pt"


def save_checkpoint(path: str | Path, *, cfg: RunConfig, model: torch.nn.Module, **extra: Any) -> Path:
    """Write ``{"config", "model", "version", **extra}`` to ``path`` atomically."""
    from .. import __version__

    state = {
        "version": __version__,
        "config": cfg.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        **extra,
    }
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


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[RunConfig, dict]:
    """Read a checkpoint (or a run folder's best one): ``(config, state dict of the file)``."""
    path = resolve_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"{path}: not a readable pixelgroup checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise ValueError(f"{path}: not a pixelgroup checkpoint (no config/model entries)")
    return config_from_dict(state["config"]), state


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
    _, state = load_checkpoint(path)
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
