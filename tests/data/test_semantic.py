from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from pixelgroup.data.base import DATASETS
from pixelgroup.data.io import DataError, normalize_percentile
from pixelgroup.data.semantic import SemanticFolderDataset, instances_from_classes
from pixelgroup.data.synth_semantic import CLASS_NAMES, synth_semantic, write_synthetic_semantic

PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0] + [9] * (3 * 252) + [224, 224, 192]  # index 255 = VOC border


def _classes_a() -> np.ndarray:
    """(12, 16): class 1 in two separate boxes, class 2 in one, a 255 border around the first box."""
    c = np.zeros((12, 16), np.uint8)
    c[1:5, 1:5] = 255
    c[2:4, 2:4] = 1
    c[8:11, 2:6] = 1
    c[6:10, 10:15] = 2
    return c


def _make(root, *, with_txt: bool = True, segments: bool = False):
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "classes").mkdir()
    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(root / "images" / "a.png")
    pal = Image.fromarray(_classes_a())
    pal.putpalette(PALETTE)
    pal.save(root / "classes" / "a.png")  # palette PNG as VOC's SegmentationClass
    tifffile.imwrite(root / "images" / "b.tif", rng.integers(0, 4000, (12, 16), dtype=np.uint16))
    Image.fromarray(np.full((12, 16), 2, np.uint8)).save(root / "classes" / "b.png")
    if with_txt:
        (root / "classes.txt").write_text("background\ncat\ndog\n")
    if segments:
        (root / "segments").mkdir()
        for n in ("a", "b"):
            Image.fromarray((np.arange(16)[None, :] // 4 * 30).repeat(12, 0).astype(np.uint8)).save(
                root / "segments" / f"{n}.png")


def test_sample_format_and_ignore(tmp_path):
    _make(tmp_path)
    ds = SemanticFolderDataset(tmp_path)
    assert DATASETS.get("semantic_folder") is SemanticFolderDataset
    assert ds.names == ["a", "b"] and len(ds) == 2
    assert ds.class_names == ["background", "cat", "dog"] and ds.n_classes == 3
    s = ds[0]
    assert s["name"] == "a" and "segments" not in s
    assert s["image"].shape == (12, 16, 3) and s["image"].dtype == np.float32
    raw = np.asarray(Image.open(tmp_path / "images" / "a.png"))
    assert np.allclose(s["image"], normalize_percentile(raw, 1.0, 99.8))
    want = _classes_a().astype(np.int64)
    want[want == 255] = -1
    assert s["classes"].dtype == np.int64 and np.array_equal(s["classes"], want)
    # instances: the two class-1 boxes are separate components, the class-2 box a third
    assert s["instances"].max() == 3 and sorted(s["instance_classes"].tolist()) == [1, 1, 2]
    assert (s["instances"][want == -1] == -1).all() and (s["instances"][want == 0] == 0).all()
    grey = ds[1]
    assert grey["image"].shape == (12, 16, 1) and (grey["classes"] == 2).all()


def test_instances_from_classes_hand_derived():
    c = np.array([[1, 1, 0, 2], [0, 0, 0, 2], [1, 0, -1, 0]])
    inst, owners = instances_from_classes(c)
    # class 1: two components (top-left pair, bottom-left pixel); class 2: one (right column)
    assert inst.tolist() == [[1, 1, 0, 3], [0, 0, 0, 3], [2, 0, -1, 0]]
    assert owners.tolist() == [1, 1, 2]


def test_default_class_names_and_names_subset(tmp_path):
    _make(tmp_path, with_txt=False)
    assert SemanticFolderDataset(tmp_path).class_names == ["class_0", "class_1", "class_2"]
    assert SemanticFolderDataset(tmp_path, names=["b"]).names == ["b"]
    with pytest.raises(DataError, match="unknown image name"):
        SemanticFolderDataset(tmp_path, names=["zzz"])


def test_segments_sources(tmp_path):
    _make(tmp_path, segments=True)
    s = SemanticFolderDataset(tmp_path)[0]  # auto: the segments folder exists
    assert s["segments"].tolist()[0] == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert "segments" not in SemanticFolderDataset(tmp_path, segments=None)[0]
    computed = SemanticFolderDataset(tmp_path, segments="felzenszwalb")[0]["segments"]
    assert computed.shape == (12, 16) and computed.dtype == np.int64
    with pytest.raises(ValueError, match="segments="):
        SemanticFolderDataset(tmp_path, segments="hed")


def test_segments_files_required(tmp_path):
    _make(tmp_path)
    with pytest.raises(DataError, match="segments"):
        SemanticFolderDataset(tmp_path, segments="files")


def test_missing_label_names_the_file(tmp_path):
    _make(tmp_path)
    (tmp_path / "classes" / "b.png").unlink()
    with pytest.raises(DataError, match="no class map for image 'b'"):
        SemanticFolderDataset(tmp_path)


def test_size_mismatch_names_both_files(tmp_path):
    _make(tmp_path)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "classes" / "b.png")
    with pytest.raises(DataError, match=r"b\.tif has size \(12, 16\) but .*b\.png has size \(5, 5\)"):
        SemanticFolderDataset(tmp_path)[1]


