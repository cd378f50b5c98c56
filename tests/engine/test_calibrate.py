"""Grouping thresholds calibrated on held-out images: better values found, user values kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixelgroup.config import RunConfig
from pixelgroup.data.regions import SampleList
from pixelgroup.engine.calibrate import (
    Calibration,
    calibrate,
    default_min_size,
    mean_ap,
    median_area,
    min_size_candidates,
)
from pixelgroup.engine.segmenter import Segmenter

from ._toy import CentroidNet, disc_image


class RingNet(CentroidNet):
    """:class:`CentroidNet` whose seed probability is 0.95 inside objects but 0.45 on their outer
    ring of pixels: the default foreground threshold 0.5 loses the ring (lower IoU)."""

    def forward(self, x):
        out = super().forward(x)
        inside = (x[:, :1] * self.id_scale).round() > 0
        core = -F.max_pool2d(-inside.float(), 3, stride=1, padding=1) > 0.5
        logit = torch.where(core, torch.logit(torch.tensor(0.95)), torch.logit(torch.tensor(0.45)))
        out.seed = torch.where(inside, logit, torch.tensor(-8.0)).float()
        return out


def _dataset(n=2, spurious=False):
    """Samples whose image holds the object ids; ``spurious``: 5 x 5 blobs in the image that the
    ground truth does not have."""
    samples = []
    for i in range(n):
        ids = disc_image((128, 128), n=12, radius=(6, 9), seed=i)
        gt = ids.astype(np.int64)
        image = ids.copy()
        if spurious:
            for k, (y, x) in enumerate([(3, 3), (3, 120), (120, 3), (120, 120)]):
                image[y - 2 : y + 3, x - 2 : x + 3] = 100 + k
        samples.append({"image": image[..., None], "instances": gt, "name": f"s{i}"})
    return SampleList(samples)


def _segmenter(net=None, **params):
    cfg = RunConfig().replace(**{"grouping.params": params}) if params else RunConfig()
    return Segmenter(net or RingNet(), cfg, device="cpu")


def test_calibration_finds_the_foreground_threshold_that_keeps_the_ring():
    ds = _dataset()
    seg = _segmenter()
    cal = calibrate(seg, ds, area=median_area(ds))
    assert cal.grouper == "seeded_classes"
    assert cal.params["fg_threshold"] < 0.45 < 0.5  # the ring (p = 0.45) is foreground again
    assert cal.score > cal.default_score + 0.1 and cal.n_objects == 24
    assert cal.ap["ap_dsb@0.75"] == pytest.approx(1.0)
    assert seg.grouper_params.get("fg_threshold", 0.5) == 0.5  # the segmenter is left as it was


def test_calibration_raises_min_size_above_spurious_blobs_and_keeps_user_values():
    ds = _dataset(spurious=True)
    area = median_area(ds)
    assert default_min_size(area) < 25  # the default keeps the 25 px blobs...
    cal = calibrate(_segmenter(), ds, area=area)
    assert cal.params["min_size"] > 25 and cal.params["min_size"] in min_size_candidates(area)  # ...calibrated not
    kept = calibrate(_segmenter(fg_threshold=0.4), ds, user={"fg_threshold": 0.4}, area=area)
    assert "fg_threshold" not in kept.params and kept.params["min_size"] > 25


def test_nothing_to_calibrate_and_semantic_methods_give_none():
    ds = _dataset(1)
    user = {"fg_threshold": 0.5, "seed_threshold": 0.9, "min_size": 10}
    assert calibrate(_segmenter(**user), ds, user=user, area=median_area(ds)) is None
    empty = SampleList([{"image": np.zeros((64, 64, 1), np.float32), "instances": np.zeros((64, 64), np.int64)}])
    assert calibrate(_segmenter(), empty, area=100.0) is None


def test_segmenter_uses_calibrated_values_unless_the_config_gives_them():
    cal = Calibration("seeded_classes", {"fg_threshold": 0.3, "min_size": 12}, 0.9, 0.8).to_dict()
    seg = Segmenter(RingNet(), RunConfig(), calibration=cal)
    assert seg.grouper_params["fg_threshold"] == 0.3 and seg.grouper_params["min_size"] == 12
    user = Segmenter(RingNet(), RunConfig().replace(**{"grouping.params": {"min_size": 50}}), calibration=cal)
    assert user.grouper_params["min_size"] == 50 and user.grouper_params["fg_threshold"] == 0.3
    other = Segmenter(RingNet(), RunConfig().replace(**{"grouping.name": "seeded"}), calibration=cal)
    assert "fg_threshold" not in other.grouper_params  # calibrated for another grouper
    assert Calibration.from_dict(cal) == Calibration.from_dict(Calibration.from_dict(cal).to_dict())


def test_mean_ap_counts_over_the_whole_dataset():
    gt = np.zeros((20, 20), int)
    gt[2:8, 2:8], gt[12:18, 12:18] = 1, 2
    pred = gt.copy()
    pred[12:18, 12:18] = 0
    score, ap = mean_ap([gt, gt], [gt, pred])
    assert ap["ap_dsb@0.50"] == pytest.approx(3 / 4) and score == pytest.approx(3 / 4)
    assert min_size_candidates(None) == () and default_min_size(350.0) == 18  # 0.05 x, rounded
