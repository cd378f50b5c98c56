"""Prediction of big images, stacks and saved outputs: read lazily, write tile by tile, atomically.

One file (TIFF, OME-TIFF, OME-Zarr; a 2D image or a ``(T, Y, X[, C])`` stack with ``frames``)
becomes, in the output folder:

* ``NAME.tif``: a tiled, zlib-compressed BigTIFF label image (``(H, W)``, or ``(T, H, W)`` for a
  stack; uint16 when the ids fit, else int32), or ``NAME.ome.zarr`` with ``--out-format ome-zarr``:
  an OME-Zarr (NGFF 0.4, zarr v2) store whose label image is ``labels/pixelgroup/0``. It is a
  separate store, never written into the input container (see :func:`write_ome_zarr_labels`);
* ``NAME.json``: the instances (id, score, class, area), per frame for a stack; written last, so
  its presence means the file is finished (semantic methods: the label file alone);
* ``NAME.outputs.zarr`` with ``save_outputs``: the raw head outputs, float32 (``<frame>/<head>``,
  ``(C, H, W)``), and what :func:`pixelgroup.engine.regroup.regroup_paths` needs to group them again.

Everything is first written under a hidden temporary folder in the output folder and renamed into
place at the end; an interruption (Ctrl-C) leaves no partial result.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tifffile

from ..data.bigimage import (
    LazyImage,
    PlaneView,
    import_zarr,
    is_zarr,
    ngff_labels_attrs,
    open_frames,
    sample_percentiles,
)
from ..data.io import TIFF_SUFFIXES, DataError
from ..fileio import atomic_torch_save, atomic_write_text
from ..types import Instances
from .diameter import equivalent_diameters
from .segmenter import Segmenter, _channels_last
from .tiling import AUTO_TILE_PIXELS, DEFAULT_TILE, TiledResult, Tiling

log = logging.getLogger(__name__)

OutFormat = Literal["tif", "ome-zarr"]
LABEL_NAME = "pixelgroup"
"""Name of the label image inside an OME-Zarr output (``labels/pixelgroup``)."""
_CHUNK = 256


@dataclass(frozen=True)
class BigOptions:
    """How a file is predicted.

    Attributes:
        tile: block side (``None``: automatic above 2048 x 2048, ``0``: one pass).
        halo: grouping context per side, pixels (``None``: the default, 96).
        tta: average over the 8 flips/rotations.
        frames: segment every plane of a stack (otherwise a stack is refused).
        out_format: ``"tif"`` (default) or ``"ome-zarr"``.
        save_outputs: also write the raw head outputs for ``pixelgroup regroup``.
    """

    tile: int | None = None
    halo: int | None = None
    tta: bool = False
    frames: bool = False
    out_format: OutFormat | None = None
    save_outputs: bool = False

    def segment_kwargs(self) -> dict[str, Any]:
        return {"tile": self.tile, "halo": self.halo, "tta": self.tta}


def stem(path: Path) -> str:
    """File name without ``.tif``/``.ome.tif``/``.zarr``/``.ome.zarr`` (or any image suffix)."""
    name = path.name
    for suffix in (".ome.zarr", ".zarr", ".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def needs_lazy(path: Path, opts: BigOptions) -> bool:
    """Whether ``path`` goes through :func:`predict_file` (big, zarr, stack, or an option only it has)."""
    if is_zarr(path) or opts.frames or opts.save_outputs or opts.out_format == "ome-zarr":
        return True
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return False
    try:
        frames = open_frames(path)
    except Exception:  # unreadable: let the ordinary reader report it
        return False
    h, w = frames[0].shape
    return len(frames) > 1 or h * w > AUTO_TILE_PIXELS  # a stack: refused with a hint, or --frames


def result_paths(out: Path, name: str, task: str, out_format: OutFormat | None) -> list[Path]:
    """The files that exist once ``name`` is finished (its label file, and ``NAME.json`` for instances)."""
    label = out / (f"{name}.ome.zarr" if out_format == "ome-zarr" else f"{name}.tif")
    return [label] + ([out / f"{name}.json"] if task == "instance" else [])


def is_finished(out: Path, path: Path, task: str, opts: BigOptions, *, lazy: bool) -> bool:
    """Whether the results of ``path`` are all in ``out`` (a re-run skips it unless ``--overwrite``).

    The JSON sidecar is written last and every file atomically, so existing files are complete."""
    if lazy:
        done = result_paths(out, stem(path), task, opts.out_format)
    else:  # the in-memory path of predict_paths
        done = [out / f"{path.stem}.png"] if task == "semantic" else result_paths(out, path.stem, task, None)
    if opts.save_outputs:
        done.append(out / f"{stem(path)}.outputs.zarr")
    return all(p.exists() for p in done)


def frame_percentiles(seg: Segmenter, frame: LazyImage) -> tuple[np.ndarray, np.ndarray]:
    """The frame's (sampled) normalisation percentiles per model channel, ``(p_low (C,), p_high (C,))``."""
    channels = seg.model.in_channels
    low, high = seg.cfg.data.normalize
    return sample_percentiles(frame, low, high, to_channels=lambda a: _channels_last(a, channels))


