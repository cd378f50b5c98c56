from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pixelgroup.data.io import DataError
from pixelgroup.data.transforms import TrainingCrops, pad_to_multiple, unpad


class _ListDataset(torch.utils.data.Dataset):
    def __init__(self, samples):
        self.samples = samples
        self.names = [s["name"] for s in samples]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


def _labelled_sample(h=40, w=48, seed=0, name="s"):
    """An image whose channels equal its label arrays, so any misalignment shows as inequality."""
    rng = np.random.default_rng(seed)
    instances = np.zeros((h, w), np.int64)
    for k in range(1, 6):
        y, x = rng.integers(0, h - 8), rng.integers(0, w - 8)
        instances[y : y + 8, x : x + 8] = k
    classes = (instances % 3).astype(np.int64)
    segments = np.arange(h * w, dtype=np.int64).reshape(h, w)  # unique per pixel: reveals any reordering
    image = np.stack([instances, classes, segments], -1).astype(np.float32)
    return {
        "image": image, "instances": instances, "classes": classes, "segments": segments, "name": name,
        "instance_classes": np.ones(5, np.int64),
    }


def _dihedral_images(a: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations / reflections of a 2D array."""
    return [np.rot90(b, k) for b in (a, a[:, ::-1]) for k in range(4)]


def test_item_keys_shapes_and_dtypes():
    crops = TrainingCrops(_ListDataset([_labelled_sample()]), crop_size=32)
    item = crops[0]
    assert set(item) == {"image", "instances", "classes", "segments", "name"}  # (N,) arrays are dropped
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    for key in ("instances", "classes", "segments"):
        assert item[key].shape == (32, 32) and item[key].dtype == torch.int64


def test_augmentation_keeps_image_and_labels_aligned():
    crops = TrainingCrops(_ListDataset([_labelled_sample(), _labelled_sample(seed=1)]), crop_size=24, length=64)
    for i in range(len(crops)):
        item = crops[i]
        assert torch.equal(item["image"][0].long(), item["instances"])
        assert torch.equal(item["image"][1].long(), item["classes"])
        assert torch.equal(item["image"][2].long(), item["segments"])


def test_all_eight_flips_and_rotations_occur_and_nothing_else():
    sample = _labelled_sample(h=16, w=16)
    crops = TrainingCrops(_ListDataset([sample]), crop_size=16, length=80)  # crop = whole image
    variants = _dihedral_images(sample["segments"])
    seen = set()
    for i in range(len(crops)):
        out = crops[i]["segments"].numpy()
        matches = [j for j, v in enumerate(variants) if np.array_equal(out, v)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(8))


def test_no_augmentation_gives_plain_crops():
    sample = _labelled_sample()
    crops = TrainingCrops(_ListDataset([sample]), crop_size=16, augment=False, length=20)
    for i in range(len(crops)):
        seg = crops[i]["segments"].numpy()
        y0, x0 = divmod(int(seg[0, 0]), 48)  # segments hold y * W + x
        np.testing.assert_array_equal(seg, sample["segments"][y0 : y0 + 16, x0 : x0 + 16])


def test_small_images_are_padded_with_zero_and_ignore():
    sample = _labelled_sample(h=20, w=30)
    crops = TrainingCrops(_ListDataset([sample]), crop_size=32, length=16)
    for i in range(len(crops)):
        item = crops[i]
        valid = item["instances"] != -1
        assert int(valid.sum()) == 20 * 30  # every pixel appears exactly once, the rest is padding
        assert torch.equal(valid, item["classes"] != -1)
        assert torch.all(item["image"][:, ~valid] == 0)
        assert sorted(item["segments"][valid].tolist()) == list(range(600))


def test_foreground_bias():
    instances = np.zeros((128, 128), np.int64)
    instances[100:104, 4:8] = 1  # one tiny object in a corner
    sample = {"image": np.zeros((128, 128, 1), np.float32), "instances": instances, "name": "sparse"}
    always = TrainingCrops(_ListDataset([sample]), crop_size=32, foreground_bias=1.0, length=40)
    assert all(bool((always[i]["instances"] > 0).any()) for i in range(40))
    never = TrainingCrops(_ListDataset([sample]), crop_size=32, foreground_bias=0.0, length=40)
    assert sum(bool((never[i]["instances"] > 0).any()) for i in range(40)) < 20


def test_deterministic_and_seed_epoch_dependent():
    ds = _ListDataset([_labelled_sample(seed=s, name=str(s)) for s in range(3)])
    a, b = TrainingCrops(ds, crop_size=16, seed=1), TrainingCrops(ds, crop_size=16, seed=1)
    assert all(torch.equal(a[i]["segments"], b[i]["segments"]) for i in range(10))
    c = TrainingCrops(ds, crop_size=16, seed=2)
    assert not all(torch.equal(a[i]["segments"], c[i]["segments"]) for i in range(10))
    first = [a[i]["segments"] for i in range(10)]
    a.set_epoch(1)
    assert not all(torch.equal(first[i], a[i]["segments"]) for i in range(10))


def test_same_crops_with_worker_processes():
    ds = _ListDataset([_labelled_sample(seed=s, name=str(s)) for s in range(2)])
    crops = TrainingCrops(ds, crop_size=16, length=8, seed=3)
    single = list(DataLoader(crops, batch_size=4, num_workers=0))
    multi = list(DataLoader(crops, batch_size=4, num_workers=2))
    for x, y in zip(single, multi):
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["instances"], y["instances"])
        assert x["name"] == y["name"]


def test_default_length_gives_many_crops_for_tiny_datasets():
    ds = _ListDataset([_labelled_sample(seed=s) for s in range(3)])
    assert len(TrainingCrops(ds)) == 3 * 86  # ceil(256 / 3) = 86 passes over the 3 images
    assert len(TrainingCrops(_ListDataset([_labelled_sample(seed=s) for s in range(300)]))) == 300
    assert len(TrainingCrops(ds, length=5)) == 5


def test_intensity_change_is_one_gain_and_offset_per_crop_within_the_ranges():
    sample = _labelled_sample(h=16, w=16)
    sample["image"] = sample["image"] + 1.0  # no zero pixels: every pixel shows the gain
    plain = TrainingCrops(_ListDataset([sample]), crop_size=16, length=200, seed=3)
    changed = TrainingCrops(_ListDataset([sample]), crop_size=16, length=200, seed=3, gain=(0.5, 2.0), shift=0.25)
    gains, offsets = [], []
    for i in range(len(plain)):
        a, b = plain[i], changed[i]
        assert torch.equal(a["segments"], b["segments"])  # same geometry: only the intensity differs
        x, y = a["image"].double().flatten(), b["image"].double().flatten()
        gain, offset = np.polyfit(x.numpy(), y.numpy(), 1)  # y = gain * x + offset, exactly
        assert torch.allclose(y, gain * x + offset, atol=1e-4)
        gains.append(gain)
        offsets.append(offset)
    gains, offsets = np.array(gains), np.array(offsets)
    assert 0.5 - 1e-6 <= gains.min() < 0.6 and 1.8 < gains.max() <= 2.0 + 1e-6  # the whole range is used
    assert 0.4 < np.mean(gains < 1.0) < 0.6  # log-uniform: as many darker as brighter crops
    assert -0.25 - 1e-6 <= offsets.min() < -0.2 and 0.2 < offsets.max() <= 0.25 + 1e-6


def test_intensity_change_only_with_augment_and_off_by_default():
    sample = _labelled_sample()
    ds = _ListDataset([sample])
    for crops in (TrainingCrops(ds, crop_size=16, length=20),
                  TrainingCrops(ds, crop_size=16, length=20, augment=False, gain=(0.5, 2), shift=1)):
        for i in range(len(crops)):
            assert torch.equal(crops[i]["image"][0].long(), crops[i]["instances"])  # values untouched


def _blocks_sample(h=96, w=96, side=4):
    """No background: ``side`` x ``side`` blocks with distinct ids, the image equal to the ids."""
    ids = (np.arange(h)[:, None] // side) * (w // side + 1) + np.arange(w)[None, :] // side + 1
    return {"image": ids[..., None].astype(np.float32), "instances": ids.astype(np.int64), "name": "blocks"}


def _inner_block_sides(labels: torch.Tensor) -> list[int]:
    """Heights of the blocks that do not touch the crop's edge."""
    lab = labels.numpy()
    edge = set(np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])))
    sides = []
    for k in np.unique(lab):
        if k not in edge:
            rows = np.flatnonzero((lab == k).any(axis=1))
            sides.append(int(rows.size))
    return sides


