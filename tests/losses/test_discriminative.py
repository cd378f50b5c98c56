from __future__ import annotations

import pytest
import torch

from pixelgroup.losses.base import LOSSES
from pixelgroup.losses.discriminative import DiscriminativeLoss, discriminative_loss
from pixelgroup.types import ModelOutput


def _two_instances() -> tuple[torch.Tensor, torch.Tensor]:
    """A 4x4 image: instance 1 top-left 2x2, instance 2 top-right 2x2, background bottom half."""
    inst = torch.tensor([[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0], [0, 0, 0, 0]])
    emb = torch.tensor(
        [[0.0, 0.0, 1.0, 1.0], [0.0, 2.0, 1.0, 1.0], [100.0, -50.0, 7.0, 9.0], [3.0, 3.0, 3.0, 3.0]]
    )
    return emb[None, None], inst[None]  # (1, 1, 4, 4), (1, 4, 4)


def _random_case(seed: int = 0, b: int = 2, e: int = 3, side: int = 8, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, e, side, side, generator=g, dtype=dtype)
    inst = torch.randint(-1, 4, (b, side, side), generator=g)
    return emb, inst


def test_hand_derived_two_instances():
    # 1-D embedding, delta_v = 0.5, delta_d = 1.5 (defaults); background values must not matter.
    # instance 1: values {0, 0, 0, 2} -> mu_1 = 0.5; |mu - x| = 0.5, 0.5, 0.5, 1.5
    #   hinge (d - 0.5)_+^2 = 0, 0, 0, 1 -> mean 1/4
    # instance 2: values {1, 1, 1, 1} -> mu_2 = 1, all distances 0 -> 0
    # var = (1/4 + 0) / 2 = 0.125
    # dist: |mu_1 - mu_2| = 0.5, (2 * 1.5 - 0.5)^2 = 6.25 for each of the 2 ordered pairs,
    #   / (C (C - 1)) = / 2 -> 6.25
    # reg = (|0.5| + |1|) / 2 = 0.75
    # total = 0.125 + 6.25 + 0.001 * 0.75 = 6.37575
    emb, inst = _two_instances()
    out = discriminative_loss(emb, inst)
    assert set(out) == {"var", "dist", "reg", "total"}
    assert out["var"].item() == pytest.approx(0.125)
    assert out["dist"].item() == pytest.approx(6.25)
    assert out["reg"].item() == pytest.approx(0.75)
    assert out["total"].item() == pytest.approx(6.37575)


def test_hand_derived_weights_and_euclidean_norm():
    # one instance whose 2-D embedding is (3, 4) everywhere: var = 0, dist = 0 (C = 1),
    # reg = ||(3, 4)|| = 5; total = alpha * 0 + beta * 0 + gamma * 5 = 0.5 with gamma = 0.1
    emb = torch.tensor([3.0, 4.0])[None, :, None, None].expand(1, 2, 4, 4).contiguous()
    inst = torch.ones(1, 4, 4, dtype=torch.long)
    out = discriminative_loss(emb, inst, alpha=3.0, beta=7.0, gamma=0.1)
    assert out["reg"].item() == pytest.approx(5.0)
    assert out["total"].item() == pytest.approx(0.5)


def test_perfect_embedding_zero_random_large():
    # 1-D embedding = 2 * label: means 2 apart >= 2 * delta_d = 2, every pixel on its mean.
    g = torch.Generator().manual_seed(0)
    inst = torch.zeros(2, 16, 16, dtype=torch.long)
    inst[:, 2:7, 2:7], inst[:, 9:14, 3:8], inst[:, 4:12, 10:15] = 1, 2, 3
    perfect = 2.0 * inst[:, None].float()
    out = discriminative_loss(perfect, inst, delta_v=0.5, delta_d=1.0)
    assert out["var"].item() == 0.0 and out["dist"].item() == 0.0
    assert out["total"].item() == pytest.approx(0.001 * (2 + 4 + 6) / 3)
    # small noise inside the delta_v ball changes nothing but reg
    noisy = perfect + 0.05 * torch.randn(perfect.shape, generator=g)
    assert discriminative_loss(noisy, inst, delta_v=0.5, delta_d=1.0)["var"].item() == 0.0
    random = discriminative_loss(torch.randn(2, 8, 16, 16, generator=g), inst)
    assert random["total"].item() > 5.0  # means near 0: dist ~ (2 * 1.5)^2 = 9


def test_gradcheck_float64():
    emb, inst = _random_case(seed=1, b=2, e=2, side=8, dtype=torch.float64)
    emb.requires_grad_(True)

    def fn(x):
        out = discriminative_loss(x, inst, delta_v=0.3, delta_d=0.8)
        return out["var"], out["dist"], out["reg"], out["total"]

    assert torch.autograd.gradcheck(fn, (emb,), eps=1e-6, atol=1e-5)


