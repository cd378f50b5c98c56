"""Synthetic instance-segmentation datasets: fluorescence-like nuclei and textured RGB shapes.

Every image is drawn from its own generator ``np.random.default_rng([seed, i])``, so the same seed
gives byte-identical arrays and any image can be regenerated alone. Coordinates are ``(y, x)``.

Objects are placed one after the other; a new object may touch earlier ones and overlap them a
little (the later, "top" object owns the overlap in the label image), but never so much that an
earlier object loses most of its area or is cut in two, so every object stays separable.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from scipy import ndimage

from ..ops.labels import relabel_consecutive
from .io import DataError, read_image, read_labels, write_image_png, write_image_tiff, write_labels

logger = logging.getLogger(__name__)

Kind = Literal["nuclei", "shapes", "rods"]


@dataclass
class _Placed:
    """An accepted object: its pixels inside its bounding box."""

    box: tuple[slice, slice]
    mask: np.ndarray  # (h, w) bool, inside the box
    centre: tuple[float, float]  # (y, x)
    radius: float


def _box(size: int, cy: float, cx: float, half: float) -> tuple[slice, slice, np.ndarray, np.ndarray]:
    """The bounding box of a disc of radius ``half`` clipped to the image, and its (dy, dx) grids."""
    y0, y1 = max(int(cy - half), 0), min(int(cy + half) + 2, size)
    x0, x1 = max(int(cx - half), 0), min(int(cx + half) + 2, size)
    dy = (np.arange(y0, y1, dtype=np.float32) - cy)[:, None]  # (h, 1)
    dx = (np.arange(x0, x1, dtype=np.float32) - cx)[None, :]  # (1, w)
    return slice(y0, y1), slice(x0, x1), dy, dx


_N_ANGLES = 128
_ANGLES = np.linspace(-np.pi, np.pi, _N_ANGLES, endpoint=False)
_HARMONICS = np.arange(2, 6)[:, None]  # (4, 1): k of the boundary perturbation
_COS_K = np.cos(_HARMONICS * _ANGLES[None, :])  # (4, N_ANGLES)
_SIN_K = np.sin(_HARMONICS * _ANGLES[None, :])


def _boundary_table(amount: float, u: Sequence[float]) -> np.ndarray:
    """A smooth random boundary ``R(phi) = 1 + sum_k c_k cos(k phi + psi_k)``, k = 2..5, tabulated.

    ``c_k = amount * U(-1, 1) / sqrt(k)`` and ``psi_k = U(0, 2 pi)`` come from the 8 uniforms ``u``.

    Returns:
        ``(N_ANGLES,)`` float32, ``R`` at the angles ``_ANGLES`` (from -pi).
    """
    coef = amount * (2 * np.asarray(u[:4])[:, None] - 1) / np.sqrt(_HARMONICS)  # (4, 1)
    psi = 2 * np.pi * np.asarray(u[4:8])[:, None]
    # cos(k phi + psi) = cos(k phi) cos(psi) - sin(k phi) sin(psi)
    return (1 + (coef * (np.cos(psi) * _COS_K - np.sin(psi) * _SIN_K)).sum(0)).astype(np.float32)


def _polar_shape(
    dy: np.ndarray, dx: np.ndarray, a: float, b: float, theta: float, boundary: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """An ellipse (semi-axes ``a`` >= ``b``, long axis at angle ``theta``), optionally with a wobbly boundary.

    Args:
        dy: ``(h, 1)`` and dx ``(1, w)``: pixel offsets from the centre.
        boundary: ``(N_ANGLES,)`` boundary radius per angle from :func:`_boundary_table`, or ``None``.

    Returns:
        ``(inside (h, w) bool, s (h, w) float32)``; ``s`` is the normalised radius (0 at the centre,
        1 on the boundary).
    """
    c, sn = np.float32(math.cos(theta)), np.float32(math.sin(theta))
    un = (c * dx + sn * dy) / np.float32(a)  # (h, w), along the long axis
    vn = (c * dy - sn * dx) / np.float32(b)
    s = np.sqrt(un * un + vn * vn)
    if boundary is not None:
        index = ((np.arctan2(vn, un) + np.pi) * (_N_ANGLES / (2 * np.pi))).astype(np.intp) % _N_ANGLES
        s /= boundary[index]
    return s <= 1.0, s


class _Canvas:
    """The label image being built and the objects placed on it so far (ids 1..N in placement order)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.labels = np.zeros((size, size), dtype=np.int32)
        self.objects: list[_Placed] = []
        self._circles = np.zeros((64, 3), dtype=np.float64)  # (capacity, 3): cy, cx, radius

    def propose_centre(self, u: Sequence[float], radius: float, p_cluster: float) -> tuple[float, float]:
        """A uniform centre, or (with probability ``p_cluster``) one next to an earlier object.

        ``u`` holds 6 uniform numbers in [0, 1) (drawn in bulk by the caller: much faster than
        drawing them one at a time).
        """
        if self.objects and u[0] < p_cluster:
            near = self.objects[int(u[1] * len(self.objects))]
            angle, dist = 2 * math.pi * u[2], (radius + near.radius) * (0.8 + 0.3 * u[3])
            return near.centre[0] + dist * math.sin(angle), near.centre[1] + dist * math.cos(angle)
        return u[4] * self.size, u[5] * self.size

    def too_close(self, cy: float, cx: float, radius: float, factor: float) -> bool:
        """Cheap early rejection: outside the image, on an object, or within ``factor * (r + r_j)``."""
        if not (0 <= cy < self.size and 0 <= cx < self.size) or self.labels[int(cy), int(cx)] > 0:
            return True
        c = self._circles[: len(self.objects)]
        return bool(((c[:, 0] - cy) ** 2 + (c[:, 1] - cx) ** 2 < (factor * (radius + c[:, 2])) ** 2).any())

    def fits(self, box: tuple[slice, slice], mask: np.ndarray, max_overlap: float) -> bool:
        """Whether a new object may go on top: small overlaps only, and no earlier object split in two.

        ``mask`` must be one 4-connected component (see :func:`_largest_component`).
        """
        area = int(mask.sum())
        if area < 12:
            return False
        under = self.labels[box][mask]
        under = under[under > 0]
        if under.size == 0:
            return True
        if under.size > max_overlap * area:
            return False
        ids, counts = np.unique(under, return_counts=True)
        for obj_id, count in zip(ids.tolist(), counts.tolist()):
            old = self.objects[obj_id - 1]
            if count > max_overlap * old.mask.sum():
                return False
            remaining = (self.labels[old.box] == obj_id) & ~_paste(mask, box, old.box)
            if ndimage.label(remaining)[1] > 1:
                return False
        return True

    def add(self, box: tuple[slice, slice], mask: np.ndarray, centre: tuple[float, float], radius: float) -> int:
        """Place an object on top of the others; returns its id."""
        if len(self.objects) == len(self._circles):
            self._circles = np.concatenate([self._circles, np.zeros_like(self._circles)])
        self._circles[len(self.objects)] = centre[0], centre[1], radius
        self.objects.append(_Placed(box, mask, centre, radius))
        self.labels[box][mask] = len(self.objects)
        return len(self.objects)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected component of ``mask`` (drops pixels joined only by a corner)."""
    components, n = ndimage.label(mask)
    if n <= 1:
        return mask
    return components == np.argmax(np.bincount(components.ravel())[1:]) + 1


def _paste(mask: np.ndarray, box: tuple[slice, slice], target: tuple[slice, slice]) -> np.ndarray:
    """``mask`` (defined on ``box``) as seen inside ``target``: an array of the target box's shape."""
    out = np.zeros((target[0].stop - target[0].start, target[1].stop - target[1].start), dtype=bool)
    y0, y1 = max(box[0].start, target[0].start), min(box[0].stop, target[0].stop)
    x0, x1 = max(box[1].start, target[1].start), min(box[1].stop, target[1].stop)
    if y0 < y1 and x0 < x1:
        out[y0 - target[0].start : y1 - target[0].start, x0 - target[1].start : x1 - target[1].start] = mask[
            y0 - box[0].start : y1 - box[0].start, x0 - box[1].start : x1 - box[1].start
        ]
    return out


