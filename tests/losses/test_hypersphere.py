from __future__ import annotations

import pytest
import torch

from pixelgroup.losses.base import LOSSES
from pixelgroup.losses.hypersphere import (
    HypersphereLoss,
    hypersphere_loss,
    hypersphere_pair_loss,
    recurrent_hypersphere_loss,
    sample_pixels,
)
from pixelgroup.types import ModelOutput


def _hand_case() -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 image, 2-D embedding: a=(1,0), b=(0,1) in instance 1; c=(1,0), d=(-1,0) in background."""
    emb = torch.tensor([[[1.0, 0.0], [1.0, -1.0]], [[0.0, 1.0], [0.0, 0.0]]])  # (E=2, H=2, W=2)
    inst = torch.tensor([[1, 1], [0, 0]])
    return emb[None], inst[None]


def _random_case(seed: int = 0, b: int = 2, e: int = 4, side: int = 6, groups: int = 3, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, e, side, side, generator=g, dtype=dtype)
    inst = torch.randint(0, groups, (b, side, side), generator=g)
    return emb, inst


def _perfect(groups: torch.Tensor, e: int) -> torch.Tensor:
    """(B, E, H, W) embedding with group k at the k-th basis vector (times a random positive scale)."""
    emb = torch.nn.functional.one_hot(groups, e).permute(0, 3, 1, 2).float()
    return emb * (1.0 + torch.rand(groups.shape)[:, None])


def test_hand_values():
    # G = 2 groups of 2 pixels: W_ij = 1 / (2 * 2 * 2^2) = 1/16 for each of the 16 ordered pairs.
    # pull: instance 1: (a,b), (b,a) have cos 0 -> s = 1/2 -> 1 - s = 1/2 each; background: (c,d),
    #   (d,c) have cos -1 -> s = 0 -> 1 each; diagonal pairs cost 0 -> pull = (1/2 + 1/2 + 1 + 1) / 16 = 3/16
    # push (margin 1/2): (a,c), (c,a) have s = 1 -> 1/2 each; (a,d): s = 0; (b,c), (b,d): s = 1/2 -> 0
    #   -> push = (1/2 + 1/2) / 16 = 1/16; total = 4/16
    emb, inst = _hand_case()
    out = hypersphere_loss(emb, inst, margin=0.5, max_pixels=None)
    assert set(out) == {"pull", "push", "total"}
    assert out["pull"].item() == pytest.approx(3 / 16)
    assert out["push"].item() == pytest.approx(1 / 16)
    assert out["total"].item() == pytest.approx(4 / 16)


def test_hand_values_margin_and_scale():
    # Same case with margin 0.25: (a,c) pairs give 3/4 each, (b,c), (b,d) give 1/4 each (4 ordered
    # pairs) -> push = (3/4 * 2 + 1/4 * 4) / 16 = 2.5 / 16. Scaling the embedding changes nothing.
    emb, inst = _hand_case()
    out = hypersphere_loss(emb * 7.0, inst, margin=0.25, max_pixels=None)
    assert out["push"].item() == pytest.approx(2.5 / 16)
    assert out["pull"].item() == pytest.approx(3 / 16)



def test_terms_normalisation_is_weighted_mean_per_term():
    # normalize="terms": each term is its W-weighted mean over its own pairs (hand case: pull pairs
    # weigh 8/16 in all -> pull = (3/16) / (8/16) = 3/8; push pairs 8/16 -> push = 1/8), with and
    # without hard mining, and equal to the pairwise definition on random data.
    emb, inst = _hand_case()
    out = hypersphere_loss(emb, inst, margin=0.5, max_pixels=None, normalize="terms")
    assert out["pull"].item() == pytest.approx(3 / 8)
    assert out["push"].item() == pytest.approx(1 / 8)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(50, 6, generator=g, dtype=torch.float64)
    groups = torch.randint(0, 5, (50,), generator=g)
    xn = torch.nn.functional.normalize(x, dim=1)
    s = 0.5 * (1 + xn @ xn.T)
    w = 1.0 / torch.bincount(groups).double()[groups]
    wij = w[:, None] * w[None, :]
    same = groups[:, None] == groups[None, :]
    pull = (wij * (1 - s) * same).sum() / (wij * same).sum()
    push = (wij * (s - 0.4).clamp_min(0) * ~same).sum() / (wij * ~same).sum()
    for mining in (None, 1.0):
        o = hypersphere_pair_loss(x, groups, margin=0.4, normalize="terms", hard_mining=mining)
        assert o["pull"].item() == pytest.approx(pull.item(), rel=1e-10)
        assert o["push"].item() == pytest.approx(push.item(), rel=1e-10)
    one_group = hypersphere_pair_loss(x, torch.zeros_like(groups), normalize="terms")
    assert one_group["push"].item() == 0.0 and one_group["pull"].item() > 0.0
    with pytest.raises(ValueError, match="normalize must be one of pairs, terms"):
        hypersphere_pair_loss(x, groups, normalize="sum")
    with pytest.raises(ValueError, match="normalize"):
        HypersphereLoss(normalize="mean")

def test_pair_loss_equals_pairwise_definition():
    # The pull shortcut (per-group means) and the kept-all hard mining (explicit pairs) must agree
    # with a direct evaluation of the definition.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(40, 5, generator=g, dtype=torch.float64)
    groups = torch.randint(0, 4, (40,), generator=g)
    xn = torch.nn.functional.normalize(x, dim=1)
    s = 0.5 * (1 + xn @ xn.T)
    counts = torch.bincount(groups).double()
    w = 1.0 / counts[groups]
    wij = w[:, None] * w[None, :] / (w.sum() ** 2)
    same = groups[:, None] == groups[None, :]
    pull = (wij * (1 - s) * same).sum()
    push = (wij * (s - 0.3).clamp_min(0) * ~same).sum()
    out = hypersphere_pair_loss(x, groups, margin=0.3)
    mined_all = hypersphere_pair_loss(x, groups, margin=0.3, hard_mining=1.0)
    for o in (out, mined_all):
        assert o["pull"].item() == pytest.approx(pull.item(), rel=1e-10)
        assert o["push"].item() == pytest.approx(push.item(), rel=1e-10)


def test_perfect_embedding_zero_random_large():
    # Orthogonal unit vectors per group: s = 1 inside a group, s = 1/2 = margin across -> 0 loss.
    _, inst = _random_case(groups=4)
    perfect = hypersphere_loss(_perfect(inst, 4), inst, max_pixels=None)
    assert perfect["total"].item() < 1e-6
    emb, _ = _random_case(e=4)
    random = hypersphere_loss(emb, inst, max_pixels=None)
    assert random["total"].item() > 0.1
    assert random["pull"].item() > 0.05 and random["push"].item() > 0.01


def test_group_label_permutation_invariance():
    emb, inst = _random_case()
    relabel = torch.tensor([7, 2, 0])  # background 0 is just another group
    a = hypersphere_loss(emb, inst, max_pixels=None)
    b = hypersphere_loss(emb, relabel[inst], max_pixels=None)
    for k in a:
        assert a[k].item() == pytest.approx(b[k].item(), rel=1e-5)


def test_pixel_permutation_invariance():
    emb, inst = _random_case(b=1)
    perm = torch.randperm(36, generator=torch.Generator().manual_seed(0))
    emb_p = emb.flatten(2)[:, :, perm].reshape(emb.shape)
    inst_p = inst.flatten(1)[:, perm].reshape(inst.shape)
    a = hypersphere_loss(emb, inst, max_pixels=None)["total"]
    b = hypersphere_loss(emb_p, inst_p, max_pixels=None)["total"]
    assert a.item() == pytest.approx(b.item(), rel=1e-5)


def test_ignored_pixels_do_not_count():
    emb, inst = _random_case(b=1)
    ignored = inst.clone()
    ignored[:, :2] = -1
    base = hypersphere_loss(emb, ignored, max_pixels=None)["total"]
    changed = emb.clone()
    changed[:, :, :2] = 100.0 * torch.randn_like(changed[:, :, :2])
    assert hypersphere_loss(changed, ignored, max_pixels=None)["total"].item() == pytest.approx(base.item())
    keep = ignored[0] >= 0
    direct = hypersphere_pair_loss(emb[0][:, keep].T, ignored[0][keep])["total"]
    assert base.item() == pytest.approx(direct.item(), rel=1e-6)


def test_image_without_valid_pixels_left_out_of_mean():
    emb, inst = _random_case(b=2)
    inst[1] = -1
    both = hypersphere_loss(emb, inst, max_pixels=None)["total"]
    first = hypersphere_loss(emb[:1], inst[:1], max_pixels=None)["total"]
    assert both.item() == pytest.approx(first.item())
    none = hypersphere_loss(emb.requires_grad_(True), torch.full_like(inst, -1), max_pixels=None)
    assert none["total"].item() == 0.0
    none["total"].backward()  # still connected to the graph
    assert emb.grad is not None and emb.grad.abs().sum() == 0


def test_sampling_exactness_and_determinism():
    emb, inst = _random_case()
    exact = hypersphere_loss(emb, inst, max_pixels=None)["total"]
    assert hypersphere_loss(emb, inst, max_pixels=36)["total"].item() == pytest.approx(exact.item())
    a = hypersphere_loss(emb, inst, max_pixels=10, generator=torch.Generator().manual_seed(1))["total"]
    b = hypersphere_loss(emb, inst, max_pixels=10, generator=torch.Generator().manual_seed(1))["total"]
    assert a.item() == b.item()
    samples = sample_pixels(emb, inst, max_pixels=10, generator=torch.Generator().manual_seed(1))
    assert [tuple(p.shape) for p, _ in samples] == [(10, 4), (10, 4)]


def test_sampled_loss_is_unbiased_enough():
    # The mean of many 16-pixel samples stays near the exact value (loose check of the sampler).
    emb, inst = _random_case(b=1, side=8)
    exact = hypersphere_loss(emb, inst, max_pixels=None)["total"].item()
    gen = torch.Generator().manual_seed(0)
    values = [hypersphere_loss(emb, inst, max_pixels=32, generator=gen)["total"].item() for _ in range(50)]
    mean = sum(values) / len(values)
    assert mean == pytest.approx(exact, rel=0.15)


def test_hard_mining_focuses_on_hard_pairs():
    # Equal group sizes: the hardest quarter of the pairs has a larger mean loss than all pairs.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 4, generator=g)
    groups = torch.arange(60) % 3
    full = hypersphere_pair_loss(x, groups)
    hard = hypersphere_pair_loss(x, groups, hard_mining=0.25)
    assert hard["pull"].item() > full["pull"].item()
    assert hard["push"].item() > full["push"].item()


def test_gradcheck_float64():
    emb, inst = _random_case(b=1, e=3, side=3, dtype=torch.float64)
    emb.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: hypersphere_loss(e, inst, max_pixels=None)["total"], (emb,))
    assert torch.autograd.gradcheck(
        lambda e: hypersphere_loss(e, inst, max_pixels=None, hard_mining=0.5)["total"], (emb,)
    )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"margin": 1.0}, "margin"),
        ({"hard_mining": 0.0}, "hard_mining"),
        ({"max_pixels": 0}, "max_pixels"),
    ],
)
def test_bad_arguments(kwargs, match):
    emb, inst = _random_case()
    with pytest.raises(ValueError, match=match):
        hypersphere_loss(emb, inst, **kwargs)


def test_bad_inputs():
    emb, inst = _random_case()
    with pytest.raises(ValueError, match=r"\(B, E, H, W\)"):
        hypersphere_loss(emb[0], inst)
    with pytest.raises(ValueError, match="matching"):
        hypersphere_loss(emb, inst[:, :3])
    with pytest.raises(ValueError, match="integer"):
        hypersphere_loss(emb, inst.float())
    with pytest.raises(ValueError, match=r"\(N, E\)"):
        hypersphere_pair_loss(torch.randn(5, 3), torch.zeros(4, dtype=torch.int64))


def test_recurrent_zero_iterations_is_plain_loss():
    emb, inst = _random_case()
    plain = hypersphere_loss(emb, inst, max_pixels=None)
    rec = recurrent_hypersphere_loss(emb, inst, max_pixels=None, iterations=0)
    assert set(rec) == {"pull", "push", "total", "loop0"}
    assert rec["total"].item() == pytest.approx(plain["total"].item(), rel=1e-6)


def test_recurrent_terms_perfect_and_gradient():
    _, inst = _random_case(groups=4)
    perfect = recurrent_hypersphere_loss(_perfect(inst, 4), inst, max_pixels=None, iterations=3)
    assert set(perfect) == {"pull", "push", "total", "loop0", "loop1", "loop2", "loop3"}
    assert perfect["total"].item() < 1e-6
    emb, _ = _random_case(e=4)
    emb.requires_grad_(True)
    out = recurrent_hypersphere_loss(emb, inst, max_pixels=20, iterations=3, bandwidth=0.5)
    assert out["total"].item() == pytest.approx(sum(out[f"loop{t}"].item() for t in range(4)) / 4, rel=1e-5)
    assert out["loop3"].item() != pytest.approx(out["loop0"].item())  # the points moved
    still = recurrent_hypersphere_loss(emb, inst, max_pixels=None, iterations=2, bandwidth=0.01)
    assert still["loop2"].item() == pytest.approx(still["loop0"].item(), rel=1e-5)  # too narrow to move
    out["total"].backward()
    assert emb.grad is not None and torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


def test_module_registered_and_terms():
    assert LOSSES.get("hypersphere") is HypersphereLoss
    emb, inst = _random_case()
    fg = torch.randn(2, 1, 6, 6, requires_grad=True)
    loss = HypersphereLoss(iterations=2, max_pixels=16)
    out = loss(ModelOutput(embedding=emb, foreground=fg), {"instances": inst})
    assert {"pull", "push", "fg", "loop0", "loop2", "total"} <= set(out)
    assert out["total"].item() == pytest.approx((out["pull"] + out["push"] + out["fg"]).item(), rel=1e-6)
    out["total"].backward()
    assert fg.grad is not None
    with pytest.raises(ValueError, match="foreground"):
        loss(ModelOutput(embedding=emb), {"instances": inst})
    with pytest.raises(ValueError, match="margin"):
        HypersphereLoss(margin=-0.1)
