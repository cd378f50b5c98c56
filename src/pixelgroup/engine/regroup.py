"""Grouping again without the network: ``NAME.outputs.zarr`` (from ``predict --save-outputs``) -> labels.

The store holds the raw head outputs as float32 (the grouping thresholds and sub-pixel offsets are
compared exactly, so float16 would change labels) plus the run config, the grouper and its
parameters, and the tiling of each frame. Regrouping with the saved parameters writes the same
labels and ``NAME.json`` as ``predict`` did (same files, same format); changed parameters (e.g.
``seed_threshold``) apply to the grouping only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import config_from_dict
from ..data.bigimage import PlaneView, import_zarr
from ..data.io import DataError
from ..types import Instances
from .predict_big import (
    LABEL_NAME,
    OutFormat,
    _create,
    _instances_doc,
    _Workspace,
    result_paths,
    write_results,
)
from .segmenter import Segmenter
from .tiling import Tiling, group_tiled, read_outputs

log = logging.getLogger(__name__)

SUFFIX = ".outputs.zarr"


def find_outputs(inputs: Sequence[str | Path]) -> list[Path]:
    """``*.outputs.zarr`` stores given directly or inside folders."""
    found: list[Path] = []
    for item in map(Path, inputs):
        if item.name.endswith(SUFFIX) and item.is_dir():
            found.append(item)
        elif item.is_dir():
            found.extend(sorted(p for p in item.iterdir() if p.name.endswith(SUFFIX) and p.is_dir()))
        else:
            raise DataError(f"{item}: not a {SUFFIX} store or a folder of them; write one with predict --save-outputs")
    if not found:
        raise DataError(f"no {SUFFIX} stores in {', '.join(map(str, inputs))}; write them with predict --save-outputs")
    return found


def _grouping_segmenter(meta: Mapping[str, Any], store: Path, params: Mapping[str, Any]) -> Segmenter:
    """A :class:`Segmenter` that only groups (no network): the saved config, grouper, parameters
    (updated with ``params``) and method state."""
    cfg = config_from_dict(meta["config"])
    state_path = store / "state.pt"
    state = torch.load(state_path, map_location="cpu", weights_only=False) if state_path.exists() else None
    seg = Segmenter(torch.nn.Identity(), cfg, state=state)  # the network is never called
    seg.grouper = meta["grouper"]
    seg.grouper_params = {**meta["grouper_params"], **params}
    return seg


def regroup_file(store: str | Path, out: str | Path, *, params: Mapping[str, Any] | None = None,
                 out_format: OutFormat | None = None, progress: bool = False) -> Path:
    """Group the saved outputs of one image again and write its labels (and ``NAME.json``) to ``out``."""
    zarr = import_zarr()

    store, out = Path(store), Path(out)
    root = zarr.open_group(str(store), mode="r")
    meta = dict(root.attrs).get("pixelgroup")
    if not meta:
        raise DataError(f"{store}: no pixelgroup metadata; was it written by predict --save-outputs?")
    seg = _grouping_segmenter(meta, store, params or {})
    name = store.name[: -len(SUFFIX)]
    fmt: OutFormat = out_format or meta["options"].get("out_format") or "tif"
    ws = _Workspace(out, name)
    try:
        arrays0 = {k: root[f"0/{k}"] for k in root["0"].array_keys()}
        h, w = next(iter(arrays0.values())).shape[1:]
        lead = (meta["frames"],) if meta["stack"] else ()
        group = ws.zarr_group(f"{name}.ome.zarr" if fmt == "ome-zarr" else "work.zarr")
        where = f"labels/{LABEL_NAME}" if fmt == "ome-zarr" else "labels"
        chunks = (1,) * len(lead) + (min(1024, h), min(1024, w))
        labels_all = _create(group, f"{where}/0", lead + (h, w), np.int32, chunks)
        docs = []
        for t in range(meta["frames"]):
            arrays = {k: root[f"{t}/{k}"] for k in root[str(t)].array_keys()}
            labels = PlaneView(labels_all, (t,) if lead else ())
            found = _group_frame(seg, arrays, (h, w), meta["tilings"][t], labels, progress=progress)
            docs.append(None if found is None else _instances_doc(found, labels))
        return write_results(ws, group, where, name, fmt, out, docs=docs, source=Path(meta["source"]),
                             method=seg.cfg.method, stack=bool(lead))
    finally:
        ws.close()


def _group_frame(seg: Segmenter, arrays, shape: tuple[int, int], tiling: Mapping[str, int] | None, labels, *,
                 progress: bool):
    if tiling is None:
        result = seg.group(read_outputs(arrays, (0, shape[0], 0, shape[1])))
        if not isinstance(result, Instances):
            labels[0:shape[0], 0:shape[1]] = result
            return None
        labels[0:shape[0], 0:shape[1]] = result.labels
        return result.scores, result.classes
    res = group_tiled(lambda box: read_outputs(arrays, box), seg.group, shape, Tiling(**tiling), labels,
                      task=seg.task, progress=progress)
    return None if seg.task == "semantic" else (res.scores, res.classes)


def regroup_paths(inputs: Sequence[str | Path], out: str | Path, *, params: Mapping[str, Any] | None = None,
                  out_format: OutFormat | None = None, overwrite: bool = True, progress: bool = True) -> list[Path]:
    """:func:`regroup_file` for every ``*.outputs.zarr`` in ``inputs``; returns the label paths."""
    from tqdm.auto import tqdm

    written = []
    for store in tqdm(find_outputs(inputs), desc="regroup", disable=not progress):
        name = store.name[: -len(SUFFIX)]
        done = result_paths(Path(out), name, "instance", out_format)
        if not overwrite and all(p.exists() for p in done):
            log.info("%s: already done, skipped (--overwrite to redo)", name)
            continue
        written.append(regroup_file(store, out, params=params, out_format=out_format, progress=False))
    return written
