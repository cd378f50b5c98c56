"""Exactly equivariant toy models and synthetic images whose pixels encode the ground truth."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from pixelgroup.config import RunConfig
from pixelgroup.engine.segmenter import Segmenter
from pixelgroup.ops.coords import DEFAULT_COORD_SCALE, pixel_grid, raw_sigma_for_radius
from pixelgroup.types import ModelOutput


class CentroidNet(nn.Module):
    """A 'spatial' network that reads the answer from its input: channel 0 holds object ids (0 =
    background); offsets point at each id's centroid (within the window it sees), seeds are +8 on
    objects and -8 elsewhere, the bandwidth is 4 px. Rotating or mirroring the input rotates or
    mirrors the output exactly (offset vectors included), and it is translation-equivariant."""

    multiple = 8
    in_channels = 1

    def __init__(self, n_sigma: int = 1, id_scale: float = 1.0) -> None:
        super().__init__()
        self.n_sigma, self.id_scale = n_sigma, id_scale
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        b, _, h, w = x.shape
        grid = pixel_grid(h, w, dtype=torch.float64).reshape(2, -1)  # (2, H*W)
        offsets, spreads = [], []
        for i in range(b):
            ids = (x[i, 0] * self.id_scale).round().long().reshape(-1)  # (H*W,)
            n = int(ids.max()) + 1
            area = torch.bincount(ids, minlength=n).clamp_min(1).double()
            centre = torch.stack([torch.bincount(ids, weights=g, minlength=n) / area for g in grid])  # (2, n)
            d = centre[:, ids] - grid  # (2, H*W)
            var = torch.stack([torch.bincount(ids, weights=v * v, minlength=n) / area for v in d])  # (2, n)
            offsets.append(d.reshape(2, h, w))
            spreads.append(var[:, ids].reshape(2, h, w))
        off = torch.stack(offsets) * DEFAULT_COORD_SCALE
        inside = (x[:, :1] * self.id_scale).round() > 0
        # the bandwidth: 4 px, nudged per axis by the object's extent along y and x (elliptical sigma)
        sigma = raw_sigma_for_radius(4.0) + 1e-4 * torch.stack(spreads)[:, : self.n_sigma].float()
        return ModelOutput(offset=torch.atanh(off.clamp(-0.999, 0.999)).float(),
                           sigma=sigma, seed=torch.where(inside, 8.0, -8.0).float())


def toy_segmenter(n_sigma: int = 1, *, max_id: int | None = None) -> Segmenter:
    """The toy as a Segmenter; ``max_id``: read images normalised with percentiles (0, 100) of an
    image whose largest id is ``max_id`` (files), else unnormalised (``normalized=True``)."""
    cfg = RunConfig().replace(**{"model.n_sigma": n_sigma})
    if max_id is not None:
        cfg = cfg.replace(**{"data.normalize": (0.0, 100.0)})
    return Segmenter(CentroidNet(n_sigma, id_scale=max_id or 1.0), cfg, device="cpu")


def disc_image(shape=(192, 224), *, n=40, radius=(5, 11), margin=14, seed=0) -> np.ndarray:
    """``(H, W)`` float32 image of non-overlapping ellipses with ids 1..N (0 background), none
    within ``margin`` px of the image border; ids in random order."""
    rng = np.random.default_rng(seed)
    h, w = shape
    yy, xx = np.mgrid[:h, :w]
    ids = np.zeros(shape, np.int32)
    k = 0
    for _ in range(n * 20):
        if k == n:
            break
        ry, rx = rng.uniform(*radius, size=2)
        cy, cx = rng.uniform(margin + ry, h - margin - ry), rng.uniform(margin + rx, w - margin - rx)
        mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        grown = ((yy - cy) / (ry + 3)) ** 2 + ((xx - cx) / (rx + 3)) ** 2 <= 1
        if ids[grown].any() or mask.sum() < 40:
            continue
        k += 1
        ids[mask] = k
    perm = np.concatenate([[0], rng.permutation(k) + 1])
    return perm[ids].astype(np.float32)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two label images hold the same objects (pixel sets), up to renumbering."""
    if ((a > 0) != (b > 0)).any():
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


def dense_spatial_network() -> tuple[RunConfig, nn.Module]:
    """A real (untrained) spatial U-Net made to find objects everywhere: seeds high, small random
    offsets; on a noise image its ~400 discs touch each other and every seam."""
    from pixelgroup.engine.build import build_model

    cfg = RunConfig().replace(**{"model.width": 8, "model.depth": 2, "grouping.params": {"min_size": 20}})
    torch.manual_seed(0)
    model = build_model(cfg, in_channels=1)
    with torch.no_grad():
        model.heads["seed"].out.bias.fill_(3.0)
        model.heads["offset"].out.weight.normal_(0, 0.01)
    return cfg, model
