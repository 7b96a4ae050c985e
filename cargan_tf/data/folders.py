"""Turn a folder of image files into a compact uint8 cache that loads with one read: decode,
convert, resize, drop duplicates, report every bad file, and re-run incrementally.

Layout of a prepared cache folder ``dst``::

    dst/images_000.npy ...    uint8 (n_i, size, size, channels) RGB or grayscale, in path order
    dst/manifest.json         options, counts, shards, one entry per source file, what changed
    dst/prepare_report.json   every skipped, duplicate, flagged and ignored file with its reason

The cache is written into a sibling temp folder and swapped in whole; its manifest.json is the
commit point, so an interrupted prepare leaves the previous cache readable.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from cargan_tf.errors import DataError
from cargan_tf.progress import progress_bar as tqdm

# Extensions OpenCV can decode. Anything else in the folder is ignored (and listed in the report).
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".dib", ".gif", ".webp",
        ".tif", ".tiff", ".pgm", ".ppm", ".pbm", ".pnm", ".pxm", ".jp2", ".avif",
    }
)
FITS = ("center_crop", "pad", "stretch")
MANIFEST_NAME = "manifest.json"
REPORT_NAME = "prepare_report.json"
SHARD_PATTERN = "images_{:03d}.npy"
CACHE_FORMAT = "cargan_tf.prepared_cache"
CACHE_VERSION = 1
# ~256 MiB per shard: few files (fast on Drive), each small enough to write in one go.
SHARD_BYTES = 256 * 2**20
DUPLICATE_RULE = "exact: identical uint8 pixels after decode, convert and resize (blake2b-128)"
_JPEG_MAGIC = b"\xff\xd8\xff"


class _Skip(Exception):
    """A file that cannot go into the cache; the message is the reason shown in the report."""


@dataclass(frozen=True)
class SourceFile:
    """One image file found under the source folder."""

    rel: str  # path relative to the source folder, with forward slashes
    path: str  # absolute path
    bytes: int
    mtime_ns: int


@dataclass
class PrepareResult:
    """What one `prepare` call did; `summary()` is the one line the CLI prints."""

    src: Path
    dst: Path
    count: int  # images in the cache
    shape: tuple[int, int, int, int]  # (count, size, size, channels)
    fit: str
    decoded: int  # files decoded in this call
    reused: int  # images copied from the previous cache without decoding
    added: int
    changed: int
    deleted: int
    skipped: int
    duplicates: int
    upscaled: int
    ignored: int
    full_reprepare: str | None  # why everything was decoded again, or None when incremental
    up_to_date: bool  # nothing changed, nothing was written
    seconds: float
    manifest_path: Path
    report_path: Path

    def summary(self) -> str:
        _, size, _, channels = self.shape
        what = f"{self.count} images {size}x{size}x{channels} ({self.fit})"
        problems = (
            f"{self.skipped} skipped, {self.duplicates} duplicates, {self.upscaled} upscaled, "
            f"{self.ignored} non-image files ignored"
        )
        if self.up_to_date:
            return (
                f"cache {self.dst} is up to date: {what}; {problems}; "
                f"nothing changed in {self.src}"
            )
        how = f"full prepare ({self.full_reprepare})" if self.full_reprepare else "incremental"
        return (
            f"prepared {what} from {self.src} into {self.dst} in {self.seconds:.1f}s, {how}: "
            f"{self.decoded} decoded, {self.reused} reused, {self.added} added, "
            f"{self.changed} changed, {self.deleted} deleted; {problems}"
        )


# --------------------------------------------------------------------------- decoding one file


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
    Raises _Skip with the reason when the bytes are not a usable image.
    """
    if data.size == 0:
        raise _Skip("empty file (0 bytes)")
    raw = data.tobytes()
    if jpeg_is_truncated(raw):
        raise _Skip("truncated JPEG: the end-of-image marker is missing (file cut short?)")
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
        raise _Skip(f"OpenCV could not decode it: {str(err).strip().splitlines()[-1]}") from None
    if img is None or img.size == 0:
        raise _Skip(f"not decodable: {explain_undecodable(raw)}")
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
        raise _Skip(f"unsupported pixel type {img.dtype}")

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
        raise _Skip(f"unsupported channel layout {img.shape}")
    return img, (height, width), notes


