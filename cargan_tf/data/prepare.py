# Over 450 lines: prepare's incremental bookkeeping (manifest, report, reuse) is one job.
"""Turn a folder of image files into a prepared cache: scan the folder, decode only new or
changed files (reading and decoding in parallel threads), drop duplicates, report every bad
file, and commit the result (cache.py). Re-runs are incremental.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import re
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cargan_tf.data.cache import (
    CACHE_FORMAT,
    CACHE_VERSION,
    MANIFEST_NAME,
    REPORT_NAME,
    check_dst,
    commit,
    is_our_temp,
    manifest_or_none,
    open_shards,
    read_manifest,
    recover,
)
from cargan_tf.data.decode import (
    FITS,
    IMAGE_EXTENSIONS,
    ImageLimits,
    decode_file,
    process_file,
    read_bytes,
)
from cargan_tf.errors import DataError
from cargan_tf.progress import progress_bar as tqdm

DUPLICATE_RULE = "exact: identical uint8 pixels after decode, convert and resize (blake2b-128)"


@dataclass(frozen=True)
class SourceFile:
    """One image file found under the source folder."""

    rel: str  # path relative to the source folder, with forward slashes
    path: str  # absolute path
    bytes: int
    mtime_ns: int


# At a tenth of a folder upscaled (or cut by center_crop) the samples show it: `warnings` speaks.
WARN_SHARE = 0.1


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
    refused: int = 0  # of the skipped: refused by the guard (file type, bytes, pixels)
    upscaled_from: tuple[int, int] | None = None  # the commonest (width, height) of those upscaled
    wide: int = 0  # kept images center_crop cut both ends off (decode's WIDE_ASPECT)
    wide_from: tuple[int, int] | None = None  # the commonest (width, height) of those

    def upscale_warning(self, how: str = "prepare --size {}") -> str | None:
        """A line for the user when a tenth or more of the images were smaller than the cache
        size, else None: a model trained on them learns the upscaling's blur, and the one count
        in `summary()` is easy to miss. `how` says how to pick a size where the line is printed
        (a format string for the size: `prepare --size {}`, `train --image-size {}`)."""
        if not self.count or self.upscaled < WARN_SHARE * self.count:
            return None
        _, size, _, _ = self.shape
        width, height = self.upscaled_from or (0, 0)
        side = min(width, height)
        fits = 1 << (side.bit_length() - 1) if side >= 16 else 0  # a power of two they fill
        common = f" (most often {width}x{height})" if self.upscaled_from else ""
        hint = f"use {fits}x{fits} instead ({how.format(fits)}) or larger photos" \
            if 16 <= fits < size else "use larger photos"
        return (
            f"warning: {self.upscaled} of {self.count} images "
            f"({100 * self.upscaled / self.count:.0f}%) are smaller than {size}x{size}{common} "
            f"and were upscaled, so samples will be as blurry as they are: {hint}; "
            f"they are listed under 'flagged' in {self.report_path}"
        )

    def crop_warning(self, how: str = "--fit {}") -> str | None:
        """A line for the user when a tenth or more of the images have one side at least twice
        the other and `center_crop` cut their ends off, else None. `how` says how to choose
        another fit where the line is printed (a format string for the fit's name)."""
        if self.fit != "center_crop" or not self.count or self.wide < WARN_SHARE * self.count:
            return None
        width, height = self.wide_from or (0, 0)
        common = f" (most often {width}x{height})" if self.wide_from else ""
        return (
            f"warning: {self.wide} of {self.count} images ({100 * self.wide / self.count:.0f}%) "
            f"have one side at least twice the other{common}, and center_crop kept only their "
            f"middle square, cutting off both ends (of a car seen side-on, its bumpers and "
            f"wheels): to keep whole pictures use {how.format('pad')} (bands fill the rest of "
            f"the square; 'stretch' squashes instead); they are listed under 'flagged' in "
            f"{self.report_path}"
        )

    def warnings(self, size_how: str, fit_how: str) -> list[str]:
        """The lines to print after `summary()`: upscale_warning(size_how), crop_warning(fit_how)."""
        return [w for w in (self.upscale_warning(size_how), self.crop_warning(fit_how)) if w]

    def summary(self) -> str:
        _, size, _, channels = self.shape
        what = f"{self.count} images {size}x{size}x{channels} ({self.fit})"
        refused = f" ({self.refused} refused by the size limits or as not regular files)" \
            if self.refused else ""
        problems = (
            f"{self.skipped} skipped{refused}, {self.duplicates} duplicates, "
            f"{self.upscaled} upscaled, {self.ignored} non-image files ignored"
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
            if os.path.realpath(full) in skip or (dst is not None and is_our_temp(name, dst)):
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


def _options_changes(old: Mapping, new: Mapping) -> list[str]:
    keys = sorted(set(old) | set(new))
    return [f"{k} {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)]


def _boxes_digest(boxes: Mapping[str, tuple[int, int, int, int]] | None) -> str | None:
    if boxes is None:
        return None
    items = sorted((k, [int(v) for v in box]) for k, box in boxes.items())
    return hashlib.blake2b(json.dumps(items).encode(), digest_size=8).hexdigest()


def _decode_many(tasks: list[tuple], workers: int, progress: bool) -> Iterator[dict[str, Any]]:
    """Decode tasks (rel, path, size, channels, fit, box, limits), yielding results in task
    order:
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
            data = read_bytes(task[1], task[-1])  # the guard: type, bytes, then pixels
            if isinstance(data, dict):
                return data
            return decoders.submit(decode_file, data, *task[2:])

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
        open_shards(dst, old, mmap=True)  # shapes from the .npy headers: cheap, even on Drive
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
    max_megapixels: float | None = None,
    max_file_mb: float | None = None,
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
    max_megapixels, max_file_mb: the guard's limits per file (default $CARGAN_MAX_MEGAPIXELS /
        $CARGAN_MAX_IMAGE_MB, else 25 MP and 64 MB): a file over either, or one that is not a
        regular file (a FIFO, a device), is skipped unread or undecoded, with the limit, the
        numbers and how to raise it in the report. A file refused by a limit is tried again
        when a later prepare raises the limit past it.
    Raises DataError for a missing/empty source, no decodable image, or an unsafe `dst`.
    """
    start = time.perf_counter()
    _validate_options(size, channels, fit)
    limits = ImageLimits.resolve(max_megapixels, max_file_mb)
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if not src.exists():
        raise DataError(f"source folder {src} does not exist (on Colab, mount Drive first)")
    if not src.is_dir():
        raise DataError(f"source {src} is a file; pass the folder that holds the images")
    check_dst(src, dst)
    recover(dst)
    files, ignored = scan_folder(src, dst)
    if not files:
        raise DataError(
            f"no image files in {src}: {_describe_contents(src, ignored)}; "
            f"prepare reads {', '.join(sorted(IMAGE_EXTENSIONS))} in any subfolder"
        )
    workers = max(1, workers if workers is not None else _default_workers())
    options = {"size": size, "channels": channels, "fit": fit, "boxes": _boxes_digest(boxes)}
    seen = manifest_or_none(dst)  # to notice another prepare committing meanwhile
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
    # files an earlier prepare refused by a limit that this one's limits allow: tried again
    retry = {rel for rel, e in unchanged.items() if _limits_now_allow(e, limits)}
    if full_reason:
        unchanged = {}  # nothing from the old cache is reused
    elif not added and not changed and not deleted and not retry:
        return _up_to_date_result(src, dst, old, start)

    # A duplicate keeps no pixels of its own: decode it again if no unchanged image has them.
    reusable = {e["hash"] for e in unchanged.values() if e["status"] == "kept"}
    to_decode = {f.rel for f in files if f.rel not in unchanged} | {
        rel for rel, e in unchanged.items()
        if e["status"] == "duplicate" and e["hash"] not in reusable
    } | retry
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
        tasks.append((f.rel, f.path, size, channels, fit, box, limits))
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
    old_shards = open_shards(dst, old) if reused else []
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
    manifest = _build_manifest(src, options, sources, ignored, changes, len(rows), size, channels,
                               limits)
    report = _build_report(src, dst, manifest, sources, ignored)
    result = PrepareResult(
        src=src, dst=dst, count=len(rows), shape=(len(rows), size, size, channels), fit=fit,
        decoded=len(tasks), reused=reused, added=len(added),
        changed=len(changed), deleted=len(deleted), skipped=manifest["counts"]["skipped"],
        duplicates=manifest["counts"]["duplicates"], upscaled=manifest["counts"]["upscaled"],
        ignored=len(ignored), full_reprepare=full_reason, up_to_date=False, seconds=0.0,
        manifest_path=dst / MANIFEST_NAME, report_path=dst / REPORT_NAME,
        refused=manifest["counts"]["refused"],
        upscaled_from=_commonest_upscaled_size(sources), **_wide_counts(sources),
    )
    commit(dst, manifest, report, gather, len(rows), size * size * channels, seen=seen)
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
                sources.append({**entry, "status": "skipped", "reason": result["error"],
                                **({"refused": result["refused"]} if "refused" in result else {})})
                continue
            row = result["pixels"]
            info = {k: result[k] for k in ("width", "height", "hash", "notes")}
        else:
            prev = unchanged[f.rel]
            if prev["status"] == "skipped":  # an unchanged bad file keeps its verdict, no decode
                sources.append({**entry, "status": "skipped", "reason": prev["reason"],
                                **({"refused": prev["refused"]} if "refused" in prev else {})})
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


def _limits_now_allow(entry: Mapping, limits: ImageLimits) -> bool:
    """True for a manifest entry refused by a byte or pixel limit that `limits` would pass."""
    refused = entry.get("refused") if entry.get("status") == "skipped" else None
    if not refused or refused.get("value") is None:
        return False
    maximum = {"pixels": limits.max_pixels, "bytes": limits.max_bytes}.get(refused["limit"])
    return maximum is not None and refused["value"] <= maximum


def _was_upscaled(source: Mapping) -> bool:
    """A kept manifest entry that decode_file noted as too small (upscaled to the cache size)."""
    return source["status"] == "kept" and any(n.startswith("too small") for n in source["notes"])


def _commonest_upscaled_size(sources: list[dict]) -> tuple[int, int] | None:
    sizes = Counter((s["width"], s["height"]) for s in sources if _was_upscaled(s))
    return sizes.most_common(1)[0][0] if sizes else None


def _wide_counts(sources: list[dict]) -> dict:
    """PrepareResult's wide and wide_from: kept entries decode_file noted as "wide: WxH, ..."."""
    sizes = Counter(tuple(int(v) for v in match.groups())
                    for s in sources if s["status"] == "kept"
                    for match in [re.match(r"wide: (\d+)x(\d+)", n) for n in s["notes"]] if match)
    return {"wide": sum(sizes.values()),
            "wide_from": sizes.most_common(1)[0][0] if sizes else None}


def _build_manifest(
    src: Path, options: dict, sources: list[dict], ignored: list[dict], changes: dict,
    count: int, size: int, channels: int, limits: ImageLimits,
) -> dict:
    status = Counter(s["status"] for s in sources)
    upscaled = sum(1 for s in sources if _was_upscaled(s))
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
        "limits": limits.as_dict(),
        "shards": [],  # filled by cache.commit
        "counts": {
            "images": count, "files": len(sources), "skipped": status["skipped"],
            "duplicates": status["duplicate"], "upscaled": upscaled, "ignored": len(ignored),
            "refused": sum(1 for s in sources if "refused" in s),
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
        "limits": manifest["limits"],
        "counts": manifest["counts"],
        "skipped": [{"path": s["path"], "reason": s["reason"],
                     **({"refused": s["refused"]} if "refused" in s else {})}
                    for s in sources if s["status"] == "skipped"],
        "duplicates": [{"path": s["path"], "duplicate_of": s["duplicate_of"]}
                       for s in sources if s["status"] == "duplicate"],
        "flagged": [{"path": s["path"], "notes": s["notes"]}
                    for s in sources if s["status"] == "kept" and s["notes"]],
        "ignored": ignored,
    }


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
        refused=counts.get("refused", 0),
        upscaled_from=_commonest_upscaled_size(old.get("sources", [])),
        **_wide_counts(old.get("sources", [])),
    )
