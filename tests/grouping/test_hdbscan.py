from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.grouping.base import GROUPERS, group
from pixelgroup.grouping.hdbscan import hdbscan_grouping
from pixelgroup.types import Instances, ModelOutput


def _synthetic(n_inst: int, *, side: int = 48, e: int = 5, std: float = 0.1, seed: int = 0):
    """Rectangles 1..n on background; embedding = instance centre (well apart) + small noise."""
    g = np.random.default_rng(seed)
    inst = np.zeros((side, side), np.int64)
    boxes = [(2, 2, 14, 20), (20, 4, 34, 16), (6, 26, 22, 44), (30, 24, 46, 46)]
    for k, (y0, x0, y1, x1) in enumerate(boxes[:n_inst], start=1):
        inst[y0:y1, x0:x1] = k
    centres = 3.0 * np.eye(e)[: n_inst + 1] * np.arange(1, n_inst + 2)[:, None]  # one axis each, >= 6.7 apart
    emb = centres[inst] + g.normal(0.0, std, (side, side, e))
    fg = np.where(inst > 0, 6.0, -6.0)
    out = ModelOutput(
        embedding=torch.tensor(emb.transpose(2, 0, 1), dtype=torch.float32),
        foreground=torch.tensor(fg[None], dtype=torch.float32),
    )
    return inst, out


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the label images agree up to a renumbering of the labels (background included)."""
    pairs = {(int(x), int(y)) for x, y in zip(a.ravel(), b.ravel())}
    return len(pairs) == len(np.unique(a)) == len(np.unique(b))


@pytest.mark.parametrize("n_inst", [1, 2, 4])
def test_well_separated_clusters_recovered_exactly(n_inst):
    inst, out = _synthetic(n_inst)
    res = hdbscan_grouping(out, min_cluster_size=32)
    assert isinstance(res, Instances)
    assert res.labels.shape == inst.shape and res.labels.dtype == np.int32
    assert res.count == n_inst
    assert _same_partition(inst, res.labels)
    assert np.array_equal(res.labels == 0, inst == 0)
    assert ((res.scores > 0) & (res.scores <= 1)).all()


def test_subsampled_path_recovers_clusters_and_is_deterministic():
    inst, out = _synthetic(4)
    n_fg = int((inst > 0).sum())
    res = hdbscan_grouping(out, min_cluster_size=64, max_points=n_fg // 4, seed=3)
    assert res.count == 4 and _same_partition(inst, res.labels)
    again = hdbscan_grouping(out, min_cluster_size=64, max_points=n_fg // 4, seed=3)
    assert np.array_equal(res.labels, again.labels) and np.array_equal(res.scores, again.scores)


def test_empty_foreground_gives_no_instance():
    _, out = _synthetic(3)
    out.foreground = torch.full_like(out.foreground, -10.0)
    res = hdbscan_grouping(out)
    assert res.count == 0 and res.labels.max() == 0 and res.scores.shape == (0,)


def test_without_foreground_head_every_pixel_is_clustered():
    inst, out = _synthetic(2)
    out.foreground = None
    res = hdbscan_grouping(out, min_cluster_size=32)
    assert res.count == 3  # the background embedding forms its own cluster
    assert _same_partition(inst, res.labels)


def test_min_size_drops_small_instances_and_labels_are_consecutive():
    inst, out = _synthetic(2)
    sizes = [int((inst == k).sum()) for k in (1, 2)]  # 12 x 18 = 216 and 14 x 12 = 168 pixels
    res = hdbscan_grouping(out, min_cluster_size=32, min_size=200)
    assert res.count == 1
    assert int((res.labels == 1).sum()) == max(sizes)
    assert set(np.unique(res.labels)) == {0, 1}


def test_noise_background_keeps_outliers_out():
    inst, out = _synthetic(2)
    emb = out.embedding.clone()
    emb[:, 5, 5] = 50.0  # one far outlier pixel inside instance 1
    out.embedding = emb
    near = hdbscan_grouping(out, min_cluster_size=32, noise="nearest")
    back = hdbscan_grouping(out, min_cluster_size=32, noise="background")
    assert near.labels[5, 5] > 0 and back.labels[5, 5] == 0
    assert near.count == back.count == 2


def test_single_cluster_switch():
    # HDBSCAN without allow_single_cluster calls a lone instance noise; our default keeps it.
    inst, out = _synthetic(1)
    assert hdbscan_grouping(out, min_cluster_size=32, single_cluster=False).count == 0
    assert hdbscan_grouping(out, min_cluster_size=32).count == 1
    inst, out = _synthetic(4)
    assert _same_partition(inst, hdbscan_grouping(out, min_cluster_size=32, single_cluster=False).labels)


def test_registered():
    assert GROUPERS.get("hdbscan") is hdbscan_grouping
    inst, out = _synthetic(2)
    assert _same_partition(inst, group("hdbscan", out, min_cluster_size=32).labels)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_cluster_size": 1}, "min_cluster_size must be >= 2"),
        ({"max_points": 1}, "max_points must be >= 2"),
        ({"noise": "drop"}, "noise must be"),
        ({"fg_threshold": 1.0}, r"fg_threshold must be in \[0, 1\)"),
        ({"min_size": 0}, "min_size must be >= 1"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    _, out = _synthetic(1)
    with pytest.raises(ValueError, match=match):
        hdbscan_grouping(out, **kwargs)


def test_bad_output_raises():
    _, out = _synthetic(1)
    with pytest.raises(ValueError, match=r"embedding of shape \(E, H, W\)"):
        hdbscan_grouping(ModelOutput(foreground=out.foreground))
    with pytest.raises(ValueError, match=r"embedding of shape \(E, H, W\)"):
        hdbscan_grouping(ModelOutput(embedding=out.embedding[None]))
    with pytest.raises(ValueError, match="foreground must be"):
        hdbscan_grouping(ModelOutput(embedding=out.embedding, foreground=out.foreground[:, :5]))
