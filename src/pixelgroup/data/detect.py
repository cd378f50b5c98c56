"""Standard dataset layouts: where their files are, and :func:`detect_format`.

Each recogniser below answers "does this folder hold layout X, and where exactly?" without reading
any image; the readers (``voc.py``, ``coco.py``, ``cityscapes.py``, ``cvppp.py``) use the same
functions to resolve their root, so detection and reading never disagree. The readers' shared
skeleton is :class:`pixelgroup.data.reader.StandardReader` (re-exported here with ``image_size`` and
``check_size``, which lived here before).
"""

from __future__ import annotations

from pathlib import Path

from .io import DataError
from .reader import StandardReader, check_size, image_size  # noqa: F401  (moved to reader.py; kept importable)

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
