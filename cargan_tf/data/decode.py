"""Reading one image file: guarded checks (truncated JPEGs, web pages saved as .jpg), a decoder
that shrinks large JPEGs while decoding, the square fits, and RGB / grayscale conversion.

`process_file` is the one call per file that prepare.py makes: it never raises for bad input,
it returns the reason instead. download.py checks fetched bytes with `check_image_bytes`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import cv2
import numpy as np

# Extensions OpenCV can decode. Anything else in the folder is ignored (and listed in the report).
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".webp",
        ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm", ".pxm", ".jp2", ".avif",
    }
)
FITS = ("center_crop", "pad", "stretch")
_JPEG_MAGIC = b"\xff\xd8\xff"


class UnusableImage(Exception):
    """A file that cannot go into the cache; the message is the reason shown in the report."""


def jpeg_is_truncated(data: bytes | np.ndarray) -> bool:
    """True for JPEG bytes that end before the end-of-image marker of the last scan.

    Some OpenCV builds decode a truncated JPEG "successfully" with a grey lower half, so the
    check runs before decoding. Entropy-coded data never contains FF DA or FF D9 (FF is stuffed
    as FF 00), so an FF D9 after the last FF DA means the image is complete.
    """
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if not raw.startswith(_JPEG_MAGIC):
        return False
    if raw.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9"):
        return False  # the usual case, decided without searching the whole file
    last_scan = raw.rfind(b"\xff\xda")
    return last_scan < 0 or raw.find(b"\xff\xd9", last_scan) < 0


def explain_undecodable(data: bytes | np.ndarray) -> str:
    """Say what some bytes that OpenCV could not decode look like (for reports and errors)."""
    head = bytes(data[:512])
    if not head:
        return "empty file (0 bytes)"
    signatures = {
        _JPEG_MAGIC: "JPEG", b"\x89PNG": "PNG", b"GIF8": "GIF", b"BM": "BMP", b"RIFF": "WebP",
        b"II*\x00": "TIFF", b"MM\x00*": "TIFF",
    }
    for magic, name in signatures.items():
        if head.startswith(magic):
            return f"a corrupt or truncated {name} file (it has the {name} signature)"
    lowered = head.lstrip().lower()
    if lowered.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b"<body")):
        return "an HTML/XML page, not an image (a saved web page or a server's error page?)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        preview = text.strip().replace("\n", " ")[:40]
        return f"a text file, not an image (it starts with {preview!r})"
    return f"not an image format OpenCV can decode (first bytes: {head[:8].hex(' ')})"


def jpeg_header(raw: bytes) -> tuple[int, int, int] | None:
    """(height, width, components) from a JPEG's start-of-frame segment, or None if absent."""
    i = 2
    while i + 10 <= len(raw):
        if raw[i] != 0xFF:
            return None
        marker = raw[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length field
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOF0..SOF15
            height = int.from_bytes(raw[i + 5 : i + 7], "big")
            width = int.from_bytes(raw[i + 7 : i + 9], "big")
            return height, width, raw[i + 9]
        i += 2 + int.from_bytes(raw[i + 2 : i + 4], "big")
    return None


def _jpeg_reduction(height: int, width: int, size: int, fit: str) -> int:
    """Largest libjpeg scale-down (8, 4, 2 or 1) that still leaves `size` pixels where `fit`
    needs them: decoding at 1/4 scale is several times faster than decoding then shrinking."""
    side = max(height, width) if fit == "pad" else min(height, width)
    for factor in (8, 4, 2):
        if side // factor >= size:
            return factor
    return 1


_REDUCED_FLAGS = {  # factor -> (flag for colour, flag for grayscale); both apply EXIF orientation
    2: (cv2.IMREAD_REDUCED_COLOR_2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
    4: (cv2.IMREAD_REDUCED_COLOR_4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
    8: (cv2.IMREAD_REDUCED_COLOR_8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
}


def decode_image(
    data: np.ndarray, size: int | None = None, fit: str = "center_crop"
) -> tuple[np.ndarray, tuple[int, int], list[str]]:
    """Decode encoded image bytes into 8-bit BGR (H, W, 3) or grayscale (H, W).

    data: uint8 (n_bytes,) as read from the file. With `size`, a large JPEG may be decoded at
    1/2, 1/4 or 1/8 scale, never below what `fit_image(..., size, fit)` needs.
    Returns (image, (height, width) of the full-size image, notes). Alpha is composited onto
    white, 16-bit and float pixels are scaled to uint8; each conversion adds a note.
    Raises UnusableImage with the reason when the bytes are not a usable image.
    """
    if data.size == 0:
        raise UnusableImage("empty file (0 bytes)")
    raw = data.tobytes()
    if jpeg_is_truncated(raw):
        raise UnusableImage("truncated JPEG: the end-of-image marker is missing (file cut short?)")
    header = jpeg_header(raw) if raw.startswith(_JPEG_MAGIC) else None
    if header is not None:
        height, width, components = header
        factor = _jpeg_reduction(height, width, size, fit) if size else 1
        if factor > 1:
            flags = _REDUCED_FLAGS[factor][1 if components == 1 else 0]
        else:
            # JPEG has neither alpha nor 16 bits, and IMREAD_UNCHANGED would ignore its EXIF
            # orientation (phone photos would come out sideways): use IMREAD_ANYCOLOR.
            flags = cv2.IMREAD_ANYCOLOR
    else:
        flags = cv2.IMREAD_UNCHANGED  # keeps alpha and 16-bit, converted below
    try:
        img = cv2.imdecode(data, flags)
    except cv2.error as err:
        raise UnusableImage(f"OpenCV could not decode it: {str(err).strip().splitlines()[-1]}") from None
    if img is None or img.size == 0:
        raise UnusableImage(f"not decodable: {explain_undecodable(raw)}")
    if header is None:
        height, width = img.shape[:2]
    elif (img.shape[0] > img.shape[1]) != (height > width):
        height, width = width, height  # EXIF orientation turned it by 90 degrees

    notes: list[str] = []
    if img.dtype == np.uint16:
        # 0..65535 -> 0..255 with rounding; 257 * 255 == 65535, so v * 257 maps back to v.
        img = ((img.astype(np.uint32) + 128) // 257).astype(np.uint8)
        notes.append("16-bit converted to 8-bit")
    elif img.dtype in (np.float32, np.float64):
        img = (np.clip(img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        notes.append("float pixels (assumed in [0, 1]) converted to 8-bit")
    elif img.dtype != np.uint8:
        raise UnusableImage(f"unsupported pixel type {img.dtype}")

    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3 and img.shape[2] in (2, 4):
        color, alpha = img[:, :, :-1], img[:, :, -1:]
        if alpha.min() < 255:
            # Transparent pixels often hold black or junk colour: put the object on white.
            a = alpha.astype(np.float32) / 255.0
            color = color.astype(np.float32) * a + 255.0 * (1.0 - a)
            color = (color + 0.5).astype(np.uint8)
            notes.append("transparency composited onto white")
        img = np.ascontiguousarray(color[:, :, 0] if img.shape[2] == 2 else color)
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 3)):
        raise UnusableImage(f"unsupported channel layout {img.shape}")
    return img, (height, width), notes


def check_image_bytes(data: bytes) -> str | None:
    """None when `data` decodes as an image prepare can use, else the reason it cannot."""
    try:
        decode_image(np.frombuffer(data, dtype=np.uint8), size=8)  # small: a fast check
    except UnusableImage as reason:
        return str(reason)
    except Exception as err:  # whatever a decoder raises, the answer is "not usable"
        return f"failed while decoding: {type(err).__name__}: {err}"
    return None


def _resize(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """Area interpolation when shrinking (no aliasing), bilinear when enlarging."""
    h, w = img.shape[:2]
    if (w, h) == (width, height):
        return img  # exact: an already-sized image round-trips pixel for pixel
    shrinking = width <= w and height <= h
    return cv2.resize(
        img, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )


def fit_image(img: np.ndarray, size: int, fit: str) -> tuple[np.ndarray, bool]:
    """Resize uint8 (H, W[, C]) to (size, size[, C]); returns (image, upscaled).

    center_crop: the centred square of side min(H, W), resized (what DCGAN car projects did).
    pad: the whole image scaled so its long side is `size`, centred on black.
    stretch: resized to size x size, ignoring the aspect ratio.
    """
    h, w = img.shape[:2]
    if fit == "center_crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        return _resize(img[top : top + side, left : left + side], size, size), side < size
    if fit == "stretch":
        return _resize(img, size, size), min(h, w) < size
    if fit == "pad":
        scale = size / max(h, w)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
        small = _resize(img, new_w, new_h)
        canvas = np.zeros((size, size) + img.shape[2:], dtype=np.uint8)
        top, left = (size - new_h) // 2, (size - new_w) // 2
        canvas[top : top + new_h, left : left + new_w] = small
        return canvas, max(h, w) < size
    raise ValueError(f"fit must be one of {FITS}, got {fit!r}")


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """BGR (H, W, 3) or grayscale (H, W) uint8 -> RGB (H, W, 3) or grayscale (H, W, 1) uint8."""
    if channels == 3:
        code = cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB
        return cv2.cvtColor(img, code)
    if channels == 1:
        gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        return np.ascontiguousarray(gray)[:, :, None]
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def _crop_box(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Crop to box = (x0, y0, x1, y1): 0-based pixel coordinates, x1/y1 exclusive, clipped."""
    h, w = img.shape[:2]
    x0, y0 = max(0, int(box[0])), max(0, int(box[1]))
    x1, y1 = min(w, int(box[2])), min(h, int(box[3]))
    if x1 - x0 < 1 or y1 - y0 < 1:
        raise UnusableImage(f"bounding box {tuple(box)} lies outside the {w}x{h} image")
    return img[y0:y1, x0:x1]


def read_bytes(path: str) -> np.ndarray | str:
    """The file's bytes as uint8 (n,), or the reason it could not be read."""
    try:
        return np.fromfile(path, dtype=np.uint8)  # bytes first: works for unicode paths
    except OSError as err:
        return f"could not read the file: {err.strerror or err}"


def process_file(
    path: str,
    size: int,
    channels: int,
    fit: str,
    box: tuple[int, int, int, int] | None = None,
) -> dict[str, Any]:
    """Read, decode, (crop,) fit and convert one file. Never raises for bad input.

    Returns {"pixels": uint8 (size, size, channels) RGB/gray, "hash", "width", "height",
    "notes"} for a usable image, or {"error": reason} for one that is not.
    """
    data = read_bytes(path)
    if isinstance(data, str):
        return {"error": data}
    return decode_file(data, size, channels, fit, box)


def decode_file(
    data: np.ndarray, size: int, channels: int, fit: str, box: tuple[int, int, int, int] | None
) -> dict[str, Any]:
    """process_file after the read: encoded bytes uint8 (n,) -> pixels, hash and notes."""
    try:
        # With a crop box, decode at full size: the box is in full-size pixel coordinates.
        img, (height, width), notes = decode_image(data, None if box else size, fit)
        if box is not None:
            img = _crop_box(img, box)
        img, upscaled = fit_image(img, size, fit)
        pixels = to_channels(img, channels)
    except UnusableImage as reason:
        return {"error": str(reason)}
    except Exception as err:  # a decoder bug must not stop a prepare of 10,000 files
        return {"error": f"failed while decoding: {type(err).__name__}: {err}"}
    if upscaled:
        notes.append(f"too small: upscaled from {width}x{height}")
    if img.ndim == 2 and channels == 3:
        notes.append("grayscale converted to RGB")
    digest = hashlib.blake2b(pixels.tobytes(), digest_size=16).hexdigest()
    return {"pixels": pixels, "hash": digest, "width": width, "height": height, "notes": notes}
