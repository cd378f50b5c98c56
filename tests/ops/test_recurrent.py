from __future__ import annotations

import math

import pytest
import torch

from pixelgroup.ops.recurrent import RecurrentMeanShift, mean_shift_step


def test_shapes_and_unit_norm():
    x = torch.randn(2, 30, 4)
    out = RecurrentMeanShift(bandwidth=0.5, iterations=3)(x)
    assert len(out) == 4
    assert all(o.shape == x.shape for o in out)
    for o in out:
        assert torch.allclose(o.norm(dim=-1), torch.ones(2, 30), atol=1e-5)
    single = RecurrentMeanShift(bandwidth=0.5, iterations=2)(x[0])
    assert len(single) == 3 and single[-1].shape == (30, 4)
    assert torch.allclose(single[-1], out[2][0], atol=1e-6)  # batched == one by one


def test_zero_iterations_returns_normalised_input():
    x = torch.randn(10, 3)
    out = RecurrentMeanShift(iterations=0)(x)
    assert len(out) == 1
    assert torch.allclose(out[0], torch.nn.functional.normalize(x, dim=1))
    raw = RecurrentMeanShift(iterations=0, kernel="gaussian")(x)
    assert torch.equal(raw[0], x)


def test_hand_values_vmf_two_points():
    # h = 1, x1 = (1, 0), x2 = (0, 1): K = [[e, 1], [1, e]] (exp(x.y / h^2) up to the factor e^-1)
    # x1' = normalize((e * x1 + 1 * x2) / (e + 1)) = (e, 1) / sqrt(e^2 + 1)
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    y = mean_shift_step(x, bandwidth=1.0, kernel="vmf")
    e = math.e
    expected = torch.tensor([[e, 1.0], [1.0, e]], dtype=torch.float64) / math.sqrt(e * e + 1)
    assert torch.allclose(y, expected)


def test_hand_values_gaussian_1d():
    # h = 1, points 0 and 1: K_01 = exp(-1/2), K_00 = 1 -> x0' = exp(-1/2) / (1 + exp(-1/2)),
    # x1' = 1 / (1 + exp(-1/2)) (no normalisation for the Gaussian kernel)
    x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
    y = mean_shift_step(x, bandwidth=1.0, kernel="gaussian")
    k = math.exp(-0.5)
    assert y[0, 0].item() == pytest.approx(k / (1 + k))
    assert y[1, 0].item() == pytest.approx(1 / (1 + k))


def test_gaussian_and_vmf_agree_on_the_sphere_for_one_step():
    # On unit vectors exp((x.y - 1) / h^2) = exp(-||x - y||^2 / (2 h^2)): same weights, and the
    # vMF step is the Gaussian step re-normalised.
    x = torch.nn.functional.normalize(torch.randn(20, 5, dtype=torch.float64), dim=1)
    g = mean_shift_step(x, bandwidth=0.4, kernel="gaussian")
    v = mean_shift_step(x, bandwidth=0.4, kernel="vmf")
    assert torch.allclose(torch.nn.functional.normalize(g, dim=1), v)


def test_clusters_collapse_to_their_modes():
    g = torch.Generator().manual_seed(0)
    centres = torch.eye(3)
    labels = torch.arange(60) % 3
    x = centres[labels] + 0.1 * torch.randn(60, 3, generator=g)
    out = RecurrentMeanShift(bandwidth=0.3, iterations=10)(x)
    final = out[-1]
    for k in range(3):
        members = final[labels == k]
        assert (members - members.mean(0)).norm(dim=1).max() < 1e-3  # collapsed
    assert (final[labels == 0].mean(0) @ final[labels == 1].mean(0)).abs() < 0.2  # still apart


def test_permutation_equivariance():
    x = torch.randn(25, 4)
    perm = torch.randperm(25)
    ms = RecurrentMeanShift(bandwidth=0.5, iterations=3)
    assert torch.allclose(ms(x)[-1][perm], ms(x[perm])[-1], atol=1e-6)


def test_numerically_stable_for_small_bandwidth():
    x = torch.randn(50, 8)
    out = RecurrentMeanShift(bandwidth=0.01, iterations=3)(x)
    assert all(torch.isfinite(o).all() for o in out)
    gauss = RecurrentMeanShift(bandwidth=0.01, iterations=3, kernel="gaussian")(10 * x)
    assert all(torch.isfinite(o).all() for o in gauss)


@pytest.mark.parametrize("kernel", ["vmf", "gaussian"])
def test_gradcheck_float64(kernel):
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    ms = RecurrentMeanShift(bandwidth=0.7, iterations=2, kernel=kernel)
    assert torch.autograd.gradcheck(lambda p: ms(p)[-1], (x,))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"bandwidth": 0.0}, "bandwidth"), ({"iterations": -1}, "iterations"), ({"kernel": "flat"}, "kernel")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RecurrentMeanShift(**kwargs)


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(N, E\)"):
        RecurrentMeanShift()(torch.randn(5))
    with pytest.raises(ValueError, match="float"):
        RecurrentMeanShift()(torch.ones(5, 2, dtype=torch.int64))