def check_image_bytes(data: bytes) -> str | None:
    """None when `data` decodes as an image prepare can use, else the reason it cannot."""
    try:
        decode_image(np.frombuffer(data, dtype=np.uint8), size=8)  # small: a fast check
    except _Skip as reason:
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
        raise _Skip(f"bounding box {tuple(box)} lies outside the {w}x{h} image")
    return img[y0:y1, x0:x1]


def _read_bytes(path: str) -> np.ndarray | str:
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
    data = _read_bytes(path)
    if isinstance(data, str):
        return {"error": data}
    return _decode_file(data, size, channels, fit, box)


def _decode_file(
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
    except _Skip as reason:
        return {"error": str(reason)}
    except Exception as err:  # a decoder bug must not stop a prepare of 10,000 files
        return {"error": f"failed while decoding: {type(err).__name__}: {err}"}
    if upscaled:
        notes.append(f"too small: upscaled from {width}x{height}")
    if img.ndim == 2 and channels == 3:
        notes.append("grayscale converted to RGB")
    digest = hashlib.blake2b(pixels.tobytes(), digest_size=16).hexdigest()
    return {"pixels": pixels, "hash": digest, "width": width, "height": height, "notes": notes}


def _is_our_temp(name: str, dst: Path) -> bool:
    return name.startswith((f".{dst.name}.tmp-", f".{dst.name}.old-"))


def scan_folder(src: Path, dst: Path | None = None) -> tuple[list[SourceFile], list[dict]]:
    """Walk `src` recursively (sorted, symlinked folders not followed).

    Returns (image files sorted by relative path, ignored entries {"path", "reason"}).
    `dst` and its temp folders are left out when they sit inside `src`.
    """
    src = Path(src)
    skip = {os.path.realpath(dst)} if dst is not None else set()
    images: list[SourceFile] = []
    ignored: list[dict] = []
    for root, dirs, files in os.walk(src):
        rel_root = os.path.relpath(root, src)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/") + "/"
        kept_dirs = []
        for name in sorted(dirs):
            full = os.path.join(root, name)
            if os.path.realpath(full) in skip or (dst is not None and _is_our_temp(name, dst)):
                continue
            if name.startswith(".") or name == "__MACOSX":
                ignored.append({"path": f"{rel_root}{name}/", "reason": "hidden folder, skipped"})
                continue
            kept_dirs.append(name)
        dirs[:] = kept_dirs
        for name in sorted(files):
            rel = rel_root + name
            ext = os.path.splitext(name)[1].lower()
            if name.startswith("."):
                ignored.append({"path": rel, "reason": "hidden file"})
                continue
            if ext not in IMAGE_EXTENSIONS:
                kind = f"'{ext}'" if ext else "no"
                ignored.append({"path": rel, "reason": f"not an image: {kind} extension"})
                continue
            full = os.path.join(root, name)
            try:
                st = os.stat(full)
            except OSError as err:
                ignored.append({"path": rel, "reason": f"cannot stat: {err.strerror or err}"})
                continue
            images.append(SourceFile(rel, os.path.abspath(full), st.st_size, st.st_mtime_ns))
    images.sort(key=lambda f: f.rel)
    return images, ignored


def _describe_contents(src: Path, ignored: list[dict]) -> str:
    if not ignored:
        return "it is empty"
    exts = Counter(Path(e["path"]).suffix.lower() or "(folder/none)" for e in ignored)
    common = ", ".join(f"{n} {ext}" for ext, n in exts.most_common(5))
    return f"it holds {len(ignored)} other entries ({common})"


# --------------------------------------------------------------------------- atomic cache folder


def _fsync_dir(folder: Path) -> None:
    """Make renames inside `folder` durable (POSIX only; a no-op elsewhere)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_bytes_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _write_json(path: Path, obj: Any) -> None:
    _write_bytes_durably(path, json.dumps(obj, indent=1).encode("utf-8"))


def _write_shard(path: Path, images: np.ndarray) -> None:
    """Write one uint8 shard as .npy and fsync it (tests replace this to simulate a crash)."""
    with open(path, "wb") as fh:
        np.save(fh, images, allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name != "posix":
        return False  # os.kill(pid, 0) would terminate the process on Windows
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _temp_pid(name: str) -> int | None:
    try:
        return int(name.rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return None


def _swap_in(new: Path, dst: Path) -> None:
    """Replace folder `dst` by folder `new` (same parent): two renames, then drop the old one."""
    old = None
    if dst.exists():
        old = dst.parent / f".{dst.name}.old-{os.getpid()}"
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
    try:
        os.replace(new, dst)
    except OSError:
        if old is not None:
            os.replace(old, dst)  # put the previous cache back
        raise
    _fsync_dir(dst.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _recover(dst: Path) -> None:
    """Finish or undo a swap that a killed prepare left half done.

    A temp folder holding manifest.json was committed: it becomes `dst`. A temp folder without
    one is discarded. If `dst` is missing but an `.old-` folder exists, that one comes back.
    Folders of a still-running prepare (live pid) are left alone.
    """
    parent = dst.parent
    if not parent.is_dir():
        return
    try:
        for tmp in sorted(parent.glob(f".{dst.name}.tmp-*")):
            pid = _temp_pid(tmp.name)
            if pid is not None and _pid_alive(pid):
                continue
            if (tmp / MANIFEST_NAME).is_file():
                _swap_in(tmp, dst)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        for old in sorted(parent.glob(f".{dst.name}.old-*")):
            pid = _temp_pid(old.name)
            if pid is not None and _pid_alive(pid):
                continue
            if not dst.exists() and (old / MANIFEST_NAME).is_file():
                os.replace(old, dst)
                _fsync_dir(parent)
            else:
                shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass  # read-only place: reading still works if dst itself is intact


_OWN_FILE_NAMES = (MANIFEST_NAME, REPORT_NAME)


def _is_own_file(name: str) -> bool:
    return name in _OWN_FILE_NAMES or (name.startswith("images_") and name.endswith(".npy"))


def _check_dst(src: Path, dst: Path) -> None:
    """Refuse destinations whose contents prepare would destroy by swapping the folder."""
    if dst.exists() and not dst.is_dir():
        raise DataError(f"destination {dst} is a file; pass a folder for the cache")
    if os.path.realpath(dst) == os.path.realpath(src):
        raise DataError(f"destination {dst} is the source folder; pass a separate cache folder")
    if os.path.realpath(src).startswith(os.path.realpath(dst) + os.sep):
        raise DataError(
            f"destination {dst} contains the source folder {src}; prepare replaces the whole "
            "destination folder, so pass a new folder for the cache (e.g. beside the source)"
        )
    if not dst.is_dir():
        return
    foreign = sorted(name for name in os.listdir(dst) if not _is_own_file(name))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        has_manifest = (dst / MANIFEST_NAME).is_file()
        what = "a prepared cache with other files in it" if has_manifest else "not a prepared cache"
        raise DataError(
            f"destination {dst} is {what} ({len(foreign)} entries such as {shown}); prepare "
            "replaces the whole folder, so move those files or pass a new or empty folder"
        )


# --------------------------------------------------------------------------- reading a cache


def read_manifest(dst: str | os.PathLike) -> dict:
    """The manifest.json of a prepared cache folder, checked for format and version."""
    dst = Path(dst).expanduser()
    _recover(dst)
    path = dst / MANIFEST_NAME
    if not dst.is_dir():
        raise DataError(f"prepared cache folder {dst} does not exist; run `python -m cargan_tf "
                        "prepare SRC DST` first, or check the path")
    if not path.is_file():
        raise DataError(
            f"{dst} has no {MANIFEST_NAME}, so it is not a cache written by `python -m cargan_tf "
            "prepare` (or its first prepare never finished); run prepare into it"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}; run prepare again to rebuild it") from None
    if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
        raise DataError(f"{path} is not a cargan_tf cache manifest; run prepare into a new folder")
    if manifest.get("version") != CACHE_VERSION:
        raise DataError(
            f"{path} has cache format version {manifest.get('version')}, this code reads version "
            f"{CACHE_VERSION}; run prepare again to rebuild the cache"
        )
    return manifest


def _open_shards(dst: Path, manifest: dict, mmap: bool = False) -> list[np.ndarray]:
    """The shard arrays, each checked against the manifest's shapes (mmap: read headers only)."""
    size, channels = manifest["options"]["size"], manifest["options"]["channels"]
    arrays = []
    for shard in manifest["shards"]:
        path = dst / shard["file"]
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read shard {path}: {err}; run prepare again") from None
        expected = (shard["count"], size, size, channels)
        if arr.shape != expected or arr.dtype != np.uint8:
            raise DataError(
                f"shard {path} holds {arr.dtype} {arr.shape}, the manifest says uint8 {expected}; "
                "the cache was modified by hand: run prepare again to rebuild it"
            )
        arrays.append(arr)
    return arrays


def load_cache(dst: str | os.PathLike) -> np.ndarray:
    """Load a prepared cache: uint8 (N, size, size, channels), RGB or grayscale, in [0, 255].

    Images are in source-path order. One np.load per shard; several shards are concatenated.
    """
    dst = Path(dst).expanduser()
    manifest = read_manifest(dst)
    arrays = _open_shards(dst, manifest)
    images = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    if len(images) != manifest["count"]:
        raise DataError(
            f"{dst} holds {len(images)} images, its manifest says {manifest['count']}; "
            "run prepare again to rebuild it"
        )
    return images


# --------------------------------------------------------------------------- prepare


def _options_changes(old: Mapping, new: Mapping) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k} {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)]


