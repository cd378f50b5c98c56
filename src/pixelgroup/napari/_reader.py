"""napari reader for ``pixelgroup predict`` results: ``NAME.tif`` (int32 labels) beside ``NAME.json``
(per instance: id, score, class, area). Any other ``.tif`` is left to other readers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def _pair(path: str | Path) -> tuple[Path, Path] | None:
    """``(labels, sidecar)`` when ``path`` is one of a predict result pair, else ``None``."""
    p = Path(path)
    if p.suffix.lower() not in (".tif", ".tiff", ".json"):
        return None
    labels = p if p.suffix.lower() != ".json" else next(
        (p.with_suffix(s) for s in (".tif", ".tiff") if p.with_suffix(s).is_file()), p.with_suffix(".tif"))
    sidecar = p.with_suffix(".json")
    if not (labels.is_file() and sidecar.is_file()):
        return None
    try:
        doc = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (labels, sidecar) if isinstance(doc, dict) and "instances" in doc else None


def get_reader(path: str | list[str]):
    """The reader function for a predict result, or ``None`` (napari then asks other readers)."""
    if isinstance(path, list):
        return None
    return read_prediction if _pair(path) is not None else None


def read_prediction(path: str | Path) -> list[tuple[Any, dict, str]]:
    """One labels layer: the label image, named ``NAME``, the sidecar in ``metadata["pixelgroup"]``
    and the instances' score/class/area as layer features."""
    import tifffile

    pair = _pair(path)
    if pair is None:
        raise ValueError(f"{path}: not a pixelgroup prediction (NAME.tif with NAME.json beside it)")
    labels_path, sidecar = pair
    doc = json.loads(sidecar.read_text(encoding="utf-8"))
    labels = tifffile.imread(labels_path)
    rows = doc.get("instances", [])
    features = {key: [0] + [row.get(key) for row in rows] for key in ("score", "class", "area")} if rows else {}
    if features:
        features["index"] = [0] + [row.get("id") for row in rows]
    meta = {"name": labels_path.stem, "metadata": {"pixelgroup": doc}, **({"features": features} if features else {})}
    return [(labels, meta, "labels")]
