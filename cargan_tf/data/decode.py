# Over 450 lines: every image read passes this one guard and decoder; split, a reader could skip the guard.
"""Reading one image file: the guard every image read goes through (file type, a byte limit
and a pixel limit read from the header before decoding), checks for truncated JPEGs and web
pages saved as .jpg, a decoder that shrinks large JPEGs while decoding, the square fits, and
RGB / grayscale conversion.

`process_file` is the one call per file that prepare.py makes: it never raises for bad input,
it returns the reason instead. download.py checks fetched bytes with `check_image_bytes`;
inpaint/restore, mask files and the notebooks read through `read_image_file` and
`decode_image`, so no image in the package is decoded before its header says how big it is.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from cargan_tf.errors import DataError

# Extensions OpenCV can decode. Anything else in the folder is ignored (and listed in the report).
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".webp",
        ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm", ".pxm", ".jp2", ".avif",
    }
)
FITS = ("center_crop", "pad", "stretch")
# center_crop keeps the middle square: of a picture twice as long as wide (a car side-on) that is
# half, both ends cut off. decode_file notes such pictures ("wide: ..."); prepare warns.
WIDE_ASPECT = 2.0
_JPEG_MAGIC = b"\xff\xd8\xff"


class UnusableImage(Exception):
    """A file that cannot go into the cache; the message is the reason shown in the report."""


class ImageRefused(UnusableImage):
    """A file refused by the guard before it was decoded (or read): not a regular file, too
    many bytes, or too many pixels. `limit` names which ("file type", "bytes", "pixels");
    `value` and `maximum` are the numbers (None for the file type)."""

    def __init__(self, reason: str, limit: str, value: int | None = None,
                 maximum: int | None = None):
        super().__init__(reason)
        self.limit, self.value, self.maximum = limit, value, maximum

    def as_dict(self) -> dict[str, Any]:
        """What a report records beside the reason."""
        return {"limit": self.limit, "value": self.value, "max": self.maximum}


# ---- the guard: limits, file type, header sizes ---------------------------------------------
# Defaults: 25 megapixels is above every ordinary photo (12 MP phones, 24 MP cameras; the 48-50
# MP modes of recent phones are baseline JPEGs, which prepare decodes at 1/8 scale and so count
# as 1/64 of that) and decodes in ~75 MB (BGR uint8); a 20000x20000 PNG (1.2 MB on disk) would
# need 1.2 GB. 64 MB is far above any single photo: a larger file is a video, an archive or a
# scan that should be resized first, and it is never read whole.
DEFAULT_MAX_MEGAPIXELS = 25.0
DEFAULT_MAX_FILE_MB = 64.0
MAX_MEGAPIXELS_ENV = "CARGAN_MAX_MEGAPIXELS"
MAX_FILE_MB_ENV = "CARGAN_MAX_IMAGE_MB"


def _positive(value: Any, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (number > 0 and math.isfinite(number)):
        raise DataError(f"{what}={value!r}: give a positive number")
    return number


@dataclass(frozen=True)
class ImageLimits:
    """How big an image file may be (bytes, on disk) and how many pixels it may decode to."""

    max_pixels: int = int(DEFAULT_MAX_MEGAPIXELS * 1e6)
    max_bytes: int = int(DEFAULT_MAX_FILE_MB * 2**20)

    @classmethod
    def resolve(cls, max_megapixels: float | None = None,
                max_file_mb: float | None = None) -> ImageLimits:
        """The limits in force: the arguments, else $CARGAN_MAX_MEGAPIXELS /
        $CARGAN_MAX_IMAGE_MB, else 25 megapixels and 64 MB (MiB). A bad value is a DataError."""
        if max_megapixels is None:
            max_megapixels = os.environ.get(MAX_MEGAPIXELS_ENV) or DEFAULT_MAX_MEGAPIXELS
            megapixels = _positive(max_megapixels, MAX_MEGAPIXELS_ENV)
        else:
            megapixels = _positive(max_megapixels, "max_megapixels")
        if max_file_mb is None:
            max_file_mb = os.environ.get(MAX_FILE_MB_ENV) or DEFAULT_MAX_FILE_MB
            megabytes = _positive(max_file_mb, MAX_FILE_MB_ENV)
        else:
            megabytes = _positive(max_file_mb, "max_file_mb")
        return cls(max(1, int(megapixels * 1e6)), max(1, int(megabytes * 2**20)))

    def as_dict(self) -> dict[str, float]:
        return {"max_megapixels": self.max_pixels / 1e6,
                "max_file_mb": round(self.max_bytes / 2**20, 3)}


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n < 2**30 else f"{n / 2**30:.2f} GB"


def _raise_hint(option: str, env: str, needed: float) -> str:
    value = f"{math.ceil(needed):g}"
    return (f"if you trust this file, raise the limit: {option} {value} (prepare, download) "
            f"or {env}={value}")


_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_file_stat(st: os.stat_result, limits: ImageLimits) -> None:
    """Refuse (ImageRefused) what is not a regular file, or is over the byte limit, from its
    stat alone: nothing is opened, so a FIFO cannot block and a huge file is never read."""
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _FILE_KINDS if test(st.st_mode)), "not a file")
        raise ImageRefused(f"not a regular file: it is {kind}; images are read from regular "
                           "files only (a symlink to one is fine)", "file type")
    if st.st_size > limits.max_bytes:
        raise ImageRefused(
            f"file too large: {_mb(st.st_size)}, over the {_mb(limits.max_bytes)} limit per "
            f"image file (it is not read); "
            + _raise_hint("--max-file-mb", MAX_FILE_MB_ENV, st.st_size / 2**20 + 1),
            "bytes", st.st_size, limits.max_bytes)


def read_image_file(path: str | os.PathLike, limits: ImageLimits | None = None) -> np.ndarray:
    """The bytes of an image file as uint8 (n,), after the guard's checks on its stat.

    Raises ImageRefused (not a regular file, over the byte limit: checked before opening, and
    again on the open file, which is opened non-blocking) or UnusableImage (cannot be read).
    """
    limits = limits or ImageLimits.resolve()
    try:
        check_file_stat(os.stat(path), limits)  # follows symlinks: a link to a file is fine
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as err:
        raise UnusableImage(f"could not read the file: {err.strerror or err}") from None
    try:
        st = os.fstat(fd)
        check_file_stat(st, limits)  # replaced between the stat and the open
        data = np.empty(st.st_size, dtype=np.uint8)
        view, got = memoryview(data), 0
        with os.fdopen(fd, "rb", buffering=0, closefd=False) as handle:
            while got < st.st_size:
                n = handle.readinto(view[got:])
                if not n:
                    break  # the file shrank while being read
                got += n
        return data[:got]
    except OSError as err:
        raise UnusableImage(f"could not read the file: {err.strerror or err}") from None
    finally:
        os.close(fd)


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says: its format, size in pixels, and (JPEG) whether it is
    progressive (libjpeg then buffers the whole image, even when decoding at a smaller scale)."""

    format: str
    width: int
    height: int
    progressive: bool = False

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _u16be(raw: bytes, i: int) -> int:
    return int.from_bytes(raw[i:i + 2], "big")