def test_zoom_magnifies_by_the_drawn_factor_image_and_labels_aligned():
    ds = _ListDataset([_blocks_sample()])
    for z in (2.0, 0.5):
        crops = TrainingCrops(ds, crop_size=32, length=6, zoom=(z, z), foreground_bias=0.0)
        for i in range(len(crops)):
            item = crops[i]
            assert item["image"].shape == (1, 32, 32) and item["instances"].shape == (32, 32)
            assert set(_inner_block_sides(item["instances"])) <= {int(4 * z) - 1, int(4 * z), int(4 * z) + 1}
            assert _inner_block_sides(item["instances"])
    crops = TrainingCrops(ds, crop_size=32, length=6, zoom=(2.0, 2.0))
    for i in range(len(crops)):  # bilinear image and nearest labels share pixel centres
        lab, img = crops[i]["instances"].numpy(), crops[i]["image"][0].numpy()
        pad = np.pad(lab, 1, mode="edge")
        uniform = np.all([pad[1 + dy : 33 + dy, 1 + dx : 33 + dx] == lab for dy in (-1, 0, 1) for dx in (-1, 0, 1)],
                         axis=0)
        assert uniform.mean() > 0.3
        np.testing.assert_allclose(img[uniform], lab[uniform], rtol=0, atol=1e-3)