def normalised_reader(frame: LazyImage, channels: int, p_low: np.ndarray,
                      p_high: np.ndarray) -> Callable[[tuple[int, int, int, int]], np.ndarray]:
    """``box -> (h, w, C)`` float32 window of ``frame`` normalised with the given percentiles."""
    scale = (1.0 / (p_high - p_low + 1e-20)).astype(np.float32)
    return lambda box: (_channels_last(frame.window(box), channels).astype(np.float32) - p_low) * scale


class _Workspace:
    """The temporary folder of one prediction; renames its results into place on :meth:`commit`."""

    def __init__(self, out: Path, name: str) -> None:
        out.mkdir(parents=True, exist_ok=True)
        self.out = out
        self.dir = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".pixelgroup-tmp", dir=out))

    def zarr_group(self, relpath: str):
        zarr = import_zarr()

        return zarr.open_group(str(self.dir / relpath), mode="a", zarr_format=2)

    def commit(self, relpath: str, target: Path) -> Path:
        """Move ``self.dir / relpath`` (file or folder) to ``target``, replacing it."""
        src = self.dir / relpath
        if target.is_dir() and not target.is_symlink():
            trash = self.dir / f"old-{target.name}"
            os.replace(target, trash)
        os.replace(src, target)
        return target

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _create(group, name: str, shape: tuple[int, ...], dtype, chunks: tuple[int, ...]):
    return group.create_array(name, shape=shape, chunks=chunks, dtype=dtype, fill_value=0, overwrite=True)


def predict_file(seg: Segmenter, path: str | Path, out: str | Path, opts: BigOptions = BigOptions(), *,
                 progress: bool = False, tiler: Tiler | None = None, sizes: list[float] | None = None) -> Path:
    """Segment one (big) image file or store, reading and writing tile by tile. Returns the label path.

    ``tiler`` runs the tiled prediction of a plane (default: :meth:`Segmenter.segment_tiled` in this
    process; :mod:`pixelgroup.engine.cluster` passes one that runs the tiles as Dask tasks).
    ``sizes``: the median diameter of the instances found (all planes) is appended to it, from the
    areas counted for ``NAME.json``."""
    path, out = Path(path), Path(out)
    frames = open_frames(path)
    if len(frames) > 1 and not opts.frames:
        raise DataError(f"{path}: a stack of {len(frames)} planes of {frames[0].shape}; pass --frames to "
                        "segment every plane (one label stack), or save one plane")
    name = stem(path)
    fmt: OutFormat = opts.out_format or "tif"
    ws = _Workspace(out, name)
    try:
        lead = (len(frames),) if opts.frames else ()
        h, w = frames[0].shape
        if any(f.shape != (h, w) for f in frames):
            raise DataError(f"{path}: the planes differ in size; save them as separate files")
        labels_group = ws.zarr_group(f"{name}.ome.zarr" if fmt == "ome-zarr" else "work.zarr")
        where = f"labels/{LABEL_NAME}" if fmt == "ome-zarr" else "labels"
        tile_side = opts.tile or DEFAULT_TILE
        labels_all = _create(labels_group, f"{where}/0", lead + (h, w), np.int32,
                             (1,) * len(lead) + (min(tile_side, h), min(tile_side, w)))
        outputs = ws.zarr_group(f"{name}.outputs.zarr") if opts.save_outputs else ws.zarr_group("outputs.zarr")
        docs, tilings = [], []
        for t, frame in enumerate(frames):
            labels = PlaneView(labels_all, (t,) if lead else ())
            found, tiling = _predict_frame(seg, FrameRef(path, t, frame), labels, outputs.require_group(str(t)), opts,
                                           progress=progress, tiler=tiler)
            tilings.append(None if tiling is None else tiling.to_dict())
            docs.append(None if found is None else _instances_doc(found, labels))
        if sizes is not None:
            areas = np.array([d["area"] for doc in docs if doc for d in doc if d["area"] > 0])
            if areas.size:
                sizes.append(float(np.median(equivalent_diameters(areas))))
        if opts.save_outputs:
            _save_meta(ws.dir / f"{name}.outputs.zarr", outputs, seg, path, opts, tilings, lead)
            ws.commit(f"{name}.outputs.zarr", out / f"{name}.outputs.zarr")
        target = write_results(ws, labels_group, where, name, fmt, out, docs=docs, source=path, method=seg.cfg.method,
                               stack=bool(lead))
    finally:
        ws.close()
    return target


