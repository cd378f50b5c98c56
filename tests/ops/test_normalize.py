"""The torch percentile normalisation: numpy's percentiles, from either end of the partial sort."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.ops.normalize import _percentile, percentile_normalize


@pytest.mark.parametrize("n", [1, 2, 3, 10, 1001])
@pytest.mark.parametrize("q", [0.0, 1.0, 37.5, 50.0, 99.8, 100.0])
def test_percentile_equals_numpy(n, q):
    # q < 50 takes the smallest values, q > 50 the largest: both branches, and the ends of the range.
    values = np.random.default_rng(n).normal(size=(n, 3)).astype(np.float32)
    got = _percentile(torch.from_numpy(values), q)
    assert got.dtype == torch.float64 and got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), np.percentile(values.astype(np.float64), q, axis=0), rtol=0, atol=1e-12)


def test_percentile_with_ties_is_exact():
    # 1..5 each 20 times: the 1 % point is 1, the 99.8 % point 5, the median 3 (by hand).
    values = torch.arange(1.0, 6.0).repeat_interleave(20)[torch.randperm(100)][:, None]
    assert [_percentile(values, q).item() for q in (1.0, 50.0, 99.8)] == [1.0, 3.0, 5.0]


def test_percentile_normalize_maps_the_percentiles_to_0_and_1():
    image = torch.from_numpy(np.random.default_rng(0).gamma(2.0, 100.0, size=(64, 48, 2)).astype(np.float32))
    out = percentile_normalize(image, 1.0, 99.8)
    for c in range(2):
        lo, hi = np.percentile(out[..., c].numpy(), [1.0, 99.8])
        assert lo == pytest.approx(0.0, abs=1e-6) and hi == pytest.approx(1.0, abs=1e-6)
