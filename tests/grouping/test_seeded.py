"""Tests of the seeded grouping of spatial embeddings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.grouping.base import GROUPERS
from pixelgroup.grouping.seeded import seeded_grouping
from pixelgroup.ops.coords import (
    DEFAULT_COORD_SCALE,
    coordinate_grid,
    raw_sigma_for_radius,
    sigma_precision,
    spatial_embedding,
)
from pixelgroup.types import ModelOutput


def discs(h, w, n, rmin, rmax, seed=0):
    """Label image of ``n`` non-touching discs (at least 2 px apart)."""
    rng = np.random.default_rng(seed)
    lab = np.zeros((h, w), np.int64)
    yy, xx = np.mgrid[:h, :w]
    k = 0
    for _ in range(10000):
        if k == n:
            break
        r = rng.uniform(rmin, rmax)
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        if (lab[d2 <= (r + 2) ** 2] != 0).any():
            continue
        k += 1
        lab[d2 <= r * r] = k
    return lab


def oracle(lab, *, scale=DEFAULT_COORD_SCALE, radius=3.0, n_sigma=1, noise_px=0.0, seed=0):
    """Outputs a perfect network would give: offsets = atanh(centre - coords) on every object pixel,
    a bandwidth of ``radius`` px, seed probability 0.6-0.99 peaking at the centre, 0.01 on background."""
    rng = np.random.default_rng(seed)
    h, w = lab.shape
    coords = coordinate_grid(h, w, scale=scale, dtype=torch.float64).numpy()
    offset = np.zeros((2, h, w))
    prob = np.full((h, w), 0.01)
    for k in range(1, lab.max() + 1):
        m = lab == k
        ys, xs = np.nonzero(m)
        c = np.array([ys.mean(), xs.mean()])
        target = c[:, None] * scale - coords[:, m] + rng.normal(0, noise_px * scale, (2, m.sum()))
        offset[:, m] = np.arctanh(target)
        d2 = (ys - c[0]) ** 2 + (xs - c[1]) ** 2
        prob[m] = 0.6 + 0.39 * np.exp(-d2 / (0.5 * max(d2.max(), 1.0)))
    sigma = np.full((n_sigma, h, w), raw_sigma_for_radius(radius, scale=scale))
    seed_logit = np.log(prob / (1 - prob))[None]
    return ModelOutput(
        offset=torch.tensor(offset, dtype=torch.float32),
        sigma=torch.tensor(sigma, dtype=torch.float32),
        seed=torch.tensor(seed_logit, dtype=torch.float32),
    )


def best_ious(gt, pred):
    """For every gt object, the best IoU with any predicted object."""
    out = []
    for k in range(1, gt.max() + 1):
        g = gt == k
        ious = [(g & (pred == j)).sum() / (g | (pred == j)).sum() for j in np.unique(pred[g]) if j > 0]
        out.append(max(ious, default=0.0))
    return np.array(out)


@pytest.mark.parametrize("n_sigma", [1, 2])
def test_oracle_reproduces_labels_on_odd_non_square_image(n_sigma):
    lab = discs(61, 87, 8, 4, 9, seed=1)
    assert lab.max() == 8
    res = seeded_grouping(oracle(lab, n_sigma=n_sigma), min_size=10)
    assert res.labels.shape == (61, 87) and res.labels.dtype == np.int32
    assert res.count == 8
    assert (best_ious(lab, res.labels) > 0.9).all()
    assert np.array_equal(res.labels > 0, lab > 0)
    assert ((res.scores >= 0) & (res.scores <= 1)).all()
    assert (np.diff(res.scores) <= 0).all()  # labels 1..N in decreasing score order
    assert np.array_equal(res.classes, np.zeros(8, np.int32))


def test_noisy_oracle_and_registry():
    lab = discs(64, 64, 6, 5, 9, seed=2)
    res = GROUPERS.get("seeded")(oracle(lab, noise_px=0.7, radius=4.0), min_size=10)
    assert res.count == lab.max()
    assert (best_ious(lab, res.labels) > 0.9).all()


def brute_force(out, *, min_size, min_unclustered=0.5, fg_threshold=0.5, seed_threshold=0.9):
    """The algorithm with every proposal computed over all foreground pixels (one class), the
    activations computed on the whole image."""
    emb = spatial_embedding(out.offset.double(), scale=DEFAULT_COORD_SCALE).reshape(2, -1).numpy()
    prec = sigma_precision(out.sigma.double()).reshape(out.sigma.shape[0], -1).expand(2, -1).numpy()
    prob = torch.sigmoid(out.seed.float()).numpy()
    fg = np.flatnonzero(prob[0].reshape(-1) > fg_threshold)
    e, p, s = emb[:, fg], prec[:, fg], prob[0].reshape(-1)[fg]
    unclustered, unlabelled = np.ones(fg.size, bool), np.ones(fg.size, bool)
    labels, n = np.zeros(prob[0].size, np.int32), 0
    for j in np.argsort(-s, kind="stable"):
        if s[j] <= seed_threshold or not unclustered[j]:
            continue
        d2 = p[0, j] * (e[0] - e[0, j]) ** 2 + p[1, j] * (e[1] - e[1, j]) ** 2
        proposal = np.flatnonzero(np.exp(-d2) > 0.5)
        share, fresh = unclustered[proposal].mean(), proposal[unlabelled[proposal]]
        unclustered[proposal] = False
        if share >= min_unclustered and fresh.size >= min_size:
            n += 1
            unlabelled[fresh] = False
            labels[fg[fresh]] = n
    return labels.reshape(prob.shape[1:])


@pytest.mark.parametrize("n_sigma", [1, 2])
def test_matches_brute_force_on_random_outputs(n_sigma):
    # The indexed proposal search is exact: same labels as scanning every pixel per proposal.
    gen = torch.Generator().manual_seed(n_sigma)
    h, w = 57, 43
    out = ModelOutput(
        offset=torch.randn(2, h, w, generator=gen) * 0.02,
        sigma=torch.rand(n_sigma, h, w, generator=gen) * 0.3 + 0.5,
        seed=torch.randn(1, h, w, generator=gen) * 3,
    )
    expected = brute_force(out, min_size=3)
    assert expected.max() > 5
    assert np.array_equal(seeded_grouping(out, min_size=3).labels, expected)


def test_matches_brute_force_with_tied_seeds():
    # Seeds rounded to 0.25 logits: many equal scores, taken in increasing pixel order (a stable sort).
    gen = torch.Generator().manual_seed(7)
    h, w = 48, 40
    out = ModelOutput(
        offset=torch.randn(2, h, w, generator=gen) * 0.02,
        sigma=torch.rand(1, h, w, generator=gen) * 0.3 + 0.6,
        seed=(torch.randn(1, h, w, generator=gen) * 3 / 0.25).round() * 0.25,
    )
    expected = brute_force(out, min_size=2)
    assert expected.max() > 5
    assert np.array_equal(seeded_grouping(out, min_size=2).labels, expected)


def test_finite_outputs_whose_sum_overflows_are_accepted_and_nan_is_not():
    # float32 sums beyond 3.4e38 are inf although every value is finite: not an error.
    h, w = 8, 8
    big = torch.full((1, h, w), 3e38)
    out = ModelOutput(offset=torch.zeros(2, h, w), sigma=big, seed=torch.full((1, h, w), -5.0))
    assert seeded_grouping(out).count == 0
    bad = torch.zeros(2, h, w)
    bad[1, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="offset contains NaN"):
        seeded_grouping(ModelOutput(offset=bad, sigma=torch.zeros(1, h, w), seed=torch.zeros(1, h, w)))


def test_empty_seed_map_gives_no_instances():
    out = ModelOutput(
        offset=torch.zeros(2, 9, 13), sigma=torch.zeros(1, 9, 13), seed=torch.full((1, 9, 13), -5.0)
    )
    res = seeded_grouping(out)
    assert res.count == 0 and res.labels.shape == (9, 13) and not res.labels.any()
    assert res.scores.shape == (0,) and res.classes.shape == (0,)


def test_foreground_without_seeds_gives_no_instances():
    # Every pixel is foreground (0.8 > 0.5) but none reaches the seed threshold 0.9.
    out = ModelOutput(
        offset=torch.zeros(2, 8, 8), sigma=torch.zeros(2, 8, 8), seed=torch.full((1, 8, 8), 1.4)
    )
    assert seeded_grouping(out, min_size=1).count == 0


def line_output(seeds, *, radius=5.5, scale=DEFAULT_COORD_SCALE):
    """A 1 x 20 all-foreground image with offsets 0 (e = coords), a bandwidth of ``radius`` px and
    seed probability 0.6 except at ``seeds`` {x: prob}."""
    prob = torch.full((1, 1, 20), 0.6, dtype=torch.float64)
    for x, p in seeds.items():
        prob[0, 0, x] = p
    return ModelOutput(
        offset=torch.zeros(2, 1, 20, dtype=torch.float64),
        sigma=torch.full((1, 1, 20), raw_sigma_for_radius(radius, scale=scale), dtype=torch.float64),
        seed=torch.logit(prob),
    )


def test_min_unclustered_hand_derived():
    # Seed at x = 5 (0.99): proposal |x - 5| < 5.5 -> x = 0..10 (11 px), all new -> instance 1.
    # Seed at x = 14 (0.95): proposal x = 9..19 (11 px), of which 9, 10 are clustered:
    # unclustered share 9/11 = 0.818 -> accepted at min_unclustered 0.5 (pixels 11..19 become
    # instance 2, 9 and 10 keep label 1), rejected at 0.85.
    out = line_output({5: 0.99, 14: 0.95})
    res = seeded_grouping(out, min_size=1, min_unclustered=0.5)
    assert res.labels[0].tolist() == [1] * 11 + [2] * 9
    assert res.scores == pytest.approx([0.99, 0.95])
    res = seeded_grouping(out, min_size=1, min_unclustered=0.85)
    assert res.labels[0].tolist() == [1] * 11 + [0] * 9
    # A seed inside an earlier proposal is never used: x = 8 is clustered by the seed at x = 5.
    res = seeded_grouping(line_output({5: 0.99, 8: 0.98}), min_size=1)
    assert res.count == 1


def test_min_size_and_max_instances():
    out = line_output({5: 0.99, 14: 0.95})
    # The second instance only gets 9 new pixels.
    assert seeded_grouping(out, min_size=10).count == 1
    assert seeded_grouping(out, min_size=12).count == 0
    assert seeded_grouping(out, min_size=1, max_instances=1).count == 1
    lab = discs(48, 48, 5, 4, 7, seed=3)
    assert seeded_grouping(oracle(lab), min_size=5, max_instances=3).count == 3


def test_per_class_seed_maps():
    # Objects 1, 3, 5 are class 0 and 2, 4, 6 class 1: each class's seed channel only fires on its
    # own objects; the returned classes are the seed channels.
    lab = discs(50, 70, 6, 4, 8, seed=4)
    base = oracle(lab)
    seed = torch.full((2, 50, 70), -5.0)
    for k in range(1, 7):
        m = torch.from_numpy(lab == k)
        seed[(k + 1) % 2][m] = base.seed[0][m]
    res = seeded_grouping(ModelOutput(offset=base.offset, sigma=base.sigma, seed=seed), min_size=5)
    assert res.count == 6
    for j in range(1, 7):
        gt = np.bincount(lab[res.labels == j]).argmax()
        assert res.classes[j - 1] == (gt + 1) % 2
    assert (best_ious(lab, res.labels) > 0.9).all()


def test_accepts_grad_and_float64_inputs():
    lab = discs(32, 40, 3, 4, 7, seed=5)
    out = oracle(lab).apply(lambda t: t.double().requires_grad_(True))
    assert seeded_grouping(out, min_size=5).count == 3


def test_bad_input():
    out = oracle(discs(16, 16, 1, 3, 4))
    with pytest.raises(ValueError, match="output.select"):
        seeded_grouping(out.apply(lambda t: t[None]))
    with pytest.raises(ValueError, match="offset, sigma and seed"):
        seeded_grouping(ModelOutput(offset=out.offset, seed=out.seed))
    with pytest.raises(ValueError, match="sigma must be"):
        seeded_grouping(ModelOutput(offset=out.offset, sigma=torch.zeros(3, 16, 16), seed=out.seed))
    with pytest.raises(ValueError, match="thresholds"):
        seeded_grouping(out, seed_threshold=1.5)
    with pytest.raises(ValueError, match="min_size"):
        seeded_grouping(out, min_size=0)
    with pytest.raises(ValueError, match="coord_scale"):
        seeded_grouping(out, coord_scale=-1.0)
    with pytest.raises(ValueError, match="sigma contains NaN"):
        seeded_grouping(ModelOutput(offset=out.offset, sigma=out.sigma * float("nan"), seed=out.seed))


def test_elliptical_bandwidth_axis_order():
    # 5 x 21 foreground, offsets 0, one seed at (2, 10); sigma channel 0 (y) gives a 1.5 px radius,
    # channel 1 (x) 8.5 px. Inside iff (dy / 1.5)^2 + (dx / 8.5)^2 < 1:
    #   dy = 0: |dx| < 8.5 -> x = 2..18 (17 px); dy = +-1: |dx| < 8.5 * sqrt(1 - 1/2.25) = 6.34 -> x = 4..16;
    #   dy = +-2: none. Total 17 + 2 * 13 = 43 px.
    prob = torch.full((1, 5, 21), 0.6, dtype=torch.float64)
    prob[0, 2, 10] = 0.95
    sigma = torch.stack([
        torch.full((5, 21), raw_sigma_for_radius(1.5)), torch.full((5, 21), raw_sigma_for_radius(8.5))
    ]).double()
    out = ModelOutput(offset=torch.zeros(2, 5, 21, dtype=torch.float64), sigma=sigma, seed=torch.logit(prob))
    res = seeded_grouping(out, min_size=1)
    expected = np.zeros((5, 21), np.int32)
    expected[2, 2:19] = 1
    expected[[1, 3], 4:17] = 1
    assert np.array_equal(res.labels, expected)
    assert res.labels.sum() == 43
