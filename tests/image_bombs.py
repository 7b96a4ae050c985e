"""Decompression bombs and other hostile image files for the guard's tests (no big buffers:
each is made by streaming, or is only a header)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 8-bit RGB PNG of black pixels: 20000x20000 is 1.2 GB decoded, ~1.17 MB on disk.
    Compressed row block by row block, so making it never holds more than a few MB."""
    row = b"\x00" * (1 + 3 * width)  # filter byte 0, then the pixels
    block = row * max(1, (8 << 20) // len(row))
    rows_per_block = len(block) // len(row)
    deflate = zlib.compressobj(9)
    parts, left = [], height
    while left:
        n = min(left, rows_per_block)
        parts.append(deflate.compress(block if n == rows_per_block else row * n))
        left -= n
    parts.append(deflate.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))


def png_header_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A PNG whose IHDR declares width x height, with one tiny (not matching) IDAT: refused by
    its header alone, it needs no big compressed stream."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


def jpeg_header_bomb(width: int = 60000, height: int = 60000, progressive: bool = False) -> bytes:
    """A JPEG start: SOI, a start-of-frame declaring width x height, and an end marker."""
    marker = 0xC2 if progressive else 0xC0
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return (b"\xff\xd8" + bytes([0xFF, marker]) + struct.pack(">H", 2 + len(sof)) + sof
            + b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x00" * 32 + b"\xff\xd9")


def gif_header_bomb(width: int = 65535, height: int = 65535) -> bytes:
    return b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0) + b";"


def webp_header_bomb(width: int = 16383, height: int = 16383) -> bytes:
    """A VP8X (extended) WebP header declaring a width x height canvas."""
    vp8x = b"\x00\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def bmp_header_bomb(width: int = 30000, height: int = 30000) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(info), 0, 0, 14 + len(info)) + info


def sparse_file(path: Path, size: int, head: bytes = b"\xff\xd8\xff\xe0") -> Path:
    """A file of `size` bytes that takes no disk space (a hole after `head`)."""
    with open(path, "wb") as handle:
        handle.write(head)
        handle.truncate(size)
    return path
