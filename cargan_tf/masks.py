"""Hole masks for inpainting: a centre box, random boxes, free-form strokes, a half, or a file.

Every mask here is a *hole* mask: bool (S, S), True where a pixel is missing (to be filled) and
False where it is known. That is the convention of cv2.inpaint (nonzero = inpaint) and of
cargan_tf.inpaint. No TensorFlow here.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np

from cargan_tf.data.decode import UnusableImage, imdecode_guarded, read_image_file
from cargan_tf.errors import CarganError
from cargan_tf.viz import save_png

MASK_KINDS = ("center", "boxes", "strokes", "left", "right")


def _check_size(size: int) -> int:
    if not isinstance(size, (int, np.integer)) or size < 4:
        raise CarganError(f"mask size must be an integer >= 4, got {size!r}")
    return int(size)


def center_box(size: int, fraction: float = 0.25) -> np.ndarray:
    """A centred square hole covering `fraction` of the image area (side rounded to a pixel).

    bool (size, size). The side is round(size * sqrt(fraction)), at least 1 pixel.
    """
    size = _check_size(size)
    if not 0.0 < fraction < 1.0:
        raise CarganError(f"centre hole fraction must be in (0, 1), got {fraction}")
    side = max(1, min(size - 1, int(round(size * math.sqrt(fraction)))))
    start = (size - side) // 2
    hole = np.zeros((size, size), bool)
    hole[start:start + side, start:start + side] = True
    return hole


def random_boxes(size: int, n: int = 3, min_side: float = 0.15, max_side: float = 0.35,
                 seed: int = 0) -> np.ndarray:
    """`n` axis-aligned boxes with sides between min_side and max_side of the image (seeded).

    bool (size, size); boxes may overlap, and always lie inside the image.
    """
    size = _check_size(size)
    rng = np.random.default_rng([int(seed), 101])
    hole = np.zeros((size, size), bool)
    low, high = max(1, int(round(min_side * size))), max(1, int(round(max_side * size)))
    for _ in range(max(1, n)):
        h, w = rng.integers(low, high + 1, size=2)
        y, x = rng.integers(0, size - h + 1), rng.integers(0, size - w + 1)
        hole[y:y + h, x:x + w] = True
    return hole


def strokes(size: int, n: int = 3, thickness: int | None = None, vertices: int = 4,
            seed: int = 0) -> np.ndarray:
    """Free-form brush strokes: `n` polylines of `vertices` random points (cv2.polylines, seeded).

    thickness: brush width in pixels (None: about size / 20, at least 1). bool (size, size).
    """
    size = _check_size(size)
    thickness = max(1, int(round(size / 20))) if thickness is None else int(thickness)
    if thickness < 1:
        raise CarganError(f"stroke thickness must be >= 1 pixel, got {thickness}")
    rng = np.random.default_rng([int(seed), 202])
    canvas = np.zeros((size, size), np.uint8)
    for _ in range(max(1, n)):
        points = rng.integers(0, size, size=(max(2, vertices), 1, 2)).astype(np.int32)
        cv2.polylines(canvas, [points], isClosed=False, color=255, thickness=thickness)
    return canvas > 0


def half(size: int, side: str = "left") -> np.ndarray:
    """The left or right half of the image is the hole. bool (size, size)."""
    size = _check_size(size)
    if side not in ("left", "right"):
        raise CarganError(f"half: side must be 'left' or 'right', got {side!r}")
    hole = np.zeros((size, size), bool)
    if side == "left":
        hole[:, :size // 2] = True
    else:
        hole[:, size - size // 2:] = True
    return hole


def from_file(path: str | os.PathLike, size: int) -> np.ndarray:
    """A mask image (any format OpenCV reads): any nonzero pixel is hole; nearest-resized to size.

    Colour mask files count a pixel as hole when any channel is nonzero. bool (size, size).
    """
    size = _check_size(size)
    path = Path(path)
    if not path.is_file():
        raise CarganError(f"mask file {path} does not exist")
    try:  # the guard: a regular file, under the byte and pixel limits
        image = imdecode_guarded(read_image_file(path))
    except UnusableImage as reason:
        raise CarganError(f"could not read {path} as an image (mask files are PNG, JPEG, ...): "
                          f"{reason}") from None
    if image.ndim == 3:
        image = image.max(axis=2)
    hole = (image > 0).astype(np.uint8)
    if hole.shape != (size, size):
        hole = cv2.resize(hole, (size, size), interpolation=cv2.INTER_NEAREST)
    return hole > 0


def parse_mask(spec: str, size: int, seed: int = 0) -> np.ndarray:
    """A hole mask from a command-line string: center[:fraction] | boxes | strokes | left |
    right | a mask image path. bool (size, size), True = hole."""
    kind, _, arg = str(spec).partition(":")
    if kind in ("center", "centre"):
        try:
            fraction = float(arg) if arg else 0.25
        except ValueError as err:
            raise CarganError(f"--mask {spec!r}: write center or center:FRACTION, e.g. "
                              "center:0.25") from err
        return center_box(size, fraction)
    if kind == "boxes" and not arg:
        return random_boxes(size, seed=seed)
    if kind == "strokes" and not arg:
        return strokes(size, seed=seed)
    if kind in ("left", "right") and not arg:
        return half(size, kind)
    if Path(spec).exists():
        return from_file(spec, size)
    raise CarganError(f"--mask {spec!r} is neither a mask kind ({', '.join(MASK_KINDS)}, "
                      "center:FRACTION) nor an existing mask image file")


def save_mask(path: str | os.PathLike, hole: np.ndarray) -> Path:
    """Write a hole mask as a PNG (255 = hole), readable again by from_file."""

    return save_png(path, (np.asarray(hole, bool).astype(np.uint8) * 255)[..., None])
