"""The batched spatial loss against the frozen per-image implementation it replaced.

With ``lovasz_tol = 0`` both are exact, so values and gradients agree to float rounding. With a
tolerance both leave out pixels whose hinge error is at most ``tol`` (the old code a chunk-wide
number of them, the new one exactly those), so each instance's term is within ``tol`` of the exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.data.synth import synth_nuclei
from pixelgroup.losses.spatial import SpatialEmbeddingLoss, spatial_embedding_loss
from pixelgroup.ops.coords import raw_sigma_for_radius
from pixelgroup.types import ModelOutput

from .spatial_reference import reference_spatial_loss
from .test_spatial import KEYS, blobs, random_output

HEADS = ("offset", "sigma", "seed")


def touching_batch(h: int = 24, w: int = 20) -> torch.Tensor:
    """``(5, h, w)``: blobs; touching rectangles with ignore pixels; empty; one-pixel instances;
    all ignore."""
    touching = torch.zeros(h, w, dtype=torch.long)
    touching[2:12, 2:9], touching[2:12, 9:15], touching[12:20, 2:15] = 4, 9, 2  # share edges
    touching[0:3, :] = -1
    touching[15, 5:8] = -1  # ignore inside an instance
    dots = torch.zeros(h, w, dtype=torch.long)
    dots[0, 0], dots[5, 7], dots[23, 19], dots[10, 10:12] = 1, 2, 3, 4
    big = torch.zeros(h, w, dtype=torch.long)
    big[: blobs(h, w).shape[0]] = blobs(h, w)
    return torch.stack([big, touching, torch.zeros(h, w, dtype=torch.long), dots, torch.full((h, w), -1)])


def with_grad(out: ModelOutput) -> ModelOutput:
    return out.apply(lambda t: t.detach().clone().requires_grad_(True))


def terms_and_grads(fn, out: ModelOutput, lab: torch.Tensor, **kw) -> tuple[dict, list[torch.Tensor]]:
    out = with_grad(out)
    terms = fn(out, lab, **kw)
    terms["total"].backward()
    return {k: v.detach() for k, v in terms.items()}, [getattr(out, h).grad for h in HEADS]


def assert_same(out: ModelOutput, lab: torch.Tensor, *, rel: float, **kw) -> None:
    new, new_grads = terms_and_grads(spatial_embedding_loss, out, lab, **kw)
    old, old_grads = terms_and_grads(reference_spatial_loss, out, lab, **kw)
    for key in KEYS:
        assert new[key].item() == pytest.approx(old[key].item(), rel=rel, abs=rel), key
    for head, a, b in zip(HEADS, new_grads, old_grads):
        assert torch.allclose(a, b, rtol=rel, atol=rel * b.abs().max().item()), head


@pytest.mark.parametrize("center", ["medoid", "centroid", "mean"])
@pytest.mark.parametrize("n_sigma", [1, 2])
def test_exact_loss_matches_reference_on_random_outputs(center, n_sigma):
    lab = touching_batch()
    out = random_output(lab.shape[0], 24, 20, n_sigma=n_sigma, seed=20, dtype=torch.float64)
    assert_same(out, lab, rel=1e-9, coord_scale=1 / 16, center=center, lovasz_tol=0.0)


def test_exact_loss_matches_reference_multiclass():
    # Three seed channels; instance classes by majority, one instance of unknown class (-1 only).
    lab = touching_batch()
    classes = torch.zeros_like(lab)
    classes[lab == 4], classes[lab == 9], classes[lab == 2] = 2, 1, 0
    classes[1, 2:6, 2:9] = 1  # minority vote inside instance 4 of image 1
    classes[3][lab[3] == 3] = -1  # a one-pixel instance of unknown class
    out = random_output(lab.shape[0], 24, 20, k=3, seed=21, dtype=torch.float64)
    assert_same(out, lab, rel=1e-9, classes=classes, coord_scale=1 / 16, lovasz_tol=0.0)


def nuclei_batch(n: int = 4, size: int = 64) -> torch.Tensor:
    """Synthetic fluorescence nuclei (many touching), the kind of crop training sees."""
    rng = np.random.default_rng(3)
    return torch.stack([torch.from_numpy(synth_nuclei(rng, size)[1].astype(np.int64)) for _ in range(n)])


def trained_like_output(lab: torch.Tensor, *, scale: float, seed: int) -> ModelOutput:
    """Offsets roughly towards each instance's centroid, plus noise; a bandwidth of a few pixels."""
    b, h, w = lab.shape
    gen = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    offset = torch.zeros(b, 2, h, w)
    for i in range(b):
        for k in lab[i].unique():
            if k > 0:
                m = lab[i] == k
                offset[i, 0][m] = 0.7 * (ys[m].mean() - ys[m]) * scale
                offset[i, 1][m] = 0.7 * (xs[m].mean() - xs[m]) * scale
    offset += 0.01 * torch.randn(offset.shape, generator=gen)
    sigma = raw_sigma_for_radius(6.0, scale=scale) + 0.05 * torch.randn(b, 2, h, w, generator=gen)
    seed_logits = torch.randn(b, 1, h, w, generator=gen)
    return ModelOutput(offset=torch.atanh(offset.clamp(-0.9, 0.9)), sigma=sigma, seed=seed_logits)


