from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from sklearn.cluster import MeanShift
from sklearn.metrics import adjusted_rand_score

from pixelgroup.grouping.base import GROUPERS, group
from pixelgroup.grouping.mean_shift import assign_to_modes, mean_shift
from pixelgroup.grouping.meanshift_grouper import meanshift_grouping
from pixelgroup.types import ModelOutput

# the module (the package re-exports the function under the same name)
ms = importlib.import_module("pixelgroup.grouping.mean_shift")


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


# --- the fast paths: same results as the plain formulas, and degenerate inputs ---------------------


def _plain_weights(seeds, ref, bandwidth, kernel, relative):
    """The kernel weights written out plainly (the formula of the module doc)."""
    cross = seeds @ ref.T
    if kernel == "vmf":
        logits = (cross - 1.0) / bandwidth**2
    else:
        d2 = ((seeds * seeds).sum(1)[:, None] + (ref * ref).sum(1)[None, :] - 2.0 * cross).clamp_min(0.0)
        if kernel == "flat":
            return (d2 <= bandwidth**2).to(ref.dtype)
        logits = -d2 / (2.0 * bandwidth**2)
    if relative:
        logits = logits - logits.max(dim=1, keepdim=True).values
    return torch.exp(logits)


@pytest.mark.parametrize("kernel", ["gaussian", "flat", "vmf"])
@pytest.mark.parametrize("relative", [True, False])
def test_weights_match_the_plain_formula_bit_for_bit(kernel, relative):
    g = torch.Generator().manual_seed(0)
    ref = 4.0 * torch.randn(700, 6, generator=g)
    seeds = ref[:40] + 0.3 * torch.randn(40, 6, generator=g)
    if kernel == "vmf":
        ref, seeds = torch.nn.functional.normalize(ref, dim=1), torch.nn.functional.normalize(seeds, dim=1)
    bandwidth = 0.15 if kernel == "vmf" else 0.4  # small: most weights fall below float32's normal range
    plain = _plain_weights(seeds, ref, bandwidth, kernel, relative)
    fast = ms._Reference(ref, bandwidth, kernel).weights(seeds, relative=relative)
    # identical except that weights below 3x the smallest normal float are 0
    tiny = torch.finfo(torch.float32).tiny
    expected = torch.where(plain > 3.0 * tiny, plain, torch.zeros_like(plain)) if kernel != "flat" else plain
    assert torch.equal(fast, expected)
    if kernel != "flat":
        assert bool((plain[plain > 0] < tiny).any())  # the flushed range is exercised


def _plain_cover(points, radius):
    close = (torch.cdist(points.double(), points.double()) < radius).numpy()
    covered, chosen = np.zeros(len(close), dtype=bool), []
    for i in range(len(close)):
        if not covered[i]:
            chosen.append(i)
            covered |= close[i]
    return chosen


@pytest.mark.parametrize("block", [3, 256])
def test_greedy_cover_matches_the_full_matrix(monkeypatch, block):
    monkeypatch.setattr(ms, "_COVER_BLOCK", block)
    g = torch.Generator().manual_seed(1)
    clustered = torch.repeat_interleave(6.0 * torch.randn(12, 5, generator=g), 30, dim=0)
    clustered = (clustered + 0.4 * torch.randn(clustered.shape, generator=g))[torch.randperm(360, generator=g)]
    spread = 50.0 * torch.randn(300, 5, generator=g)  # every point its own cover: several blocks
    for points in (clustered, spread, clustered[:1], clustered[:0]):
        assert ms._greedy_cover(points, 1.0).tolist() == _plain_cover(points, 1.0)


def test_bin_keys_order_rows_as_numpy_unique():
    rng = np.random.default_rng(2)
    cells = rng.integers(-3, 4, size=(500, 5)).astype(np.int64)
    keys = ms._row_keys(cells)
    _, inv_rows = np.unique(cells, axis=0, return_inverse=True)
    _, inv_keys = np.unique(keys, return_inverse=True)
    assert np.array_equal(inv_rows.reshape(-1), inv_keys)
    assert ms._row_keys(np.array([[0, 0], [1 << 40, 1 << 40]], dtype=np.int64)) is None  # 2^80 cells


def test_bin_seeds_same_with_and_without_keys(monkeypatch):
    x, _ = _mixture(n=2000, k=6, dim=5, spread=0.4)
    ref = torch.from_numpy(x)
    fast = ms._bin_seeds(ref, 0.5, 1, 1024)
    monkeypatch.setattr(ms, "_row_keys", lambda cells: None)  # the np.unique(axis=0) fallback
    assert torch.equal(fast, ms._bin_seeds(ref, 0.5, 1, 1024))


def test_huge_coordinate_spread_takes_the_row_fallback():
    x = np.array([[0.0, 0.0], [0.1, 0.0], [1e15, -1e15], [1e15, -1e15 + 0.1]], dtype=np.float64)
    labels = mean_shift(x, bandwidth=1.0, kernel="flat")
    assert labels.tolist() == [0, 0, 1, 1]


def test_small_input_pinned_labels():
    # blobs of 400, 300, 200, 100 points, 5 apart in 3-D: labels by decreasing mode density = size
    rng = np.random.default_rng(3)
    sizes = [400, 300, 200, 100]
    centres = 5.0 * np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    x = np.concatenate([c + rng.normal(0, 0.3, size=(s, 3)) for c, s in zip(centres, sizes)]).astype(np.float32)
    expected = np.repeat(np.arange(4), sizes)
    for kernel in ("gaussian", "flat"):
        assert np.array_equal(mean_shift(x, bandwidth=1.0, kernel=kernel), expected)
        assert np.array_equal(mean_shift(x[::-1].copy(), bandwidth=1.0, kernel=kernel), expected[::-1])


def test_small_bandwidth_gaussian_recovers_clusters():
    # bandwidth 0.1 against centres 3 apart: most kernel weights underflow (the flushed exp path)
    x, truth = _mixture(n=2000, k=4, spread=0.03)
    assert adjusted_rand_score(truth, mean_shift(x, bandwidth=0.1, kernel="gaussian")) == 1.0


@pytest.mark.parametrize("kernel", ["gaussian", "flat", "vmf"])
def test_degenerate_inputs(kernel):
    one = np.array([[0.3, -1.0, 2.0]], dtype=np.float32)
    assert mean_shift(one, bandwidth=0.5, kernel=kernel).tolist() == [0]
    same = np.repeat(one, 1000, axis=0)
    assert np.array_equal(mean_shift(same, bandwidth=0.5, kernel=kernel), np.zeros(1000, dtype=np.int64))
    # two far clusters (opposite directions, for vmf too), the smaller first in the input
    far = np.concatenate([np.repeat(-one, 5, axis=0), np.repeat(one, 995, axis=0)])
    far += np.random.default_rng(0).normal(0, 0.01, size=far.shape).astype(np.float32)
    labels = mean_shift(far, bandwidth=0.5, kernel=kernel)
    assert labels.tolist() == [1] * 5 + [0] * 995  # denser mode first
    two = mean_shift(np.concatenate([one, -one]), bandwidth=0.5, kernel=kernel)
    assert sorted(two.tolist()) == [0, 1]  # equal densities: the order is the seeds' (bins') order
