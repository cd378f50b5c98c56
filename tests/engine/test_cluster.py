"""Prediction on a real Dask cluster: a scheduler and 2 worker processes on 127.0.0.1, started here."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import numpy as np
import pytest
import tifffile

from pixelgroup.cli import main
from pixelgroup.engine.checkpoint import save_checkpoint
from pixelgroup.engine.predict import predict_paths
from pixelgroup.engine.predict_big import BigOptions
from pixelgroup.engine.segmenter import load_model

from ._toy import dense_spatial_network

distributed = pytest.importorskip("distributed")
from pixelgroup.engine.cluster import ModelRef, predict_on_cluster  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained spatial U-Net made to find many objects (seeds high, small random offsets)."""
    cfg, net = dense_spatial_network()
    path = tmp_path_factory.mktemp("model") / "dense.pt"
    save_checkpoint(path, cfg=cfg, model=net, in_channels=1)
    return path


def _images(folder, n, size, seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        tifffile.imwrite(folder / f"img{i:02d}.tif", rng.random(size).astype(np.float32))
    return folder


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def test_files_on_the_cluster_equal_a_local_run(cluster, model, tmp_path):
    images = _images(tmp_path / "in", 6, (96, 80))
    predict_paths(load_model(model), [images], tmp_path / "local", progress=False)
    report = predict_on_cluster(model, [images], tmp_path / "dask", scheduler=cluster.scheduler_address,
                                progress=False)
    assert len(report.written) == 6 and not report.failed
    local, dask = _files(tmp_path / "local"), _files(tmp_path / "dask")
    assert set(local) == set(dask) and len(local) == 12  # NAME.tif + NAME.json each
    for name in local:
        if name.endswith(".tif"):
            assert tifffile.imread(tmp_path / "dask" / name).max() > 5  # objects were found
            assert dask[name] == local[name]
    # a bad input is listed, the others are done, as locally
    (images / "img99.tif").write_bytes(b"not a tiff")
    report = predict_on_cluster(model, [images], tmp_path / "dask", scheduler=cluster.scheduler_address,
                                progress=False)
    assert report.written == [] and len(report.skipped) == 6 and "img99.tif" in report.failed[0][1]


def test_the_size_line_is_that_of_a_local_run(cluster, tmp_path, caplog):
    """The workers measure the objects they find; the client logs the line a local run logs (here a
    warning: the toy model's objects are far below the 60-100 px the checkpoint says it was trained on)."""
    import logging

    cfg, net = dense_spatial_network()
    sized = tmp_path / "sized.pt"
    save_checkpoint(sized, cfg=cfg, model=net, in_channels=1, object_diameter=80.0, object_diameter_range=[60.0, 100.0])
    images = _images(tmp_path / "in", 4, (96, 80))
    lines = {}
    for where in ("local", "dask"):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="pixelgroup.engine.predict"):
            if where == "local":
                predict_paths(load_model(sized), [images], tmp_path / where, progress=False)
            else:
                predict_on_cluster(sized, [images], tmp_path / where, scheduler=cluster.scheduler_address,
                                   progress=False)
        lines[where] = [r.getMessage() for r in caplog.records if "size this model was trained on" in r.getMessage()]
    assert len(lines["local"]) == 1 and "60-100 px for most of them" in lines["local"][0]
    assert lines["dask"] == lines["local"]


def test_workers_run_the_network_as_asked(cluster, model, tmp_path):
    """``inference`` reaches every worker: the files equal a local run with the same setting."""
    assert ModelRef(str(model), inference="plain").load().inference == "plain"
    images = _images(tmp_path / "in", 3, (96, 80))
    predict_paths(load_model(model, inference="plain"), [images], tmp_path / "local", progress=False)
    report = predict_on_cluster(model, [images], tmp_path / "dask", scheduler=cluster.scheduler_address,
                                progress=False, inference="plain")
    assert len(report.written) == 3
    local, dask = _files(tmp_path / "local"), _files(tmp_path / "dask")
    assert all(dask[name] == local[name] for name in local if name.endswith(".tif"))
    with pytest.raises(ValueError, match="inference must be one of"):
        predict_on_cluster(model, [images], tmp_path / "bad", scheduler=cluster.scheduler_address, inference="fast")
    assert not (tmp_path / "bad").exists()


