"""Standard dataset layouts: where their files are, :func:`detect_format`, and the reader skeleton.

Each recogniser below answers "does this folder hold layout X, and where exactly?" without reading
any image; the readers (``voc.py``, ``coco.py``, ``cityscapes.py``, ``cvppp.py``) use the same
functions to resolve their root, so detection and reading never disagree.

:class:`StandardReader` is the part the four readers share: the ``names`` subset, ``skip_bad``
(validate every sample up front, skip and record the bad ones, log one warning with the count),
normalisation and the sample dict of :mod:`pixelgroup.data.base`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image
from torch.utils.data import Dataset

from .io import TIFF_SUFFIXES, DataError, normalize_percentile, read_image

logger = logging.getLogger(__name__)

LOOKED_FOR = (
    "folder (images/ + masks/)",
    "voc (JPEGImages/ + SegmentationObject/, also under VOC2012/ or VOCdevkit/VOC2012/)",
    "coco (annotations/instances_*.json, or a .json file)",
    "cityscapes (gtFine/ + leftImg8bit/)",
    "cvppp (*_rgb.png beside *_label.png, in the folder or its subfolders A1, A2, ...)",
)


def voc_root(root: Path) -> Path | None:
    """The folder with ``JPEGImages/`` + ``SegmentationObject/``: root, VOC2012/ or VOCdevkit/VOC2012/."""
    for base in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (base / "JPEGImages").is_dir() and (base / "SegmentationObject").is_dir():
            return base
    return None


def coco_annotation_files(root: Path) -> list[Path]:
    """``root/annotations/instances_*.json`` (sorted), or ``[root]`` when root is a ``.json`` file."""
    if root.is_file() and root.suffix.lower() == ".json":
        return [root]
    return sorted((root / "annotations").glob("instances_*.json")) if root.is_dir() else []


def cityscapes_root(root: Path) -> Path | None:
    """``root`` when it holds ``gtFine/`` and ``leftImg8bit/``."""
    return root if (root / "gtFine").is_dir() and (root / "leftImg8bit").is_dir() else None


def cvppp_folders(root: Path) -> list[Path]:
    """Folders holding ``*_rgb.png``: ``[root]`` itself, else its subfolders that do (sorted)."""
    if not root.is_dir():
        return []
    if any(root.glob("*_rgb.png")):
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and any(p.glob("*_rgb.png")))


def detect_format(root: str | Path) -> str:
    """The dataset format name of ``root``: ``folder``, ``semantic_folder``, ``voc``, ``coco``, ``cityscapes``
    or ``cvppp``.

    Raises:
        DataError: ``root`` matches no layout or several; the message lists what was looked for.
    """
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such file or folder; check the path")
    found = []
    if (root / "images").is_dir() and (root / "masks").is_dir():
        found.append("folder")
    if (root / "images").is_dir() and (root / "classes").is_dir() and not (root / "masks").is_dir():
        found.append("semantic_folder")
    if voc_root(root) is not None:
        found.append("voc")
    if coco_annotation_files(root):
        found.append("coco")
    if cityscapes_root(root) is not None:
        found.append("cityscapes")
    if cvppp_folders(root):
        found.append("cvppp")
    if len(found) == 1:
        return found[0]
    if not found:
        raise DataError(
            f"{root}: not a known dataset layout; looked for {'; '.join(LOOKED_FOR)}. "
            "Arrange the files like one of these or pass the format explicitly"
        )
    raise DataError(
        f"{root}: matches several dataset layouts ({', '.join(found)}); pass the format explicitly "
        "(--format NAME / format=NAME)"
    )


def image_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header, without decoding the pixels."""
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            with tifffile.TiffFile(path) as tif:
                shape = tif.pages[0].shape
                return int(shape[0]), int(shape[1])
        with Image.open(path) as im:
            return int(im.height), int(im.width)
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found; add it or remove its annotation") from None
    except Exception as exc:  # decoders raise many types; all mean "cannot read this file"
        raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {exc}); re-export it") from None