def _boxes_digest(boxes: Mapping[str, tuple[int, int, int, int]] | None) -> str | None:
    if boxes is None:
        return None
    items = sorted((k, [int(v) for v in box]) for k, box in boxes.items())
    return hashlib.blake2b(json.dumps(items).encode(), digest_size=8).hexdigest()


def _decode_many(tasks: list[tuple], workers: int, progress: bool) -> Iterator[dict[str, Any]]:
    """Decode tasks (rel, path, size, channels, fit, box), yielding results in task order:
    `workers` reading threads fetch bytes ahead, one decoding thread per core decodes them.

    Threads, not processes: OpenCV and NumPy release the GIL while they decode, resize and
    read, so threads keep every core busy. Forked processes deadlock once the caller has
    used OpenCV (its thread pool does not survive fork), and spawned ones re-run the
    caller's script when it lacks an `if __name__ == "__main__":` guard. Reading and
    decoding are separate pools: extra readers hide the latency of Drive, while more
    decoding threads than cores only fight over the GIL (measured: 8 threads that each read
    and decode were 1.3x slower than 2 on local files).
    """
    bar = tqdm(total=len(tasks), desc="prepare", unit="img", disable=not (progress and tasks))
    try:
        if workers <= 1 or len(tasks) <= 1:
            for rel, path, *options in tasks:
                bar.update()
                yield {"rel": rel, **process_file(path, *options)}
            return
        readers = ThreadPoolExecutor(workers, thread_name_prefix="prepare-read")
        decoders = ThreadPoolExecutor(min(workers, _usable_cores()),
                                      thread_name_prefix="prepare-decode")

        def read_then_decode(task: tuple) -> Future | dict[str, Any]:
            data = _read_bytes(task[1])
            if isinstance(data, str):
                return {"error": data}
            return decoders.submit(_decode_file, data, *task[2:])

        def finish(rel: str, read: Future) -> dict[str, Any]:
            result = read.result()
            bar.update()
            return {"rel": rel, **(result.result() if isinstance(result, Future) else result)}

        in_flight: deque[tuple[str, Future]] = deque()
        window = 4 * workers  # files read ahead: bounds memory to a few MB of JPEG bytes
        try:
            for task in tasks:
                in_flight.append((task[0], readers.submit(read_then_decode, task)))
                if len(in_flight) > window:
                    yield finish(*in_flight.popleft())
            while in_flight:
                yield finish(*in_flight.popleft())
        finally:  # Ctrl-C or an error: do not decode the rest first
            readers.shutdown(cancel_futures=True)
            decoders.shutdown(cancel_futures=True)
    finally:
        bar.close()