def _u32be(raw: bytes, i: int) -> int:
    return int.from_bytes(raw[i:i + 4], "big")


def _jpeg_sof(raw: bytes) -> tuple[int, int, int, int] | None:
    """(height, width, components, SOF marker) from a JPEG's start-of-frame segment."""
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
            return _u16be(raw, i + 5), _u16be(raw, i + 7), raw[i + 9], marker
        if marker == 0xDA:  # start of scan before any frame header
            return None
        i += 2 + _u16be(raw, i + 2)
    return None


def _tiff_size(raw: bytes) -> tuple[int, int] | None:
    order = "little" if raw[:2] == b"II" else "big"
    if len(raw) < 8:
        return None
    ifd = int.from_bytes(raw[4:8], order)
    if ifd + 2 > len(raw):
        return None
    count = int.from_bytes(raw[ifd:ifd + 2], order)
    found: dict[int, int] = {}
    for k in range(count):
        entry = ifd + 2 + 12 * k
        if entry + 12 > len(raw):
            break
        tag = int.from_bytes(raw[entry:entry + 2], order)
        kind = int.from_bytes(raw[entry + 2:entry + 4], order)
        if tag in (256, 257):
            width = 2 if kind == 3 else 4  # SHORT or LONG, left-justified in the value field
            found[tag] = int.from_bytes(raw[entry + 8:entry + 8 + width], order)
    if 256 in found and 257 in found:
        return found[256], found[257]
    return None


