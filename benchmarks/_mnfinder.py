"""The MNFinder wheel's annotated nuclei (DiPeso et al., micronucleus segmentation; MIT licence):
fetched once from PyPI with ``pip download`` (nothing else of MNFinder is used), images and
nucleus masks of a series written as ``(H, W)`` tif pairs for the real-data benchmarks."""

from __future__ import annotations

import re
import shutil
from io import BytesIO
from pathlib import Path

import numpy as np
import tifffile
from _common import ROOT, run_real_benchmark, wheel
from PIL import Image

WHEEL = "mnfinder==1.2.3"


def colours_to_labels(rgba: np.ndarray) -> np.ndarray:
    """``(H, W, 4)`` uint8 mask, one colour per nucleus, transparent background -> ``(H, W)`` int32 labels."""
    flat = rgba.reshape(-1, 4)
    colours, inverse = np.unique(flat, axis=0, return_inverse=True)
    labels = inverse.reshape(rgba.shape[:2]).astype(np.int32)
    background = np.flatnonzero(colours[:, 3] == 0)
    if background.size != 1:
        raise ValueError(f"expected one transparent background colour, found {background.size}")
    # make the background 0 and number the nuclei 1..n
    b = int(background[0])
    labels = np.where(labels == b, 0, np.where(labels < b, labels + 1, labels))
    return labels


def stems(series: str, split: str) -> list[str]:
    """The image stems of ``split`` (``training-data``, ``test-data``, ``validation-data``) of a series
    that have a nucleus mask, sorted."""
    prefix = f"mnfinder/{split}/{series}/nucleus_masks/"
    with wheel(WHEEL) as z:
        return sorted(n[len(prefix):-len(".png")] for n in z.namelist() if n.startswith(prefix) and n.endswith(".png"))


def _clean(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem)


def safe_name(split: str, stem: str) -> str:
    """The file name of an item in a benchmark folder, e.g. ``test_HFF-revt-01_s5.tif``."""
    return f"{split.split('-')[0]}_{_clean(stem)}.tif"


def fetch(series: str, items: list[tuple[str, str]]) -> Path:
    """The cache folder of ``series`` (``ROOT/mnfinder/SERIES``) holding the image (as stored: uint8 or
    uint16) and int32 labels of each ``(split, stem)`` of ``items`` as ``{split}_{stem}_img.tif`` /
    ``_lab.tif``; the items not there yet are extracted from the wheel (the labels written last)."""
    root = ROOT / "mnfinder" / series
    missing = [(split, stem) for split, stem in items if not (root / f"{split}_{_clean(stem)}_lab.tif").is_file()]
    if not missing:
        return root
    root.mkdir(parents=True, exist_ok=True)
    with wheel(WHEEL) as z:
        for split, stem in missing:
            base = f"mnfinder/{split}/{series}"
            image = tifffile.imread(BytesIO(z.read(f"{base}/images/{stem}.tif")))
            rgba = np.asarray(Image.open(BytesIO(z.read(f"{base}/nucleus_masks/{stem}.png"))).convert("RGBA"))
            name = f"{split}_{_clean(stem)}"
            tifffile.imwrite(root / f"{name}_img.tif", image)
            tifffile.imwrite(root / f"{name}_lab.tif", colours_to_labels(rgba))
    return root


def write_split(dest: Path, src: Path, items: list[tuple[str, str]]) -> int:
    """Copy whole images and labels into ``dest/images`` and ``dest/masks``; return the number of nuclei."""
    (dest / "images").mkdir(parents=True, exist_ok=True)
    (dest / "masks").mkdir(parents=True, exist_ok=True)
    count = 0
    for split, stem in items:
        name, cached = safe_name(split, stem), f"{split}_{_clean(stem)}"
        shutil.copyfile(src / f"{cached}_img.tif", dest / "images" / name)
        shutil.copyfile(src / f"{cached}_lab.tif", dest / "masks" / name)
        count += int(len(np.unique(tifffile.imread(dest / "masks" / name))) - 1)
    return count


def run_benchmark(doc: str, *, series: str, train: list[tuple[str, str]], test: list[tuple[str, str]],
                  name: str, what: str) -> None:
    """The command line of a benchmark on the MNFinder ``series``: whole images of ``train`` and
    ``test`` (``(split, stem)`` pairs) as the train and test folders (see :func:`run_real_benchmark`)."""

    def write(work: Path) -> str:
        src = fetch(series, train + test)
        n_train, n_test = write_split(work / "train", src, train), write_split(work / "test", src, test)
        return (f"train: {len(train)} whole images, {n_train} nuclei (a band of each is held out for validation); "
                f"test: {len(test)} images, {n_test} nuclei")

    run_real_benchmark(doc, name=name, write=write, what=what)