def _usable_cores() -> int:
    """Cores this process may run on (respects taskset and container CPU sets)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _default_workers() -> int:
    """Reading threads: 4 per core, at most 16, so slow reads (Drive, network folders) overlap
    with decoding; decoding itself uses one thread per core."""
    return min(16, 4 * _usable_cores())


MAX_SIZE = 2048  # pixels a side: beyond this a cache is gigabytes for a handful of photos


def _validate_options(size: int, channels: int, fit: str) -> None:
    if not isinstance(size, int) or size < 1:
        raise DataError(f"size must be a positive number of pixels, got {size!r}")
    if size > MAX_SIZE:
        raise DataError(f"size {size} is larger than {MAX_SIZE} pixels: the GAN presets train "
                        "at 16 to 128 (a power of two)")
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    if fit not in FITS:
        raise DataError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")


def _previous_cache(dst: Path, options: dict) -> tuple[dict | None, str | None]:
    """(old manifest or None, reason for a full re-prepare or None)."""
    if not (dst / MANIFEST_NAME).is_file():
        return None, "no previous cache"
    try:
        old = read_manifest(dst)
        changes = _options_changes(old["options"], options)
        if changes:
            return old, "options changed: " + ", ".join(changes)
        _open_shards(dst, old, mmap=True)  # shapes from the .npy headers: cheap, even on Drive
        return old, None
    except (DataError, KeyError, TypeError) as err:
        return None, f"previous cache unreadable ({err})"


def prepare(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    size: int = 64,
    channels: int = 3,
    fit: str = "center_crop",
    workers: int | None = None,
    progress: bool = True,
    *,
    boxes: Mapping[str, tuple[int, int, int, int]] | None = None,
) -> PrepareResult:
    """Prepare every image under `src` into the cache folder `dst`.

    Output: dst/images_000.npy ... uint8 (n, size, size, channels), RGB when channels == 3,
    plus manifest.json and prepare_report.json (see the module docstring).

    Only files that are new or changed (size or mtime) since the last prepare into `dst` are
    decoded; deleted files are dropped. A change of size/channels/fit/boxes re-prepares
    everything. Bad files never stop the run: they are skipped and listed in the report.
    boxes: optional {relative path: (x0, y0, x1, y1)} 0-based crop boxes (x1, y1 exclusive),
    applied before `fit`; files without a box are skipped (used by the Stanford Cars loader).
    workers: files read at once, in threads (default: 4 per core, at most 16); decoding uses
        one thread per core (at most `workers`).
    progress: show a tqdm bar while decoding. Returns counts; `result.summary()` says them.
    Raises DataError for a missing/empty source, no decodable image, or an unsafe `dst`.
    """
    start = time.perf_counter()
    _validate_options(size, channels, fit)
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if not src.exists():
        raise DataError(f"source folder {src} does not exist (on Colab, mount Drive first)")
    if not src.is_dir():
        raise DataError(f"source {src} is a file; pass the folder that holds the images")
    _check_dst(src, dst)
    _recover(dst)
    files, ignored = scan_folder(src, dst)
    if not files:
        raise DataError(
            f"no image files in {src}: {_describe_contents(src, ignored)}; "
            f"prepare reads {', '.join(sorted(IMAGE_EXTENSIONS))} in any subfolder"
        )
    workers = max(1, workers if workers is not None else _default_workers())
    options = {"size": size, "channels": channels, "fit": fit, "boxes": _boxes_digest(boxes)}
    old, full_reason = _previous_cache(dst, options)
    old_entries = {e["path"]: e for e in old["sources"]} if old is not None else {}

    # Classify against the previous manifest: new, changed (size or mtime), unchanged, deleted.
    added, changed, unchanged = [], [], {}
    for f in files:
        entry = old_entries.get(f.rel)
        if entry is None:
            added.append(f.rel)
        elif (entry["bytes"], entry["mtime_ns"]) != (f.bytes, f.mtime_ns):
            changed.append(f.rel)
        else:
            unchanged[f.rel] = entry
    current = {f.rel for f in files}
    deleted = sorted(rel for rel in old_entries if rel not in current)
    n_unchanged = len(unchanged)
    if full_reason:
        unchanged = {}  # nothing from the old cache is reused
    elif not added and not changed and not deleted:
        return _up_to_date_result(src, dst, old, start)

    # A duplicate keeps no pixels of its own: decode it again if no unchanged image has them.
    reusable = {e["hash"] for e in unchanged.values() if e["status"] == "kept"}
    to_decode = {f.rel for f in files if f.rel not in unchanged} | {
        rel for rel, e in unchanged.items()
        if e["status"] == "duplicate" and e["hash"] not in reusable
    }
    decoded: dict[str, dict[str, Any]] = {}
    tasks = []
    for f in files:
        if f.rel not in to_decode:
            continue
        if boxes is not None and f.rel not in boxes:
            # Never fall back to the whole photo silently when crops were asked for.
            decoded[f.rel] = {"error": "no bounding box for this file in the annotations"}
            continue
        box = tuple(boxes[f.rel]) if boxes is not None else None
        tasks.append((f.rel, f.path, size, channels, fit, box))
    for result in _decode_many(tasks, workers, progress):
        decoded[result["rel"]] = result

    sources, rows = _assemble(files, decoded, unchanged)
    if not rows:
        reasons = Counter(s["reason"].split(":")[0] for s in sources if s["status"] == "skipped")
        common = "; ".join(f"{n} x {r}" for r, n in reasons.most_common(4))
        raise DataError(
            f"no decodable image in {src}: all {len(files)} image files failed ({common}); "
            "check that the files are really images (e.g. open one) and not web pages or "
            "cut-short downloads"
        )
    reused = sum(1 for row in rows if isinstance(row, int))
    # Read fully (not memory-mapped) so that no file in dst stays open during the swap.
    old_shards = _open_shards(dst, old) if reused else []
    old_starts = np.cumsum([0] + [len(a) for a in old_shards]).tolist()

    def gather(lo: int, hi: int) -> np.ndarray:
        """Rows lo..hi of the new cache, from fresh pixels or from the old cache."""
        block = np.empty((hi - lo, size, size, channels), dtype=np.uint8)
        for i, row in enumerate(rows[lo:hi]):
            if isinstance(row, int):
                shard = bisect.bisect_right(old_starts, row) - 1
                block[i] = old_shards[shard][row - old_starts[shard]]
            else:
                block[i] = row
        return block

    changes = {
        "full_reprepare": full_reason,
        "added": added,
        "changed": changed,
        "deleted": deleted,
        "unchanged": n_unchanged,
        "decoded": [task[0] for task in tasks],
        "reused": reused,
    }
    manifest = _build_manifest(src, options, sources, ignored, changes, len(rows), size, channels)
    report = _build_report(src, dst, manifest, sources, ignored)
    result = PrepareResult(
        src=src, dst=dst, count=len(rows), shape=(len(rows), size, size, channels), fit=fit,
        decoded=len(tasks), reused=reused, added=len(added),
        changed=len(changed), deleted=len(deleted), skipped=manifest["counts"]["skipped"],
        duplicates=manifest["counts"]["duplicates"], upscaled=manifest["counts"]["upscaled"],
        ignored=len(ignored), full_reprepare=full_reason, up_to_date=False, seconds=0.0,
        manifest_path=dst / MANIFEST_NAME, report_path=dst / REPORT_NAME,
    )
    _commit(dst, manifest, report, gather, len(rows), size * size * channels)
    result.seconds = time.perf_counter() - start
    return result


def _assemble(
    files: list[SourceFile], decoded: dict[str, dict], unchanged: dict[str, dict]
) -> tuple[list[dict], list[np.ndarray | int]]:
    """Manifest entries for all files (path order) and the cache rows.

    A row is fresh pixels uint8 (size, size, channels) or an int index into the old cache.
    The first file with given pixels is kept; later ones are marked duplicates of it.
    """
    sources: list[dict] = []
    rows: list[np.ndarray | int] = []
    owner_of: dict[str, str] = {}
    for f in files:
        entry = {"path": f.rel, "bytes": f.bytes, "mtime_ns": f.mtime_ns}
        if f.rel in decoded:
            result = decoded[f.rel]
            if "error" in result:
                sources.append({**entry, "status": "skipped", "reason": result["error"]})
                continue
            row = result["pixels"]
            info = {k: result[k] for k in ("width", "height", "hash", "notes")}
        else:
            prev = unchanged[f.rel]
            if prev["status"] == "skipped":  # an unchanged bad file keeps its verdict, no decode
                sources.append({**entry, "status": "skipped", "reason": prev["reason"]})
                continue
            row = prev.get("index")  # None for an old duplicate; its owner has the pixels
            info = {k: prev[k] for k in ("width", "height", "hash", "notes")}
        owner = owner_of.get(info["hash"])
        if owner is not None:
            sources.append({**entry, "status": "duplicate", "duplicate_of": owner, **info})
            continue
        owner_of[info["hash"]] = f.rel
        sources.append({**entry, "status": "kept", "index": len(rows), **info})
        rows.append(row)
    return sources, rows


def _build_manifest(
    src: Path, options: dict, sources: list[dict], ignored: list[dict], changes: dict,
    count: int, size: int, channels: int,
) -> dict:
    status = Counter(s["status"] for s in sources)
    upscaled = sum(1 for s in sources if s["status"] == "kept"
                   and any(n.startswith("too small") for n in s["notes"]))
    return {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "src": str(src.resolve()),
        "options": options,
        "count": count,
        "shape": [count, size, size, channels],
        "dtype": "uint8",
        "color": "RGB" if channels == 3 else "grayscale",
        "duplicates_rule": DUPLICATE_RULE,
        "shards": [],  # filled by _commit
        "counts": {
            "images": count, "files": len(sources), "skipped": status["skipped"],
            "duplicates": status["duplicate"], "upscaled": upscaled, "ignored": len(ignored),
        },
        "changes": changes,
        "sources": sources,
    }


def _build_report(
    src: Path, dst: Path, manifest: dict, sources: list[dict], ignored: list[dict]
) -> dict:
    return {
        "src": str(src.resolve()),
        "dst": str(dst.resolve()),
        "written": manifest["written"],
        "options": manifest["options"],
        "counts": manifest["counts"],
        "skipped": [{"path": s["path"], "reason": s["reason"]}
                    for s in sources if s["status"] == "skipped"],
        "duplicates": [{"path": s["path"], "duplicate_of": s["duplicate_of"]}
                       for s in sources if s["status"] == "duplicate"],
        "flagged": [{"path": s["path"], "notes": s["notes"]}
                    for s in sources if s["status"] == "kept" and s["notes"]],
        "ignored": ignored,
    }


def _commit(
    dst: Path,
    manifest: dict,
    report: dict,
    gather: Callable[[int, int], np.ndarray],
    count: int,
    image_bytes: int,
) -> None:
    """Write shards, report, then manifest into a sibling temp folder and swap it in."""
    tmp = dst.parent / f".{dst.name}.tmp-{os.getpid()}"
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
    except OSError as err:
        raise DataError(f"cannot create the cache folder {dst}: {err.strerror or err}") from err
    try:
        per_shard = max(1, SHARD_BYTES // image_bytes)
        for number, lo in enumerate(range(0, count, per_shard)):
            block = gather(lo, min(count, lo + per_shard))
            name = SHARD_PATTERN.format(number)
            _write_shard(tmp / name, block)
            manifest["shards"].append({"file": name, "count": len(block)})
        _write_json(tmp / REPORT_NAME, report)
        _write_json(tmp / MANIFEST_NAME, manifest)  # the commit point
        _fsync_dir(tmp)
        _swap_in(tmp, dst)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"could not write the cache into {dst}: {err.strerror or err}; check free space "
            "and permissions there (the previous cache, if any, is unchanged)"
        ) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _up_to_date_result(src: Path, dst: Path, old: dict, start: float) -> PrepareResult:
    counts = old["counts"]
    opts = old["options"]
    return PrepareResult(
        src=src, dst=dst, count=old["count"], shape=tuple(old["shape"]), fit=opts["fit"],
        decoded=0, reused=old["count"], added=0, changed=0, deleted=0,
        skipped=counts["skipped"], duplicates=counts["duplicates"], upscaled=counts["upscaled"],
        ignored=counts["ignored"], full_reprepare=None, up_to_date=True,
        seconds=time.perf_counter() - start,
        manifest_path=dst / MANIFEST_NAME, report_path=dst / REPORT_NAME,
    )

