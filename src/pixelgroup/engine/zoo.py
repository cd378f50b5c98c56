"""Models by name: bundled models (package data) and a user cache of the user's own runs.

A model is a folder ``NAME/`` holding ``model.pt`` (a pixelgroup checkpoint) and ``card.md`` (its
model card, whose first line of text is the one-line description). Bundled models live in the
package (``pixelgroup/zoo/NAME/``); user models in ``cache_dir/NAME/`` (default
``platformdirs.user_data_dir("pixelgroup")/models``; the CLI's ``PIXELGROUP_HOME`` replaces
``user_data_dir``). A name resolves in this order: a path that exists, a user model, a bundled model.
"""

from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..fileio import atomic_write_text
from .checkpoint import load_checkpoint, resolve_checkpoint

log = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "zoo"
"""Folder of the bundled models (package data)."""

MODEL_FILE, CARD_FILE = "model.pt", "card.md"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class ZooModel:
    """One named model.

    Attributes:
        name: the name given to ``load_model`` / ``--model``.
        source: ``"user"`` (the cache folder) or ``"bundled"`` (shipped with the package).
        folder: the model's folder (``model.pt``, ``card.md``).
    """

    name: str
    source: Literal["user", "bundled"]
    folder: Path

    @property
    def checkpoint(self) -> Path:
        return self.folder / MODEL_FILE

    @property
    def card(self) -> str:
        """The model card (Markdown); a placeholder when the folder has none."""
        path = self.folder / CARD_FILE
        return path.read_text(encoding="utf-8") if path.is_file() else f"# {self.name}\n\n(no model card)\n"

    @property
    def description(self) -> str:
        """The card's first line of text (not a heading)."""
        for line in self.card.splitlines():
            if line.strip() and not line.lstrip().startswith(("#", "<!--")):
                return line.strip()
        return ""


def default_cache_dir(data_dir: str | Path | None = None) -> Path:
    """The user model folder: ``data_dir/models``, ``data_dir`` defaulting to
    ``platformdirs.user_data_dir("pixelgroup")``."""
    if data_dir is None:
        from platformdirs import user_data_dir

        data_dir = user_data_dir("pixelgroup")
    return Path(data_dir) / "models"


def _models_in(folder: Path, source: Literal["user", "bundled"]) -> dict[str, ZooModel]:
    if not folder.is_dir():
        return {}
    return {p.name: ZooModel(p.name, source, p) for p in sorted(folder.iterdir())
            if p.is_dir() and (p / MODEL_FILE).is_file()}


def list_models(*, cache_dir: str | Path | None = None) -> list[ZooModel]:
    """Every named model, sorted by name; a user model hides a bundled one of the same name."""
    found = _models_in(BUNDLED_DIR, "bundled")
    found.update(_models_in(Path(cache_dir) if cache_dir else default_cache_dir(), "user"))
    return [found[k] for k in sorted(found)]


def get_model(name: str, *, cache_dir: str | Path | None = None) -> ZooModel:
    """The named model; an unknown name raises a ``KeyError`` listing the valid ones."""
    models = {m.name: m for m in list_models(cache_dir=cache_dir)}
    if name not in models:
        raise KeyError(f"unknown model '{name}': not a file or folder, nor a model name; "
                       f"valid names: {', '.join(sorted(models)) or '(none)'} (see 'pixelgroup models')")
    return models[name]


def resolve_model(model: str | Path, *, cache_dir: str | Path | None = None) -> Path:
    """A checkpoint file for ``model``: a path that exists (a run folder or ``.pt`` file) wins, then a
    user model of that name, then a bundled one. An unknown name raises ``KeyError`` listing the names."""
    path = Path(model)
    if path.exists():
        return resolve_checkpoint(path)
    if isinstance(model, Path) and len(path.parts) > 1 or not _NAME.match(str(model)):
        return resolve_checkpoint(path)  # clearly a path: "model not found: PATH"
    return get_model(str(model), cache_dir=cache_dir).checkpoint


def add_model(name: str, run: str | Path, *, cache_dir: str | Path | None = None, overwrite: bool = False,
              card: str | None = None) -> ZooModel:
    """Copy a run's best checkpoint (or a ``.pt`` file) into the user cache as ``name``.

    The card is ``card`` if given, else the run folder's ``card.md``, else one generated from the
    checkpoint's config. Refuses to replace an existing user model unless ``overwrite``.
    """
    if not _NAME.match(name):
        raise ValueError(f"model name '{name}': use lower-case letters, digits, '.', '_' or '-' (at most 64), "
                         "starting with a letter or digit")
    source = resolve_checkpoint(run)
    cfg, state = load_checkpoint(source)  # refuse anything that is not a readable checkpoint
    folder = (Path(cache_dir) if cache_dir else default_cache_dir()) / name
    if (folder / MODEL_FILE).exists() and not overwrite:
        raise FileExistsError(f"user model '{name}' exists already in {folder}; pass --overwrite to replace it")
    if card is None:
        own = Path(run) / CARD_FILE
        card = own.read_text(encoding="utf-8") if own.is_file() else generated_card(name, source, cfg, state)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (MODEL_FILE + ".tmp")
    shutil.copyfile(source, tmp)
    tmp.replace(folder / MODEL_FILE)
    atomic_write_text(folder / CARD_FILE, card)
    log.info("added model '%s' (%s) to %s", name, source, folder)
    return ZooModel(name, "user", folder)


def generated_card(name: str, source: Path, cfg, state: dict) -> str:
    """A model card from a checkpoint's config and records (for a run that has none)."""
    diameter = state.get("object_diameter")
    size = f"{float(diameter):.1f} px" if diameter else "not recorded"
    spread = state.get("object_diameter_range")
    if diameter and spread:
        size += f" (10-90%: {float(spread[0]):.1f}-{float(spread[1]):.1f} px)"
    return (f"# {name}\n\nUser model ({cfg.method}), copied from {source}.\n\n"
            f"- method: {cfg.method}; backbone {cfg.model.backbone}, width {cfg.model.width}, depth {cfg.model.depth}\n"
            f"- input channels: {state.get('in_channels', 1)}\n"
            f"- training data: {state.get('data_root') or 'not recorded'}; steps: {state.get('step', '?')}\n"
            f"- median object diameter of the training data: {size}\n")