def _pnm_size(raw: bytes) -> tuple[int, int] | None:
    numbers: list[int] = []
    i, n = 2, min(len(raw), 4096)
    while len(numbers) < 2 and i < n:
        c = raw[i]
        if c == ord("#"):
            while i < n and raw[i] not in b"\r\n":
                i += 1
        elif chr(c).isdigit():
            j = i
            while j < n and chr(raw[j]).isdigit():
                j += 1
            numbers.append(int(raw[i:j]))
            i = j
            continue
        elif c not in b" \t\r\n\x0b\x0c":
            return None
        i += 1
    return (numbers[0], numbers[1]) if len(numbers) == 2 else None


def _box_after(raw: bytes, name: bytes, limit: int = 1 << 20) -> int:
    """Offset just past the first `name` box type in the first `limit` bytes, or -1."""
    at = raw.find(name, 0, limit)
    return at + len(name) if at >= 0 else -1


def image_header(raw: bytes) -> ImageHeader | None:
    """The format and pixel size an image file declares, read from its first bytes without
    decoding: PNG (IHDR), JPEG (SOF), WebP (VP8, VP8L, VP8X), BMP, GIF, TIFF, PNM, JPEG 2000
    and AVIF. None when the bytes are none of these or the header is cut short."""
    head = bytes(raw[:64])
    if head.startswith(_JPEG_MAGIC):
        sof = _jpeg_sof(bytes(raw))
        if sof is None:
            return None
        height, width, _, marker = sof
        return ImageHeader("JPEG", width, height, progressive=marker in (0xC2, 0xC6, 0xCA, 0xCE))
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR" and len(head) >= 24:
        return ImageHeader("PNG", _u32be(head, 16), _u32be(head, 20))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        chunk = head[12:16]
        if chunk == b"VP8 ":
            return ImageHeader("WebP", _le(head, 26, 2) & 0x3FFF, _le(head, 28, 2) & 0x3FFF)
        if chunk == b"VP8L":
            bits = _le(head, 21, 4)
            return ImageHeader("WebP", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
        if chunk == b"VP8X":
            return ImageHeader("WebP", _le(head, 24, 3) + 1, _le(head, 27, 3) + 1)
        return None
    if head[:2] == b"BM" and len(head) >= 26:
        if _le(head, 14, 4) == 12:  # BITMAPCOREHEADER: 16-bit sizes
            return ImageHeader("BMP", _le(head, 18, 2), _le(head, 20, 2))
        width = int.from_bytes(head[18:22], "little", signed=True)
        height = int.from_bytes(head[22:26], "little", signed=True)  # < 0: top-down rows
        return ImageHeader("BMP", abs(width), abs(height))
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = _le(head, 6, 2), _le(head, 8, 2)
        # a frame may be larger than the logical screen: count the first one's size too
        raw = bytes(raw[:1 << 20])
        i = 13 + (3 * 2 ** ((head[10] & 7) + 1) if head[10] & 0x80 else 0)
        while i < len(raw) and raw[i] == 0x21:  # extension blocks before the first frame
            i += 2
            while i < len(raw) and raw[i]:
                i += raw[i] + 1
            i += 1
        if i + 9 <= len(raw) and raw[i] == 0x2C:
            width = max(width, _le(raw, i + 1, 2) + _le(raw, i + 5, 2))
            height = max(height, _le(raw, i + 3, 2) + _le(raw, i + 7, 2))
        return ImageHeader("GIF", width, height)
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        size = _tiff_size(bytes(raw[:1 << 20]))
        return ImageHeader("TIFF", *size) if size else None
    if len(head) >= 3 and head[0] == ord("P") and head[1] in b"123456" \
            and head[2] in b" \t\r\n#":
        size = _pnm_size(head if len(raw) <= 64 else bytes(raw[:4096]))
        return ImageHeader("PNM", *size) if size else None
    if head.startswith(b"\x00\x00\x00\x0cjP  \r\n\x87\n"):  # JPEG 2000 (JP2 box format)
        raw = bytes(raw[:1 << 20])
        at = _box_after(raw, b"ihdr")
        if at < 0 or at + 8 > len(raw):
            return None
        return ImageHeader("JPEG 2000", _u32be(raw, at + 4), _u32be(raw, at))
    if head.startswith(b"\xff\x4f\xff\x51") and len(head) >= 24:  # a raw J2K codestream: SIZ
        return ImageHeader("JPEG 2000", _u32be(head, 8) - _u32be(head, 16),
                           _u32be(head, 12) - _u32be(head, 20))
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis", b"mif1", b"heic"):
        raw = bytes(raw[:1 << 20])
        at = _box_after(raw, b"ispe")
        if at < 0 or at + 12 > len(raw):
            return None
        return ImageHeader("AVIF", _u32be(raw, at + 4), _u32be(raw, at + 8))
    return None


def _le(raw: bytes, i: int, n: int) -> int:
    return int.from_bytes(raw[i:i + n], "little")


def check_pixels(header: ImageHeader, limits: ImageLimits, reduction: int = 1) -> None:
    """Refuse (ImageRefused) an image that would decode to more than limits.max_pixels.

    reduction: the JPEG scale-down the decoder will use (a baseline JPEG decoded at 1/8 scale
    only ever holds 1/64 of its pixels; a progressive one buffers them all whatever the scale).
    """
    factor = 1 if header.progressive else reduction
    decoded = math.ceil(header.width / factor) * math.ceil(header.height / factor)
    if decoded <= limits.max_pixels:
        return
    megapixels = header.pixels / 1e6
    scaled = f" (decoded at 1/{factor} scale: {decoded / 1e6:.3g} MP)" if factor > 1 else ""
    raise ImageRefused(
        f"too many pixels: {header.width}x{header.height} {header.format} is "
        f"{megapixels:.3g} megapixels{scaled}, over the {limits.max_pixels / 1e6:g} MP limit "
        f"(decoding it would take about {_mb(decoded * 3)}; it was not decoded); "
        + _raise_hint("--max-megapixels", MAX_MEGAPIXELS_ENV, decoded / 1e6),
        "pixels", decoded, limits.max_pixels)


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
    sof = _jpeg_sof(raw)
    return sof[:3] if sof is not None else None


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
    data: np.ndarray, size: int | None = None, fit: str = "center_crop",
    limits: ImageLimits | None = None,
) -> tuple[np.ndarray, tuple[int, int], list[str]]:
    """Decode encoded image bytes into 8-bit BGR (H, W, 3) or grayscale (H, W).

    data: uint8 (n_bytes,) as read from the file. With `size`, a large JPEG may be decoded at
    1/2, 1/4 or 1/8 scale, never below what `fit_image(..., size, fit)` needs.
    limits: the pixel limit (ImageLimits.resolve() when None) is checked against the size the
    header declares before anything is decoded.
    Returns (image, (height, width) of the full-size image, notes). Alpha is composited onto
    white, 16-bit and float pixels are scaled to uint8; each conversion adds a note.
    Raises UnusableImage with the reason when the bytes are not a usable image, ImageRefused
    (a subclass) when they would decode to more pixels than the limit.
    """
    if data.size == 0:
        raise UnusableImage("empty file (0 bytes)")
    raw = data.tobytes()
    if jpeg_is_truncated(raw):
        raise UnusableImage("truncated JPEG: the end-of-image marker is missing (file cut short?)")
    declared = image_header(raw)
    if declared is None:  # nothing we can size before decoding is decoded
        raise UnusableImage(f"not decodable: {explain_undecodable(raw)}")
    if declared.pixels == 0:
        raise UnusableImage(f"not decodable: its {declared.format} header says "
                            f"{declared.width}x{declared.height} pixels")
    limits = limits or ImageLimits.resolve()
    header = jpeg_header(raw) if declared.format == "JPEG" else None
    factor = 1
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
    check_pixels(declared, limits, factor)
    img = _imdecode(data, flags, raw)
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


