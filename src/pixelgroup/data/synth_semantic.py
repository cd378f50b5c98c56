"""Synthetic semantic-segmentation scenes: textured shapes of five classes on cluttered backgrounds.

Each foreground class pairs a shape, a texture and a hue (``palette="class"``, the default): its two
texture colours are a jittered class colour and a darker shade or lighter tint of it. The background
is painted in paler versions of every hue (class hues included) and crossed by thin lines of any
colour, so colour alone is a strong but not a sufficient cue. ``palette="shared"`` draws every
object's colours from one palette shared by all classes, so that only shape and texture tell classes
apart (a harder variant):

====  ==================  ============  ===============================  ==========
id    name                shape         texture                          hue
====  ==================  ============  ===============================  ==========
0     background          -             colour blotches, grain, lines,   all, pale
                                        faint texture
1     striped_disc        disc          sinusoidal stripes               red
2     dotted_square       square        lattice of dots                  green
3     checkered_triangle  triangle      checkerboard                     blue
4     speckled_cross      plus sign     coarse random speckle            yellow
5     shaded_ellipse      long ellipse  smooth two-colour shading        purple
====  ==================  ============  ===============================  ==========

Objects are rotated, scaled and may occlude each other (the later one is on top). Image ``i`` of
:func:`write_synthetic_semantic` comes from ``np.random.default_rng([seed, i])``: the same seed gives
byte-identical files. Coordinates are ``(y, x)``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy import ndimage

from ..fileio import atomic_write_text
from .io import write_image_png, write_labels
from .synth import refuse_different

CLASS_NAMES = ("background", "striped_disc", "dotted_square", "checkered_triangle", "speckled_cross",
               "shaded_ellipse")
_PALETTE = np.array([[220, 60, 50], [60, 160, 70], [50, 90, 200], [230, 190, 50], [150, 70, 170],
                     [60, 180, 190], [235, 130, 40], [120, 120, 120]], dtype=np.float32) / 255.0
Frame = tuple[np.ndarray, np.ndarray]  # rotated coordinates (u, v) relative to the object centre


PALETTES = ("class", "shared")


def _colour(rng: np.random.Generator, index: int | None = None) -> np.ndarray:
    """A jittered palette colour: entry ``index``, or a random one."""
    base = _PALETTE[rng.integers(len(_PALETTE)) if index is None else index]
    return np.clip(base + rng.normal(0, 0.06, 3), 0, 1)


def _object_colours(rng: np.random.Generator, cls: int, palette: str) -> tuple[np.ndarray, np.ndarray]:
    """The two texture colours of an object of class ``cls`` (``1..5``)."""
    if palette == "class":  # the class hue (palette entry cls - 1) and a shade or tint of it
        a = _colour(rng, cls - 1)
        b = a * rng.uniform(0.3, 0.45) if rng.random() < 0.5 else a + rng.uniform(0.55, 0.7) * (1 - a)
        return a, b
    a, b = _colour(rng), _colour(rng)
    while np.abs(a - b).sum() < 0.4:  # keep the texture visible
        b = _colour(rng)
    return a, b


def _frame(rng: np.random.Generator, shape: tuple[int, int], cy: float, cx: float) -> Frame:
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(np.float32)
    t = rng.uniform(0, 2 * np.pi)
    dy, dx = yy - cy, xx - cx
    return np.cos(t) * dx + np.sin(t) * dy, -np.sin(t) * dx + np.cos(t) * dy


# -- shapes: (u, v, r) -> bool mask ------------------------------------------------------------
def _disc(u, v, r):
    return u**2 + v**2 <= r**2


def _square(u, v, r):
    return np.maximum(np.abs(u), np.abs(v)) <= 0.85 * r


def _triangle(u, v, r):
    inside = v <= 0.5 * r
    for angle in (np.pi / 6, 5 * np.pi / 6):  # the two slanted sides of an equilateral triangle
        inside &= np.cos(angle) * u - np.sin(angle) * v <= 0.5 * r
    return inside


def _cross(u, v, r):
    arm = 0.36 * r
    return ((np.abs(u) <= arm) & (np.abs(v) <= r)) | ((np.abs(v) <= arm) & (np.abs(u) <= r))


def _ellipse(u, v, r):
    return (u / (1.2 * r)) ** 2 + (v / (0.45 * r)) ** 2 <= 1


# -- textures: (rng, u, v, r) -> weight in [0, 1] of the second colour ------------------------
def _stripes(rng, u, v, r):
    return 0.5 + 0.5 * np.sin(2 * np.pi * u / rng.uniform(4.0, 7.0))


def _dots(rng, u, v, r):
    p = rng.uniform(5.0, 8.0)
    du, dv = np.mod(u, p) - p / 2, np.mod(v, p) - p / 2
    return (du**2 + dv**2 <= (0.3 * p) ** 2).astype(np.float32)


def _checker(rng, u, v, r):
    p = rng.uniform(4.0, 7.0)
    return ((np.floor(u / p) + np.floor(v / p)) % 2).astype(np.float32)


def _speckle(rng, u, v, r):
    noise = ndimage.gaussian_filter(rng.random(u.shape).astype(np.float32), 1.0)
    return (noise > np.median(noise)).astype(np.float32)


def _shading(rng, u, v, r):
    return np.clip(0.5 + 0.5 * u / (1.2 * r), 0, 1)


_CLASSES: dict[int, tuple[Callable, Callable]] = {
    1: (_disc, _stripes), 2: (_square, _dots), 3: (_triangle, _checker), 4: (_cross, _speckle),
    5: (_ellipse, _shading),
}


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth blotches of two palette colours, fine grain, sometimes a faint textured patch, and a few
    thin distractor lines."""
    field = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), min(h, w) / 8)
    field = (field - field.min()) / (np.ptp(field) + 1e-6)
    image = (1 - field[..., None]) * _colour(rng) + field[..., None] * _colour(rng)
    image = 0.6 * image + 0.4 * image.mean()  # paler than the objects but the same hues
    image += rng.normal(0, 0.05, (h, w, 1)).astype(np.float32)
    if rng.random() < 0.5:  # a faint textured blob: a hard negative for the texture classes
        blob = ndimage.gaussian_filter(rng.standard_normal((h, w)).astype(np.float32), min(h, w) / 10)
        u, v = _frame(rng, (h, w), h / 2, w / 2)
        texture = _CLASSES[int(rng.integers(1, 4))][1](rng, u, v, min(h, w) / 4)
        image += (0.12 * (texture - 0.5) * (blob > np.quantile(blob, 0.8)))[..., None]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    for _ in range(rng.integers(2, 6)):
        t, off = rng.uniform(0, np.pi), rng.uniform(-0.5, 0.5) * min(h, w)
        d = np.abs(np.cos(t) * (xx - w / 2) + np.sin(t) * (yy - h / 2) - off)
        image[d < 1.0] = _colour(rng)
    return image


