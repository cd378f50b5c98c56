"""The ``cvppp`` dataset: CVPPP leaf segmentation (plant phenotyping, A1-A5).

Layout: ``PLANT_rgb.png`` beside ``PLANT_label.png`` (other files such as ``PLANT_fg.png`` or
``PLANT_centers.png`` are ignored), either directly in ``root`` or in subfolders of it (``A1/``,
``A2/``, ...). The label image is an indexed (palette) PNG whose colour index is the leaf id (0 =
background); a grey or 16-bit label image is read as ids too, and an RGB rendering is accepted
with each distinct colour one leaf (black = background). Names are ``PLANT`` for files in ``root``
and ``FOLDER_PLANT`` (e.g. ``A1_plant001``) for files in subfolders.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..ops.labels import relabel_consecutive
from .base import DATASETS
from .detect import cvppp_folders
from .io import DataError, read_image, read_labels
from .reader import Problem, SampleFiles, StandardReader, check_size, files_with_suffix

RGB_SUFFIX = "_rgb.png"
LABEL_SUFFIX = "_label.png"


def read_leaf_labels(path: Path) -> np.ndarray:
    """``(H, W)`` int64 leaf ids of a CVPPP label: palette index, grey value, or one id per RGB colour."""
    try:
        with Image.open(path) as im:
            mode = im.mode
    except FileNotFoundError:
        raise DataError(f"{path}: label file not found; add it") from None
    except Exception as exc:  # decoders raise many types; all mean "cannot read this file"
        raise DataError(f"{path}: cannot read label ({type(exc).__name__}: {exc}); re-export it") from None
    if mode not in ("RGB", "RGBA"):
        return read_labels(path)
    rgb = read_image(path).astype(np.int64)  # (H, W, 3), alpha dropped
    packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    colours, ids = np.unique(packed, return_inverse=True)
    ids = ids.reshape(packed.shape)
    if colours[0] == 0:  # black is background
        return ids.astype(np.int64)
    return (ids + 1).astype(np.int64)


@DATASETS.register("cvppp")
class CVPPPDataset(StandardReader):
    """CVPPP leaves as instances of the single class ``leaf``.

    A sample: ``image`` ``(H, W, 3)`` float32 normalised (alpha dropped); ``instances`` ``(H, W)``
    int64 leaves renumbered 1..N in ascending order of the stored ids; ``classes`` ``(H, W)`` 0/1;
    ``instance_classes`` ``(N,)`` ones; ``name``. Constructor: see
    :class:`~pixelgroup.data.reader.StandardReader`.

    Args:
        root: a folder of ``*_rgb.png`` + ``*_label.png``, or a folder of such folders.
        split: one subfolder (e.g. ``"A1"``); ``None`` = all of them.
        skip_bad: reads every label image when the reader is built.
    """

    format_name = "cvppp"

    def _open(self, root: str | Path, split: str | None) -> tuple[SampleFiles, list[Problem]]:
        self.root = Path(root)
        folders = cvppp_folders(self.root)
        if not folders:
            raise DataError(f"{self.root}: no *{RGB_SUFFIX} here or in its subfolders; not a CVPPP folder")
        if split is not None:
            chosen = [f for f in folders if f.name == split and f != self.root]
            if not chosen:
                have = ", ".join(f.name for f in folders if f != self.root) or "none"
                raise DataError(f"{self.root / split}: CVPPP subfolder not found; available: {have}")
            folders = chosen
        self.class_names = ["background", "leaf"]
        files: SampleFiles = {}
        problems = []
        for folder in folders:
            problems += self._list_folder(folder, files)
        return files, problems

    def _list_folder(self, folder: Path, files: SampleFiles) -> list[Problem]:
        """Add the plants of ``folder`` to ``files``; the problems found."""
        prefix = "" if folder == self.root else f"{folder.name}_"
        images = files_with_suffix(folder, RGB_SUFFIX)
        labels = files_with_suffix(folder, LABEL_SUFFIX)
        problems = []
        for stem in sorted(set(images) | set(labels)):
            name = prefix + stem
            if stem not in labels:
                problems.append((name, f"{images[stem]}: image without its label {stem}{LABEL_SUFFIX}"))
            elif stem not in images:
                problems.append((name, f"{labels[stem]}: label without its image {stem}{RGB_SUFFIX}"))
            else:
                files[name] = {"image": images[stem], "label": labels[stem]}
        return problems

    def _annotation(self, name: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
        files = self._files(name)
        leaves = read_leaf_labels(files["label"])
        check_size(size, leaves, files["image"], files["label"])
        instances, original = relabel_consecutive(leaves)
        return {
            "instances": instances,
            "classes": (instances > 0).astype(np.int64),
            "instance_classes": np.ones(len(original), np.int64),
        }
