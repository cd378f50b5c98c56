"""One contract for every registered grouper: on a tiny output of two objects it returns valid
labels (instance groupers: :class:`Instances` with ids 1..N, one finite score each; semantic
groupers: an ``(H, W)`` map of class indices), on the output's size, and finds both objects.

Each grouper needs an output of the heads it reads; ``OUTPUTS`` builds one per grouper name, and a
grouper registered without an entry there fails ``test_every_grouper_has_a_fixture``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.grouping import GROUPERS
from pixelgroup.grouping.segsort import build_prototype_bank
from pixelgroup.ops.coords import DEFAULT_COORD_SCALE, coordinate_grid, raw_sigma_for_radius
from pixelgroup.types import Instances, ModelOutput

H, W = 24, 32
BOXES = ((slice(3, 11), slice(3, 13)), (slice(12, 22), slice(16, 30)))  # two objects, (y, x)


def _labels() -> torch.Tensor:
    lab = torch.zeros(H, W, dtype=torch.long)
    for k, (ys, xs) in enumerate(BOXES, start=1):
        lab[ys, xs] = k
    return lab


def _spatial(n_seed: int = 1) -> ModelOutput:
    """Perfect spatial embedding: every object pixel points at its object's centre."""
    lab = _labels()
    grid = coordinate_grid(H, W)  # (2, H, W) units
    target = grid.clone()
    for k in (1, 2):
        m = lab == k
        target[:, m] = grid[:, m].mean(1, keepdim=True)
    offset = torch.atanh((target - grid).clamp(-0.999, 0.999))
    sigma = torch.full((2, H, W), raw_sigma_for_radius(4.0, scale=DEFAULT_COORD_SCALE))
    seed = torch.where(lab > 0, 6.0, -6.0)[None].repeat(n_seed, 1, 1)
    if n_seed > 1:
        seed[0, lab == 2], seed[1, lab == 1] = -6.0, -6.0
    return ModelOutput(offset=offset, sigma=sigma, seed=seed)


def _embedding() -> ModelOutput:
    """One direction per object, foreground logits high on the objects."""
    lab = _labels()
    directions = torch.eye(4)[[3, 0, 1]]  # background, object 1, object 2
    emb = directions[lab].permute(2, 0, 1) * 2.0
    fg = torch.where(lab > 0, 6.0, -6.0)[None]
    return ModelOutput(embedding=emb, foreground=fg)


def _semantic() -> ModelOutput:
    lab = _labels()
    return ModelOutput(semantic=torch.nn.functional.one_hot(lab, 3).permute(2, 0, 1).float() * 5)


def _segsort() -> tuple[ModelOutput, dict]:
    out = _embedding()
    bank = build_prototype_bank([("train", out, _labels())], grid=(2, 2), iterations=3)
    return out, {"state": bank, "grid": (2, 2), "iterations": 3, "k": 1}


OUTPUTS = {
    "seeded": lambda: (_spatial(), {"min_size": 10}),
    "seeded_classes": lambda: (_spatial(2), {"min_size": 10}),
    "meanshift": lambda: (_embedding(), {"bandwidth": 0.5, "min_size": 10}),
    "hdbscan": lambda: (_embedding(), {"min_cluster_size": 10, "min_size": 10}),
    "argmax": lambda: (_semantic(), {}),
    "segsort": _segsort,
}
SEMANTIC = {"argmax", "segsort"}


def test_every_grouper_has_a_fixture():
    assert set(GROUPERS.names()) == set(OUTPUTS), "add an output builder to OUTPUTS for each new grouper"


@pytest.mark.parametrize("name", GROUPERS.names())
def test_grouper_returns_valid_labels(name):
    output, params = OUTPUTS[name]()
    result = GROUPERS.get(name)(output, **params)
    if name in SEMANTIC:
        assert isinstance(result, np.ndarray) and result.shape == (H, W)
        assert np.issubdtype(result.dtype, np.integer) and result.min() >= 0
        assert np.array_equal(result, _labels().numpy())  # classes 1, 2 on the boxes, 0 elsewhere
        return
    assert isinstance(result, Instances)
    assert result.labels.shape == (H, W) and result.labels.dtype == np.int32
    ids = np.unique(result.labels)
    assert ids[0] == 0 and list(ids[1:]) == list(range(1, result.count + 1))  # consecutive 1..N
    assert result.count == 2 and np.isfinite(result.scores).all()
    assert result.classes.shape == (2,)
    for ys, xs in BOXES:  # each box is one instance
        assert len(np.unique(result.labels[ys, xs])) == 1 and result.labels[ys, xs].min() > 0


@pytest.mark.parametrize("name", GROUPERS.names())
def test_grouper_on_an_empty_image(name):
    output, params = OUTPUTS[name]()
    empty = output.apply(lambda t: t[..., :0, :0])  # (C, 0, 0)
    if name in SEMANTIC:
        pytest.skip("semantic groupers classify every pixel; no empty case")
    try:
        result = GROUPERS.get(name)(empty, **params)
    except ValueError as err:  # a clear refusal is fine, a crash is not
        assert str(err)
        return
    assert result.labels.shape == (0, 0) and result.count == 0