def synth_semantic(
    rng: np.random.Generator, size: int | tuple[int, int] = 128, *, palette: str = "class"
) -> tuple[np.ndarray, np.ndarray]:
    """One scene of 3-7 textured objects of random classes.

    Args:
        rng: the random generator (the scene is a pure function of its state).
        size: ``H`` (square) or ``(H, W)``, at least 32 pixels.
        palette: ``"class"`` (each class has its hue) or ``"shared"`` (one palette for all classes).

    Returns:
        ``image (H, W, 3)`` uint8 and ``classes (H, W)`` uint8 (0 = background, 1..5 see
        :data:`CLASS_NAMES`).
    """
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if min(h, w) < 32:
        raise ValueError(f"synth_semantic: size must be at least 32 pixels, got {(h, w)}")
    if palette not in PALETTES:
        raise ValueError(f"synth_semantic: palette must be one of {PALETTES}, got {palette!r}")
    image = _background(rng, h, w)
    classes = np.zeros((h, w), np.uint8)
    for _ in range(rng.integers(3, 8)):
        cls = int(rng.integers(1, 6))
        shape_fn, texture_fn = _CLASSES[cls]
        r = rng.uniform(0.09, 0.2) * min(h, w)
        u, v = _frame(rng, (h, w), rng.uniform(0.1, 0.9) * h, rng.uniform(0.1, 0.9) * w)
        mask = shape_fn(u, v, r)
        if mask.sum() < 30:
            continue
        a, b = _object_colours(rng, cls, palette)
        t = texture_fn(rng, u, v, r)[..., None]
        image[mask] = ((1 - t) * a + t * b)[mask]
        classes[mask] = cls
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)
    image = ndimage.gaussian_filter(image, (0.6, 0.6, 0))
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), classes


def write_synthetic_semantic(
    out: str | Path, *, n: int = 32, size: int | tuple[int, int] = 128, seed: int = 0, palette: str = "class",
    overwrite: bool = False,
) -> list[Path]:
    """Write ``n`` scenes (see :func:`synth_semantic`) as a ``semantic_folder`` dataset.

    Writes ``out/images/synth_XXXX.png``, ``out/classes/synth_XXXX.png`` and ``out/classes.txt``.
    Existing scenes of the same names with other contents are replaced only with ``overwrite``
    (checked before anything is written; re-running the same command is allowed).

    Returns:
        The image paths, in order.
    """
    if n < 1:
        raise ValueError(f"write_synthetic_semantic: n must be >= 1, got {n}")
    out = Path(out)
    if not overwrite:
        refuse_different(out, [(out / "images" / f"synth_{i:04d}.png", out / "classes" / f"synth_{i:04d}.png",
                                lambda i=i: synth_semantic(np.random.default_rng([seed, i]), size, palette=palette))
                               for i in range(n)])
    paths = []
    for i in range(n):
        image, classes = synth_semantic(np.random.default_rng([seed, i]), size, palette=palette)
        path = write_image_png(out / "images" / f"synth_{i:04d}.png", image)
        write_labels(out / "classes" / f"synth_{i:04d}.png", classes)
        paths.append(path)
    atomic_write_text(out / "classes.txt", "\n".join(CLASS_NAMES) + "\n")
    return paths
