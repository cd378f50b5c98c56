from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from pixelgroup.data.base import DATASETS
from pixelgroup.data.coco import COCODataset, decode_segmentation
from pixelgroup.data.io import DataError
from pixelgroup.data.writers import write_coco_results

from .fixtures import COCO_SHAPE, coco_ap, edit_coco, make_coco, noise_image, save_png


@pytest.fixture
def coco(tmp_path):
    root = tmp_path / "coco"
    return root, make_coco(root)


def test_registered():
    assert DATASETS.get("coco") is COCODataset


def test_samples_match_the_drawn_annotations(coco):
    root, expected = coco
    ds = COCODataset(root)
    assert ds.names == ["img_a", "img_b", "img_c"]
    assert ds.class_names == ["background", "cat", "dog"] and ds.category_ids == [3, 7]
    assert [ds.image_id(i) for i in range(3)] == [1, 2, 3]
    for i, name in enumerate(ds.names):
        s = ds[i]
        assert s["image"].shape == (*COCO_SHAPE, 3)
        for key in ("instances", "classes", "instance_classes"):
            assert s[key].dtype == np.int64
            np.testing.assert_array_equal(s[key], expected[name][key], err_msg=f"{name} {key}")


def test_overlap_smaller_on_top_and_crowd_ignored(coco):
    root, _ = coco
    s = COCODataset(root)[0]
    # the 4x4 cat (ann 3) lies on the 20x30 dog (ann 2): the dog keeps 600 - 16 pixels
    assert (s["instances"] == 1).sum() == 600 - 16 and (s["instances"] == 3).sum() == 16
    assert (s["instances"][36:46, 2:30] == -1).all()  # crowd -> ignore
    assert (s["classes"][36:46, 2:30] == 1).all()  # ... but keeps its class (cat)


def test_decode_all_segmentation_kinds():
    h, w = 6, 5
    poly = [[1.0, 1.0, 4.0, 1.0, 4.0, 3.0, 1.0, 3.0]]  # pixels x 1..3, y 1..2
    want = np.zeros((h, w), bool)
    want[1:3, 1:4] = True
    np.testing.assert_array_equal(decode_segmentation(poly, h, w), want)
    # uncompressed RLE, column-major runs: 7 off (column 0 + top of column 1), 2 on, 4 off, 2 on,
    # 4 off, 2 on, 9 off (bottom of column 3 + column 4); 30 = 6 * 5 pixels
    counts = [7, 2, 4, 2, 4, 2, 9]
    np.testing.assert_array_equal(decode_segmentation({"size": [h, w], "counts": counts}, h, w), want)


@pytest.mark.parametrize("form", ["folder", "json", "tuple"])
def test_root_forms(coco, form):
    root, _ = coco
    ann = root / "annotations" / "instances_val.json"
    arg = {"folder": root, "json": ann, "tuple": (root / "val", ann)}[form]
    assert COCODataset(arg).names == ["img_a", "img_b", "img_c"]


def test_split_chooses_among_annotation_files(coco):
    root, _ = coco
    shutil.copy(root / "annotations" / "instances_val.json", root / "annotations" / "instances_train.json")
    shutil.copytree(root / "val", root / "train")
    with pytest.raises(DataError, match="several annotations/instances_.*json match.*pass split=TAG"):
        COCODataset(root)
    assert COCODataset(root, split="train").image_dir == root / "train"
    with pytest.raises(DataError, match="no annotations/instances_.*json match"):
        COCODataset(root, split="test")


def test_round_trip_perfect_results_give_ap_1(coco, tmp_path):
    """gt instances with score 1 -> results JSON -> COCOeval against the original file: AP = 1.

    The dog loses its 16 pixels under the small cat, IoU 584/600 = 0.973 >= 0.95, so it matches at
    every threshold; the crowd region is not predicted and not required.
    """
    root, _ = coco
    ds = COCODataset(root)
    results = []
    for i in range(len(ds)):
        s = ds[i]
        n = len(s["instance_classes"])
        results.append((ds.image_id(i), np.maximum(s["instances"], 0), np.ones(n), s["instance_classes"]))
    assert write_coco_results(tmp_path / "r.json", results, category_ids=ds.category_ids) == 4
    gt = json.loads((root / "annotations" / "instances_val.json").read_text())
    assert coco_ap(gt, tmp_path / "r.json") == pytest.approx(1.0)


def test_missing_one_cat_gives_hand_derived_ap(coco, tmp_path):
    """Drop the small cat. cat: 2 gt, 1 perfect detection -> precision 1 at recall <= 0.5, 0 above:
    51 of COCO's 101 recall points -> 51/101 at every IoU. dog: 1.0. Mean over the two categories."""
    root, _ = coco
    ds = COCODataset(root)
    s = ds[0]
    labels = np.where(s["instances"] == 3, 0, np.maximum(s["instances"], 0))
    results = [(1, labels, np.ones(2), s["instance_classes"][:2]), (2, ds[1]["instances"], [1.0], [2])]
    write_coco_results(tmp_path / "r.json", results, category_ids=ds.category_ids)
    gt = json.loads((root / "annotations" / "instances_val.json").read_text())
    assert coco_ap(gt, tmp_path / "r.json") == pytest.approx((1.0 + 51 / 101) / 2)


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d["annotations"][0].update(segmentation=[[4.0, 4.0, 90.0, 4.0, 90.0, 20.0]]),
         r"annotation 1: polygon point \(x=90, y=4\) lies outside the 64x48 image"),
        (lambda d: d["annotations"][0].update(category_id=99), "annotation 1: category_id 99 is not in"),
        (lambda d: d["annotations"][1]["segmentation"].update(size=[10, 10]),
         r"annotation 2: RLE size \[10, 10\] differs from the image's \[48, 64\]"),
        (lambda d: d["annotations"][2]["segmentation"]["counts"].append(5),
         "annotation 3: uncompressed RLE counts sum to"),
        (lambda d: d["annotations"][0].update(segmentation=[[1.0, 2.0, 3.0, 4.0]]),
         "annotation 1: a polygon needs an even number"),
    ],
)
def test_malformed_annotation_named_and_skippable(coco, edit, match, caplog):
    root, _ = coco
    edit_coco(root, edit)
    with pytest.raises(DataError, match=match):
        COCODataset(root)
    with caplog.at_level(logging.WARNING):
        ds = COCODataset(root, skip_bad=True)
    assert ds.names == ["img_b", "img_c"] and [n for n, _ in ds.skipped] == ["img_a"]
    assert "skipped 1 bad sample(s) of 3, kept 2" in caplog.text


def test_annotation_of_unknown_image(coco):
    root, _ = coco
    edit_coco(root, lambda d: d["annotations"][4].update(image_id=42))
    with pytest.raises(DataError, match="annotation 5 refers to image_id 42"):
        COCODataset(root)
    ds = COCODataset(root, skip_bad=True)
    assert len(ds) == 3 and ds.skipped[0][0] == "annotation 5"


def test_missing_and_resized_images(coco):
    root, _ = coco
    (root / "val" / "img_c.png").unlink()
    save_png(root / "val" / "img_b.png", noise_image((20, 20, 3), 0))
    with pytest.raises(DataError, match="img_c.png: image file not found"):
        COCODataset(root)
    ds = COCODataset(root, names=["img_a", "img_b"])  # img_c not asked for
    with pytest.raises(DataError, match=r"img_b.png has size \(20, 20\) but .* says \(48, 64\)"):
        ds[1]
    ds = COCODataset(root, skip_bad=True)
    assert ds.names == ["img_a"] and sorted(n for n, _ in ds.skipped) == ["img_b", "img_c"]