def test_default_tolerance_float32_on_nuclei_is_within_tol_of_exact():
    lab = nuclei_batch()
    lab[0, :5] = -1
    scale = 1 / 256
    out = trained_like_output(lab, scale=scale, seed=22)
    exact = reference_spatial_loss(out, lab, coord_scale=scale, lovasz_tol=0.0)
    new = spatial_embedding_loss(out, lab, coord_scale=scale, lovasz_tol=1e-3)
    old = reference_spatial_loss(out, lab, coord_scale=scale, lovasz_tol=1e-3)
    rounding = 1e-4 * exact["instance"].item()  # float32 sums over thousands of pixels
    assert exact["instance"].item() - 1e-3 - rounding <= new["instance"].item() <= exact["instance"].item() + rounding
    assert new["instance"].item() == pytest.approx(old["instance"].item(), abs=1e-3)
    for key in ("var", "seed"):
        assert new[key].item() == pytest.approx(old[key].item(), rel=1e-5), key
    # and the exact float32 loss, with its gradients, as the old one to float32 rounding
    assert_same(out, lab, rel=2e-4, coord_scale=scale, lovasz_tol=0.0)


def test_default_tolerance_gradients_close_to_old():
    lab = nuclei_batch(n=2)
    scale = 1 / 256
    out = trained_like_output(lab, scale=scale, seed=23)
    _, new = terms_and_grads(spatial_embedding_loss, out, lab, coord_scale=scale)
    _, old = terms_and_grads(reference_spatial_loss, out, lab, coord_scale=scale)
    for head, a, b in zip(HEADS, new, old):
        cos = torch.nn.functional.cosine_similarity(a.reshape(-1), b.reshape(-1), dim=0).item()
        assert cos > 0.999, head


def test_module_accepts_channels_last_outputs():
    lab = nuclei_batch(n=2)
    out = trained_like_output(lab, scale=1 / 256, seed=24)
    cl = out.apply(lambda t: t.contiguous(memory_format=torch.channels_last))
    loss = SpatialEmbeddingLoss()
    a, b = loss(out, {"instances": lab}), loss(cl, {"instances": lab})
    for key in KEYS:
        assert a[key].item() == pytest.approx(b[key].item(), rel=1e-6), key


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    lab = torch.cat([nuclei_batch(n=2), touching_batch(64, 64)[:3]])
    out = trained_like_output(lab, scale=1 / 256, seed=25)
    for center in ("medoid", "centroid", "mean"):
        cpu, cpu_grads = terms_and_grads(spatial_embedding_loss, out, lab, center=center)
        gpu, gpu_grads = terms_and_grads(spatial_embedding_loss, out.apply(lambda t: t.cuda()), lab.cuda(),
                                         center=center)
        for key in KEYS:
            assert gpu[key].item() == pytest.approx(cpu[key].item(), rel=1e-4, abs=1e-6), (center, key)
        for a, b in zip(gpu_grads, cpu_grads):
            assert torch.allclose(a.cpu(), b, rtol=1e-3, atol=1e-3 * b.abs().max().item()), center


def test_medoids_identical_to_reference():
    # Bit for bit, ties included: rectangles (many equally central pixels) and random pixel sets.
    from pixelgroup.ops.medoids import medoids

    from .spatial_reference import _medoids as reference_medoids

    gen = torch.Generator().manual_seed(1)
    for trial in range(40):
        n = int(torch.randint(1, 30, (1,), generator=gen))
        if trial % 2:
            sides = [(k % 9 + 1, (k + trial) % 7 + 1) for k in range(n)]
            pix = torch.cat([torch.stack(torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij"), -1)
                             .reshape(-1, 2) + 10 * k for k, (h, w) in enumerate(sides)])
            counts = torch.tensor([h * w for h, w in sides])
        else:
            counts = torch.randint(1, 500, (n,), generator=gen)
            pix = torch.randint(0, 64, (int(counts.sum()), 2), generator=gen)
        owner = torch.repeat_interleave(torch.arange(n), counts)
        assert torch.equal(medoids(pix, owner, counts), reference_medoids(pix, owner, counts)), trial
