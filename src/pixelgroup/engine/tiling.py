"""Tiled inference: the network on overlapping windows, the grouping block by block, stitched.

Two stages, each holding one window at a time:

1. **Network** (:func:`tiled_outputs`): the image is cut into blocks of ``tile`` x ``tile`` pixels;
   each runs through the network with ``context`` extra pixels on every side (so its border pixels
   see what they would see in one pass) and only the block's core is kept. Windows are batched.
   Tile and context are rounded up to the network's multiple, so every window starts on the
   pooling grid and an interior window computes what one pass over the whole image would.
2. **Grouping** (:func:`group_tiled`): each block is grouped with a ``halo`` of context around it,
   and an object is kept by the block that holds its centroid
   (:mod:`pixelgroup.grouping.stitch`); semantic methods keep each block's class map core.

Objects larger than the halo cannot be guaranteed whole (a warning counts kept objects touching the
halo's outer edge). Arrays are anything sliceable like numpy (numpy, zarr, a memmap), so memory
follows the tile when the caller passes on-disk arrays.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..grouping.stitch import Box, owned_objects, paint_owned
from ..types import Instances, ModelOutput

log = logging.getLogger(__name__)

AUTO_TILE_PIXELS = 2048 * 2048
"""Images with more pixels than this are tiled when ``tile=None``."""
DEFAULT_TILE = 1024
"""Block side used when tiling turns on by itself."""
DEFAULT_HALO = 96
"""Grouping context per side: covers objects up to ~96 px across (nuclei, most cells)."""
DEFAULT_CONTEXT = 32
"""Network context per side: margin cropped off each window's prediction."""

BATCH_PIXELS = 1 << 20
"""Input pixels per network call: one 1024 x 1024 window, or many small ones. With the default U-Net
(width 32, depth 3) on the CPU, 1024-pixel tiles kept a whole prediction under 0.8 GB peak RSS."""

ReadWindow = Callable[[Box], np.ndarray]
"""``box -> (h, w, C)`` float32 normalised image window."""


@dataclass(frozen=True)
class Tiling:
    """Block side, grouping halo and network context, pixels (multiples of the network's multiple)."""

    tile: int
    halo: int
    context: int

    def to_dict(self) -> dict[str, int]:
        return {"tile": self.tile, "halo": self.halo, "context": self.context}


def _round_up(v: int, m: int) -> int:
    return int(math.ceil(v / m) * m)


def resolve_tiling(shape: tuple[int, int], *, tile: int | None = None, halo: int | None = None,
                   context: int | None = None, multiple: int = 1) -> Tiling | None:
    """The tiling for an image of ``shape (H, W)``, or ``None`` for one pass.

    ``tile=None``: tile with :data:`DEFAULT_TILE` when ``H * W > AUTO_TILE_PIXELS``; ``tile=0``: never.
    ``halo``/``context`` default to :data:`DEFAULT_HALO`/:data:`DEFAULT_CONTEXT`. All three are
    rounded up to ``multiple``. An image that fits in one block is not tiled.
    """
    for name, v in (("tile", tile), ("halo", halo), ("context", context)):
        if v is not None and v < 0:
            raise ValueError(f"{name} must be >= 0 pixels, got {v}")
    if tile == 0 or (tile is None and shape[0] * shape[1] <= AUTO_TILE_PIXELS):
        return None
    tile = _round_up(tile or DEFAULT_TILE, multiple)
    if shape[0] <= tile and shape[1] <= tile:
        return None
    halo = _round_up(DEFAULT_HALO if halo is None else halo, multiple)
    context = _round_up(DEFAULT_CONTEXT if context is None else context, multiple)
    return Tiling(tile=tile, halo=halo, context=context)


def block_grid(shape: tuple[int, int], tile: int) -> list[Box]:
    """Cores of ``tile`` x ``tile`` blocks covering ``shape (H, W)`` in raster order (the last row
    and column are smaller)."""
    h, w = shape
    return [(y, min(y + tile, h), x, min(x + tile, w)) for y in range(0, h, tile) for x in range(0, w, tile)]