def check_header(raw: bytes, limits: ImageLimits | None = None) -> ImageHeader:
    """The header of encoded image bytes, checked against the pixel limit (no reduction).
    Raises UnusableImage when it cannot be read, ImageRefused when it is over the limit."""
    if not raw:
        raise UnusableImage("empty file (0 bytes)")
    declared = image_header(raw)
    if declared is None:
        raise UnusableImage(f"not decodable: {explain_undecodable(raw)}")
    check_pixels(declared, limits or ImageLimits.resolve())
    return declared


def _imdecode(data: np.ndarray, flags: int, raw: bytes) -> np.ndarray:
    """cv2.imdecode, with OpenCV's failures (an exception or an empty result) as UnusableImage."""
    try:
        img = cv2.imdecode(data, flags)
    except cv2.error as err:
        raise UnusableImage(f"OpenCV could not decode it: {str(err).strip().splitlines()[-1]}") from None
    if img is None or img.size == 0:
        raise UnusableImage(f"not decodable: {explain_undecodable(raw)}")
    return img


def imdecode_guarded(data: np.ndarray, flags: int = cv2.IMREAD_UNCHANGED,
                     limits: ImageLimits | None = None) -> np.ndarray:
    """cv2.imdecode(data, flags) behind the pixel limit, for callers that want OpenCV's own
    result (a mask's alpha channel, a PNG shown as it is). Raises UnusableImage/ImageRefused."""
    raw = data.tobytes()
    check_header(raw, limits)
    return _imdecode(data, flags, raw)


