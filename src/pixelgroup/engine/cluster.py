"""Prediction on a Dask cluster: files shared out across workers, a big image's tiles too.

``pixelgroup predict ... --scheduler ADDRESS`` (a running ``dask scheduler``, e.g. ``tcp://host:8786``,
or one started by dask-jobqueue on SLURM) or ``--scheduler local:N`` (a ``LocalCluster`` of N worker
processes started for the run). Dask runs, schedules and retries the tasks; this module only says
what a task is and how results come back together:

* **A file** is one task: the worker loads the model once (cached per worker process) and writes the
  file's results into the output folder itself, atomically (the folder must be shared by the
  workers, as on any cluster file system). Bad inputs come back as failures, as in a local run.
* **A big image** (tiled, :mod:`pixelgroup.engine.tiling`) is two rounds of tasks planned exactly as
  in one process: one task per network batch (the worker reads its windows from the input file,
  normalised with the percentiles the client measured, and writes the cores into the run's zarr
  store of raw outputs: every core is one chunk, so workers never write the same chunk), then one
  task per grouping block (the worker groups its window); the client paints the blocks in raster
  order with the centroid rule, so the labels are those of a local run.

A worker lost mid-run has its tasks rerun by Dask on the others (tasks write atomically or whole
chunks, so a rerun leaves nothing half-written or duplicated).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.bigimage import import_zarr, open_frames
from ..data.io import DataError
from .predict import PredictReport, failure, plan_prediction, predict_one, report_size
from .predict_big import BigOptions, FrameRef, _create, normalised_reader
from .segmenter import Inference, Segmenter, load_model
from .tiling import NetworkBatch, batch_input, grouping_windows, network_batches, read_outputs, stitch_blocks
from .zoo import resolve_model

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """How a worker loads the model: a run folder or checkpoint, a device, how the network runs
    (:data:`~pixelgroup.engine.segmenter.Inference`) and grouping overrides."""

    path: str
    device: str = "cpu"
    overrides: tuple[tuple[str, Any], ...] = ()
    inference: Inference = "auto"

    def load(self) -> Segmenter:
        return load_model(self.path, device=self.device, inference=self.inference, **dict(self.overrides))


_MODELS: dict[ModelRef, Segmenter] = {}
_FRAMES: dict[tuple[str, int], Any] = {}


def worker_model(ref: ModelRef) -> Segmenter:
    """The model of ``ref``, loaded once per worker process."""
    if ref not in _MODELS:
        _MODELS[ref] = ref.load()
    return _MODELS[ref]


def _frame(path: str, index: int):
    key = (path, index)
    if key not in _FRAMES:
        _FRAMES.clear()  # one big image at a time per worker
        _FRAMES[key] = open_frames(path)[index]
    return _FRAMES[key]


@contextlib.contextmanager
def connect(scheduler: str) -> Iterator[Any]:
    """A ``distributed.Client`` to ``scheduler`` (an address), or to a ``LocalCluster`` of N worker
    processes on 127.0.0.1 for ``local:N`` (closed on exit). Logs the dashboard address."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ValueError("--scheduler needs Dask's distributed package: pip install \"pixelgroup[distributed]\"") \
            from None
    cluster = None
    if scheduler.startswith("local:"):
        try:
            n = int(scheduler.split(":", 1)[1])
            if n < 1:
                raise ValueError
        except ValueError:
            raise ValueError(f"--scheduler {scheduler}: give local:N with N >= 1 worker processes") from None
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0")
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="30s")
        except OSError as err:
            raise ValueError(f"--scheduler {scheduler}: cannot reach a Dask scheduler there ({err}); start one with "
                             "'dask scheduler' or use --scheduler local:N") from None
    log.info("Dask cluster: %d worker(s); dashboard %s", len(client.scheduler_info().get("workers", {})),
             client.dashboard_link)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _wait(futures: list, progress: bool) -> None:
    """Wait for ``futures`` (done or failed), with Dask's own progress bar."""
    from distributed import progress as dask_progress
    from distributed import wait

    if progress and futures:
        dask_progress(futures)
    wait(futures)


# -- files ----------------------------------------------------------------------------------------------


def _file_task(ref: ModelRef, path: Path, out: Path, targets: list[Path], lazy: bool, big: BigOptions,
               overlays: bool, diameter: float | str | None) -> tuple[Path | None, str | None, float | None]:
    """One input on a worker: ``(label file, None, size)``, or ``(None, reason, None)`` for a bad
    input; ``size``: the median diameter of the objects found (``None`` when not measured)."""
    seg = worker_model(ref)
    sizes: list[float] = []
    try:
        written = predict_one(seg, path, out, targets, lazy=lazy, big=big, overlays=overlays, diameter=diameter,
                              sizes=sizes)
    except (DataError, ValueError) as err:
        return None, failure(path, err, strict=False), None
    return written, None, sizes[0] if sizes else None


