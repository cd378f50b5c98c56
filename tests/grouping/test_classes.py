"""Tests of class assignment: ``assign_classes``, the groupers that apply it, ``seeded_classes``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelgroup.grouping.base import GROUPERS
from pixelgroup.grouping.classes import assign_classes
from pixelgroup.grouping.seeded import seeded_grouping
from pixelgroup.types import Instances, ModelOutput
from tests.grouping.test_seeded import discs, oracle

BG_LOGIT = float(np.log(0.01 / 0.99))  # seed probability 0.01


def hand_case() -> tuple[Instances, torch.Tensor]:
    """Two instances on a 2x4 image, K = 2 classes; logits = log-probabilities (softmax = identity).

    row 0 = instance 1: pixel probabilities (bg, c1, c2) = (.1 .2 .7), (.1 .2 .7), (.1 .6 .3), (.6 .1 .3)
        votes: c2 twice, c1 once, bg once (ignored) -> class 2; mean p(c2) = (.7+.7+.3+.3)/4 = 0.5.
    row 1 = instance 2 on columns 0-1: (.5 .4 .1), (.5 .2 .3): both vote background -> the class of
        highest mean probability: c1 (.3) over c2 (.2) -> class 1, p = 0.3. Columns 2-3 background.
    """
    labels = np.array([[1, 1, 1, 1], [2, 2, 0, 0]], np.int32)
    prob = np.array([
        [[.1, .1, .1, .6], [.5, .5, .9, .9]],
        [[.2, .2, .6, .1], [.4, .2, .05, .05]],
        [[.7, .7, .3, .3], [.1, .3, .05, .05]],
    ])
    inst = Instances(labels, scores=np.array([0.5, 1.0], np.float32))
    return inst, torch.tensor(np.log(prob), dtype=torch.float32)


def test_assign_classes_hand_case_without_rescoring():
    inst, logits = hand_case()
    out = assign_classes(inst, logits, rescore=False)
    assert np.array_equal(out.labels, inst.labels)
    assert out.classes.tolist() == [2, 1] and out.classes.dtype == np.int32
    np.testing.assert_allclose(out.scores, [0.5, 1.0])


def test_assign_classes_hand_case_rescored_and_renumbered():
    inst, logits = hand_case()
    out = assign_classes(inst, logits)
    # scores 0.5 * 0.5 = 0.25 (instance 1) and 1.0 * 0.3 = 0.3 (instance 2): instance 2 becomes label 1
    np.testing.assert_allclose(out.scores, [0.3, 0.25], rtol=1e-5)
    assert out.classes.tolist() == [1, 2]
    assert np.array_equal(out.labels, np.array([[2, 2, 2, 2], [1, 1, 0, 0]]))


def test_assign_classes_numpy_input_and_tie_goes_to_lower_class():
    labels = np.array([[1, 1]], np.int32)
    logits = np.log(np.array([[[.1, .1]], [[.2, .7]], [[.7, .2]]]))  # one vote each for c1 and c2
    out = assign_classes(Instances(labels, np.ones(1, np.float32)), logits, rescore=False)
    assert out.classes.tolist() == [1]


def test_assign_classes_label_permutation_permutes_classes():
    inst, logits = hand_case()
    swapped = Instances(np.array([0, 2, 1], np.int32)[inst.labels], scores=inst.scores[::-1].copy())
    a = assign_classes(inst, logits, rescore=False)
    b = assign_classes(swapped, logits, rescore=False)
    assert b.classes.tolist() == a.classes[::-1].tolist()


def test_assign_classes_empty_and_bad_shape():
    empty = Instances(np.zeros((3, 4), np.int32))
    out = assign_classes(empty, torch.zeros(3, 3, 4))
    assert out.count == 0 and out.classes.shape == (0,)
    with pytest.raises(ValueError, match="semantic_logits must be"):
        assign_classes(empty, torch.zeros(3, 4, 3))
    with pytest.raises(ValueError, match="semantic_logits must be"):
        assign_classes(empty, torch.zeros(1, 3, 4))


def two_blobs(k: int = 3) -> tuple[np.ndarray, ModelOutput]:
    """Two rectangles with embeddings far apart; semantic logits say class 3 on A, class 1 on B."""
    lab = np.zeros((24, 32), np.int64)
    lab[2:10, 2:14], lab[12:22, 16:30] = 1, 2
    emb = torch.zeros(2, 24, 32)
    emb[0][torch.from_numpy(lab == 1)] = 5.0
    emb[1][torch.from_numpy(lab == 2)] = 5.0
    fg = torch.where(torch.from_numpy(lab > 0), 6.0, -6.0)[None]
    sem = torch.zeros(k + 1, 24, 32)
    sem[0] = 4.0
    sem[0][torch.from_numpy(lab > 0)] = 0.0
    sem[3][torch.from_numpy(lab == 1)] = 4.0
    sem[1][torch.from_numpy(lab == 2)] = 4.0
    return lab, ModelOutput(embedding=emb, foreground=fg, semantic=sem)


@pytest.mark.parametrize(("name", "params"), [
    ("meanshift", {"bandwidth": 1.0, "kernel": "flat"}),
    ("hdbscan", {"min_cluster_size": 10}),
])
def test_embedding_groupers_assign_classes_from_semantic_head(name, params):
    lab, out = two_blobs()
    res = GROUPERS.get(name)(out, **params)
    assert res.count == 2
    by_gt = {int(np.bincount(res.labels[lab == g]).argmax()): g for g in (1, 2)}  # pred id -> gt id
    assert {g: int(res.classes[p - 1]) for p, g in by_gt.items()} == {1: 3, 2: 1}
    agnostic = GROUPERS.get(name)(ModelOutput(embedding=out.embedding, foreground=out.foreground), **params)
    assert agnostic.classes.tolist() == [0, 0]


def test_seeded_classes_reports_dataset_class_ids():
    lab = discs(48, 64, 5, 4, 8, seed=2)
    out = oracle(lab)
    # disc 1 in seed channel 0 (class 1), the others in channel 1 (class 2)
    seed = torch.stack([
        torch.where(torch.from_numpy(lab == 1), out.seed[0], BG_LOGIT),
        torch.where(torch.from_numpy(lab > 1), out.seed[0], BG_LOGIT),
    ])
    multi = ModelOutput(offset=out.offset, sigma=out.sigma, seed=seed)
    res = GROUPERS.get("seeded_classes")(multi, min_size=10)
    raw = seeded_grouping(multi, min_size=10)
    assert res.count == 5 and np.array_equal(res.labels, raw.labels)
    assert np.array_equal(res.classes, raw.classes + 1)
    for p in range(1, 6):
        g = int(np.bincount(lab[res.labels == p]).argmax())
        assert res.classes[p - 1] == (1 if g == 1 else 2)
    single = GROUPERS.get("seeded_classes")(out, min_size=10)
    assert single.classes.tolist() == [0] * 5