def test_no_nan_gradient_with_identical_means_and_zero_mean():
    # two instances with the same (zero) mean embedding: ||mu_A - mu_B|| = 0 and ||mu|| = 0
    emb = torch.zeros(1, 2, 4, 4, requires_grad=True)
    inst = torch.tensor([[1, 1, 2, 2]] * 4)[None]
    out = discriminative_loss(emb, inst)
    out["total"].backward()
    assert torch.isfinite(emb.grad).all()
    assert out["dist"].item() == pytest.approx(9.0)  # (2 * 1.5 - 0)^2


def test_label_permutation_and_translation_invariance():
    emb, inst = _random_case(seed=2)
    ref = discriminative_loss(emb, inst)
    mapping = torch.tensor([-1, 0, 17, 5, 2])  # index = old label + 1 -> new non-contiguous ids
    permuted = discriminative_loss(emb, mapping[inst + 1])
    shifted = discriminative_loss(torch.roll(emb, (3, 5), (2, 3)), torch.roll(inst, (3, 5), (1, 2)))
    for k in ref:
        assert permuted[k].item() == pytest.approx(ref[k].item(), rel=1e-6)
        assert shifted[k].item() == pytest.approx(ref[k].item(), rel=1e-6)
    # var and dist depend only on differences of embeddings: invariant to adding a constant vector
    moved = discriminative_loss(emb + torch.tensor([1.0, -2.0, 0.5])[None, :, None, None], inst)
    for k in ("var", "dist"):
        assert moved[k].item() == pytest.approx(ref[k].item(), rel=1e-5)


def test_ignored_pixels_have_no_effect_and_no_gradient():
    emb, inst = _random_case(seed=3)
    inst[:, :3] = -1
    ref = discriminative_loss(emb, inst)
    garbage = emb.clone()
    garbage[:, :, :3] = 1e3
    garbage.requires_grad_(True)
    out = discriminative_loss(garbage, inst)
    for k in ref:
        assert out[k].item() == pytest.approx(ref[k].item(), rel=1e-6)
    out["total"].backward()
    assert garbage.grad[:, :, :3].abs().max().item() == 0.0
    assert garbage.grad[:, :, 3:].abs().max().item() > 0.0


def test_image_without_instances_contributes_zero():
    emb, inst = _random_case(seed=4)
    inst[0] = 0
    inst[0, 0, 0] = -1
    both = discriminative_loss(emb, inst)
    alone = discriminative_loss(emb[1:], inst[1:])
    for k in both:
        assert both[k].item() == pytest.approx(alone[k].item() / 2, rel=1e-6)
    empty = torch.zeros(2, 3, 8, 8, requires_grad=True)
    out = discriminative_loss(empty, torch.zeros(2, 8, 8, dtype=torch.long))
    assert out["total"].item() == 0.0
    out["total"].backward()  # graph still connected
    assert torch.equal(empty.grad, torch.zeros_like(empty))


def test_single_instance_has_zero_dist():
    emb, _ = _random_case(seed=5, b=1)
    inst = torch.zeros(1, 8, 8, dtype=torch.long)
    inst[0, 2:6, 2:6] = 4
    out = discriminative_loss(emb, inst)
    assert out["dist"].item() == 0.0
    assert out["var"].item() > 0.0


@pytest.mark.parametrize(
    ("emb", "inst", "kwargs", "match"),
    [
        (torch.zeros(2, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long), {}, r"\(B, E, H, W\)"),
        (torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 7, dtype=torch.long), {}, "must be"),
        (torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 8), {}, "integer"),
        (torch.zeros(2, 3, 8, 8, dtype=torch.long), torch.zeros(2, 8, 8, dtype=torch.long), {}, "floating"),
        (torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long), {"delta_d": 0.0}, "delta_d > 0"),
    ],
)
def test_bad_input_raises(emb, inst, kwargs, match):
    with pytest.raises(ValueError, match=match):
        discriminative_loss(emb, inst, **kwargs)


def test_module_registered_and_matches_function():
    assert LOSSES.get("discriminative") is DiscriminativeLoss
    emb, inst = _random_case(seed=6)
    module = DiscriminativeLoss(delta_v=0.2, gamma=0.01)
    out = module(ModelOutput(embedding=emb), {"instances": inst})
    ref = discriminative_loss(emb, inst, delta_v=0.2, gamma=0.01)
    assert all(torch.equal(out[k], ref[k]) for k in ref)
    with pytest.raises(ValueError, match="embedding"):
        module(ModelOutput(), {"instances": inst})