@dataclass(frozen=True)
class FrameRef:
    """Plane ``index`` of the image file or store ``path`` (``frame``: it, opened here)."""

    path: Path
    index: int
    frame: LazyImage | None = field(default=None, compare=False)


Tiler = Callable[..., TiledResult]
"""``tiler(seg, ref: FrameRef, percentiles, shape, tiling, labels, outputs, opts, progress) -> TiledResult``:
writes the plane's labels (and its raw outputs into the zarr group ``outputs``) tile by tile."""


def local_tiler(seg: Segmenter, ref: FrameRef, percentiles, shape, tiling: Tiling, labels, outputs,
                opts: BigOptions, progress: bool) -> TiledResult:
    """The tiled prediction of one plane in this process."""
    read = normalised_reader(ref.frame, seg.model.in_channels, *percentiles)
    chunks = (min(tiling.tile, shape[0]), min(tiling.tile, shape[1]))
    result, _ = seg.segment_tiled(read, shape, tiling, labels, tta=opts.tta, progress=progress,
                                  new_array=lambda head, s: _create(outputs, head, s, np.float32, (s[0], *chunks)))
    return result


def _predict_frame(seg: Segmenter, ref: FrameRef, labels: PlaneView, outputs, opts: BigOptions, *,
                   progress: bool, tiler: Tiler | None = None
                   ) -> tuple[tuple[np.ndarray, np.ndarray] | None, Tiling | None]:
    """Segment one plane into ``labels``; raw outputs into the zarr group ``outputs``."""
    frame = ref.frame
    percentiles = frame_percentiles(seg, frame)
    shape = frame.shape
    tiling = seg.tiling_for(shape, tile=opts.tile, halo=opts.halo)
    if tiling is None:
        read = normalised_reader(frame, seg.model.in_channels, *percentiles)
        out = seg.outputs(read((0, shape[0], 0, shape[1])), normalized=True, tta=opts.tta)
        if opts.save_outputs:
            for head, tensor in out.items():
                arr = tensor.float().cpu().numpy()
                _create(outputs, head, arr.shape, np.float32, (arr.shape[0], _CHUNK, _CHUNK))[:] = arr
        result = seg.group(out)
        if not isinstance(result, Instances):
            labels[0:shape[0], 0:shape[1]] = result
            return None, None
        labels[0:shape[0], 0:shape[1]] = result.labels
        return (result.scores, result.classes), None
    result = (tiler or local_tiler)(seg, ref, percentiles, shape, tiling, labels, outputs, opts, progress)
    if seg.task == "semantic":
        return None, tiling
    return (result.scores, result.classes), tiling


def _instances_doc(found: tuple[np.ndarray, np.ndarray], labels: PlaneView) -> list[dict]:
    """Per-instance id, score, class and area (areas counted tile by tile)."""
    scores, classes = found
    h, w = labels.shape
    n = len(scores)
    area = np.zeros(n + 1, np.int64)
    for y in range(0, h, DEFAULT_TILE):
        for x in range(0, w, DEFAULT_TILE):
            block = np.asarray(labels[y:y + DEFAULT_TILE, x:x + DEFAULT_TILE]).ravel()
            area += np.bincount(block, minlength=n + 1)[: n + 1]
    return [{"id": i + 1, "score": float(s), "class": int(c), "area": int(a)}
            for i, (s, c, a) in enumerate(zip(scores, classes, area[1:]))]