def check_size(image_size_hw: tuple[int, int], labels: np.ndarray, image: Path, label: Path) -> None:
    """Raise when a label image does not have the image's ``(H, W)``."""
    if tuple(image_size_hw) != labels.shape:
        raise DataError(
            f"{label} has size {labels.shape} but its image {image} has size {tuple(image_size_hw)}; "
            "labels must have the image's height and width"
        )


class StandardReader(Dataset):
    """Shared behaviour of the standard-dataset readers (a ``torch`` ``Dataset`` of sample dicts).

    Subclasses list their samples, then call :meth:`_setup`; they implement ``_files(name)`` (a dict
    of paths with the image under ``"image"``) and ``_annotation(name, (H, W))`` returning
    ``instances``, ``classes`` and ``instance_classes`` and raising :class:`DataError` on bad data.

    Attributes:
        names: sample names (sorted), after ``names=`` and ``skip_bad``.
        class_names: class names, index 0 = background.
        skipped: ``(name, reason)`` of every sample dropped because ``skip_bad=True``.
    """

    format_name = "standard"
    class_names: list[str]

    def _setup(
        self,
        listed: Sequence[str],
        problems: Sequence[tuple[str, str]],
        *,
        names: Sequence[str] | None,
        normalize: tuple[float, float] | None,
        skip_bad: bool,
    ) -> None:
        """Apply ``names``, then either raise on the first problem or skip and record bad samples.

        Args:
            listed: every sample name the layout lists.
            problems: ``(key, reason)`` found while listing; ``key`` is a sample name or, for a
                problem of the whole dataset (e.g. an annotation of an unknown image), any other text.
        """
        self.normalize = normalize
        chosen = _choose(self.root, listed, names)
        dropped = set(listed) - set(chosen)
        problems = [(key, why) for key, why in problems if key not in dropped]
        bad = {key for key, _ in problems}
        if problems and not skip_bad:
            more = f" ({len(problems)} problems in all)" if len(problems) > 1 else ""
            raise DataError(f"{problems[0][1]}{more}; or pass skip_bad=True to skip bad samples")
        self.skipped: list[tuple[str, str]] = list(problems)
        self.names: list[str] = []
        for name in chosen:
            if name in bad:
                continue
            if skip_bad:
                try:
                    self._validate(name)
                except DataError as err:
                    self.skipped.append((name, str(err)))
                    continue
            self.names.append(name)
        if self.skipped:
            logger.warning(
                "%s: skipped %d bad sample(s) of %d, kept %d (first: %s); see the reader's .skipped",
                self.root, len(self.skipped), len(self.skipped) + len(self.names), len(self.names),
                self.skipped[0][1],
            )

    def _files(self, name: str) -> dict[str, Path]:
        raise NotImplementedError

    def _annotation(self, name: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _validate(self, name: str) -> None:
        """Check one sample cheaply: the image header and the full annotation."""
        self._annotation(name, image_size(self._files(name)["image"]))

    def sample_files(self, index: int) -> dict[str, Path]:
        """The files sample ``index`` is read from (``"image"`` plus the format's annotation files)."""
        return self._files(self.names[index])

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.names[index]
        image = read_image(self._files(name)["image"])
        sample = self._annotation(name, image.shape[:2])
        if self.normalize is None:
            sample["image"] = (image[..., None] if image.ndim == 2 else image).astype(np.float32)
        else:
            sample["image"] = normalize_percentile(image, *self.normalize)
        sample["name"] = name
        return sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, skipped={len(self.skipped)})"


def _choose(root: Path, listed: Sequence[str], names: Sequence[str] | None) -> list[str]:
    if names is None:
        return sorted(set(listed))
    if isinstance(names, str):
        raise TypeError("names must be a sequence of sample names, not a single string")
    unknown = sorted(set(names) - set(listed))
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise DataError(f"{root}: unknown sample name(s) {shown}; use names from the reader's .names")
    return sorted(set(names))
