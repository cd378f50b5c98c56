"""Tests of the spatial-embedding loss (Neven et al. 2019)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelgroup.losses.base import LOSSES
from pixelgroup.losses.lovasz import lovasz_hinge
from pixelgroup.losses.spatial import SpatialEmbeddingLoss, spatial_embedding_loss
from pixelgroup.ops.coords import coordinate_grid, raw_sigma_for_radius, sigma_precision
from pixelgroup.ops.medoids import medoids
from pixelgroup.types import ModelOutput

KEYS = {"instance", "var", "seed", "total"}


def random_output(b, h, w, *, n_sigma=2, k=1, seed=0, dtype=torch.float32, grad=False):
    gen = torch.Generator().manual_seed(seed)

    def rnd(c, scale=1.0, shift=0.0):
        return (torch.randn(b, c, h, w, generator=gen, dtype=dtype) * scale + shift).requires_grad_(grad)

    return ModelOutput(offset=rnd(2, 0.05), sigma=rnd(n_sigma, 0.1, 0.6), seed=rnd(k))


def blobs(h=16, w=16):
    """Three rectangles, an L-shape, background and an ignore strip."""
    lab = torch.zeros(h, w, dtype=torch.long)
    lab[1:5, 1:7] = 1
    lab[8:14, 2:4] = 2
    lab[12:14, 4:9] = 2  # L-shape: medoid != centroid
    lab[6:11, 9:15] = 3
    lab[0, 10:16] = -1
    return lab


def oracle_output(lab, *, scale, center="centroid", radius_px=1.0, dtype=torch.float64):
    """Offsets pointing exactly at each instance's centre, background pointing 1 unit away, a narrow
    bandwidth and the seed equal to the membership (1 on instances, 0 elsewhere)."""
    h, w = lab.shape
    grid = coordinate_grid(h, w, scale=scale, dtype=dtype)
    offset = torch.full((2, h, w), 20.0, dtype=dtype)  # tanh -> 1 unit = 1/scale px away
    seed = torch.full((1, h, w), -30.0, dtype=dtype)
    for k in lab.unique():
        if k <= 0:
            continue
        m = lab == k
        ys, xs = torch.nonzero(m, as_tuple=True)
        if center == "centroid":
            c = torch.stack([ys.double().mean(), xs.double().mean()])
        else:
            pix = torch.stack([ys, xs], 1)
            c = medoids(pix, torch.zeros_like(ys), torch.tensor([ys.numel()]))[0].double()
        offset[:, m] = torch.atanh(c[:, None].to(dtype) * scale - grid[:, m])
        seed[:, m] = 30.0
    sigma = torch.full((1, 1, h, w), raw_sigma_for_radius(radius_px, scale=scale), dtype=dtype)
    return ModelOutput(offset=offset[None], sigma=sigma, seed=seed[None])


def test_smoke_shapes_and_registry():
    out = random_output(2, 16, 16)
    lab = torch.stack([blobs(), torch.zeros(16, 16, dtype=torch.long)])
    terms = spatial_embedding_loss(out, lab)
    assert set(terms) == KEYS
    assert all(v.shape == () and torch.isfinite(v) for v in terms.values())
    module = LOSSES.get("spatial")(center="centroid", w_var=3.0)
    assert isinstance(module, SpatialEmbeddingLoss)
    via_module = module(out, {"instances": lab})
    direct = spatial_embedding_loss(out, lab, center="centroid", w_var=3.0)
    for key in KEYS:
        assert torch.equal(via_module[key], direct[key])


def test_hand_derived_values():
    # 1 x 3 image, labels [1, 0, ignore], coord_scale 1, offsets 0, raw sigma 0 -> precision 1.
    # Centroid of instance 1 = pixel 0 = (0, 0). phi(px0) = 1, phi(px1) = exp(-1) (1 unit away).
    # Lovász: logits 2 phi - 1 = [1, 2/e - 1]; errors = [0, 2/e]; sorted [2/e (bg), 0 (fg)];
    # gts = 1, intersection = [1, 0], union = [2, 2], grad = [0.5, 0.5] -> instance = 1/e.
    # var = 0 (one pixel). seed = sigmoid(0) = 0.5: (bg 0.5^2 + 10 * (0.5 - 1)^2) / 2 valid = 1.375.
    out = ModelOutput(
        offset=torch.zeros(1, 2, 1, 3, dtype=torch.float64),
        sigma=torch.zeros(1, 1, 1, 3, dtype=torch.float64),
        seed=torch.zeros(1, 1, 1, 3, dtype=torch.float64),
    )
    lab = torch.tensor([[[1, 0, -1]]])
    terms = spatial_embedding_loss(out, lab, coord_scale=1.0, center="centroid")
    assert terms["instance"].item() == pytest.approx(1 / math.e)
    assert terms["var"].item() == 0.0
    assert terms["seed"].item() == pytest.approx(1.375)
    assert terms["total"].item() == pytest.approx(1 / math.e + 1.375)
    # Two seed channels, pixel classes [1, 0, 0]: the instance trains channel 1 (10 * 0.25) and
    # channel 0 regresses 0 there (0.25); the background pixel regresses both to 0 (2 * 0.25).
    # seed = (2.5 + 0.25 + 0.5) / 2 = 1.625.
    out2 = ModelOutput(offset=out.offset, sigma=out.sigma, seed=torch.zeros(1, 2, 1, 3, dtype=torch.float64))
    terms2 = spatial_embedding_loss(out2, lab, classes=torch.tensor([[[1, 0, 0]]]), coord_scale=1.0)
    assert terms2["seed"].item() == pytest.approx(1.625)


def reference_loss(out, lab, *, scale, center, fw=10.0, w=(1.0, 10.0, 1.0)):
    """Straightforward per-instance loop over the formulas (K = 1), for comparison."""
    totals = {"instance": [], "var": [], "seed": []}
    for b in range(lab.shape[0]):
        valid = lab[b] >= 0
        e = coordinate_grid(*lab.shape[1:], scale=scale, dtype=out.offset.dtype) + torch.tanh(out.offset[b])
        seed = torch.sigmoid(out.seed[b, 0])
        ids = [int(i) for i in lab[b].unique() if i > 0]
        inst, var = [], []
        seed_sum = (seed[valid & (lab[b] == 0)] ** 2).sum()
        for i in ids:
            m = lab[b] == i
            s = out.sigma[b][:, m]  # (S, n)
            mean = s.mean(1)
            var.append(((s - mean[:, None].detach()) ** 2).mean())
            if center == "mean":
                c = e[:, m].mean(1)
            else:
                ys, xs = torch.nonzero(m, as_tuple=True)
                c = torch.stack([ys, xs]).to(e.dtype).mean(1) * scale
            prec = sigma_precision(mean)
            phi = torch.exp(-(((e - c[:, None, None]) ** 2) * prec[:, None, None]).sum(0))
            inst.append(lovasz_hinge(2 * phi[valid] - 1, m[valid]))
            seed_sum = seed_sum + fw * ((seed[m] - phi[m].detach()) ** 2).sum()
        zero = torch.zeros((), dtype=e.dtype)
        totals["instance"].append(torch.stack(inst).mean() if ids else zero)
        totals["var"].append(torch.stack(var).mean() if ids else zero)
        totals["seed"].append(seed_sum / valid.sum())
    res = {k: torch.stack(v).mean() for k, v in totals.items()}
    res["total"] = w[0] * res["instance"] + w[1] * res["var"] + w[2] * res["seed"]
    return res


@pytest.mark.parametrize("center", ["centroid", "mean"])
@pytest.mark.parametrize("n_sigma", [1, 2])
def test_matches_reference_loop(center, n_sigma):
    lab = torch.stack([blobs(), torch.zeros(16, 16, dtype=torch.long), blobs().flip(1)])
    out = random_output(3, 16, 16, n_sigma=n_sigma, seed=3, dtype=torch.float64)
    ours = spatial_embedding_loss(out, lab, coord_scale=1 / 16, center=center)
    ref = reference_loss(out, lab, scale=1 / 16, center=center)
    for key in KEYS:
        assert ours[key].item() == pytest.approx(ref[key].item(), rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("center", ["medoid", "mean"])
def test_gradcheck_float64(center):
    # The seed target phi.detach() is a deliberate stop-gradient, so the finite-difference Jacobian of
    # the total wrt offset/sigma differs from autograd; check offset/sigma on instance + var (w_seed 0)
    # and the seed on the total with offset/sigma fixed. (var's detached mean does not matter: the
    # deviations from a mean sum to zero.)
    lab = blobs(8, 8)
    lab[lab == 3] = 0
    out = random_output(1, 8, 8, seed=4, dtype=torch.float64)

    def loss(offset, sigma, seed, **kw):
        out = ModelOutput(offset=offset, sigma=sigma, seed=seed)
        return spatial_embedding_loss(out, lab[None], coord_scale=1 / 8, center=center, **kw)["total"]

    def grad_input(t):
        return t.clone().requires_grad_(True)

    assert torch.autograd.gradcheck(
        lambda o, s: loss(o, s, out.seed, w_seed=0.0),
        (grad_input(out.offset), grad_input(out.sigma)),
    )
    assert torch.autograd.gradcheck(lambda sd: loss(out.offset, out.sigma, sd), (grad_input(out.seed),))


@pytest.mark.parametrize("center", ["centroid", "medoid"])
def test_oracle_is_near_zero_and_random_is_large(center):
    lab = blobs(24, 20)
    scale = 1 / 32
    terms = spatial_embedding_loss(oracle_output(lab, scale=scale, center=center), lab[None],
                                   coord_scale=scale, center=center)
    assert terms["instance"].item() < 1e-6
    assert terms["total"].item() < 1e-6
    rnd = random_output(1, 24, 20, seed=5)
    rnd = spatial_embedding_loss(rnd, lab[None], coord_scale=scale, center=center)
    assert rnd["instance"].item() > 0.5 and rnd["total"].item() > 1.0


def test_oracle_for_centroids_is_not_an_oracle_for_medoids():
    # the L-shape of tests/ops/test_medoids.py: medoid and centroid differ, so the loss sees it
    lab = blobs(24, 20)
    out = oracle_output(lab, scale=1 / 32, center="centroid")
    wrong = spatial_embedding_loss(out, lab[None], coord_scale=1 / 32, center="medoid")
    assert wrong["instance"].item() > 0.1


def test_label_permutation_invariance():
    lab = blobs()
    perm = lab.clone()
    for old, new in ((1, 7), (2, 1), (3, 4)):
        perm[lab == old] = new
    out = random_output(1, 16, 16, seed=6, dtype=torch.float64)
    a = spatial_embedding_loss(out, lab[None])
    b = spatial_embedding_loss(out, perm[None])
    for key in KEYS:
        assert a[key].item() == pytest.approx(b[key].item(), rel=1e-12)


def place(window_out, window_lab, canvas, pos, seed):
    """Put a window of outputs and labels into a canvas of random outputs labelled ignore."""
    h, w = window_lab.shape
    out = random_output(1, *canvas, seed=seed, dtype=torch.float64)
    lab = torch.full(canvas, -1, dtype=torch.long)
    y, x = pos
    lab[y : y + h, x : x + w] = window_lab
    for name in ("offset", "sigma", "seed"):
        getattr(out, name)[0, :, y : y + h, x : x + w] = getattr(window_out, name)[0]
    return out, lab[None]


@pytest.mark.parametrize("center", ["medoid", "centroid", "mean"])
def test_translation_invariance_and_ignore_has_no_effect(center):
    # The same window (outputs + labels) at two positions of canvases whose other pixels are ignored
    # and hold different random outputs: every term is identical.
    win_lab = blobs()
    win_lab[win_lab < 0] = 0
    win = random_output(1, 16, 16, seed=7, dtype=torch.float64)
    a = spatial_embedding_loss(*place(win, win_lab, (30, 26), (2, 3), seed=8), center=center)
    b = spatial_embedding_loss(*place(win, win_lab, (30, 26), (11, 9), seed=9), center=center)
    for key in KEYS:
        assert a[key].item() == pytest.approx(b[key].item(), rel=1e-9), key


def test_ignore_pixels_get_no_gradient():
    lab = blobs()
    out = random_output(1, 16, 16, seed=10, dtype=torch.float64, grad=True)
    spatial_embedding_loss(out, lab[None], center="mean")["total"].backward()
    ignore = lab < 0
    for t in (out.offset, out.sigma, out.seed):
        assert t.grad[0][:, ignore].abs().max().item() == 0.0
        assert t.grad[0][:, ~ignore].abs().max().item() > 0.0


def test_empty_image_trains_seed_only():
    out = random_output(2, 8, 8, seed=11, grad=True)
    terms = spatial_embedding_loss(out, torch.zeros(2, 8, 8, dtype=torch.long))
    # seed = mean over pixels of sigmoid(seed)^2 (every pixel is background), averaged over images.
    expected = (torch.sigmoid(out.seed) ** 2).mean()
    assert terms["instance"].item() == 0.0 and terms["var"].item() == 0.0
    assert terms["seed"].item() == pytest.approx(expected.item(), rel=1e-6)
    terms["total"].backward()
    assert out.seed.grad.abs().sum() > 0 and out.offset.grad is not None


def test_all_ignore_and_one_pixel_instances_are_finite():
    out = random_output(1, 8, 8, seed=12, grad=True)
    terms = spatial_embedding_loss(out, torch.full((1, 8, 8), -1, dtype=torch.long))
    assert all(v.item() == 0.0 for v in terms.values())
    terms["total"].backward()
    assert torch.equal(out.sigma.grad, torch.zeros_like(out.sigma))
    lab = torch.zeros(1, 8, 8, dtype=torch.long)
    lab[0, 1, 1], lab[0, 5, 6], lab[0, 7, 0] = 1, 2, 3
    out = random_output(1, 8, 8, seed=13, grad=True)
    for center in ("medoid", "centroid", "mean"):
        terms = spatial_embedding_loss(out, lab, center=center)
        assert all(torch.isfinite(v) for v in terms.values())
        terms["total"].backward()
        assert all(torch.isfinite(t.grad).all() for t in (out.offset, out.sigma, out.seed))


def test_huge_sigma_and_half_precision_do_not_overflow():
    out = random_output(1, 8, 8, seed=14, grad=True)
    with torch.no_grad():
        out.sigma.fill_(50.0)
    terms = spatial_embedding_loss(out, blobs(8, 8)[None])
    terms["total"].backward()
    assert torch.isfinite(terms["total"]) and torch.isfinite(out.offset.grad).all()
    # bfloat16 outputs (mixed precision) are upcast: same terms as float32 up to rounding of inputs
    out = random_output(1, 8, 8, seed=15)
    half = out.apply(lambda t: t.to(torch.bfloat16))
    a = spatial_embedding_loss(half, blobs(8, 8)[None])
    b = spatial_embedding_loss(half.apply(lambda t: t.float()), blobs(8, 8)[None])
    assert a["total"].dtype == torch.float32 and a["total"].item() == pytest.approx(b["total"].item())


def test_bad_input():
    out = random_output(1, 8, 8)
    lab = torch.zeros(1, 8, 8, dtype=torch.long)
    with pytest.raises(ValueError, match="offset, sigma and seed"):
        spatial_embedding_loss(ModelOutput(offset=out.offset), lab)
    with pytest.raises(ValueError, match=r"instances \(1, 8, 9\)"):
        spatial_embedding_loss(out, torch.zeros(1, 8, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="integer label"):
        spatial_embedding_loss(out, lab.float())
    with pytest.raises(ValueError, match="sigma must be"):
        bad = ModelOutput(offset=out.offset, sigma=torch.zeros(1, 3, 8, 8), seed=out.seed)
        spatial_embedding_loss(bad, lab)
    with pytest.raises(ValueError, match="center must be one of"):
        spatial_embedding_loss(out, lab, center="median")
    with pytest.raises(ValueError, match="coord_scale"):
        spatial_embedding_loss(out, lab, coord_scale=0.0)
    two = random_output(1, 8, 8, k=2)
    with pytest.raises(ValueError, match="classes"):
        spatial_embedding_loss(two, lab)
    lab[0, 2, 2] = 1
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        spatial_embedding_loss(two, lab, classes=torch.full((1, 8, 8), 2))
    with pytest.raises(ValueError, match="center must be one of"):
        SpatialEmbeddingLoss(center="median")


def test_instance_term_prefers_the_right_bandwidth():
    # With offsets exactly on the centre, a bandwidth that separates the objects beats one so wide
    # that every embedding belongs to every instance.
    lab = blobs(24, 20)
    out = oracle_output(lab, scale=1 / 32)
    narrow = spatial_embedding_loss(out, lab[None], coord_scale=1 / 32, center="centroid")
    out.sigma.fill_(raw_sigma_for_radius(1000.0, scale=1 / 32))
    wide = spatial_embedding_loss(out, lab[None], coord_scale=1 / 32, center="centroid")
    assert wide["instance"].item() > 0.5 > narrow["instance"].item()
    assert np.isclose(torch.exp(-sigma_precision(out.sigma[0, 0, 0, 0]) * (1000 / 32) ** 2).item(), 0.5)
