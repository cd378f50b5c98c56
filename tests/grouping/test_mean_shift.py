from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cluster import MeanShift
from sklearn.metrics import adjusted_rand_score

from pixelgroup.grouping.base import GROUPERS, group
from pixelgroup.grouping.mean_shift import assign_to_modes, mean_shift
from pixelgroup.grouping.meanshift_grouper import meanshift_grouping
from pixelgroup.types import ModelOutput


def _mixture(n: int = 3000, k: int = 5, dim: int = 4, spread: float = 0.1, seed: int = 0):
    """``k`` well separated Gaussian blobs (centres 3 apart on scaled basis vectors), raster-like order."""
    rng = np.random.default_rng(seed)
    centres = 3.0 * np.eye(max(k, dim))[:k, :dim] if k <= dim else rng.uniform(0, 12, size=(k, dim))
    truth = np.repeat(np.arange(k), n // k)
    x = centres[truth] + rng.normal(0, spread, size=(len(truth), dim))
    return x.astype(np.float32), truth


def _blocks(side: int = 24, e: int = 4):
    """A (E, side, side) embedding: background at e0, three squares at e1, e2, e3 (+ small noise)."""
    inst = torch.zeros(side, side, dtype=torch.int64)
    inst[2:10, 2:10] = 1
    inst[12:22, 3:9] = 2
    inst[14:20, 13:22] = 3
    emb = torch.nn.functional.one_hot(inst, e).permute(2, 0, 1).float()
    emb = emb + 0.02 * torch.randn(emb.shape, generator=torch.Generator().manual_seed(0))
    fg = torch.where(inst > 0, 5.0, -5.0)[None].float()
    return emb, fg, inst


@pytest.mark.parametrize("kernel", ["gaussian", "flat"])
def test_recovers_known_clusters(kernel):
    x, truth = _mixture()
    labels = mean_shift(x, bandwidth=1.0, kernel=kernel)
    assert adjusted_rand_score(truth, labels) == 1.0


def test_vmf_on_directions():
    x, truth = _mixture(k=4, dim=4)  # blobs around orthogonal directions: separable by angle
    labels = mean_shift(x * 5.0, bandwidth=0.3, kernel="vmf")  # scale does not matter for vMF
    assert adjusted_rand_score(truth, labels) == 1.0


def test_not_worse_than_sklearn():
    x, truth = _mixture(n=1500, k=8, dim=3, spread=0.3, seed=1)
    ours = mean_shift(x, bandwidth=1.0, kernel="flat")
    theirs = MeanShift(bandwidth=1.0, bin_seeding=True).fit(x).labels_
    assert adjusted_rand_score(truth, ours) >= adjusted_rand_score(truth, theirs) - 1e-9


def test_output_types_and_consecutive_labels():
    x, _ = _mixture()
    arr = mean_shift(x, bandwidth=1.0)
    assert isinstance(arr, np.ndarray) and arr.dtype == np.int64 and arr.shape == (len(x),)
    assert set(np.unique(arr)) == set(range(arr.max() + 1))
    ten = mean_shift(torch.from_numpy(x), bandwidth=1.0)
    assert isinstance(ten, torch.Tensor) and ten.dtype == torch.int64
    assert np.array_equal(ten.numpy(), arr)
    assert mean_shift(np.zeros((0, 3)), bandwidth=1.0).shape == (0,)


def test_deterministic_and_seed_robust():
    x, _ = _mixture(n=6000)
    a = mean_shift(x, bandwidth=1.0, sample_size=500, seed=3)
    b = mean_shift(x, bandwidth=1.0, sample_size=500, seed=3)
    c = mean_shift(x, bandwidth=1.0, sample_size=500, seed=4)
    assert np.array_equal(a, b)
    assert adjusted_rand_score(a, c) == 1.0


def test_translation_invariance():
    x, truth = _mixture()
    shifted = mean_shift(x + np.float32(17.3), bandwidth=1.0)
    assert adjusted_rand_score(truth, shifted) == 1.0


def test_residual_round_finds_cluster_missed_by_the_sample():
    # 5 points far from everything in 20000: a 64-point sample almost surely misses them.
    x, truth = _mixture(n=20000, k=4)
    far = np.full((5, 4), 20.0, dtype=np.float32)
    labels = mean_shift(np.concatenate([x, far]), bandwidth=1.0, sample_size=64)
    assert len(np.unique(labels[-5:])) == 1
    assert labels[-1] not in set(labels[:-5])
    assert adjusted_rand_score(truth, labels[:-5]) == 1.0


@pytest.mark.parametrize("shuffle", [False, True])
def test_assign_to_modes_is_exact(shuffle):
    g = torch.Generator().manual_seed(0)
    modes = torch.randn(30, 5, generator=g)
    x = torch.repeat_interleave(modes, 200, dim=0) + 0.8 * torch.randn(6000, 5, generator=g)
    if shuffle:
        x = x[torch.randperm(len(x), generator=g)]
    labels, dist2 = assign_to_modes(x, modes, stride=4, chunk_size=1000)
    d = torch.cdist(x, modes)
    assert torch.equal(labels, d.argmin(1))
    assert torch.allclose(dist2, d.min(1).values ** 2, atol=1e-3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"bandwidth": 0.0}, "bandwidth"), ({"bandwidth": 1.0, "kernel": "cosine"}, "kernel"),
     ({"bandwidth": 1.0, "sample_size": 0}, "sample_size")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        mean_shift(np.zeros((5, 2)), **kwargs)
    with pytest.raises(ValueError, match=r"\(N, E\)"):
        mean_shift(np.zeros(5), bandwidth=1.0)


def test_grouper_registered_and_recovers_blocks():
    assert GROUPERS.get("meanshift") is meanshift_grouping
    emb, fg, inst = _blocks()
    out = group("meanshift", ModelOutput(embedding=emb, foreground=fg), bandwidth=0.35, kernel="vmf",
                normalize=True)
    assert out.labels.shape == (24, 24) and out.count == 3
    assert adjusted_rand_score(inst.numpy().ravel(), out.labels.ravel()) == 1.0
    assert np.all((out.scores > 0.9) & (out.scores <= 1.0))
    assert np.all(np.diff(out.scores) <= 0)  # labels ordered by score


def test_grouper_min_size_and_no_foreground_head():
    emb, fg, inst = _blocks()
    # instance sizes 64, 60, 54 pixels: min_size 60 drops the third
    small = meanshift_grouping(ModelOutput(embedding=emb, foreground=fg), bandwidth=0.35, min_size=60)
    assert small.count == 2
    assert np.all(small.labels[inst.numpy() == 3] == 0)
    everything = meanshift_grouping(ModelOutput(embedding=emb), bandwidth=0.35)
    assert everything.count == 4 and np.all(everything.labels > 0)  # background is a cluster too
    empty = meanshift_grouping(ModelOutput(embedding=emb, foreground=-10 + 0 * fg), bandwidth=0.35)
    assert empty.count == 0 and not empty.labels.any()


def test_grouper_bad_input():
    emb, fg, _ = _blocks()
    with pytest.raises(ValueError, match="embedding"):
        meanshift_grouping(ModelOutput(foreground=fg), bandwidth=0.3)
    with pytest.raises(ValueError, match=r"\(E, H, W\)"):
        meanshift_grouping(ModelOutput(embedding=emb[None]), bandwidth=0.3)
    with pytest.raises(ValueError, match="fg_threshold"):
        meanshift_grouping(ModelOutput(embedding=emb), bandwidth=0.3, fg_threshold=1.5)