def predict_on_cluster(model: str | Path, inputs: Sequence[str | Path], out: str | Path, *, scheduler: str,
                       device: str = "cpu", overlays: bool = False, big: BigOptions | None = None,
                       overwrite: bool = False, strict: bool = False, progress: bool = True,
                       diameter: float | str | None = None, cache_dir: str | Path | None = None,
                       inference: Inference = "auto", **overrides: Any) -> PredictReport:
    """:func:`~pixelgroup.engine.predict.predict_paths` with the work shared out on a Dask cluster.

    Small inputs are one task each, run by the workers; a big image (one that
    :func:`~pixelgroup.engine.predict_big.needs_lazy` sends tile by tile) is segmented here with its
    network batches and grouping blocks as tasks. ``out`` must be a folder every worker can write.
    ``model``: a run folder, checkpoint or model name (``cache_dir``: the user model folder, see
    :func:`~pixelgroup.engine.segmenter.load_model`); ``diameter``: as :meth:`Segmenter.segment`;
    ``inference``: how the network runs, here and on every worker (:data:`Inference`);
    ``overrides``: grouping parameters, as :func:`~pixelgroup.engine.segmenter.load_model`.
    Results are those of a local run, and so is the line on the size of the objects found
    (:func:`~pixelgroup.engine.predict.report_size`).
    """
    big, out = big or BigOptions(), Path(out)
    ref = ModelRef(str(resolve_model(model, cache_dir=cache_dir).resolve()), device, tuple(sorted(overrides.items())),
                   inference)
    seg = ref.load()
    job = plan_prediction(seg, inputs, out, overlays=overlays, big=big, overwrite=overwrite)
    report = job.report
    with connect(scheduler) as client:
        small = [p for p in job.todo if not job.lazy[p]]
        futures = [client.submit(_file_task, ref, p, out, job.targets[p], False, big, overlays, diameter, pure=False,
                                 key=f"pixelgroup-file-{i}-{p.name}") for i, p in enumerate(small)]
        _wait(futures, progress)
        outcome = dict(zip(small, client.gather(futures)))
        tiler = ClusterTiler(client, ref, progress=progress)
        for path in job.todo:
            if job.lazy[path]:
                found: list[float] = []
                try:
                    outcome[path] = (predict_one(seg, path, out, job.targets[path], lazy=True, big=big,
                                                 overlays=overlays, progress=progress, diameter=diameter,
                                                 tiler=tiler, sizes=found), None, found[0] if found else None)
                except (DataError, ValueError) as err:
                    outcome[path] = (None, failure(path, err, strict=False), None)
            written, reason, _ = outcome[path]
            if reason is not None:
                if strict:
                    raise DataError(f"{reason} (stopped: --strict)")
                report.failed.append((path, reason))
            else:
                report.written.append(written)
    report_size(seg, [size for _, _, size in outcome.values() if size is not None])
    return report


# -- tiles of a big image -------------------------------------------------------------------------------


def _network_task(ref: ModelRef, frame: tuple[str, int], percentiles: tuple[np.ndarray, np.ndarray],
                  batch: NetworkBatch, shape: tuple[int, int], tta: bool, store: str, group: str) -> int:
    """Run one network batch on a worker and write its cores into the zarr arrays ``store/group/HEAD``."""
    from .tiling import store_cores

    seg = worker_model(ref)
    read = normalised_reader(_frame(*frame), seg.model.in_channels, *percentiles)
    out = seg.forward_batch(batch_input(read, batch), tta=tta)
    root = import_zarr().open_group(store, mode="r+", zarr_format=2)
    arrays = {name: root[f"{group}/{name}"] for name, _ in out.items()}
    store_cores(out, arrays, None, batch, shape)
    return len(batch.cores)


def _group_task(ref: ModelRef, store: str, group: str, heads: tuple[str, ...], window):
    """Group one block's window on a worker (the grouper's result: Instances or a class map)."""
    seg = worker_model(ref)
    root = import_zarr().open_group(store, mode="r", zarr_format=2)
    arrays = {name: root[f"{group}/{name}"] for name in heads}
    return seg.group(read_outputs(arrays, window, seg.device))


class ClusterTiler:
    """A :data:`~pixelgroup.engine.predict_big.Tiler` whose network batches and grouping blocks are
    Dask tasks (see the module doc)."""

    def __init__(self, client, ref: ModelRef, *, progress: bool = False) -> None:
        self.client, self.ref, self.progress = client, ref, progress

    def __call__(self, seg: Segmenter, frame: FrameRef, percentiles, shape, tiling, labels, outputs,
                 opts: BigOptions, progress: bool):
        store, group = str(outputs.store.root), outputs.path
        chunks = (min(tiling.tile, shape[0]), min(tiling.tile, shape[1]))
        heads = seg.method.head_channels(seg.cfg)
        for name, channels in heads.items():  # made here, so the workers only write chunks
            _create(outputs, name, (channels, *shape), np.float32, (channels, *chunks))
        plan = network_batches(shape, tiling, multiple=seg.model.multiple)
        where = (str(frame.path), frame.index)
        tasks = [self.client.submit(_network_task, self.ref, where, percentiles, b, shape, opts.tta, store, group,
                                    pure=False) for b in plan]
        _wait(tasks, self.progress)
        self.client.gather(tasks)  # raises a worker's error here
        blocks = [self.client.submit(_group_task, self.ref, store, group, tuple(heads), win, pure=False)
                  for _, win in grouping_windows(shape, tiling)]
        _wait(blocks, self.progress)
        results = (f.result() for f in blocks)
        return stitch_blocks(results, shape, tiling, labels, task=seg.task)
