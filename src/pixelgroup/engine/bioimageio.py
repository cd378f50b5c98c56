"""A bioimage.io model package (format 0.5) of a pixelgroup network.

The package holds ``rdf.yaml``, the network as TorchScript and ONNX weights (raw head outputs:
``offset``, ``sigma``, ``seed`` for ``spatial``), a test input (a synthetic image) and the test
outputs as ``.npy``, a cover image, the model card as documentation, the licence and the papers to
cite. Preprocessing is ``scale_range`` with the model's percentiles (our percentile
normalisation); the grouping into instances is not part of the package (bioimage.io has no
seeded-grouping step): run ``pixelgroup`` (or the TorchScript pipeline export) for labels.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..data.io import write_image_png
from ..data.synth import synth_nuclei, synth_shapes
from .export_net import export_onnx, head_names, traced_network
from .predict import overlay
from .segmenter import Segmenter

log = logging.getLogger(__name__)

TEST_SIZE = 128
CITATIONS = {
    "spatial": ("Neven, De Brabandere, Proesmans, Van Gool: Instance segmentation by jointly optimizing spatial "
                "embeddings and clustering bandwidth. CVPR 2019.", "10.1109/CVPR.2019.00904"),
    "hypersphere": ("Kong, Fowlkes: Recurrent pixel embedding for instance grouping. CVPR 2018.",
                    "10.1109/CVPR.2018.00976"),
    "discriminative": ("De Brabandere, Neven, Van Gool: Semantic instance segmentation with a discriminative loss "
                       "function. arXiv 2017.", None),
    "segsort": ("Hwang et al.: SegSort: Segmentation by discriminative sorting of segments. ICCV 2019.",
                "10.1109/ICCV.2019.00743"),
}
DSB = ("Caicedo et al.: Nucleus segmentation across imaging experiments: the 2018 Data Science Bowl. "
       "Nature Methods 16, 1247-1253 (2019).", "10.1038/s41592-019-0612-7")


def _test_image(in_channels: int) -> np.ndarray:
    """A synthetic ``(H, W, C)`` float32 test image: nuclei for grey models, shapes for RGB ones."""
    generate = synth_nuclei if in_channels == 1 else synth_shapes
    image, _ = generate(np.random.default_rng([7, 0]), TEST_SIZE)
    image = np.asarray(image, np.float32)
    image = image[..., None] if image.ndim == 2 else image
    if image.shape[-1] != in_channels:
        image = np.repeat(image[..., :1], in_channels, axis=-1)
    return image


def _write_files(seg: Segmenter, work: Path, card: str) -> dict:
    """Weights, test tensors, cover and documentation in ``work``; their paths and head shapes."""
    files: dict = {"heads": head_names(seg)}
    traced_network(seg).save(str(work / "weights_torchscript.pt"))
    export_onnx(seg, work / "weights.onnx")
    raw = _test_image(seg.model.in_channels)
    x = np.ascontiguousarray(raw.transpose(2, 0, 1)[None])  # (1, C, H, W)
    np.save(work / "test_input.npy", x)
    how, seg.inference = seg.inference, "plain"  # the float32 network the package's weights are
    try:
        outputs = seg.outputs(raw)  # normalised like scale_range, then the network; every head (C, H, W)
        labels = seg.segment(raw)
    finally:
        seg.inference = how
    for name, t in outputs.items():
        np.save(work / f"test_output_{name}.npy", t.detach().cpu().numpy()[None].astype(np.float32))
        files[name] = t.shape[0]
    prepared = seg.prepare(raw)
    left = np.clip(prepared, 0, 1)
    left = np.repeat(left[..., :1], 3, axis=-1) if left.shape[-1] != 3 else left
    cover = np.concatenate([(left * 255).astype(np.uint8), overlay(prepared, labels)], axis=1)  # 2:1
    write_image_png(work / "cover.png", cover)
    (work / "README.md").write_text(card, encoding="utf-8")
    (work / "LICENSE").write_text("BSD-3-Clause (the pixelgroup licence); see the model card for the data.\n")
    return files


def build_description(seg: Segmenter, work: Path, *, name: str, card: str):
    """The ``ModelDescr`` (bioimageio.spec 0.5) of ``seg`` with its files written to ``work``."""
    from bioimageio.spec.model import v0_5 as bio

    files = _write_files(seg, work, card)
    low, high = seg.cfg.data.normalize
    m = seg.model.multiple
    channels = ["grey"] if seg.model.in_channels == 1 else [f"c{i}" for i in range(seg.model.in_channels)]
    if seg.model.in_channels == 3:
        channels = ["red", "green", "blue"]
    size = bio.ParameterizedSize(min=m, step=m)
    inputs = [bio.InputTensorDescr(
        id=bio.TensorId("image"), description="raw image, any range; percentile-normalised by preprocessing",
        axes=[bio.BatchAxis(), bio.ChannelAxis(channel_names=[bio.Identifier(c) for c in channels]),
              bio.SpaceInputAxis(id=bio.AxisId("y"), size=size), bio.SpaceInputAxis(id=bio.AxisId("x"), size=size)],
        test_tensor=bio.FileDescr(source=work / "test_input.npy"),
        preprocessing=[bio.ScaleRangeDescr(kwargs=bio.ScaleRangeKwargs(
            axes=[bio.AxisId("y"), bio.AxisId("x")], min_percentile=low, max_percentile=high, eps=1e-6))])]
    outputs = []
    for head in files["heads"]:
        ref = {a: bio.SizeReference(tensor_id=bio.TensorId("image"), axis_id=bio.AxisId(a)) for a in ("y", "x")}
        outputs.append(bio.OutputTensorDescr(
            id=bio.TensorId(head), description=f"raw '{head}' head (pre-activation), see pixelgroup.types",
            axes=[bio.BatchAxis(),
                  bio.ChannelAxis(channel_names=[bio.Identifier(f"{head}{i}") for i in range(files[head])]),
                  bio.SpaceOutputAxis(id=bio.AxisId("y"), size=ref["y"]),
                  bio.SpaceOutputAxis(id=bio.AxisId("x"), size=ref["x"])],
            test_tensor=bio.FileDescr(source=work / f"test_output_{head}.npy")))
    text, doi = CITATIONS.get(seg.cfg.method, CITATIONS["spatial"])
    cite = [bio.CiteEntry(text=text, doi=bio.Doi(doi) if doi else None,
                          url=None if doi else bio.HttpUrl("https://arxiv.org/abs/1708.02551"))]
    if "DSB" in card or "Data Science Bowl" in card:
        cite.append(bio.CiteEntry(text=DSB[0], doi=bio.Doi(DSB[1])))
    description = next((line.strip() for line in card.splitlines() if line.strip() and not line.startswith("#")),
                       f"pixelgroup model {name}")
    return bio.ModelDescr(
        name=f"pixelgroup {name}", description=description[:1024],
        authors=[bio.Author(name="pixelgroup contributors")], cite=cite, license=bio.LicenseId("BSD-3-Clause"),
        documentation=bio.FileDescr(source=work / "README.md"), covers=[bio.FileDescr(source=work / "cover.png")],
        attachments=[bio.FileDescr(source=work / "LICENSE")],
        tags=["instance-segmentation", "pixel-embedding", seg.cfg.method, "2d"],
        inputs=inputs, outputs=outputs,
        weights=bio.WeightsDescr(
            torchscript=bio.TorchscriptWeightsDescr(source=work / "weights_torchscript.pt",
                                                    pytorch_version=bio.Version(torch.__version__.split("+")[0])),
            onnx=bio.OnnxWeightsDescr(source=work / "weights.onnx", opset_version=17, parent="torchscript")),
    )


def export_bioimageio(seg: Segmenter, out: Path, *, name: str, card: str, overwrite: bool = False) -> Path:
    """Write the package to ``out``: a ``.zip`` file, or else a folder (``rdf.yaml`` and the files)."""
    from bioimageio.spec import save_bioimageio_package, save_bioimageio_package_as_folder

    with tempfile.TemporaryDirectory() as tmp:
        descr = build_description(seg, Path(tmp), name=name, card=card)
        if out.suffix == ".zip":
            save_bioimageio_package(descr, output_path=out)
        else:
            if out.exists() and overwrite:
                shutil.rmtree(out)
            save_bioimageio_package_as_folder(descr, output_path=out)
    return out