def test_a_big_image_tiles_as_tasks_equal_a_local_run(cluster, model, tmp_path):
    image = np.random.default_rng(1).random((320, 288)).astype(np.float32)
    tifffile.imwrite(tmp_path / "big.tif", image, tile=(64, 64))
    opts = BigOptions(tile=64, halo=32, save_outputs=True)  # tiled, through the big-image path
    predict_paths(load_model(model), [tmp_path / "big.tif"], tmp_path / "local", big=opts, progress=False)
    report = predict_on_cluster(model, [tmp_path / "big.tif"], tmp_path / "dask",
                                scheduler=cluster.scheduler_address, big=opts, progress=False)
    assert len(report.written) == 1
    local, dask = tifffile.imread(tmp_path / "local" / "big.tif"), tifffile.imread(tmp_path / "dask" / "big.tif")
    assert local.max() > 50 and np.array_equal(local, dask)
    assert (tmp_path / "local" / "big.json").read_text() == (tmp_path / "dask" / "big.json").read_text()


def test_a_lost_worker_is_replaced_and_nothing_is_missing(cluster, model, tmp_path):
    images = _images(tmp_path / "in", 16, (320, 320), seed=2)
    predict_paths(load_model(model), [images], tmp_path / "local", progress=False)
    out = tmp_path / "dask"
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(report=predict_on_cluster(
        model, [images], out, scheduler=cluster.scheduler_address, progress=False)))
    run.start()
    with distributed.Client(cluster.scheduler_address) as client:
        pids = client.run(os.getpid)
        deadline = time.monotonic() + 120
        while not (out.is_dir() and len(list(out.glob("*.json"))) >= 2) and time.monotonic() < deadline:
            time.sleep(0.02)
        done_at_kill = len(list(out.glob("*.json")))
        os.kill(sorted(pids.values())[0], signal.SIGKILL)
    run.join(timeout=300)
    assert done_at_kill < 16, "the run finished before a worker could be killed"
    assert len(result["report"].written) == 16 and not result["report"].failed
    local, dask = _files(tmp_path / "local"), _files(out)
    assert set(dask) == set(local)  # nothing missing or duplicated
    for name in local:
        if name.endswith(".tif"):
            assert dask[name] == local[name]
        else:  # a task rerun in a new worker process may differ in a float32 score's last bit
            a, b = json.loads(local[name])["instances"], json.loads(dask[name])["instances"]
            assert [(x["id"], x["area"], x["class"]) for x in a] == [(x["id"], x["area"], x["class"]) for x in b]
            np.testing.assert_allclose([x["score"] for x in a], [x["score"] for x in b], rtol=1e-6)


def test_cli_scheduler_local_cluster(model, tmp_path, capsys):
    images = _images(tmp_path / "in", 3, (64, 64))
    assert main(["predict", "--model", str(model), str(images), "--out", str(tmp_path / "out"),
                 "--scheduler", "local:2", "--no-progress", "--inference", "plain"]) == 0
    assert "wrote 3 prediction(s)" in capsys.readouterr().out
    predict_paths(load_model(model, inference="plain"), [images], tmp_path / "local", progress=False)
    local = _files(tmp_path / "local")
    assert all(_files(tmp_path / "out")[name] == local[name] for name in local if name.endswith(".tif"))
    assert main(["predict", "--model", str(model), str(images), "--out", str(tmp_path / "o2"),
                 "--scheduler", "local:zero"]) == 2
    assert "give local:N" in capsys.readouterr().err
