"""Adding a method touches no package file: a loss, a grouper and a recipe, registered here in the
test itself, train, predict and evaluate through the engine and the CLI like the published methods.
The README's "Adding a method" section walks through the same three pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.measure import label as connected_components
from torch import nn

import pixelgroup
from pixelgroup.cli import main
from pixelgroup.config import RunConfig
from pixelgroup.data.io import read_image, read_labels
from pixelgroup.data.synth import write_synthetic
from pixelgroup.grouping import GROUPERS
from pixelgroup.losses import LOSSES
from pixelgroup.methods import METHODS, Method, register_method
from pixelgroup.types import Instances, ModelOutput


class ForegroundBCE(nn.Module):
    """A trivial loss: binary cross-entropy of a foreground logit against ``instances > 0``."""

    def __init__(self, *, pos_weight: float = 1.0) -> None:
        super().__init__()
        self.pos_weight = float(pos_weight)

    def forward(self, output: ModelOutput, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        target = (batch["instances"] > 0).float()[:, None]  # (B, 1, H, W)
        bce = F.binary_cross_entropy_with_logits(output.foreground, target,
                                                 pos_weight=torch.tensor(self.pos_weight))
        return {"bce": bce, "total": bce}


def components(output: ModelOutput, *, threshold: float = 0.5, min_size: int = 1) -> Instances:
    """A trivial grouper: connected components of ``sigmoid(foreground) > threshold``."""
    fg = (torch.sigmoid(output.foreground[0]) > threshold).cpu().numpy()
    labels = connected_components(fg, connectivity=1)
    sizes = np.bincount(labels.ravel())
    labels[sizes[labels] < min_size] = 0
    labels = connected_components(labels > 0, connectivity=1)
    return Instances(labels, scores=np.ones(int(labels.max()), np.float32))


@pytest.fixture
def toy_method():
    """Register the three pieces, then unregister them so no other test sees them."""
    LOSSES.add("toy_bce", ForegroundBCE)
    GROUPERS.add("toy_components", components)
    method = register_method(Method(
        name="toy",
        task="instance",
        heads=lambda cfg: {"foreground": 1},
        loss="toy_bce",
        grouper="toy_components",
        grouper_args=lambda settings: {"min_size": 4},  # the loss's settings -> the grouper's
    ))
    yield method
    METHODS.remove("toy")
    GROUPERS.remove("toy_components")
    LOSSES.remove("toy_bce")


def test_a_method_defined_in_a_test_trains_and_predicts_through_the_engine(toy_method, tmp_path):
    data = tmp_path / "data"
    write_synthetic(data, kind="nuclei", n=3, size=64, seed=0)
    cfg = RunConfig(method="toy").replace(**{"model.width": 8, "model.depth": 2, "data.crop_size": 32,
                                             "data.batch_size": 2, "train.steps": 30, "train.lr": 0.01})
    result = pixelgroup.fit(cfg, data=data, out=tmp_path / "run", progress=False)
    assert result.steps == 30 and result.best_metric > 0.0  # it learned to find some nuclei
    seg = pixelgroup.load_model(tmp_path / "run")
    assert seg.method is toy_method and seg.grouper == "toy_components"
    # min_size: the recipe's 4, unless the calibration on the held-out images found a better value
    calibrated = (seg.calibration or {}).get("params", {})
    assert seg.grouper_params == {"min_size": calibrated.get("min_size", 4)}
    image = read_image(sorted((data / "images").iterdir())[0])
    labels = seg.segment(image)
    assert labels.shape == image.shape[:2] and labels.max() >= 1
    with pytest.raises(ValueError, match=r"unknown loss key\(s\) \['margin'\]; valid keys: \['pos_weight'\]"):
        toy_method.build_loss(cfg.replace(loss={"margin": 1.0}))


def test_a_method_defined_in_a_test_runs_from_the_cli(toy_method, tmp_path):
    data, run, pred = tmp_path / "data", tmp_path / "run", tmp_path / "pred"
    write_synthetic(data, kind="nuclei", n=3, size=64, seed=0)
    assert main(["train", "--data", str(data), "--out", str(run), "--method", "toy", "--steps", "2",
                 "--crop-size", "32", "--batch-size", "2", "--no-progress"]) == 0
    assert main(["predict", "--model", str(run), str(data / "images"), "--out", str(pred), "--no-progress"]) == 0
    written = sorted(pred.glob("*.tif"))
    assert len(written) == 3 and read_labels(written[0]).shape == (64, 64)
