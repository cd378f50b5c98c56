"""``pixelgroup check``: find the problems in a dataset before training on it, and fix the fixable.

:func:`check_dataset` returns a :class:`CheckReport`; ``report.ok`` is False when there is an
error, ``report.format()`` is the text to show. Errors (training would fail or learn garbage):
unreadable files, unpaired images/masks, duplicate names, JPEG masks, non-integer (interpolated)
labels, image/label size mismatches, malformed annotations of the standard formats. Warnings:
binary masks where instance labels are expected, many tiny fragments (labels resized with
interpolation?), constant images, masks without instances.

``fix=True`` (``folder`` format only) turns each binary mask with several connected components
into an instance label image (``skimage.measure.label``, 8-connectivity), after copying the
original to ``ROOT/masks_orig/``; the mask is rewritten atomically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
from skimage.measure import label as connected_components

from ..fileio import atomic_write_bytes
from . import cityscapes, coco, cvppp, voc  # noqa: F401  (registers the readers)
from . import folder as _folder  # noqa: F401
from .base import DATASETS
from .detect import detect_format
from .io import IMAGE_SUFFIXES, LABEL_SUFFIXES, DataError, files_by_stem, read_image, read_labels, write_labels

logger = logging.getLogger(__name__)

Severity = Literal["error", "warning"]
TINY_PIXELS = 5  # an instance smaller than this is a "tiny fragment"
TINY_SHARE = 0.25  # warn when at least this share of instances (and >= 3 of them) are tiny
BACKUP_DIR = "masks_orig"


class Problem(NamedTuple):
    """One finding: ``(severity, file, message, fix)``."""

    severity: Severity
    file: str
    message: str
    fix: str


@dataclass
class CheckReport:
    """What :func:`check_dataset` found.

    Attributes:
        root: the dataset checked.
        dataset_format: its format name (given or detected).
        problems: every finding, in the order found.
        counts: ``images``, ``labels``, ``checked`` (samples whose contents were read), ``fixed``.
        fixed: files rewritten by ``fix=True``.
    """

    root: Path
    dataset_format: str
    problems: list[Problem] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    fixed: list[str] = field(default_factory=list)

    def add(self, severity: Severity, file: str | Path, message: str, fix: str) -> None:
        self.problems.append(Problem(severity, self._rel(file), message, fix))

    def _rel(self, file: str | Path) -> str:
        try:
            return str(Path(file).relative_to(self.root))
        except ValueError:
            return str(file)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when nothing is an error (warnings allowed)."""
        return not self.errors

    def format(self, *, max_problems: int = 50) -> str:
        """A human-readable multi-line report, errors first, at most ``max_problems`` findings shown."""
        counts = ", ".join(f"{v} {k}" for k, v in self.counts.items())
        lines = [f"pixelgroup check: {self.root} (format: {self.dataset_format})", f"  {counts}"]
        shown = self.errors + self.warnings
        for p in shown[:max_problems]:
            lines.append(f"{p.severity.upper():7s} {p.file}: {p.message}")
            lines.append(f"        fix: {p.fix}")
        if len(shown) > max_problems:
            lines.append(f"... and {len(shown) - max_problems} more")
        lines.extend(f"FIXED   {f}" for f in self.fixed)
        n_err, n_warn = len(self.errors), len(self.warnings)
        if n_err:
            lines.append(f"FAILED: {n_err} error(s), {n_warn} warning(s); fix the errors and check again")
        else:
            lines.append(f"OK: no errors, {n_warn} warning(s)")
        return "\n".join(lines)


def check_dataset(
    root: str | Path,
    *,
    format: str | None = None,
    fix: bool = False,
    max_samples: int | None = None,
) -> CheckReport:
    """Check a dataset for the problems listed in the module doc.

    Args:
        root: the dataset folder (for COCO also an annotations ``.json``).
        format: a registered dataset format; ``None`` = :func:`~pixelgroup.data.detect.detect_format`.
        fix: relabel binary masks into connected components (``folder`` format; originals kept in
            ``ROOT/masks_orig/``).
        max_samples: read the contents of at most this many samples (file pairing and annotation
            structure are always checked in full); ``None`` = all.

    Returns:
        The report; it never raises on a bad dataset (a missing folder is an error in the report).
    """
    root = Path(root)
    report = CheckReport(root=root, dataset_format=format or "?")
    if format is None:
        try:
            report.dataset_format = detect_format(root)
        except DataError as err:
            report.add("error", root, str(err), "arrange the files in a supported layout or pass --format")
            return report
    if report.dataset_format == "folder":
        _check_folder(report, fix=fix, limit=max_samples)
    else:
        if fix:
            logger.info("--fix only rewrites masks of the folder format; %s files are left as they are",
                        report.dataset_format)
        _check_reader(report, limit=max_samples)
    report.counts["errors"], report.counts["warnings"] = len(report.errors), len(report.warnings)
    return report


def _check_reader(report: CheckReport, *, limit: int | None) -> None:
    """A standard format: its reader's own validation, then the content checks on every sample."""
    try:
        reader = DATASETS.get(report.dataset_format)(report.root, normalize=None, skip_bad=True)
    except (DataError, KeyError) as err:
        report.add("error", report.root, str(err).strip("'\""), "fix the path, the layout or --format")
        return
    for key, reason in reader.skipped:
        report.add("error", key, reason, "repair or remove this sample (or read it with skip_bad=True)")
    report.counts["samples"] = len(reader.names) + len(reader.skipped)
    checked = 0
    for i in range(len(reader) if limit is None else min(limit, len(reader))):
        files = reader.sample_files(i)
        try:
            sample = reader[i]
        except DataError as err:
            report.add("error", files["image"], str(err), "repair or remove this sample")
            continue
        checked += 1
        _check_image(report, files["image"], sample["image"])
        label_file = next(p for k, p in files.items() if k != "image")
        if label_file.suffix.lower() == ".json":  # COCO: one file for all images; name the image
            label_file = files["image"]
        _check_instances(report, label_file, sample["instances"])
    report.counts["checked"] = checked


