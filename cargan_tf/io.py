"""Files written so a crash never leaves half of one, and CSV logs read back whole.

Standard library only. runs.py, the prepared cache (data/cache.py), evaluate.py and vae.py
write and read through these functions; runs.py adds the run folder's error messages.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

Row = TypeVar("Row")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def fsync_dir(folder: str | os.PathLike) -> None:
    """Make renames inside `folder` durable; not every filesystem (or OS) allows opening a
    folder, and then this does nothing."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_durably(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` and fsync it (not atomic: for files inside a folder that is
    itself swapped in whole, like a prepared cache's)."""
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_bytes_atomic(path: str | os.PathLike, data: bytes,
                       before_rename: Callable[[], None] | None = None) -> None:
    """Write `data` to `path` so a reader sees the old file or the new one, never a part.

    The bytes go to a temporary file in the same folder, are fsynced, then renamed over `path`
    (before_rename runs just before: fault-injection tests). Raises OSError and leaves `path`
    as it was when anything fails.
    """
    path = Path(path)
    tmp_name = None
    try:
        # the pid in the name lets a clean-up tell a live writer's file from a dead one's
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                                        suffix=".tmp")
        with contextlib.suppress(OSError, AttributeError):  # mkstemp makes 0600; want 0666&~umask
            os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if before_rename is not None:
            before_rename()
        os.replace(tmp_name, path)
        tmp_name = None
        fsync_dir(path.parent)
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def json_text(obj: Any, indent: int = 2) -> str:
    """The JSON the package writes (dates and paths as strings), ending in a newline."""
    return json.dumps(obj, indent=indent, default=str) + "\n"


def sha256_file(path: str | os.PathLike) -> str:
    """sha256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- CSV logs (history.csv, metrics.csv) ---------------------------------------------------------

def csv_text(rows: Iterable[dict[str, Any]], columns: Sequence[str], header: bool) -> str:
    """CSV lines of `rows` in `columns` (others ignored): floats as %.6g, None as empty."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore",
                            lineterminator="\n")
    if header:
        writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else f"{v:.6g}" if isinstance(v, float) else v
                         for k, v in row.items()})
    return buffer.getvalue()


def csv_header(path: str | os.PathLike) -> tuple[str, ...] | None:
    """A CSV file's column names; None for a missing or empty file."""
    if not Path(path).exists():
        return None
    with open(path, newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle), None)
    return tuple(header) if header else None


def read_csv_rows(path: str | os.PathLike, parse: Callable[[dict[str, str]], Row]) -> list[Row]:
    """parse(row) for each row of a CSV log; a row parse rejects (ValueError, TypeError,
    KeyError: the torn last line of a killed append) is skipped. [] for a missing file."""
    if not Path(path).exists():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for raw in csv.DictReader(handle):
            try:
                rows.append(parse(raw))
            except (TypeError, ValueError, KeyError):
                continue
    return rows
