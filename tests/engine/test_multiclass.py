"""Multi-class instance segmentation end to end: heads and losses of the methods, the n_classes check,
train -> predict -> evaluate --format on a tiny VOC, and per-class AP of perfect predictions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tifffile
import torch
import yaml

from pixelgroup.cli import main
from pixelgroup.config import RunConfig
from pixelgroup.data.coco import COCODataset
from pixelgroup.data.voc import VOCDataset
from pixelgroup.engine.build import build_model, get_method
from pixelgroup.engine.evaluate import evaluate_dataset, format_class_ap
from pixelgroup.losses.semantic import semantic_cross_entropy
from pixelgroup.losses.spatial import SpatialEmbeddingLoss, spatial_embedding_loss
from pixelgroup.types import ModelOutput
from tests.data.fixtures import make_coco, make_folder, make_voc

VOC_K = 20  # object classes of VOC; the fixture uses person (15) and car (7)


def tiny_batch(k: int, seed: int = 0) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Two 16x16 images, two square instances of classes 1 and k, an ignore strip."""
    inst = torch.zeros(2, 16, 16, dtype=torch.long)
    inst[:, 2:7, 2:7], inst[:, 9:15, 8:14], inst[:, :, 15] = 1, 2, -1
    classes = torch.where(inst == 1, 1, torch.where(inst == 2, k, 0))
    classes[inst < 0] = -1
    g = torch.Generator().manual_seed(seed)
    return {"instances": inst, "classes": classes}, inst, torch.randn(2, 4, 16, 16, generator=g)


# -- methods ---------------------------------------------------------------------------------------
def test_spatial_seed_head_has_one_channel_per_class():
    cfg = RunConfig().replace(**{"model.n_classes": 3})
    assert get_method(cfg).head_channels(cfg)["seed"] == 3
    assert get_method(cfg).build_loss(cfg).n_classes == 3


def test_spatial_loss_shifts_dataset_classes_to_seed_channels():
    batch, inst, noise = tiny_batch(k=3)
    out = ModelOutput(offset=noise[:, :2], sigma=noise[:, 2:3], seed=torch.randn(2, 3, 16, 16))
    got = SpatialEmbeddingLoss(n_classes=3)(out, batch)
    want = spatial_embedding_loss(out, inst, classes=batch["classes"] - 1)  # class c -> channel c - 1
    for key in ("instance", "var", "seed", "total"):
        torch.testing.assert_close(got[key], want[key])
    with pytest.raises(ValueError, match="class id 3 but model.n_classes = 2"):
        SpatialEmbeddingLoss(n_classes=2)(out, batch)
    with pytest.raises(ValueError, match="needs batch\\['classes'\\]"):
        SpatialEmbeddingLoss(n_classes=3)(out, {"instances": inst})


@pytest.mark.parametrize("method", ["hypersphere", "discriminative"])
def test_embedding_methods_grow_a_semantic_head_and_sem_term(method):
    k = 3
    cfg = RunConfig(method=method).replace(**{"model.n_classes": k, "model.embedding_dim": 4})
    heads = get_method(cfg).head_channels(cfg)
    assert heads["semantic"] == k + 1
    assert "semantic" not in get_method(RunConfig(method=method)).heads(RunConfig(method=method))
    model = build_model(cfg, in_channels=1)
    batch, inst, _ = tiny_batch(k=k)
    out = model(torch.randn(2, 1, 16, 16))
    terms = get_method(cfg).build_loss(cfg)(out, batch)
    assert "sem" in terms and all(torch.isfinite(v) for v in terms.values())
    terms["total"].backward()
    assert model.heads["semantic"].out.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="sem_weight needs a semantic head"):
        get_method(RunConfig(method=method)).build_loss(RunConfig(method=method, loss={"sem_weight": 2.0}))


def test_semantic_cross_entropy_values():
    batch, _, _ = tiny_batch(k=3)
    classes = batch["classes"]
    # uniform logits: -log(1 / (K + 1)) = log 4 at every non-ignored pixel
    uniform = semantic_cross_entropy(torch.zeros(2, 4, 16, 16), classes)["total"]
    assert math.isclose(float(uniform), math.log(4), rel_tol=1e-6)
    perfect = 50.0 * torch.nn.functional.one_hot(classes.clamp(min=0), 4).permute(0, 3, 1, 2).float()
    perfect[:, :, :, 15] = torch.randn(2, 4, 16)  # ignored pixels do not count
    assert float(semantic_cross_entropy(perfect, classes)["total"]) < 1e-6
    assert float(semantic_cross_entropy(torch.randn(2, 4, 16, 16), torch.full_like(classes, -1))["total"]) == 0.0
    with pytest.raises(ValueError, match="set model.n_classes"):
        semantic_cross_entropy(torch.zeros(2, 3, 16, 16), classes)


# -- training checks -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    root = tmp_path_factory.mktemp("voc")
    make_voc(root, n=3)
    return root