def _check_image(report: CheckReport, file: Path, image: np.ndarray) -> None:
    if image.size and image.min() == image.max():
        report.add("warning", file, f"image is constant (every pixel {float(image.flat[0]):g})",
                   "remove it or re-export it; a blank image only teaches background")


def _check_instances(report: CheckReport, file: str | Path, labels: np.ndarray) -> None:
    """Empty masks and many tiny fragments, on ``(H, W)`` ids (<= 0 = background/ignore)."""
    sizes = np.bincount(labels[labels > 0].ravel())
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        report.add("warning", file, "mask has no instance (all background)",
                   "annotate the objects or remove the image; an empty mask only teaches background")
        return
    n_tiny = int((sizes < TINY_PIXELS).sum())
    if n_tiny >= 3 and n_tiny >= TINY_SHARE * sizes.size:
        report.add(
            "warning", file,
            f"{n_tiny} of {sizes.size} instances have fewer than {TINY_PIXELS} pixels (labels damaged by "
            "interpolation when resized or rotated?)",
            "re-export the labels with nearest-neighbour resampling, or remove the fragments",
        )


def _files_by_stem(report: CheckReport, folder: Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    if not folder.is_dir():
        report.add("error", folder, "folder not found", "a folder dataset is ROOT/images + ROOT/masks")
        return {}
    by_stem = files_by_stem(folder, suffixes)
    for stem, paths in by_stem.items():
        if len(paths) > 1:
            report.add("error", folder / stem, f"{len(paths)} files share the name '{stem}' "
                       f"({', '.join(p.name for p in paths)})", "keep one and delete or rename the others")
    return by_stem


def _check_folder(report: CheckReport, *, fix: bool, limit: int | None) -> None:
    """``ROOT/images`` + ``ROOT/masks``: pairing, names, then every pair's contents."""
    images = _files_by_stem(report, report.root / "images", IMAGE_SUFFIXES)
    masks = _files_by_stem(report, report.root / "masks", (*LABEL_SUFFIXES, ".jpg", ".jpeg"))
    report.counts["images"], report.counts["masks"] = len(images), len(masks)
    for stem in sorted(set(images) - set(masks)):
        report.add("error", images[stem][0], "image without a mask",
                   f"add masks/{stem}.tif (or .png) or remove the image")
    for stem in sorted(set(masks) - set(images)):
        report.add("error", masks[stem][0], "mask without an image", "add the image or remove the mask")
    paired = sorted(s for s in set(images) & set(masks) if len(images[s]) == 1 and len(masks[s]) == 1)
    checked = 0
    for stem in paired[:limit]:
        checked += _check_pair(report, images[stem][0], masks[stem][0], fix=fix)
    report.counts["checked"] = checked
    report.counts["fixed"] = len(report.fixed)


def _check_pair(report: CheckReport, image_path: Path, mask_path: Path, *, fix: bool) -> int:
    """Check one image/mask pair; 1 when both could be read."""
    if mask_path.suffix.lower() in (".jpg", ".jpeg"):
        report.add("error", mask_path, "JPEG mask: lossy compression changes label ids at every edge",
                   "re-export the mask losslessly as PNG or TIFF from the original labels")
        return 0
    try:
        image, labels = read_image(image_path), read_labels(mask_path)
    except DataError as err:
        report.add("error", image_path if str(image_path) in str(err) else mask_path, str(err),
                   "re-export the file (masks: integer ids, nearest-neighbour resampling)")
        return 0
    if image.shape[:2] != labels.shape:
        report.add("error", mask_path, f"mask size {labels.shape} differs from the image's {image.shape[:2]}",
                   "masks must have the image's height and width; re-export or crop them to match")
        return 1
    _check_image(report, image_path, image)
    labels = _check_binary(report, mask_path, labels, fix=fix)
    _check_instances(report, mask_path, labels)
    return 1


def _check_binary(report: CheckReport, mask_path: Path, labels: np.ndarray, *, fix: bool) -> np.ndarray:
    """Warn about (or, with ``fix``, relabel) a 0/1 or 0/255 mask with several connected components."""
    values = set(np.unique(labels).tolist())
    if not values - {0} or not (values <= {0, 1} or values <= {0, 255}):
        return labels
    components = connected_components(labels > 0, connectivity=2)
    n = int(components.max())
    if n < 2:
        return labels
    what = f"binary mask (values {sorted(values)}) with {n} separate objects, read as ONE instance"
    if not fix:
        report.add("warning", mask_path, what,
                   "give each object its own id; `pixelgroup check DIR --fix` labels connected components")
        return labels
    backup = report.root / BACKUP_DIR / mask_path.name
    original = mask_path.read_bytes()
    if backup.exists() and backup.read_bytes() != original:
        report.add("error", mask_path, f"{what}; not fixed: {backup} exists and differs",
                   f"move {backup} away and run the fix again")
        return labels
    atomic_write_bytes(backup, original)
    write_labels(mask_path, components)
    report.fixed.append(f"{report._rel(mask_path)}: {n} instances by connected components "
                        f"(original in {BACKUP_DIR}/{mask_path.name})")
    return components.astype(np.int64)
