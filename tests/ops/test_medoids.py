from __future__ import annotations

import torch

from pixelgroup.ops.medoids import medoids


def test_medoid_of_l_shape():
    # L-shape: bar (0..5, 0), foot (5, 1..3). Summed distances (by hand):
    #   (5, 0): 5+4+3+2+1 + 1+2+3 = 21
    #   (4, 0): 4+3+2+1 + 1 + sqrt2+sqrt5+sqrt10 = 11 + 6.81 = 17.81
    #   (3, 0): 3+2+1+1+2 + sqrt5+sqrt8+sqrt13 = 9 + 8.67 = 17.67      <- minimum
    #   (2, 0): 2+1+1+2+3 + sqrt10+sqrt13+sqrt18 = 9 + 11.00 = 20.0
    # so the medoid is (3, 0), while the centroid (3.89, 0.67) lies off the shape.
    ys = torch.tensor([0, 1, 2, 3, 4, 5, 5, 5, 5])
    xs = torch.tensor([0, 0, 0, 0, 0, 0, 1, 2, 3])
    pts = torch.stack([ys, xs], 1)
    med = medoids(pts, torch.zeros(9, dtype=torch.long), torch.tensor([9]))[0]
    dist = torch.cdist(pts.double(), pts.double()).sum(1)
    assert tuple(med.tolist()) == tuple(pts[dist.argmin()].double().tolist()) == (3.0, 0.0)


def test_medoid_large_instance_uses_deterministic_subset():
    # A 48 x 48 square (2304 px > MEDOID_MAX_POINTS references): every pixel is still a candidate,
    # so the result is one of the four exact medoids (23 or 24, 23 or 24), and it shifts exactly
    # with the instance. A second, small instance in the same call stays exact.
    ys, xs = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
    square = torch.stack([ys.reshape(-1), xs.reshape(-1)], 1)
    bar = torch.tensor([[60, 0], [60, 1], [60, 2], [60, 3], [60, 4]])
    pts = torch.cat([square, bar])
    owner = torch.cat([torch.zeros(2304, dtype=torch.long), torch.ones(5, dtype=torch.long)])
    counts = torch.tensor([2304, 5])
    a = medoids(pts, owner, counts)
    b = medoids(pts + 7, owner, counts)
    assert torch.equal(a + 7, b)
    assert (a[0] - 23.5).abs().max().item() == 0.5
    assert a[1].tolist() == [60.0, 2.0]