def test_class_index_beyond_classes_txt(tmp_path):
    _make(tmp_path)
    Image.fromarray(np.full((12, 16), 7, np.uint8)).save(tmp_path / "classes" / "b.png")
    with pytest.raises(DataError, match=r"b\.png: class index 7 >= 3 classes"):
        SemanticFolderDataset(tmp_path)[1]


def test_missing_folders(tmp_path):
    with pytest.raises(DataError, match="not found"):
        SemanticFolderDataset(tmp_path / "nope")
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="classes folder not found"):
        SemanticFolderDataset(tmp_path)


def test_synth_semantic_is_seeded_and_covers_the_classes():
    img, cls = synth_semantic(np.random.default_rng(3), (48, 64))
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert cls.shape == (48, 64) and cls.dtype == np.uint8
    img2, cls2 = synth_semantic(np.random.default_rng(3), (48, 64))
    assert np.array_equal(img, img2) and np.array_equal(cls, cls2)
    seen = set()
    for i in range(6):
        seen |= set(np.unique(synth_semantic(np.random.default_rng(i), 64)[1]).tolist())
    assert seen == set(range(len(CLASS_NAMES)))  # background + 5 classes
    with pytest.raises(ValueError, match="at least 32"):
        synth_semantic(np.random.default_rng(0), 16)


def _object_mean_colours(palette: str) -> dict[int, np.ndarray]:
    means: dict[int, list[np.ndarray]] = {}
    for i in range(12):
        img, cls = synth_semantic(np.random.default_rng(i), 64, palette=palette)
        for c in range(1, 6):
            if (cls == c).sum() > 50:
                means.setdefault(c, []).append(img[cls == c].astype(np.float64).mean(0))
    return {c: np.array(ms) for c, ms in means.items()}


def test_class_palette_gives_each_class_its_hue():
    # the hue of every object's mean colour is nearest to its own class's mean hue among the five
    means = _object_mean_colours("class")
    assert set(means) == {1, 2, 3, 4, 5}
    def hue(v: np.ndarray) -> np.ndarray:  # the colour minus its grey level, unit length
        return (v - v.mean()) / (np.linalg.norm(v - v.mean()) + 1e-9)

    centres = {c: hue(ms.mean(0)) for c, ms in means.items()}
    for c, ms in means.items():
        for m in ms:
            assert max(centres, key=lambda k: float(hue(m) @ centres[k])) == c, (c, m)


def test_shared_palette_does_not_identify_the_class():
    # every foreground class appears in several palette hues: per-object mean colours of one class
    # spread as widely as those of all classes together (no class owns a colour)
    for c, ms in _object_mean_colours("shared").items():
        assert np.ptp(ms, axis=0).max() > 60, c
    with pytest.raises(ValueError, match="palette"):
        synth_semantic(np.random.default_rng(0), 64, palette="rainbow")


def test_write_synthetic_semantic_reads_back(tmp_path):
    paths = write_synthetic_semantic(tmp_path, n=3, size=40, seed=1)
    assert [p.name for p in paths] == ["synth_0000.png", "synth_0001.png", "synth_0002.png"]
    ds = SemanticFolderDataset(tmp_path)
    assert ds.class_names == list(CLASS_NAMES)
    _, cls = synth_semantic(np.random.default_rng([1, 2]), 40)
    assert np.array_equal(ds[2]["classes"], cls.astype(np.int64))
    with pytest.raises(ValueError, match="n must be"):
        write_synthetic_semantic(tmp_path, n=0)