def image_bytes_problem(data: bytes, limits: ImageLimits | None = None
                        ) -> tuple[str, str] | None:
    """None when `data` decodes as an image prepare can use, else (kind, reason): kind is
    "too_many_pixels" for the pixel limit, "not_an_image" otherwise."""
    try:
        decode_image(np.frombuffer(data, dtype=np.uint8), size=8, limits=limits)  # small: fast
    except ImageRefused as refused:
        return "too_many_pixels", str(refused)
    except UnusableImage as reason:
        return "not_an_image", str(reason)
    except Exception as err:  # whatever a decoder raises, the answer is "not usable"
        return "not_an_image", f"failed while decoding: {type(err).__name__}: {err}"
    return None


def check_image_bytes(data: bytes, limits: ImageLimits | None = None) -> str | None:
    """None when `data` decodes as an image prepare can use, else the reason it cannot."""
    problem = image_bytes_problem(data, limits)
    return problem[1] if problem else None


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


def read_bytes(path: str, limits: ImageLimits | None = None) -> np.ndarray | dict[str, Any]:
    """The file's bytes as uint8 (n,) through the guard (read_image_file), or the result
    entry {"error": reason[, "refused": {...}]} saying why it was not read."""
    try:
        return read_image_file(path, limits)
    except UnusableImage as reason:
        return _error(reason)


def _error(reason: UnusableImage) -> dict[str, Any]:
    entry: dict[str, Any] = {"error": str(reason)}
    if isinstance(reason, ImageRefused):
        entry["refused"] = reason.as_dict()
    return entry


def process_file(
    path: str,
    size: int,
    channels: int,
    fit: str,
    box: tuple[int, int, int, int] | None = None,
    limits: ImageLimits | None = None,
) -> dict[str, Any]:
    """Read (through the guard), decode, (crop,) fit and convert one file. Never raises for
    bad input.

    Returns {"pixels": uint8 (size, size, channels) RGB/gray, "hash", "width", "height",
    "notes"} for a usable image, or {"error": reason} for one that is not ({"error",
    "refused": {"limit", "value", "max"}} when a limit of the guard refused it).
    """
    data = read_bytes(path, limits)
    if isinstance(data, dict):
        return data
    return decode_file(data, size, channels, fit, box, limits)


def decode_file(
    data: np.ndarray, size: int, channels: int, fit: str, box: tuple[int, int, int, int] | None,
    limits: ImageLimits | None = None,
) -> dict[str, Any]:
    """process_file after the read: encoded bytes uint8 (n,) -> pixels, hash and notes."""
    try:
        # With a crop box, decode at full size: the box is in full-size pixel coordinates.
        img, (height, width), notes = decode_image(data, None if box else size, fit, limits)
        if box is not None:
            img = _crop_box(img, box)
        # the picture fit squares: the box's when there is one (decoded at full size)
        shown_w, shown_h = (img.shape[1], img.shape[0]) if box is not None else (width, height)
        img, upscaled = fit_image(img, size, fit)
        pixels = to_channels(img, channels)
    except UnusableImage as reason:
        return _error(reason)
    except Exception as err:  # a decoder bug must not stop a prepare of 10,000 files
        return {"error": f"failed while decoding: {type(err).__name__}: {err}"}
    if upscaled:
        notes.append(f"too small: upscaled from {width}x{height}")
    if fit == "center_crop" and max(shown_w, shown_h) >= WIDE_ASPECT * min(shown_w, shown_h):
        notes.append(f"wide: {shown_w}x{shown_h}, center_crop kept its middle square")
    if img.ndim == 2 and channels == 3:
        notes.append("grayscale converted to RGB")
    digest = hashlib.blake2b(pixels.tobytes(), digest_size=16).hexdigest()
    return {"pixels": pixels, "hash": digest, "width": width, "height": height, "notes": notes}
