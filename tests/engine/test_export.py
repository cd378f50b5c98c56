"""Export: TorchScript pipeline == Segmenter.segment, ONNX == torch, a bioimage.io package that validates."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from pixelgroup.cli import main
from pixelgroup.data.synth import synth_nuclei, synth_shapes
from pixelgroup.engine.export import export_model
from pixelgroup.engine.export_net import head_names
from pixelgroup.engine.segmenter import load_model

LOAD_AND_RUN = """
import sys, numpy as np, torch
pipe = torch.jit.load(sys.argv[1])
for path in sys.argv[2:]:
    np.save(path + '.labels.npy', pipe(torch.from_numpy(np.load(path))).numpy())
"""


def _images(kind: str) -> list[np.ndarray]:
    """Three raw images of sizes that are not multiples of 8 (grey (H, W) or RGB (H, W, 3))."""
    generate = synth_nuclei if kind == "nuclei" else synth_shapes
    images = [generate(np.random.default_rng([99, i]), 160)[0].astype(np.float32) for i in range(3)]
    return [images[0], images[1][3:150, 5:131], images[2][:101, :77]]


@pytest.mark.parametrize("name", ["nuclei", "shapes"])
def test_torchscript_pipeline_equals_segment(name, tmp_path):
    out = export_model(name, tmp_path / "pipeline.pt", format="torchscript")
    paths = []
    for i, image in enumerate(_images(name)):
        paths.append(str(tmp_path / f"image{i}.npy"))
        np.save(paths[-1], image)
    subprocess.run([sys.executable, "-c", LOAD_AND_RUN, str(out), *paths], check=True, timeout=300)
    seg = load_model(name, inference="fused")  # float32, as the exported network
    found = 0
    for path in paths:
        expected = seg.segment(np.load(path))
        got = np.load(path + ".labels.npy")
        assert got.dtype == np.int32 and got.shape == expected.shape
        np.testing.assert_array_equal(got, expected)
        found += int(expected.max())
    assert found > 0, "the model found no object: the comparison would be empty"


def test_onnx_outputs_equal_torch(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")

    out = export_model("nuclei", tmp_path / "net.onnx", format="onnx")
    seg = load_model("nuclei", inference="fused")  # float32, as the exported network
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == head_names(seg) == ["offset", "sigma", "seed"]
    for h, w in ((64, 96), (136, 48)):
        x = torch.randn(1, 1, h, w)
        with torch.no_grad():
            expected = seg.model(x)
        got = session.run(None, {"image": x.numpy()})
        for name, array in zip(head_names(seg), got):
            np.testing.assert_allclose(array, getattr(expected, name).numpy(), atol=1e-4, rtol=0)


def test_bioimageio_package_validates_and_passes_model_test(tmp_path):
    pytest.importorskip("bioimageio.core")
    from bioimageio.core import test_model
    from bioimageio.spec import load_description

    out = export_model("nuclei", tmp_path / "nuclei.zip", format="bioimageio")
    descr = load_description(out)
    assert descr.validation_summary.status in ("valid-format", "passed"), descr.validation_summary.format()
    assert {str(t.id) for t in descr.outputs} == {"offset", "sigma", "seed"}
    summary = test_model(out)
    assert summary.status == "passed", summary.format()


def test_export_command(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnx")
    monkeypatch.setenv("PIXELGROUP_HOME", str(tmp_path / "home"))
    target = tmp_path / "net.onnx"
    assert main(["export", "--model", "nuclei", "--format", "onnx", "--out", str(target)]) == 0
    assert target.is_file()
    assert main(["export", "--model", "nuclei", "--format", "onnx", "--out", str(target)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export", "--model", "nope", "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "valid names" in capsys.readouterr().err
