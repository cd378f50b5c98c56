"""The spatial validation split: a band of each image, a margin so no object is in both parts."""

from __future__ import annotations

import numpy as np
import pytest

from pixelgroup.data.regions import MIN_BAND, RegionCut, SampleList, choose_cut, crop_sample, split_regions


def _discs(shape, centres, radius):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    inst = np.zeros(shape, np.int64)
    for i, (cy, cx) in enumerate(centres, start=1):
        inst[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i
    return inst


def _sample(inst, name="img"):
    return {"image": inst[..., None].astype(np.float32), "instances": inst, "name": name}


def test_cut_avoids_objects_and_keeps_a_margin():
    # a tall image: discs in rows; the target cut (row 160 of 200 at 20 %) crosses the row at y = 160
    centres = [(y, x) for y in (20, 60, 100, 140, 160, 185) for x in (20, 60, 100)]
    inst = _discs((200, 120), centres, 8)
    cut = choose_cut(inst, inst.shape, 0.2)
    assert cut.axis == 0 and cut.size == 200
    # the chosen cut crosses no disc: between the rows at 140 and 160 (148 < cut <= 152)
    assert cut.crossing == 0 and 149 <= cut.train_end <= 152 and cut.margin == 0
    train, val = inst[: cut.train_end], inst[cut.val_start:]
    assert not (set(np.unique(train)) & set(np.unique(val))) - {0}


def test_crossing_objects_stay_in_training_and_validation_starts_after_them():
    # objects everywhere along the cut: a grid dense enough that every position crosses one
    centres = [(y, x) for y in range(8, 200, 12) for x in (10, 40, 70)]
    inst = _discs((200, 80), centres, 7)
    cut = choose_cut(inst, inst.shape, 0.2)
    assert cut.crossing > 0 and cut.margin > 0
    train, val = inst[: cut.train_end], inst[cut.val_start:]
    assert not (set(np.unique(train)) & set(np.unique(val))) - {0}  # no object in both parts
    # the crossing objects are whole... up to the cut in training and absent from validation
    crossing = set(np.unique(inst[cut.train_end - 1])) & set(np.unique(inst[cut.train_end])) - {0}
    assert crossing and not crossing & set(np.unique(val))


def test_wide_images_are_cut_along_columns_and_small_ones_not_at_all():
    inst = _discs((100, 300), [(50, x) for x in range(20, 300, 40)], 9)
    cut = choose_cut(inst, inst.shape, 0.15)
    assert cut.axis == 1 and cut.size == 300
    assert choose_cut(None, (100, 300), 0.15) == RegionCut(1, 300, 255, 255, 0)
    too_small = int(MIN_BAND / 0.15) - 12  # a band of round(0.15 * 201) = 30 < MIN_BAND px
    assert choose_cut(None, (too_small, too_small), 0.15) is None


def test_crop_sample_cuts_every_plane_of_the_image_size():
    inst = _discs((64, 40), [(20, 20)], 5)
    sample = {**_sample(inst), "classes": (inst > 0).astype(np.int64), "instance_classes": np.array([1])}
    part = crop_sample(sample, 0, 32, 64, "[val]")
    assert part["image"].shape == (32, 40, 1) and part["classes"].shape == (32, 40)
    assert part["instance_classes"] is sample["instance_classes"] and part["name"] == "img[val]"


def test_split_regions_widens_the_band_until_validation_has_enough_objects():
    centres = [(y, x) for y in range(15, 400, 30) for x in (15, 45)]
    inst = _discs((400, 60), centres, 10)
    split = split_regions(SampleList([_sample(inst, "one")]), 0.1, min_val_objects=8)
    assert split.fraction > 0.1 and split.val_objects >= 8
    assert [s["name"] for s in split.train.samples] == ["one[train]"]
    assert [s["name"] for s in split.val.samples] == ["one[val]"]
    total = split.train[0]["image"].shape[0] + split.cuts["one"].margin + split.val[0]["image"].shape[0]
    assert total == 400
    assert "validation: a band of" in split.describe()


def test_split_regions_keeps_small_images_whole_and_gives_up_without_any_cut():
    big = _sample(_discs((300, 100), [(y, 50) for y in range(20, 300, 35)], 9), "big")
    small = _sample(_discs((40, 40), [(20, 20)], 6), "small")

    class Reader(SampleList):
        class_names = ["background", "nucleus"]

    split = split_regions(Reader([big, small]), 0.15, min_val_objects=1)
    assert [s["name"] for s in split.train.samples] == ["big[train]", "small"]
    assert split.train.class_names == ["background", "nucleus"]
    assert "1 image(s) too small" in split.describe()
    assert split_regions(SampleList([small]), 0.15) is None


@pytest.mark.parametrize("fraction", [0.1, 0.15, 0.3])
def test_split_regions_is_deterministic(fraction):
    inst = _discs((256, 256), [(y, x) for y in range(20, 256, 40) for x in range(20, 256, 40)], 12)
    a = split_regions(SampleList([_sample(inst)]), fraction)
    b = split_regions(SampleList([_sample(inst)]), fraction)
    assert a.cuts == b.cuts