def write_config(path, n_classes: int, **grouping) -> str:
    cfg = {"method": "spatial", "model": {"width": 8, "depth": 2, "n_classes": n_classes},
           "data": {"crop_size": 32, "batch_size": 2, "augment": False}, "train": {"val_every": 100},
           "grouping": {"params": grouping}}
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.mark.parametrize(("make", "fmt", "n", "message"), [
    (lambda root: make_voc(root, n=2), "voc", 5, "the dataset has 20 object classes; set model.n_classes: 20"),
    (lambda root: make_folder(root, n=2), "folder", 3, "this dataset has no classes"),
])
def test_train_rejects_a_wrong_n_classes(tmp_path, capsys, make, fmt, n, message):
    make(tmp_path / "data")
    code = main(["train", "--data", str(tmp_path / "data"), "--format", fmt, "--out", str(tmp_path / "run"),
                 "--config", write_config(tmp_path / "c.yaml", n), "--steps", "1", "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err


# -- end to end ------------------------------------------------------------------------------------
def test_train_predict_evaluate_per_class_through_the_cli(voc, tmp_path, capsys):
    run, pred = tmp_path / "run", tmp_path / "pred"
    # thresholds 0 so that the untrained network still gives instances in every seed channel
    cfg = write_config(tmp_path / "c.yaml", VOC_K, fg_threshold=0.0, seed_threshold=0.0, min_size=4)
    assert main(["train", "--data", str(voc), "--format", "voc", "--out", str(run), "--config", cfg,
                 "--steps", "2", "--device", "cpu", "--no-progress"]) == 0
    state = torch.load(run / "best.pt", map_location="cpu", weights_only=True)
    assert state["model"]["heads.seed.out.weight"].shape[0] == VOC_K
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert any(key.startswith("coco_ap/class_") for key in history[-1])  # validation is per class
    images = voc / "VOCdevkit" / "VOC2012" / "JPEGImages"
    assert main(["predict", "--model", str(run), str(images), "--out", str(pred), "--no-progress"]) == 0
    docs = [json.loads(p.read_text()) for p in sorted(pred.glob("*.json"))]
    classes = [d["class"] for doc in docs for d in doc["instances"]]
    assert len(docs) == 3 and classes and all(1 <= c <= VOC_K for c in classes)
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(voc), "--pred", str(pred), "--format", "voc", "--split", "val",
                 "--json", str(tmp_path / "r.json")]) == 0
    printed = capsys.readouterr().out
    assert "person" in printed and "car" in printed and "mean" in printed
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["n_images"] == 1
    for c in (7, 15):
        assert 0.0 <= res[f"coco_ap/class_{c}"] <= 1.0
    assert res["class_names"][15] == "person"


# -- evaluation ------------------------------------------------------------------------------------
def write_predictions(reader, out, *, class_map=None):
    """Predictions copied from the ground truth: labels (void -> 0), classes (mapped), score 1."""
    out.mkdir(parents=True, exist_ok=True)
    for i in range(len(reader)):
        sample = reader[i]
        labels = np.maximum(sample["instances"], 0).astype(np.int32)
        classes = [int(c) if class_map is None else class_map[int(c)] for c in sample["instance_classes"]]
        tifffile.imwrite(out / f"{sample['name']}.tif", labels)
        doc = {"instances": [{"id": j + 1, "score": 1.0, "class": c} for j, c in enumerate(classes)]}
        (out / f"{sample['name']}.json").write_text(json.dumps(doc))


def test_perfect_voc_predictions_score_one_per_class(voc, tmp_path):
    write_predictions(VOCDataset(voc, normalize=None), tmp_path / "pred")
    res = evaluate_dataset(voc, tmp_path / "pred", format="voc", json_path=tmp_path / "r.json")
    assert res["coco_ap/class_7"] == pytest.approx(1.0) and res["coco_ap/class_15"] == pytest.approx(1.0)
    assert res["coco_ap"] == pytest.approx(1.0)
    assert sorted(k for k in res if k.startswith("coco_ap/class_")) == ["coco_ap/class_15", "coco_ap/class_7"]
    assert json.loads((tmp_path / "r.json").read_text())["coco_ap/class_15"] == pytest.approx(1.0)
    table = format_class_ap(res)
    assert "  7 car" in table and " 15 person" in table


def test_swapped_classes_score_zero_per_class_but_one_class_agnostic(voc, tmp_path):
    write_predictions(VOCDataset(voc, normalize=None), tmp_path / "pred", class_map={7: 15, 15: 7})
    res = evaluate_dataset(voc, tmp_path / "pred", format="voc")
    assert res["coco_ap/class_7"] == 0.0 and res["coco_ap/class_15"] == 0.0
    assert res["ap_dsb@0.50"] == pytest.approx(1.0)  # the matching metrics ignore classes


def test_class_agnostic_predictions_are_scored_class_agnostic(voc, tmp_path):
    write_predictions(VOCDataset(voc, normalize=None), tmp_path / "pred", class_map={7: 0, 15: 0})
    res = evaluate_dataset(voc, tmp_path / "pred", format="auto", split="val")
    assert res["coco_ap"] == pytest.approx(1.0) and res["n_images"] == 1
    assert not any(k.startswith("coco_ap/class_") for k in res) and "class_names" not in res


def test_perfect_coco_predictions_score_one_per_class(tmp_path):
    make_coco(tmp_path / "coco")
    write_predictions(COCODataset(tmp_path / "coco", normalize=None), tmp_path / "pred")
    res = evaluate_dataset(tmp_path / "coco", tmp_path / "pred", format="coco")
    assert res["coco_ap/class_1"] == pytest.approx(1.0) and res["coco_ap/class_2"] == pytest.approx(1.0)
    assert res["class_names"] == ["background", "cat", "dog"]


def test_evaluate_dataset_errors(voc, tmp_path):
    write_predictions(VOCDataset(voc, normalize=None, split="val"), tmp_path / "pred")
    with pytest.raises(ValueError, match="no prediction for 2 of 3 ground-truth image"):
        evaluate_dataset(voc, tmp_path / "pred", format="voc")
    make_folder(tmp_path / "folder", n=1)
    with pytest.raises(ValueError, match="format 'folder' has no splits"):
        evaluate_dataset(tmp_path / "folder", tmp_path / "pred", format="folder", split="val")
