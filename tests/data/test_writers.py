from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from pixelgroup.data.io import read_labels
from pixelgroup.data.writers import read_cityscapes_results, write_cityscapes_results, write_coco_results


def _labels():
    labels = np.zeros((12, 10), np.int32)
    labels[1:5, 1:4] = 1
    labels[6:11, 2:9] = 2
    labels[0, 9] = 4  # id 3 has no pixels
    return labels


def test_coco_results_rle_scores_and_categories(tmp_path):
    labels = _labels()
    n = write_coco_results(tmp_path / "r.json", [(5, labels, [0.9, 0.5, 0.1, 0.3], [1, 2, 1, 2])],
                           category_ids=[3, 7])
    entries = json.loads((tmp_path / "r.json").read_text())
    assert n == len(entries) == 3  # the empty id 3 is left out
    got = [(e["image_id"], e["category_id"], e["score"]) for e in entries]
    assert got == [(5, 3, 0.9), (5, 7, 0.5), (5, 7, 0.3)]
    for e, i in zip(entries, (1, 2, 4)):
        assert isinstance(e["segmentation"]["counts"], str) and e["segmentation"]["size"] == [12, 10]
        np.testing.assert_array_equal(mask_utils.decode(e["segmentation"]).astype(bool), labels == i)
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # atomic: no temporary file left


def test_coco_results_without_mapping_use_classes_as_ids(tmp_path):
    write_coco_results(tmp_path / "r.json", [(1, _labels(), np.ones(4), [5, 6, 7, 8])])
    assert [e["category_id"] for e in json.loads((tmp_path / "r.json").read_text())] == [5, 6, 8]


@pytest.mark.parametrize(
    ("scores", "classes", "category_ids", "match"),
    [
        ([1.0], [1], None, "labels go up to 4 but there are 1 scores and 1 classes"),
        (np.ones(4), [1, 2, 3, 1], [3, 7], "class 3 has no category id"),
    ],
)
def test_coco_results_bad_input(tmp_path, scores, classes, category_ids, match):
    with pytest.raises(ValueError, match=match):
        write_coco_results(tmp_path / "r.json", [(1, _labels(), scores, classes)], category_ids=category_ids)
    assert not (tmp_path / "r.json").exists()


def test_negative_labels_rejected(tmp_path):
    labels = _labels()
    labels[0, 0] = -1
    with pytest.raises(ValueError, match="labels must be >= 0"):
        write_cityscapes_results(tmp_path, "x", labels, np.ones(4), np.ones(4, int))


def test_cityscapes_masks_are_binary_png(tmp_path):
    labels = _labels()
    txt = write_cityscapes_results(tmp_path, "city_000000_000001", labels, [0.9, 0.5, 0.1, 0.3], [3, 1, 8, 8])
    lines = txt.read_text().splitlines()
    assert lines == [
        "masks/city_000000_000001_001.png 26 0.900000",
        "masks/city_000000_000001_002.png 24 0.500000",
        "masks/city_000000_000001_004.png 33 0.300000",
    ]
    mask = read_labels(tmp_path / "masks" / "city_000000_000001_002.png")
    assert set(np.unique(mask).tolist()) == {0, 255}
    np.testing.assert_array_equal(mask > 0, labels == 2)


def test_cityscapes_read_back_paints_highest_score_on_top(tmp_path):
    (tmp_path / "m").mkdir()
    a, b = np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8)
    a[:, :3], b[:, 2:] = 255, 255  # overlap in column 2
    from PIL import Image

    Image.fromarray(a).save(tmp_path / "m" / "a.png")
    Image.fromarray(b).save(tmp_path / "m" / "b.png")
    (tmp_path / "x.txt").write_text("m/a.png 26 0.9\nm/b.png 24 0.4\n")
    labels, scores, ids = read_cityscapes_results(tmp_path / "x.txt")
    assert labels[:, 2].tolist() == [1, 1, 1, 1] and labels[:, 3].tolist() == [2, 2, 2, 2]
    assert ids.tolist() == [26, 24] and scores.tolist() == [0.9, 0.4]


def test_cityscapes_empty_prediction(tmp_path):
    txt = write_cityscapes_results(tmp_path, "n", np.zeros((5, 6), np.int64), [], [])
    assert txt.read_text() == ""
    labels, scores, _ = read_cityscapes_results(txt, shape=(5, 6))
    assert labels.shape == (5, 6) and not labels.any() and scores.size == 0
    with pytest.raises(ValueError, match="no instances listed; pass shape"):
        read_cityscapes_results(txt)
