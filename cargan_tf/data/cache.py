"""The prepared cache on disk: uint8 shards and manifest.json, written into a temp folder and
swapped in whole, recovered after a crash, checked and loaded back.

Layout of a prepared cache folder ``dst``::

    dst/images_000.npy ...    uint8 (n_i, size, size, channels) RGB or grayscale, in path order
    dst/manifest.json         options, counts, shards, one entry per source file, what changed
    dst/prepare_report.json   every skipped, duplicate, flagged and ignored file with its reason

The cache is written into a sibling temp folder and swapped in whole; its manifest.json is the
commit point, so an interrupted prepare leaves the previous cache readable.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cargan_tf import io
from cargan_tf.errors import DataError

MANIFEST_NAME = "manifest.json"
REPORT_NAME = "prepare_report.json"
SHARD_PATTERN = "images_{:03d}.npy"
CACHE_FORMAT = "cargan_tf.prepared_cache"
CACHE_VERSION = 1
# ~256 MiB per shard: few files (fast on Drive), each small enough to write in one go.
SHARD_BYTES = 256 * 2**20


# --------------------------------------------------------------------------- atomic cache folder


def is_our_temp(name: str, dst: Path) -> bool:
    return name.startswith((f".{dst.name}.tmp-", f".{dst.name}.old-"))


def _write_json(path: Path, obj: Any) -> None:
    io.write_bytes_durably(path, json.dumps(obj, indent=1).encode("utf-8"))


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
            try:
                os.replace(old, dst)  # put the previous cache back
            except OSError:
                if (dst / MANIFEST_NAME).is_file():  # another prepare's cache took its place
                    shutil.rmtree(old, ignore_errors=True)
        raise
    io.fsync_dir(dst.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def recover(dst: Path) -> None:
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
                io.fsync_dir(parent)
            else:
                shutil.rmtree(old, ignore_errors=True)
    except OSError:
        pass  # read-only place: reading still works if dst itself is intact


_OWN_FILE_NAMES = (MANIFEST_NAME, REPORT_NAME)


def _is_own_file(name: str) -> bool:
    return name in _OWN_FILE_NAMES or (name.startswith("images_") and name.endswith(".npy"))


def check_dst(src: Path, dst: Path) -> None:
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


def commit(
    dst: Path,
    manifest: dict,
    report: dict,
    gather: Callable[[int, int], np.ndarray],
    count: int,
    image_bytes: int,
    seen: dict | None = None,
) -> None:
    """Write shards, report, then manifest into a sibling temp folder and swap it in.

    seen: dst's manifest when this prepare started (manifest_or_none), to tell a cache that
    another prepare committed meanwhile from the one this prepare set out to replace."""
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
        io.fsync_dir(tmp)
        # Another prepare of the same folder (a second notebook, or train, on the same data)
        # may have committed while this one was writing. Its cache then holds these very
        # images and its owner may be reading it: keep it rather than swap it out.
        now = manifest_or_none(dst)
        if now != seen and same_images(now, manifest):  # same_images(None, ...) is False
            shutil.rmtree(tmp, ignore_errors=True)
            return
        try:
            _swap_in(tmp, dst)
        except OSError:
            theirs = manifest_or_none(dst)
            if theirs is None:
                raise
            # the other prepare's rename landed between _swap_in's look and its own
            shutil.rmtree(tmp, ignore_errors=True)
            if not same_images(theirs, manifest):
                raise DataError(
                    f"another prepare wrote {dst} while this one ran (from {theirs.get('src')}, "
                    f"written {theirs.get('written')}); this one's cache was dropped and that "
                    "one left as it is: run this again to bring it up to date") from None
            return
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(
            f"could not write the cache into {dst}: {err.strerror or err}; check free space "
            "and permissions there (the previous cache, if any, is unchanged)"
        ) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def manifest_or_none(dst: Path) -> dict | None:
    """dst's manifest.json as it stands (unchecked), or None if there is none to read."""
    try:
        return json.loads((dst / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def same_images(a: dict | None, b: dict | None) -> bool:
    """Whether two manifests describe the same cache: the same source folder, options and
    files (path, size, modification time, pixel hash, verdict), hence the same images."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False

    def key(m: dict) -> tuple:
        files = [(f.get("path"), f.get("bytes"), f.get("mtime_ns"), f.get("hash"),
                  f.get("status")) for f in m.get("sources", [])]
        return m.get("src"), m.get("options"), m.get("count"), files
    return key(a) == key(b)


# --------------------------------------------------------------------------- reading a cache


def read_manifest(dst: str | os.PathLike) -> dict:
    """The manifest.json of a prepared cache folder, checked for format and version."""
    dst = Path(dst).expanduser()
    recover(dst)
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


def open_shards(dst: Path, manifest: dict, mmap: bool = False) -> list[np.ndarray]:
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
    arrays = open_shards(dst, manifest)
    images = arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)
    if len(images) != manifest["count"]:
        raise DataError(
            f"{dst} holds {len(images)} images, its manifest says {manifest['count']}; "
            "run prepare again to rebuild it"
        )
    return images
