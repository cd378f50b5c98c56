"""The skeleton every standard-dataset reader shares (``voc``, ``coco``, ``cityscapes``, ``cvppp``).

:class:`StandardReader` owns the constructor ``Reader(root, *, normalize, names, split, skip_bad)``,
the ``names`` subset, ``skip_bad`` (validate every sample up front, skip and record the bad ones, log
one warning with the count), normalisation and the sample dict of :mod:`pixelgroup.data.base`. A
reader only says what is specific to its format: where its files are (:meth:`StandardReader._open`)
and how to turn them into annotations (:meth:`StandardReader._annotation`).
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

from .io import TIFF_SUFFIXES, DataError, normalized_image, read_image

logger = logging.getLogger(__name__)

Problem = tuple[str, str]
"""``(key, reason)``: ``key`` is a sample name or, for a problem of the whole dataset, any other text."""
SampleFiles = dict[str, dict[str, Path]]
"""Sample name -> its files (the image under ``"image"``, then the format's annotation files)."""


def files_with_suffix(folder: Path, suffix: str, pattern: str = "*") -> dict[str, Path]:
    """``name -> path`` of the files ``folder/PATTERN + suffix``, ``name`` = file name without ``suffix``."""
    return {p.name[: -len(suffix)]: p for p in folder.glob(f"{pattern}{suffix}")}


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

    A subclass implements :meth:`_open` (resolve ``root``, list every sample's files) and
    :meth:`_annotation` (``instances``, ``classes``, ``instance_classes`` of one sample, raising
    :class:`DataError` on bad data); the constructor, ``names``, ``skip_bad``, normalisation,
    ``__len__``/``__getitem__`` and ``sample_files`` are written here once.

    Args:
        root: the dataset (what it may be is the reader's own; see its docstring).
        normalize: ``(low, high)`` percentiles mapped to 0 and 1 per image and channel, or ``None``.
        names: restrict to these names.
        split: the part of the dataset to read (the reader's own meaning); ``None`` = its default.
        skip_bad: skip (and record in ``.skipped``) bad samples instead of raising; checks every
            sample when the reader is built.

    Attributes:
        root: the resolved dataset root.
        names: sample names (sorted), after ``names=`` and ``skip_bad``.
        class_names: class names, index 0 = background.
        skipped: ``(name, reason)`` of every sample dropped because ``skip_bad=True``.
    """

    format_name = "standard"
    root: Path
    class_names: list[str]

    def __init__(
        self,
        root: Any,
        *,
        normalize: tuple[float, float] | None = (1.0, 99.8),
        names: Sequence[str] | None = None,
        split: str | None = None,
        skip_bad: bool = False,
    ) -> None:
        self._sample_files, problems = self._open(root, split)
        self._setup(list(self._sample_files), problems, names=names, normalize=normalize, skip_bad=skip_bad)

    def _open(self, root: Any, split: str | None) -> tuple[SampleFiles, list[Problem]]:
        """Resolve ``root`` (set ``self.root`` and ``self.class_names``) and list the samples of ``split``.

        Returns:
            ``(files, problems)``: every listed sample's files (see :data:`SampleFiles`) and the
            problems found while listing (:data:`Problem`).

        Raises:
            DataError: ``root`` is not this layout, or ``split`` does not exist.
        """
        raise NotImplementedError

    def _annotation(self, name: str, size: tuple[int, int]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _setup(
        self,
        listed: Sequence[str],
        problems: Sequence[Problem],
        *,
        names: Sequence[str] | None,
        normalize: tuple[float, float] | None,
        skip_bad: bool,
    ) -> None:
        """Apply ``names``, then either raise on the first problem or skip and record bad samples."""
        self.normalize = normalize
        chosen = select_names(self.root, listed, names)
        dropped = set(listed) - set(chosen)
        problems = [(key, why) for key, why in problems if key not in dropped]
        bad = {key for key, _ in problems}
        if problems and not skip_bad:
            more = f" ({len(problems)} problems in all)" if len(problems) > 1 else ""
            raise DataError(f"{problems[0][1]}{more}; or pass skip_bad=True to skip bad samples")
        self.skipped: list[Problem] = list(problems)
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
        return dict(self._sample_files[name])

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
        sample["image"] = normalized_image(image, self.normalize)
        sample["name"] = name
        return sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, n={len(self)}, skipped={len(self.skipped)})"


def select_names(
    root: Path, listed: Sequence[str], names: Sequence[str] | None, *, what: str = "sample",
    hint: str = "use names from the reader's .names",
) -> list[str]:
    """The sorted names to read: every listed name, or the subset ``names`` (all must be listed).

    Args:
        root: the dataset, for the error message.
        listed: every name the layout holds.
        names: the subset asked for, or ``None`` for all.
        what: ``"sample"`` or ``"image"``: how the message calls a name.
        hint: where valid names come from, for the message.

    Raises:
        TypeError: ``names`` is a single string.
        DataError: a name is not listed (the first five are shown).
    """
    if names is None:
        return sorted(set(listed))
    if isinstance(names, str):
        plural = "file stems" if what == "image" else "sample names"
        raise TypeError(f"names must be a sequence of {plural}, not a single string")
    unknown = sorted(set(names) - set(listed))
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise DataError(f"{root}: unknown {what} name(s) {shown}; {hint}")
    return sorted(set(names))