def _smooth_field(rng: np.random.Generator, size: int, n_waves: int = 3, max_cycles: float = 1.5) -> np.ndarray:
    """A low-frequency random field ``(size, size)`` float32 with values in about [-1, 1]."""
    coords = np.arange(size, dtype=np.float32) / size
    field = np.zeros((size, size), dtype=np.float32)
    for _ in range(n_waves):
        fy, fx = rng.uniform(-max_cycles, max_cycles, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        wave_y = np.exp(1j * (2 * np.pi * fy * coords[:, None] + phase))  # separable: (H, 1) * (1, W)
        wave_x = np.exp(1j * 2 * np.pi * fx * coords[None, :])
        field += (wave_y * wave_x).real.astype(np.float32) / n_waves**0.5
    return field


def _texture(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Smoothed white noise with unit standard deviation, ``(size, size)`` float32."""
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size), dtype=np.float32), sigma)
    return noise / (noise.std() + 1e-6)


def _haze(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Smooth random blobs about ``scale`` pixels across, ``(size, size)`` float32, mean ~0.5.

    Coarse noise on a grid of spacing ``scale`` is interpolated with Gaussian weights, separably:
    ``field = Wy @ coarse @ Wx.T`` with ``W`` ``(size, n)``.
    """
    n = int(np.ceil(size / scale)) + 2
    coarse = rng.random((n, n), dtype=np.float32)
    pos = np.arange(size, dtype=np.float32)[:, None] / scale + 1 - np.arange(n, dtype=np.float32)[None, :]
    weights = np.exp(-0.5 * (pos / 0.7) ** 2)  # (size, n)
    weights /= weights.sum(1, keepdims=True)
    # einsum rather than @: these matrices are too small for multi-threaded BLAS to pay off
    rows = np.einsum("yi,ij->yj", weights, coarse)  # (size, n)
    return np.einsum("yj,xj->yx", rows, weights)


def _seams(labels: np.ndarray) -> np.ndarray:
    """Pixels where two different objects meet (both sides of the contact), ``(H, W)`` bool."""
    seam = np.zeros(labels.shape, dtype=bool)
    after, before, whole = slice(1, None), slice(None, -1), slice(None)
    for side_a, side_b in (((after, whole), (before, whole)), ((whole, after), (whole, before))):
        a, b = labels[side_a], labels[side_b]
        contact = (a != b) & (a > 0) & (b > 0)
        seam[side_a] |= contact
        seam[side_b] |= contact
    return seam


# ----------------------------------------------------------------------------------------- nuclei


def _nuclei_layout(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Place nuclei. Returns ``(labels (H, W) int32, signal (H, W) float32)`` before imaging."""
    density = rng.choice(3, p=[0.3, 0.35, 0.35])  # sparse, medium, crowded
    coverage = rng.uniform(*[(0.04, 0.12), (0.12, 0.28), (0.28, 0.5)][density])
    r_mean = np.exp(rng.uniform(np.log(5.0), np.log(13.0)))
    r_max = max(min(20.0, size / 6), 4.0)
    max_ratio, wobble = rng.uniform(1.1, 3.0), rng.uniform(0.0, 0.08)
    p_cluster, max_overlap = rng.uniform(0.2, 0.8), float(rng.choice([0.0, rng.uniform(0.03, 0.12)]))
    dome, tex_amp = rng.uniform(0.0, 0.35), rng.uniform(0.05, 0.35)
    texture = _texture(rng, size, rng.uniform(0.8, 2.5))

    boundaries = [_boundary_table(wobble, rng.random(8)) for _ in range(16)] if wobble > 0.005 else [None]
    canvas = _Canvas(size)
    signal = np.zeros((size, size), dtype=np.float32)
    covered, target = 0, coverage * size * size
    n_tries = int(6 * target / (np.pi * r_mean**2)) + 20
    for u, z in zip(rng.random((n_tries, 11)).tolist(), rng.standard_normal(n_tries).tolist()):
        if covered >= target:
            break
        r = min(max(r_mean * math.exp(0.2 * z), 4.0), r_max)
        cy, cx = canvas.propose_centre(u[:6], r, p_cluster)
        if canvas.too_close(cy, cx, r, 0.75 if max_overlap > 0 else 0.9):
            continue
        ratio = 1 + (min(max_ratio, (r / 3) ** 2) - 1) * u[6] ** 1.5  # keeps the short axis >= 3 px
        a, b = r * ratio**0.5, r / ratio**0.5
        ys, xs, dy, dx = _box(size, cy, cx, a * (1 + 2.5 * wobble) + 1)
        inside, s = _polar_shape(dy, dx, a, b, math.pi * u[7], boundaries[int(u[8] * len(boundaries))])
        inside = _largest_component(inside)
        if not canvas.fits((ys, xs), inside, max_overlap):
            continue
        canvas.add((ys, xs), inside, (cy, cx), r)
        brightness = 0.2 + 0.8 * u[9]
        local = (1 - dome * s * s) * (1 + tex_amp * (0.5 + u[10]) * texture[ys, xs])  # (h, w)
        np.maximum(local, 0.05, out=local)
        signal[ys, xs] += (brightness * local) * inside
        covered += int(inside.sum())
    signal[_seams(canvas.labels)] *= rng.uniform(0.45, 0.8)
    return canvas.labels, signal


def _debris(rng: np.random.Generator, size: int) -> np.ndarray:
    """A few small unlabelled bright specks, ``(H, W)`` float32."""
    specks = np.zeros((size, size), dtype=np.float32)
    n = int(rng.integers(0, 5))
    specks[rng.integers(0, size, n), rng.integers(0, size, n)] = rng.uniform(1.0, 4.0, n)
    return specks


def synth_nuclei(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """A fluorescence-like image of nuclei and its instance labels.

    Crowding, nucleus size (radius ~4-20 px), elongation (axis ratio up to 3), brightness (0.2-1),
    texture, touching/overlapping objects with a dark seam at contacts, an uneven background
    (illumination gradient + autofluorescence), optical blur and Poisson + Gaussian noise all vary
    from image to image.

    Returns:
        ``(image (size, size) uint16, labels (size, size) int32)``, 0 = background, 1..N nuclei.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    labels, signal = _nuclei_layout(rng, size)
    signal += _debris(rng, size)
    auto = rng.uniform(0.0, 0.08) * _haze(rng, size, rng.uniform(12.0, 40.0))  # autofluorescence
    scene = ndimage.gaussian_filter(signal + auto, rng.uniform(0.6, 1.6))
    illumination = 1 + rng.uniform(0.0, 0.35) * _smooth_field(rng, size, 2, 0.8)
    scene = (scene + rng.uniform(0.01, 0.05)) * illumination  # background offset, then vignetting
    photons = np.exp(rng.uniform(np.log(60.0), np.log(800.0)))
    counts = rng.poisson(np.clip(scene, 0, None) * photons).astype(np.float32)
    gain, offset = rng.uniform(8.0, 40.0), rng.uniform(300.0, 800.0)
    read_noise = np.float32(rng.uniform(0.5, 3.0) * gain) * rng.standard_normal(counts.shape, dtype=np.float32)
    adu = offset + gain * counts + read_noise
    return np.clip(np.round(adu), 0, 65535).astype(np.uint16), labels


# ----------------------------------------------------------------------------------------- shapes


def _random_colour(rng: np.random.Generator, avoid: list[np.ndarray], min_dist: float = 0.35) -> np.ndarray:
    """An RGB colour in [0, 1] at least ``min_dist`` away from every colour in ``avoid`` (best of 20)."""
    best, best_dist = None, -1.0
    for _ in range(20):
        colour = rng.uniform(0.05, 1.0, size=3).astype(np.float32)
        colour[rng.integers(3)] *= rng.uniform(0.0, 0.5)  # saturate one channel down
        dist = min((float(np.linalg.norm(colour - c)) for c in avoid), default=1.0)
        if dist >= min_dist:
            return colour
        if dist > best_dist:
            best, best_dist = colour, dist
    return best


def _shape_mask(rng: np.random.Generator, kind: str, dy: np.ndarray, dx: np.ndarray, r: float) -> np.ndarray:
    """The inside of one shape of radius ~``r`` centred at ``(0, 0)`` on the ``(dy, dx)`` grid."""
    if kind == "disc":
        return dy**2 + dx**2 <= r**2
    if kind == "ellipse":
        ratio = rng.uniform(1.3, 2.2)
        return _polar_shape(dy, dx, r * ratio**0.5, r / ratio**0.5, rng.uniform(0, np.pi))[0]
    if kind == "blob":
        boundary = _boundary_table(rng.uniform(0.15, 0.3), rng.random(8))
        return _polar_shape(dy, dx, r, r * rng.uniform(0.7, 1.0), rng.uniform(0, np.pi), boundary)[0]
    theta = rng.uniform(0, np.pi)
    u, v = np.cos(theta) * dx + np.sin(theta) * dy, -np.sin(theta) * dx + np.cos(theta) * dy
    if kind == "rectangle":
        ratio = rng.uniform(1.0, 2.2)
        return (np.abs(u) <= r * ratio**0.5 * 0.85) & (np.abs(v) <= r / ratio**0.5 * 0.85)
    # triangle: inside all three edges of a (slightly irregular) triangle inscribed in the circle r
    angles = theta + np.array([0.0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.3, 0.3, 3)
    vy, vx = r * 1.15 * np.sin(angles), r * 1.15 * np.cos(angles)
    inside = np.ones(np.broadcast_shapes(dy.shape, dx.shape), dtype=bool)
    for i in range(3):
        j = (i + 1) % 3
        inside &= (vx[j] - vx[i]) * (dy - vy[i]) - (vy[j] - vy[i]) * (dx - vx[i]) >= 0
    return inside


def _pattern(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, noise: np.ndarray, size: int) -> np.ndarray:
    """A random surface pattern around 1 on the pixel grid ``(yy, xx)``: noise, stripes, gradient or flat.

    ``yy`` ``(h, 1)`` and ``xx`` ``(1, w)`` are absolute pixel coordinates; ``noise`` is ``(h, w)``.
    """
    kind = rng.integers(4)
    if kind == 0:
        return 1 + rng.uniform(0.05, 0.25) * noise
    theta, period = rng.uniform(0, np.pi), rng.uniform(4.0, 14.0)
    ramp = np.cos(theta) * xx + np.sin(theta) * yy  # (h, w)
    if kind == 1:
        return 1 + rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * ramp / period)
    if kind == 2:
        return 1 + rng.uniform(0.2, 0.5) * (ramp - size / 2) / size
    return np.ones_like(noise)


def synth_shapes(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Textured coloured discs, ellipses, rectangles, triangles and blobs on a textured background.

    Objects touch and occlude each other (the top object owns the overlap); touching objects get
    distinct colours.

    Returns:
        ``(image (size, size, 3) uint8, labels (size, size) int32)``, 0 = background.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    noise = _texture(rng, size, rng.uniform(0.7, 2.0))
    grid = np.arange(size, dtype=np.float32)
    background = _random_colour(rng, [])
    variation = np.stack([_smooth_field(rng, size, 2, 1.0) for _ in range(3)], axis=-1)  # (H, W, 3)
    pattern = _pattern(rng, grid[:, None], grid[None, :], noise, size).astype(np.float32)
    image = (background * (1 + 0.2 * variation) * pattern[..., None]).astype(np.float32)  # (H, W, 3)
    canvas = _Canvas(size)
    colours: list[np.ndarray] = []
    covered, target = 0, rng.uniform(0.15, 0.5) * size * size
    r_max = min(28.0, size / 5)
    for _ in range(300):
        if covered >= target:
            break
        r = rng.uniform(min(6.0, r_max), r_max)
        cy, cx = canvas.propose_centre(rng.random(6).tolist(), r, 0.5)
        if canvas.too_close(cy, cx, r, 0.55):
            continue
        ys, xs, dy, dx = _box(size, cy, cx, 1.8 * r + 1)
        inside = _shape_mask(rng, rng.choice(["disc", "ellipse", "rectangle", "triangle", "blob"]), dy, dx, r)
        inside = _largest_component(inside)
        if not canvas.fits((ys, xs), inside, 0.3):
            continue
        near = np.unique(canvas.labels[ys, xs][ndimage.binary_dilation(inside, iterations=2)])
        colours.append(_random_colour(rng, [background] + [colours[i - 1] for i in near if i > 0]))
        canvas.add((ys, xs), inside, (cy, cx), r)
        surface = colours[-1] * _pattern(rng, grid[ys, None], grid[None, xs], noise[ys, xs], size)[..., None]
        image[ys, xs] = np.where(inside[..., None], surface, image[ys, xs])
        covered += int(inside.sum())
    image = ndimage.gaussian_filter(image, (rng.uniform(0.3, 0.9),) * 2 + (0,))
    image += np.float32(rng.uniform(0.005, 0.03)) * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image * 255 + 0.5, 0, 255).astype(np.uint8), canvas.labels


# ------------------------------------------------------------------------------------------ writer



def synth_rods(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Long thin look-alike rods (bacteria-like), many of them touching side by side or end to end.

    Every rod has the same brightness and width, so telling two touching rods apart needs context
    along the whole rod (the benchmark of the ``renet`` context module). Later rods are drawn on
    top (they own the overlap).

    Returns:
        ``(image (size, size) uint16, labels (size, size) int32)``, 0 = background.
    """
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    labels = np.zeros((size, size), np.int32)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    n_rods = int(rng.integers(6, 14) * (size / 128) ** 2)
    theta0 = rng.uniform(0, np.pi)  # rods in one image share a rough orientation and pack side by side
    for k in range(1, n_rods + 1):
        theta = theta0 + rng.normal(0, 0.25)
        length, half_w = rng.uniform(0.25, 0.6) * size, rng.uniform(2.5, 3.5)
        cy, cx = rng.uniform(0, size, 2)
        u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
        v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
        # a capsule: |v| <= half width along the segment, rounded ends
        du = np.maximum(np.abs(u) - length / 2, 0.0)
        labels[du**2 + v**2 <= half_w**2] = k
    labels = relabel_consecutive(labels)[0].astype(np.int32)
    image = np.where(labels > 0, 1.0, 0.0).astype(np.float32)
    image = ndimage.gaussian_filter(image, 1.0) * 0.8 + 0.1
    image = rng.poisson(image * 400).astype(np.float32) / 400 + rng.normal(0, 0.03, image.shape)
    return (np.clip(image, 0, 1) * 65535).astype(np.uint16), labels


_KINDS: dict[str, tuple[Callable[[np.random.Generator, int], tuple[np.ndarray, np.ndarray]], str]] = {
    "nuclei": (synth_nuclei, ".tif"),
    "shapes": (synth_shapes, ".png"),
    "rods": (synth_rods, ".tif"),
}


def write_synthetic(out: str | Path, *, kind: Kind, n: int, size: int, seed: int,
                    overwrite: bool = False) -> list[Path]:
    """Write a folder dataset ``out/images/NAME.{tif,png}`` + ``out/masks/NAME.tif``.

    Image ``i`` is drawn from ``np.random.default_rng([seed, i])`` and named ``{kind}_{i:04d}``.
    Re-running with the same arguments rewrites identical files; files of the same names with other
    contents (another seed or size) are replaced only with ``overwrite``, and a folder that already
    holds other images or masks is refused (so two datasets are never mixed). Both checks run before
    anything is written.

    Returns:
        The image paths, in order.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown synthetic kind '{kind}'; valid kinds: {', '.join(sorted(_KINDS))}")
    if n < 1 or size < 16 or seed < 0:
        raise ValueError(f"need n >= 1, size >= 16 and seed >= 0, got n={n}, size={size}, seed={seed}")
    generate, suffix = _KINDS[kind]
    out = Path(out)
    names = [f"{kind}_{i:0{max(4, len(str(n - 1)))}d}" for i in range(n)]
    _check_empty(out, {f"images/{name}{suffix}" for name in names} | {f"masks/{name}.tif" for name in names})
    if not overwrite:
        refuse_different(out, [(out / "images" / f"{name}{suffix}", out / "masks" / f"{name}.tif",
                                lambda i=i: generate(np.random.default_rng([seed, i]), size))
                               for i, name in enumerate(names)])
    paths = []
    for i, name in enumerate(names):
        image, labels = generate(np.random.default_rng([seed, i]), size)
        image_path = out / "images" / f"{name}{suffix}"
        if suffix == ".png":
            write_image_png(image_path, image)
        else:
            write_image_tiff(image_path, image)
        write_labels(out / "masks" / f"{name}.tif", labels)
        paths.append(image_path)
    logger.debug("wrote %d synthetic %s images (%d px) to %s", n, kind, size, out)
    return paths


def refuse_different(out: Path, samples: Sequence[tuple[Path, Path, Callable[[], tuple]]]) -> None:
    """Raise when an existing ``(image, labels)`` file pair differs from what ``make()`` generates.

    ``samples`` holds ``(image_path, label_path, make)``; only pairs with a file present are
    generated and compared (pixel values, not bytes), so re-running the same command is allowed.
    """
    for image_path, label_path, make in samples:
        if not (image_path.exists() or label_path.exists()):
            continue
        image, labels = make()
        try:
            same = np.array_equal(read_image(image_path), image) and np.array_equal(read_labels(label_path), labels)
        except DataError:
            same = False
        if not same:
            raise DataError(
                f"{out}: already holds a different dataset ({image_path.name} differs from what these "
                "arguments generate); pass --overwrite to replace it or choose another folder"
            )


def _check_empty(out: Path, expected: set[str]) -> None:
    for sub in ("images", "masks"):
        folder = out / sub
        if not folder.is_dir():
            continue
        others = sorted(
            p.name for p in folder.iterdir() if not p.name.startswith(".") and f"{sub}/{p.name}" not in expected
        )
        if others:
            raise DataError(
                f"{folder}: already holds {len(others)} other file(s) (e.g. {others[0]}); "
                "write to an empty folder or delete them"
            )