def _save_meta(store: Path, outputs, seg: Segmenter, path: Path, opts: BigOptions, tilings: list, lead) -> None:
    """What regroup needs: the run config, the grouper, the tiling of each frame, the method state."""
    outputs.attrs.update({"pixelgroup": {
        "source": str(path), "config": seg.cfg.to_dict(), "grouper": seg.grouper,
        "grouper_params": _jsonable(seg.grouper_params), "task": seg.task, "frames": len(tilings),
        "stack": bool(lead), "tilings": tilings, "options": asdict(opts), "dtype": "float32",
    }})
    if seg.state:
        atomic_torch_save(seg.state, store / "state.pt")


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))


def _tiles(array, chunk: int, band: int = 1024) -> Iterator[np.ndarray]:
    """Full ``chunk x chunk`` tiles of an ``(..., H, W)`` array in TIFF order (edge tiles zero-padded),
    read ``band`` rows at a time (one read per band, not per tile)."""
    *lead, h, w = array.shape
    band = max(chunk, band // chunk * chunk)
    for index in np.ndindex(*lead):
        for yb in range(0, h, band):
            rows = np.asarray(array[index + (slice(yb, yb + band), slice(None))])
            for y in range(0, rows.shape[0], chunk):
                for x in range(0, w, chunk):
                    tile = np.zeros((chunk, chunk), array.dtype)
                    block = rows[y:y + chunk, x:x + chunk]
                    tile[: block.shape[0], : block.shape[1]] = block
                    yield tile


def write_results(ws: _Workspace, labels_group, where: str, name: str, fmt: OutFormat, out: Path, *,
                  docs: list, source: Path, method: str, stack: bool) -> Path:
    """Move the finished label image into place (tiled BigTIFF or OME-Zarr), then write ``NAME.json``."""
    labels = labels_group[f"{where}/0"]
    n_max = max((len(d) for d in docs if d is not None), default=0)
    if fmt == "ome-zarr":
        write_ome_zarr_labels(labels_group, labels.ndim)
        target = ws.commit(f"{name}.ome.zarr", out / f"{name}.ome.zarr")
    else:
        dtype = np.uint16 if n_max <= 65535 else np.int32
        source_arr = _Cast(labels, dtype)
        tifffile.imwrite(ws.dir / f"{name}.tif", _tiles(source_arr, _CHUNK), shape=labels.shape, dtype=dtype,
                         tile=(_CHUNK, _CHUNK), bigtiff=True, compression="zlib", photometric="minisblack",
                         metadata={"axes": "TYX" if stack else "YX"})
        target = ws.commit(f"{name}.tif", out / f"{name}.tif")
    if any(d is not None for d in docs):
        body = {"image": str(source), "method": method}
        body.update({"frames": [{"frame": t, "instances": d} for t, d in enumerate(docs)]} if stack
                    else {"instances": docs[0]})
        atomic_write_text(out / f"{name}.json", json.dumps(body, indent=1))
    return target


class _Cast:
    """A sliceable view of ``array`` cast to ``dtype`` on read."""

    def __init__(self, array, dtype) -> None:
        self.array, self.dtype, self.shape = array, np.dtype(dtype), array.shape

    def __getitem__(self, key):
        return np.asarray(self.array[key]).astype(self.dtype)


def write_ome_zarr_labels(group, ndim: int) -> None:
    """NGFF 0.4 metadata of a store holding only ``labels/pixelgroup`` (axes ``yx`` or ``tyx``).

    The labels are a separate store, not written into an input OME-Zarr: adding ``labels/`` to the
    input would change a container the user (or another process) is reading, could not be made
    atomic (its ``labels/.zattrs`` lists the label images), and fails for read-only inputs. To attach
    them, copy ``NAME.ome.zarr/labels/pixelgroup`` into the input's ``labels/`` folder and add
    ``"pixelgroup"`` to the list in its ``labels/.zattrs``.
    """
    group.require_group("labels").attrs.update({"labels": [LABEL_NAME]})
    group[f"labels/{LABEL_NAME}"].attrs.update(ngff_labels_attrs(LABEL_NAME, "tyx" if ndim == 3 else "yx"))
