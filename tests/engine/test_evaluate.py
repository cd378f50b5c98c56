"""evaluate_folders: ground truth and predictions paired by stem, and void ('ignore') regions."""

import numpy as np
import pytest
import tifffile

from pixelgroup.data.io import DataError
from pixelgroup.engine.evaluate import evaluate_folders


def _write(folder, stem, labels):
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / f"{stem}.tif", labels.astype(np.int32))


@pytest.fixture
def folders(tmp_path):
    gt = np.zeros((32, 32), np.int32)
    gt[2:10, 2:10] = 1  # found
    gt[20:30, 20:30] = 2  # missed (say, a piece cut by a tile border)
    pred = np.zeros_like(gt)
    pred[2:10, 2:10] = 1
    pred[0:6, 24:32] = 2  # a spurious object in the corner that will be void
    _write(tmp_path / "gt" / "masks", "a", gt)
    _write(tmp_path / "pred", "a", pred)
    void = np.zeros(gt.shape, bool)
    void[20:30, 20:30] = True
    void[0:8, 22:32] = True
    return tmp_path / "gt", tmp_path / "pred", void


def test_ignore_removes_objects_and_predictions_from_the_score(folders):
    gt, pred, void = folders
    plain = evaluate_folders(gt, pred)
    assert plain["ap_dsb@0.50"] == pytest.approx(1 / 3)  # 1 TP, 1 FN, 1 FP
    voided = evaluate_folders(gt, pred, ignore={"a": void})
    assert voided["ap_dsb@0.50"] == pytest.approx(1.0)
    assert voided["n_gt"] == 1
    only_missed = evaluate_folders(gt, pred, ignore={"a": np.pad(np.ones((10, 10), bool), ((20, 2), (20, 2)))})
    assert only_missed["ap_dsb@0.50"] == pytest.approx(0.5)  # the spurious prediction still counts


def test_ignore_is_checked(folders):
    gt, pred, void = folders
    with pytest.raises(DataError, match="not there"):
        evaluate_folders(gt, pred, ignore={"b": void})
    with pytest.raises(DataError, match="'ignore' mask is"):
        evaluate_folders(gt, pred, ignore={"a": void[:10]})
    with pytest.raises(DataError, match="semantic"):
        evaluate_folders(gt, pred, semantic=True, ignore={"a": void})