def window_of(core: Box, margin: int, shape: tuple[int, int]) -> Box:
    """``core`` grown by ``margin`` on every side, clipped to the image."""
    y0, y1, x0, x1 = core
    return max(y0 - margin, 0), min(y1 + margin, shape[0]), max(x0 - margin, 0), min(x1 + margin, shape[1])


def _pad_to(x: Tensor, h: int, w: int) -> Tensor:
    """Pad ``(C, h0, w0)`` at the bottom/right to ``(C, h, w)``: reflect, or replicate when too small."""
    ph, pw = h - x.shape[-2], w - x.shape[-1]
    if ph == 0 and pw == 0:
        return x
    mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
    return F.pad(x[None], (0, pw, 0, ph), mode=mode)[0]


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


@dataclass(frozen=True)
class NetworkBatch:
    """Windows that go through the network together: their cores, their windows (core + context)
    and the padded size ``(h, w)`` they share."""

    cores: list[Box]
    windows: list[Box]
    size: tuple[int, int]


def network_batches(shape: tuple[int, int], tiling: Tiling, *, multiple: int,
                    batch_pixels: int = BATCH_PIXELS) -> list[NetworkBatch]:
    """The network windows of an image and how they are batched (the same plan wherever they run).

    Each window is padded at the bottom/right to the network's multiple, as one pass pads the whole
    image (windows start on the pooling grid, so an edge window pads exactly as one pass); windows
    of one padded size are batched together, up to ``batch_pixels`` input pixels (at least one).
    """
    cores = block_grid(shape, tiling.tile)
    windows = [window_of(c, tiling.context, shape) for c in cores]
    sizes = [(_round_up(w[1] - w[0], multiple), _round_up(w[3] - w[2], multiple)) for w in windows]
    groups: dict[tuple[int, int], list[int]] = {}
    for i, size in enumerate(sizes):
        groups.setdefault(size, []).append(i)
    plan = []
    for (hc, wc), members in groups.items():
        for part in _batches(len(members), max(1, batch_pixels // (hc * wc))):
            batch = [members[j] for j in part]
            plan.append(NetworkBatch([cores[i] for i in batch], [windows[i] for i in batch], (hc, wc)))
    return plan


def batch_input(read_window: ReadWindow, batch: NetworkBatch) -> Tensor:
    """``(B, C, h, w)`` CPU float tensor of a batch's windows, padded to its size."""
    hc, wc = batch.size
    return torch.stack([_pad_to(torch.from_numpy(np.ascontiguousarray(read_window(w).transpose(2, 0, 1))), hc, wc)
                        for w in batch.windows])


def tiled_outputs(
    forward: Callable[[Tensor], ModelOutput],
    read_window: ReadWindow,
    shape: tuple[int, int],
    tiling: Tiling,
    *,
    multiple: int,
    new_array: Callable[[str, tuple[int, int, int]], Any] | None = None,
    batch_pixels: int = BATCH_PIXELS,
    progress: bool = False,
) -> dict[str, Any]:
    """Network outputs of a whole image, computed window by window (:func:`network_batches`).

    Args:
        forward: ``(B, C, h, w)`` CPU float tensor (h, w multiples of ``multiple``) -> raw outputs
            ``(B, C', h, w)`` on any device (TTA, if any, happens inside).
        read_window: the normalised image window of a box, ``(h, w, C)`` float32.
        shape: image ``(H, W)``.
        tiling: block side and network context.
        new_array: ``(head name, (C', H, W)) -> array`` to write into (default: float32 numpy).
        batch_pixels: input pixels per network call (windows are batched up to this, at least one).

    Returns:
        ``{head name: (C', H, W) array}``.
    """
    from tqdm.auto import tqdm

    new_array = new_array or (lambda _name, s: np.zeros(s, np.float32))
    plan = network_batches(shape, tiling, multiple=multiple, batch_pixels=batch_pixels)
    arrays: dict[str, Any] = {}
    bar = tqdm(total=sum(len(b.cores) for b in plan), desc="network tiles", disable=not progress, leave=False)
    for batch in plan:
        store_cores(forward(batch_input(read_window, batch)), arrays, new_array, batch, shape)
        bar.update(len(batch.cores))
    bar.close()
    return arrays


def store_cores(out: ModelOutput, arrays: dict[str, Any], new_array, batch: NetworkBatch,
                shape: tuple[int, int]) -> None:
    """Write each window's core of the batch outputs ``out (B, C', h, w)`` into ``arrays``."""
    for name, t in out.items():
        if name not in arrays:
            arrays[name] = new_array(name, (t.shape[1], *shape))
        t = t.float().cpu().numpy()
        for j, ((y0, y1, x0, x1), (wy0, _, wx0, _)) in enumerate(zip(batch.cores, batch.windows)):
            arrays[name][:, y0:y1, x0:x1] = t[j, :, y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]


def read_outputs(arrays: MutableMapping[str, Any], box: Box, device: torch.device | str = "cpu") -> ModelOutput:
    """The outputs under ``box`` as a :class:`ModelOutput` of ``(C, h, w)`` tensors on ``device``."""
    y0, y1, x0, x1 = box
    return ModelOutput(**{name: torch.from_numpy(np.ascontiguousarray(a[:, y0:y1, x0:x1], np.float32)).to(device)
                          for name, a in arrays.items()})


@dataclass
class TiledResult:
    """Scores and classes of the instances painted into the labels array (empty for semantic)."""

    scores: np.ndarray
    classes: np.ndarray
    touching: int = 0


def grouping_windows(shape: tuple[int, int], tiling: Tiling) -> list[tuple[Box, Box]]:
    """``(core, window)`` of every grouping block in raster order: the window is the core + halo."""
    return [(core, window_of(core, tiling.halo, shape)) for core in block_grid(shape, tiling.tile)]


def group_tiled(
    read_output: Callable[[Box], ModelOutput],
    group: Callable[[ModelOutput], Instances | np.ndarray],
    shape: tuple[int, int],
    tiling: Tiling,
    labels: Any,
    *,
    task: str = "instance",
    progress: bool = False,
) -> TiledResult:
    """Group block by block into ``labels`` (an ``(H, W)`` zero int array, written in place): each
    block's window (core + halo) is grouped here, then stitched by :func:`stitch_blocks`."""
    from tqdm.auto import tqdm

    blocks = grouping_windows(shape, tiling)
    results = (group(read_output(win)) for _, win in tqdm(blocks, desc="grouping tiles", disable=not progress,
                                                            leave=False))
    return stitch_blocks(results, shape, tiling, labels, task=task)


def stitch_blocks(results: Iterable[Instances | np.ndarray], shape: tuple[int, int], tiling: Tiling, labels: Any, *,
                  task: str = "instance") -> TiledResult:
    """Paint the grouper results of the blocks of :func:`grouping_windows` (in that order) into ``labels``.

    Instance methods: objects whose centroid lies in the block's core are painted with ids ``1..N``
    (consecutive, block by block in raster order, each block in its grouper's score order); pixels
    claimed by an earlier block keep their id. Semantic methods: each block's core is written.
    """
    scores, classes, touching, next_id = [], [], 0, 1
    for (core, win), result in zip(grouping_windows(shape, tiling), results):
        (y0, y1, x0, x1), (wy0, wy1, wx0, wx1) = core, win
        if task == "semantic":
            cls = np.asarray(result.labels if isinstance(result, Instances) else result)
            labels[y0:y1, x0:x1] = cls[y0 - wy0:y1 - wy0, x0 - wx0:x1 - wx0]
            continue
        own = owned_objects(result.labels, result.count, window=win, core=core, image_shape=shape)
        touching += own.touching
        region = np.array(labels[wy0:wy1, wx0:wx1], dtype=np.int64)
        region, accepted = paint_owned(region, result.labels, own.keep, next_id)
        labels[wy0:wy1, wx0:wx1] = region
        scores.append(result.scores[accepted - 1])
        classes.append(result.classes[accepted - 1])
        next_id += accepted.size
    if touching:
        log.warning("tiling: %d object(s) touch the %d px halo and may be cut at a block border; "
                    "raise the halo above the largest object's size (--halo)", touching, tiling.halo)
    if task == "semantic":
        return TiledResult(np.zeros(0, np.float32), np.zeros(0, np.int32))
    return TiledResult(np.concatenate(scores).astype(np.float32) if scores else np.zeros(0, np.float32),
                       np.concatenate(classes).astype(np.int32) if classes else np.zeros(0, np.int32),
                       touching)
