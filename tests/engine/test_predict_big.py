"""Big-image prediction from files: lazy reading, tile-by-tile writing, stacks, regroup, atomicity."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import zarr

from pixelgroup.cli import main
from pixelgroup.data.bigimage import LazyImage, open_frames, sample_percentiles
from pixelgroup.data.io import DataError
from pixelgroup.engine.checkpoint import save_checkpoint
from pixelgroup.engine.predict import predict_paths
from pixelgroup.engine.predict_big import BigOptions, predict_file
from pixelgroup.engine.regroup import regroup_paths
from pixelgroup.metrics.matching import match

from ._toy import dense_spatial_network, disc_image, same_partition, toy_segmenter

TILED = BigOptions(tile=64, halo=32)


@pytest.fixture(scope="module")
def truth():
    return disc_image((200, 232), n=30, seed=5).astype(np.uint16)


@pytest.fixture(scope="module")
def tiff(truth, tmp_path_factory):
    path = tmp_path_factory.mktemp("in") / "cells.tif"
    tifffile.imwrite(path, truth, tile=(64, 64))
    return path


def _seg(truth):
    return toy_segmenter(max_id=int(truth.max()))


def test_tiled_tiff_to_bigtiff_and_json(truth, tiff, tmp_path):
    out = tmp_path / "out"
    path = predict_file(_seg(truth), tiff, out, TILED)
    labels = tifffile.imread(path)
    assert path.name == "cells.tif" and labels.shape == truth.shape
    assert same_partition(labels, truth.astype(np.int32))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff and tif.pages[0].is_tiled
    doc = json.loads((out / "cells.json").read_text())
    assert [d["id"] for d in doc["instances"]] == list(range(1, truth.max() + 1))
    assert sum(d["area"] for d in doc["instances"]) == (truth > 0).sum()
    assert sorted(p.name for p in out.iterdir()) == ["cells.json", "cells.tif"]  # no temporary left


def test_the_size_of_the_objects_is_measured_on_the_tiled_path(truth, tiff, tmp_path, caplog):
    import logging

    from pixelgroup.engine.diameter import median_diameter

    sizes = []
    predict_file(_seg(truth), tiff, tmp_path / "a", TILED, sizes=sizes)  # from the areas of NAME.json
    assert sizes == [pytest.approx(median_diameter(truth))]
    seg = _seg(truth)
    seg.object_diameter = 5 * sizes[0]
    with caplog.at_level(logging.INFO, logger="pixelgroup.engine.predict"):
        predict_paths(seg, [tiff], tmp_path / "b", progress=False, big=BigOptions(tile=64, halo=32, save_outputs=True))
    assert "0.2x the size this model was trained on" in caplog.text


def test_ome_zarr_in_and_out_never_touches_the_input(truth, tmp_path):
    src = tmp_path / "img.ome.zarr"
    root = zarr.open_group(str(src), mode="w", zarr_format=2)
    root.create_array("0", shape=(1, *truth.shape), chunks=(1, 64, 64), dtype=np.uint16)[:] = truth[None]
    root.attrs["multiscales"] = [{"version": "0.4", "axes": [{"name": "c", "type": "channel"}, {"name": "y"},
                                                             {"name": "x"}], "datasets": [{"path": "0"}]}]
    before = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    path = predict_file(_seg(truth), src, tmp_path / "out", BigOptions(tile=64, halo=32, out_format="ome-zarr"))
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == before
    assert path.name == "img.ome.zarr" and path.parent == tmp_path / "out"
    g = zarr.open_group(str(path), mode="r")
    assert g["labels"].attrs["labels"] == ["pixelgroup"]
    ms = g["labels/pixelgroup"].attrs["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["y", "x"] and ms["datasets"][0]["path"] == "0"
    assert same_partition(g["labels/pixelgroup/0"][:], truth.astype(np.int32))


def test_stack_frames(truth, tmp_path):
    stack = np.stack([truth, truth[::-1], np.rot90(truth, 2)])
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, stack, photometric="minisblack", metadata={"axes": "TYX"})
    seg = _seg(truth)
    with pytest.raises(DataError, match="pass --frames"):
        predict_file(seg, path, tmp_path / "out", TILED)
    opts = BigOptions(tile=64, halo=32, frames=True, save_outputs=True)
    labels = tifffile.imread(predict_file(seg, path, tmp_path / "out", opts))
    assert labels.shape == stack.shape
    assert all(same_partition(labels[t], stack[t].astype(np.int32)) for t in range(3))
    doc = json.loads((tmp_path / "out" / "movie.json").read_text())
    assert [len(f["instances"]) for f in doc["frames"]] == [truth.max()] * 3
    (again,) = regroup_paths([tmp_path / "out"], tmp_path / "re", progress=False)  # outputs store not an input
    np.testing.assert_array_equal(tifffile.imread(again), labels)


@pytest.mark.parametrize("tile", [0, 64])
def test_regroup_writes_what_predict_wrote(truth, tiff, tmp_path, tile):
    seg = _seg(truth)
    predict_file(seg, tiff, tmp_path / "pred", BigOptions(tile=tile, halo=32, save_outputs=True))
    store = tmp_path / "pred" / "cells.outputs.zarr"
    assert zarr.open_group(str(store), mode="r")["0/offset"].dtype == np.float32
    (path,) = regroup_paths([tmp_path / "pred"], tmp_path / "re", progress=False)
    np.testing.assert_array_equal(tifffile.imread(path), tifffile.imread(tmp_path / "pred" / "cells.tif"))
    assert (tmp_path / "re" / "cells.json").read_text() == (tmp_path / "pred" / "cells.json").read_text()
    # a changed parameter reaches the grouper: no seed passes 0.99999, so nothing is found
    (path,) = regroup_paths([store], tmp_path / "re2", params={"seed_threshold": 0.99999}, progress=False)
    assert tifffile.imread(path).max() == 0


def test_interrupt_leaves_no_partial_files(truth, tiff, tmp_path, monkeypatch):
    seg = _seg(truth)
    calls = []

    def interrupted(output):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return type(seg).group(seg, output)

    monkeypatch.setattr(seg, "group", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict_file(seg, tiff, tmp_path / "out", BigOptions(tile=64, halo=32, save_outputs=True))
    assert list((tmp_path / "out").iterdir()) == []


def test_finished_files_are_skipped_unless_overwrite(truth, tiff, tmp_path):
    seg = _seg(truth)
    out = tmp_path / "out"
    assert len(predict_paths(seg, [tiff], out, progress=False, big=TILED).written) == 1
    again = predict_paths(seg, [tiff], out, progress=False, big=TILED)
    assert again.written == [] and again.skipped == [tiff]
    assert len(predict_paths(seg, [tiff], out, progress=False, big=TILED, overwrite=True).written) == 1


def test_sampled_percentiles_are_close_to_exact():
    image = np.random.default_rng(0).gamma(2.0, 100.0, size=(640, 700)).astype(np.float32)
    lazy = LazyImage(image, "YX")
    exact = np.percentile(image, [1, 99.8])
    assert np.allclose(sample_percentiles(lazy, 1, 99.8), exact[:, None])  # small: read whole
    low, high = sample_percentiles(lazy, 1, 99.8, max_pixels=200_000)  # 3 windows of 256^2
    assert abs(low[0] - exact[0]) < 0.1 * exact[0] and abs(high[0] - exact[1]) < 0.1 * exact[1]


def test_open_frames_axes(tmp_path):
    rgb = np.zeros((40, 50, 3), np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    tifffile.imwrite(tmp_path / "chw.tif", np.zeros((3, 40, 50), np.uint8), photometric="minisblack")
    tifffile.imwrite(tmp_path / "t.tif", np.zeros((5, 40, 50), np.uint8), metadata={"axes": "TYX"})
    for name, n, c in (("rgb.tif", 1, 3), ("chw.tif", 1, 3), ("t.tif", 5, 1)):
        frames = open_frames(tmp_path / name)
        assert (len(frames), frames[0].shape, frames[0].channels) == (n, (40, 50), c)
        assert frames[-1].window((3, 9, 4, 14)).shape == (6, 10, c)


def test_cli_tiled_predict_then_regroup(tmp_path):
    # a real (untrained) network that finds ~400 discs: CLI tiled == one pass (>= 99% matched at
    # IoU 0.95), and regroup of the saved outputs == predict
    cfg, model = dense_spatial_network()
    ckpt = save_checkpoint(tmp_path / "m.pt", cfg=cfg, model=model, in_channels=1)
    image = (np.random.default_rng(0).random((192, 224)) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "noise.tif", image)
    base = ["predict", "--model", str(ckpt), str(tmp_path / "noise.tif"), "--device", "cpu", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "one"), "--tile", "0"]) == 0
    assert main([*base, "--out", str(tmp_path / "tiled"), "--tile", "64", "--halo", "32", "--save-outputs"]) == 0
    one, tiled = (tifffile.imread(tmp_path / d / "noise.tif") for d in ("one", "tiled"))
    m = match(one, tiled, thresh=0.95)
    assert one.max() > 200 and m.tp >= 0.99 * one.max() and m.fp <= 0.01 * one.max()
    assert main(["regroup", str(tmp_path / "tiled"), "--out", str(tmp_path / "re"), "--no-progress"]) == 0
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "re" / "noise.tif"), tiled)
    assert main(["regroup", str(tmp_path / "tiled"), "--out", str(tmp_path / "re2"), "--no-progress",
                 "--param", "min_size=10000"]) == 0
    assert tifffile.imread(tmp_path / "re2" / "noise.tif").max() == 0


def test_small_stack_without_frames_says_how(truth, tmp_path):
    tifffile.imwrite(tmp_path / "s.tif", np.stack([truth, truth]), photometric="minisblack", metadata={"axes": "TYX"})
    report = predict_paths(_seg(truth), [tmp_path / "s.tif"], tmp_path / "out", progress=False)
    assert report.written == [] and "pass --frames" in report.failed[0][1]  # listed, the others go on
    with pytest.raises(DataError, match="pass --frames"):
        predict_paths(_seg(truth), [tmp_path / "s.tif"], tmp_path / "out", progress=False, strict=True)
