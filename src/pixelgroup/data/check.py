"""``pixelgroup check``: find the problems in a dataset before training on it, and fix the fixable.

:func:`check_dataset` returns a :class:`CheckReport`; ``report.ok`` is False when there is an
error, ``report.format()`` is the text to show. Errors (training would fail or learn garbage):
unreadable files, unpaired images/masks, duplicate names, JPEG masks, non-integer (interpolated)
labels, integer labels damaged by interpolation (see :func:`interpolation_fragments`), NaN/inf
pixels, image/label size mismatches, grey and RGB images mixed in one dataset, no samples at all,
every mask all background, binary masks with several objects (unless ``binary_masks`` says how to
read them), malformed annotations of the standard formats. Warnings: many tiny fragments,
constant images, masks without instances.

Errors that ``skip_bad`` cannot resolve by dropping samples (the dataset-wide ones, interpolated
and binary masks) are ``Problem.blocking``; training stops on them even with ``skip_bad``.

``fix=True`` (``folder`` format only) turns each binary mask with several connected components
into an instance label image (``skimage.measure.label``, 8-connectivity), after copying the
original to ``ROOT/masks_orig/``; the mask is rewritten atomically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple, get_args

import numpy as np
from scipy import ndimage
from skimage.measure import label as connected_components

from ..fileio import atomic_write_bytes
from . import cityscapes, coco, cvppp, voc  # noqa: F401  (registers the readers)
from . import folder as _folder  # noqa: F401
from .base import DATASETS
from .detect import detect_format
from .io import IMAGE_SUFFIXES, LABEL_SUFFIXES, DataError, files_by_stem, read_image, read_labels, write_labels

logger = logging.getLogger(__name__)

Severity = Literal["error", "warning"]
BinaryMasks = Literal["check", "objects", "components"]
TINY_PIXELS = 5  # an instance smaller than this is a "tiny fragment"
TINY_SHARE = 0.25  # warn when at least this share of instances (and >= 3 of them) are tiny
BACKUP_DIR = "masks_orig"
FRAGMENT_SHARE = 2.0  # interpolated: at least 3 and this many "between" fragments per instance


class Problem(NamedTuple):
    """One finding: ``(severity, file, message, fix, blocking)``; ``blocking`` errors are not
    resolved by ``skip_bad`` (dropping bad samples) and stop training regardless."""

    severity: Severity
    file: str
    message: str
    fix: str
    blocking: bool = False


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
    channels: dict[int, str] = field(default_factory=dict, repr=False)  # channel count -> first image
    empty: list[str] = field(default_factory=list, repr=False)  # masks without an instance

    def add(self, severity: Severity, file: str | Path, message: str, fix: str, *, blocking: bool = False) -> None:
        self.problems.append(Problem(severity, self._rel(file), message, fix, blocking))

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
    def blocking(self) -> list[Problem]:
        """Errors that skipping bad samples does not resolve (training stops on them)."""
        return [p for p in self.errors if p.blocking]

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
    binary_masks: BinaryMasks = "check",
) -> CheckReport:
    """Check a dataset for the problems listed in the module doc.

    Args:
        root: the dataset folder (for COCO also an annotations ``.json``).
        format: a registered dataset format; ``None`` = :func:`~pixelgroup.data.detect.detect_format`.
        fix: relabel binary masks into connected components (``folder`` format; originals kept in
            ``ROOT/masks_orig/``).
        max_samples: read the contents of at most this many samples (file pairing and annotation
            structure are always checked in full); ``None`` = all.
        binary_masks: how a 0/1 (or 0/255) mask with several connected objects is meant (the
            ``data.binary_masks`` setting): ``check`` = an error (each image would be learnt as ONE
            object), ``objects`` = intended, each mask is one object, ``components`` = each
            connected component is an instance (the ``folder`` reader labels them when reading).

    Returns:
        The report; it never raises on a bad dataset (a missing folder is an error in the report).
    """
    if binary_masks not in get_args(BinaryMasks):
        raise ValueError(f"binary_masks must be one of {', '.join(get_args(BinaryMasks))}, got {binary_masks!r}")
    root = Path(root)
    report = CheckReport(root=root, dataset_format=format or "?")
    if format is None:
        try:
            report.dataset_format = detect_format(root)
        except DataError as err:
            report.add("error", root, str(err), "arrange the files in a supported layout or pass --format")
            return report
    if report.dataset_format == "folder":
        _check_folder(report, fix=fix, limit=max_samples, binary_masks=binary_masks)
    else:
        if fix:
            logger.info("--fix only rewrites masks of the folder format; %s files are left as they are",
                        report.dataset_format)
        _check_reader(report, limit=max_samples)
    _check_dataset_wide(report)
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


def _check_dataset_wide(report: CheckReport) -> None:
    """Findings about the samples together: mixed channels, every mask empty."""
    if len(report.channels) > 1:
        examples = ", ".join(f"{report._rel(f)} has {c} channel(s)" for c, f in sorted(report.channels.items()))
        report.add("error", report.root, f"images with different channels in one dataset ({examples})",
                   "convert every image to the same channels (all grey or all RGB) before training",
                   blocking=True)
    checked = report.counts.get("checked", 0)
    if checked and len(report.empty) == checked:
        report.problems = [p for p in report.problems if p.message != _EMPTY]
        report.add("error", report.root, f"every mask checked ({checked}) is all background: nothing to learn "
                   "(validation would score a perfect 1.0 on empty images)",
                   "point at the real masks (0 = background, 1..N = objects); a 0/1 mask saved as 8-bit is fine",
                   blocking=True)


_EMPTY = "mask has no instance (all background)"


def _check_image(report: CheckReport, file: Path, image: np.ndarray) -> None:
    report.channels.setdefault(1 if image.ndim == 2 else int(image.shape[-1]), str(file))
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        n = int((~np.isfinite(image)).sum())
        report.add("error", file, f"image has {n} NaN or inf pixel(s)",
                   "re-export the image with finite values (e.g. np.nan_to_num), or remove it; "
                   "skip_bad skips it in training")
        return
    if image.size and image.min() == image.max():
        report.add("warning", file, f"image is constant (every pixel {float(image.flat[0]):g})",
                   "remove it or re-export it; a blank image only teaches background")


def _check_instances(report: CheckReport, file: str | Path, labels: np.ndarray) -> None:
    """Empty masks and many tiny fragments, on ``(H, W)`` ids (<= 0 = background/ignore)."""
    sizes = np.bincount(labels[labels > 0].ravel())
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        report.empty.append(str(file))
        report.add("warning", file, _EMPTY,
                   "annotate the objects or remove the image; an empty mask only teaches background")
        return
    n_frag = interpolation_fragments(labels)
    if n_frag >= 3 and n_frag >= FRAGMENT_SHARE * sizes.size:
        report.add(
            "error", file,
            f"labels damaged by interpolation: {n_frag} thin pieces with ids between their neighbours' ids "
            f"({sizes.size} ids in all), as left by resizing a label image with linear interpolation",
            "resize or rotate label images with nearest-neighbour (order=0) resampling, from the originals",
            blocking=True,
        )
        return
    n_tiny = int((sizes < TINY_PIXELS).sum())
    if n_tiny >= 3 and n_tiny >= TINY_SHARE * sizes.size:
        report.add(
            "warning", file,
            f"{n_tiny} of {sizes.size} instances have fewer than {TINY_PIXELS} pixels (labels damaged by "
            "interpolation when resized or rotated?)",
            "re-export the labels with nearest-neighbour resampling, or remove the fragments",
        )


def _between(labels: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: pixels whose id lies strictly between the ids of two opposite neighbours
    (left/right, up/down or a diagonal pair), e.g. ``0 | 3 | 7``: what linear interpolation leaves
    along every edge between two ids."""
    padded = np.pad(labels, 1, mode="edge")
    h, w = labels.shape
    centre = padded[1:-1, 1:-1]
    hit = np.zeros(labels.shape, bool)
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = padded[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        b = padded[1 - dy:1 - dy + h, 1 - dx:1 - dx + w]
        hit |= ((a < centre) & (centre < b)) | ((b < centre) & (centre < a))
    return hit


def interpolation_fragments(labels: np.ndarray) -> int:
    """Number of connected pieces (one id, 8-connected) of which at least half the pixels lie
    between two neighbours of a lower and a higher id (:func:`_between`).

    A label image resized with linear interpolation and cast back to integers (e.g.
    ``skimage.transform.resize(order=1, preserve_range=True).astype(int)``) has a thin ring of
    intermediate ids along every object edge: many such pieces, typically several per object. A clean
    partition has them only where a thin object separates a lower and a higher id, or where crossing
    objects leave stray pixels (measured on 150 images each of the synthetic nuclei, shapes and rods:
    none, none and at most 0.9 per object, against 6 to 60 per object after ``order=1`` resizing by
    0.5 to 2 or a 10 degree rotation); :data:`FRAGMENT_SHARE` = 2 per object sits between the two.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.max(initial=0) < 2:
        return 0
    pieces = connected_components(labels, background=0, connectivity=2)  # equal ids connected
    n = int(pieces.max())
    if n == 0:
        return 0
    share = ndimage.mean(_between(labels), pieces, index=np.arange(1, n + 1))
    return int((np.asarray(share) >= 0.5).sum())


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


def _check_folder(report: CheckReport, *, fix: bool, limit: int | None, binary_masks: BinaryMasks) -> None:
    """``ROOT/images`` + ``ROOT/masks``: pairing, names, then every pair's contents."""
    images = _files_by_stem(report, report.root / "images", IMAGE_SUFFIXES)
    masks = _files_by_stem(report, report.root / "masks", (*LABEL_SUFFIXES, ".jpg", ".jpeg"))
    report.counts["images"], report.counts["masks"] = len(images), len(masks)
    if not images and (report.root / "images").is_dir():
        report.add("error", report.root / "images", f"no images ({', '.join(IMAGE_SUFFIXES)}): nothing to train on",
                   "put the images in ROOT/images and their masks (same names) in ROOT/masks", blocking=True)
    for stem in sorted(set(images) - set(masks)):
        report.add("error", images[stem][0], "image without a mask",
                   f"add masks/{stem}.tif (or .png) or remove the image")
    for stem in sorted(set(masks) - set(images)):
        report.add("error", masks[stem][0], "mask without an image", "add the image or remove the mask")
    paired = sorted(s for s in set(images) & set(masks) if len(images[s]) == 1 and len(masks[s]) == 1)
    checked = 0
    for stem in paired[:limit]:
        checked += _check_pair(report, images[stem][0], masks[stem][0], fix=fix, binary_masks=binary_masks)
    report.counts["checked"] = checked
    report.counts["fixed"] = len(report.fixed)


def _check_pair(report: CheckReport, image_path: Path, mask_path: Path, *, fix: bool,
                binary_masks: BinaryMasks) -> int:
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
    labels = _check_binary(report, mask_path, labels, fix=fix, binary_masks=binary_masks)
    _check_instances(report, mask_path, labels)
    return 1


def _check_binary(report: CheckReport, mask_path: Path, labels: np.ndarray, *, fix: bool,
                  binary_masks: BinaryMasks) -> np.ndarray:
    """Report (or, with ``fix``, relabel) a 0/1 or 0/255 mask with several connected components.

    ``binary_masks="objects"`` accepts it as one object; ``"components"`` checks its components as
    the instances the reader will give.
    """
    values = set(np.unique(labels).tolist())
    if binary_masks == "objects" or not values - {0} or not (values <= {0, 1} or values <= {0, 255}):
        return labels
    components = connected_components(labels > 0, connectivity=2)
    n = int(components.max())
    if n < 2:
        return labels
    if binary_masks == "components" and not fix:
        return components
    what = f"binary mask (values {sorted(values)}) with {n} separate objects, read as ONE instance"
    if not fix:
        report.add("error", mask_path, what,
                   "give each object its own id: `pixelgroup check DIR --fix` labels connected components "
                   "(originals kept), or set data.binary_masks: components (label them when reading) or "
                   "objects (one object per mask is intended)", blocking=True)
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