def test_zoom_range_is_log_uniform_and_only_with_augment():
    ds = _ListDataset([_blocks_sample(h=160, w=160, side=8)])
    crops = TrainingCrops(ds, crop_size=48, length=120, zoom=(0.5, 2.0), seed=1)
    medians = np.array([np.median(_inner_block_sides(crops[i]["instances"])) / 8 for i in range(len(crops))])
    assert medians.min() < 0.6 and medians.max() > 1.8  # the whole range is used
    assert 0.35 < np.mean(medians < 1.0) < 0.65  # log-uniform: as many shrunk as magnified crops
    plain = TrainingCrops(ds, crop_size=48, length=10, augment=False, seed=1)
    off = TrainingCrops(ds, crop_size=48, length=10, augment=False, zoom=(0.5, 2.0), seed=1)
    assert all(torch.equal(plain[i]["instances"], off[i]["instances"]) for i in range(10))
    assert all(torch.equal(off[i]["image"][0].long(), off[i]["instances"]) for i in range(10))


def test_bad_arguments_and_samples():
    ds = _ListDataset([_labelled_sample()])
    with pytest.raises(ValueError, match="crop_size must be a positive"):
        TrainingCrops(ds, crop_size=0)
    with pytest.raises(ValueError, match=r"foreground_bias is a probability in \[0, 1\], got 2"):
        TrainingCrops(ds, foreground_bias=2)
    with pytest.raises(ValueError, match="gain must be 0 < low <= high"):
        TrainingCrops(ds, gain=(2.0, 1.0))
    with pytest.raises(ValueError, match="shift >= 0"):
        TrainingCrops(ds, shift=-0.1)
    with pytest.raises(ValueError, match=r"zoom must be 0 < low <= high, got \(2.0, 1.0\)"):
        TrainingCrops(ds, zoom=(2.0, 1.0))
    with pytest.raises(ValueError, match="non-empty"):
        TrainingCrops(_ListDataset([]))
    bad = _labelled_sample()
    bad["classes"] = bad["classes"][:-1]
    with pytest.raises(DataError, match=r"sample 's': 'classes' has shape \(39, 48\) but the image is \(40, 48\)"):
        TrainingCrops(_ListDataset([bad]), crop_size=16)[0]
    with pytest.raises(IndexError):
        TrainingCrops(ds, length=2)[2]


# ------------------------------------------------------------------------------------------ padding


def test_pad_to_multiple_reflects_and_round_trips():
    image = torch.arange(2 * 37 * 50, dtype=torch.float32).reshape(2, 37, 50)
    padded, size = pad_to_multiple(image, 16)
    assert padded.shape == (2, 48, 64) and size == (37, 50)
    # reflect padding mirrors about the last row / column without repeating it: row 37 = row 35
    assert torch.equal(padded[:, 37, :50], image[:, 35])
    assert torch.equal(padded[:, :37, 50], image[:, :, 48])
    assert torch.equal(unpad(padded, size), image)


def test_pad_batch_tiny_image_and_exact_multiple():
    tiny = torch.rand(1, 1, 3, 5)
    padded, size = pad_to_multiple(tiny, 8)  # too small to reflect: replicate
    assert padded.shape == (1, 1, 8, 8) and torch.equal(padded[..., 7, 7], tiny[..., 2, 4])
    assert torch.equal(unpad(padded, size), tiny)
    exact = torch.rand(3, 16, 32)
    same, size = pad_to_multiple(exact, 16)
    assert same is exact and size == (16, 32)


def test_unpad_numpy_and_errors():
    assert unpad(np.zeros((4, 8, 8)), (5, 6)).shape == (4, 5, 6)
    with pytest.raises(ValueError, match="cannot unpad"):
        unpad(torch.zeros(3, 4, 4), (5, 4))
    with pytest.raises(ValueError, match=r"expected a \(C, H, W\) or \(B, C, H, W\) tensor"):
        pad_to_multiple(torch.zeros(4, 4), 8)
