"""Fetch the images listed in a CSV of URLs into a folder: bounded concurrency, retries with
back-off, a timeout, resumable re-runs, and a report of every failure (urllib only)."""

from __future__ import annotations

import csv
import hashlib
import http.client
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cargan_tf.data.decode import IMAGE_EXTENSIONS, ImageLimits, image_bytes_problem
from cargan_tf.errors import DataError
from cargan_tf.progress import progress_bar as tqdm

REPORT_NAME = "download_report.json"
USER_AGENT = "cargan_tf-image-downloader/0.1 (Python urllib)"
URL_COLUMNS = ("url", "image_url", "img_url", "image", "img", "link", "src", "photo", "photo_url")
ID_COLUMNS = ("id", "image_id", "listing_id", "name", "filename", "file")
LABEL_COLUMNS = ("label", "class", "category", "make")
# Worth another try: the server or the network may recover. 4xx (but 408/429) never will.
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 60.0
_SIGNATURES = (  # magic bytes -> extension for the saved file
    (b"\xff\xd8\xff", ".jpg"), (b"\x89PNG", ".png"), (b"GIF8", ".gif"), (b"BM", ".bmp"),
    (b"II*\x00", ".tif"), (b"MM\x00*", ".tif"),
)


@dataclass(frozen=True)
class DownloadItem:
    """One row of the URL list."""

    row: int  # 1-based line number in the CSV
    url: str
    id: str  # file name stem, safe for any file system
    label: str | None  # subfolder, or None


@dataclass
class DownloadResult:
    """What one `download` call did; `summary()` is the line the CLI prints."""

    dst: Path
    fetched: int
    skipped: int  # already in dst from an earlier run
    failed: int
    duplicates: int  # rows whose URL or id repeats an earlier row
    seconds: float
    report_path: Path
    failures: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        kinds: dict[str, int] = {}
        for failure in self.failures:
            kinds[failure["kind"]] = kinds.get(failure["kind"], 0) + 1
        detail = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        return (
            f"downloaded {self.fetched} images into {self.dst} in {self.seconds:.1f}s; "
            f"{self.skipped} already there, {self.duplicates} duplicate rows, "
            f"{self.failed} failed" + (f" ({detail})" if detail else "")
        )


class _Failure(Exception):
    """A fetch that did not give an image; `retry` says whether trying again may help."""

    def __init__(self, kind: str, reason: str, *, retry: bool, status: int | None = None,
                 retry_after: float | None = None):
        super().__init__(reason)
        self.kind, self.retry, self.status, self.retry_after = kind, retry, status, retry_after


# --------------------------------------------------------------------------- the URL list


def _safe_name(text: str) -> str:
    """A file-system-safe name: letters, digits, '.', '_', '-' only; no leading dot."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).lstrip(".")
    return name[:100]


def _looks_like_url(cell: str) -> bool:
    return cell.strip().lower().startswith(("http://", "https://"))


def _pick_column(header: list[str], wanted: str | None, aliases: tuple[str, ...]) -> int | None:
    lowered = [h.strip().lower() for h in header]
    for name in ((wanted,) if wanted else aliases):
        if name.lower() in lowered:
            return lowered.index(name.lower())
    return None


def read_url_list(list_csv: str | os.PathLike, url_column: str | None = None) -> list[DownloadItem]:
    """Rows of a CSV of image URLs: a header naming a url column (and optionally id and
    label columns), or no header with URLs in some column (a plain list of URLs works).

    Files are named by the id column, or by a hash of the URL (stable when the list is
    reordered, so re-runs skip what they already have). Labels become subfolders.
    """
    path = Path(list_csv).expanduser()
    if not path.is_file():
        raise DataError(f"URL list {path} does not exist")
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [(number, row) for number, row in enumerate(csv.reader(fh), start=1)
                if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"URL list {path} is empty")
    first = rows[0][1]
    id_col = label_col = None
    if url_column is None and any(_looks_like_url(cell) for cell in first):
        url_col = next(i for i, cell in enumerate(first) if _looks_like_url(cell))  # no header
    else:
        url_col = _pick_column(first, url_column, URL_COLUMNS)
        if url_col is None:
            raise DataError(
                f"no URL column in {path}: its columns are {first}; name one of them "
                f"{' / '.join(URL_COLUMNS[:3])}, or pass --url-column NAME"
            )
        id_col = _pick_column(first, None, ID_COLUMNS)
        label_col = _pick_column(first, None, LABEL_COLUMNS)
        rows = rows[1:]
    items = []
    for number, row in rows:
        url = row[url_col].strip() if url_col < len(row) else ""
        raw_id = row[id_col] if id_col is not None and id_col < len(row) else ""
        stem = _safe_name(raw_id) or hashlib.sha1(url.encode()).hexdigest()[:16]
        raw_label = row[label_col] if label_col is not None and label_col < len(row) else ""
        items.append(DownloadItem(number, url, stem, _safe_name(raw_label) or None))
    return items


# --------------------------------------------------------------------------- fetching one URL


def _extension(data: bytes, url: str) -> str:
    for magic, ext in _SIGNATURES:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    suffix = Path(urllib.parse.urlparse(url).path).suffix.lower()
    # OpenCV decodes by content; the extension only has to be one that prepare picks up.
    return suffix if suffix in IMAGE_EXTENSIONS else ".jpg"


def _retry_after(value: str | None) -> float | None:
    try:
        return min(MAX_RETRY_AFTER_S, max(0.0, float(value))) if value else None
    except ValueError:
        return None  # an HTTP date; plain back-off is good enough


def _get(url: str, timeout: float, max_bytes: int) -> bytes:
    """GET `url`: the body, or _Failure. `timeout` bounds each wait on the server; the
    whole transfer gets at most 4x that."""
    # Scraped URLs may hold spaces or non-ASCII letters, which http.client refuses raw.
    url = urllib.parse.quote(url, safe=":/?#[]@!$&'()*+,;=%~")
    try:
        request = urllib.request.Request(
            url, headers={"User-Agent": USER_AGENT, "Accept": "image/*"}
        )
    except ValueError as err:
        raise _Failure("bad_url", str(err), retry=False) from None
    deadline = time.monotonic() + 4 * timeout
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise _Failure("too_large", f"{length} bytes, over the {max_bytes}-byte limit",
                               retry=False)
            chunks, total = [], 0
            while chunk := response.read(64 * 1024):
                total += len(chunk)
                if total > max_bytes:
                    raise _Failure("too_large", f"over the {max_bytes}-byte limit", retry=False)
                if time.monotonic() > deadline:
                    raise _Failure("timeout", f"transfer took over {4 * timeout:g}s", retry=True)
                chunks.append(chunk)
            return b"".join(chunks)
    except urllib.error.HTTPError as err:
        err.close()
        raise _Failure("http_error", f"HTTP {err.code} {err.reason}", status=err.code,
                       retry=err.code in RETRY_STATUS,
                       retry_after=_retry_after(err.headers.get("Retry-After"))) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise _Failure("timeout", f"no answer within {timeout:g}s", retry=True) from None
        raise _Failure("network", f"{err.reason}", retry=True) from None
    except TimeoutError:
        raise _Failure("timeout", f"no answer within {timeout:g}s", retry=True) from None
    except http.client.InvalidURL as err:
        raise _Failure("bad_url", str(err), retry=False) from None
    except (http.client.HTTPException, OSError) as err:
        raise _Failure("network", f"{type(err).__name__}: {err}", retry=True) from None


def _write_atomically(path: Path, data: bytes) -> None:
    """Write via a hidden temp file + rename, so a killed run never leaves half a file that a
    re-run would take as fetched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{threading.get_ident()}.part"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _already_fetched(dst: Path) -> dict[str, str]:
    """{"label/id" or "id": relative path} for the images earlier runs saved in dst.

    One listing of dst up front instead of a stat per extension per row (slow on Drive).
    """
    found: dict[str, str] = {}
    if not dst.is_dir():
        return found
    for path in sorted(dst.rglob("*")):
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and path.stat().st_size:
            rel = path.relative_to(dst)
            found.setdefault(rel.with_suffix("").as_posix(), rel.as_posix())
    return found


def _key(item: DownloadItem) -> str:
    return f"{item.label}/{item.id}" if item.label else item.id


def _fetch(item: DownloadItem, dst: Path, *, timeout: float, retries: int, backoff: float,
           max_bytes: int, limits: ImageLimits) -> dict[str, Any]:
    """Fetch one item into dst; returns a report entry with "status" fetched or failed."""
    folder = dst / item.label if item.label else dst
    base = {"row": item.row, "id": item.id, "url": item.url}
    if urllib.parse.urlparse(item.url).scheme not in ("http", "https"):
        # urllib would also open file:// and ftp://; a scraped list must not read local files.
        return {**base, "status": "failed", "kind": "bad_url", "attempts": 0,
                "reason": "not an http(s) URL"}
    attempts = 0
    while True:
        attempts += 1
        try:
            data = _get(item.url, timeout, max_bytes)
            problem = image_bytes_problem(data, limits)  # the guard: pixels before decoding
            if problem is not None:
                raise _Failure(*problem, retry=False)
            break
        except _Failure as failure:
            if not failure.retry or attempts > retries:
                entry = {**base, "status": "failed", "kind": failure.kind, "attempts": attempts,
                         "reason": str(failure)}
                if failure.status is not None:
                    entry["http_status"] = failure.status
                return entry
            # Exponential back-off with jitter, so many threads do not retry in lockstep.
            delay = backoff * 2 ** (attempts - 1) * random.uniform(1.0, 1.5)
            time.sleep(failure.retry_after if failure.retry_after is not None else delay)
    path = folder / f"{item.id}{_extension(data, item.url)}"
    try:
        _write_atomically(path, data)
    except OSError as err:  # disk full or read-only: every other row would fail the same way
        raise DataError(f"cannot write {path}: {err.strerror or err}; downloads so far are "
                        "kept, rerun to resume") from err
    return {**base, "status": "fetched", "path": path.relative_to(dst).as_posix(),
            "bytes": len(data), "attempts": attempts}


# --------------------------------------------------------------------------- the whole list


def download(
    list_csv: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    url_column: str | None = None,
    workers: int = 8,
    retries: int = 3,
    timeout: float = 20.0,
    max_bytes: int = 20 * 2**20,
    backoff: float = 1.0,
    progress: bool = True,
    max_megapixels: float | None = None,
) -> DownloadResult:
    """Fetch every URL in `list_csv` into `dst` (DST/ID.ext, or DST/LABEL/ID.ext).

    workers: requests in flight at once. retries: further tries after a timeout, a network
    error or HTTP 408/429/5xx (never after 404 and other 4xx, a non-image or a too-large
    file), waiting backoff * 2**k seconds (or the server's Retry-After). timeout: seconds to
    wait on the server at each step. max_bytes: larger files are refused. Files already in
    dst are skipped, so an interrupted run resumes. Each body must decode as an image, and
    its header may declare at most max_megapixels (default $CARGAN_MAX_MEGAPIXELS, else 25)
    pixels: a larger one is a "too_many_pixels" failure, never decoded.
    Writes DST/download_report.json with every failure and returns the counts.
    """
    start = time.perf_counter()
    if workers < 1 or retries < 0 or timeout <= 0 or max_bytes < 1:
        raise DataError("workers >= 1, retries >= 0, timeout > 0 and max_bytes >= 1 are needed")
    limits = ImageLimits.resolve(max_megapixels, max_file_mb=max_bytes / 2**20)
    dst = Path(dst).expanduser()
    if dst.exists() and not dst.is_dir():
        raise DataError(f"destination {dst} is a file; pass a folder")
    items = read_url_list(list_csv, url_column)
    unique, duplicates, seen_urls, seen_ids = [], [], {}, {}
    for item in items:
        key = _key(item)
        first = seen_urls.get(item.url) or seen_ids.get(key)
        if first is not None:
            duplicates.append({"row": item.row, "url": item.url, "same_as_row": first.row})
            continue
        seen_urls[item.url] = seen_ids[key] = item
        unique.append(item)
    dst.mkdir(parents=True, exist_ok=True)

    done = _already_fetched(dst)
    entries = [{"row": item.row, "id": item.id, "url": item.url, "status": "skipped",
                "path": done[_key(item)]} for item in unique if _key(item) in done]
    todo = [item for item in unique if _key(item) not in done]
    options = dict(timeout=timeout, retries=retries, backoff=backoff, max_bytes=max_bytes)
    bar = tqdm(total=len(todo), desc="download", unit="file", disable=not progress)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_fetch, item, dst, **options, limits=limits) for item in todo]
        try:
            for future in as_completed(futures):
                entries.append(future.result())
                bar.update()
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C: finish in-flight ones only
            raise
        finally:
            bar.close()
    entries.sort(key=lambda e: e["row"])

    failures = [e for e in entries if e["status"] == "failed"]
    result = DownloadResult(
        dst=dst,
        fetched=sum(e["status"] == "fetched" for e in entries),
        skipped=sum(e["status"] == "skipped" for e in entries),
        failed=len(failures),
        duplicates=len(duplicates),
        seconds=time.perf_counter() - start,
        report_path=dst / REPORT_NAME,
        failures=failures,
    )
    report = {
        "list": str(Path(list_csv).resolve()),
        "dst": str(dst.resolve()),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": {**options, "workers": workers,
                    "max_megapixels": limits.max_pixels / 1e6},
        "counts": {"rows": len(items), "fetched": result.fetched, "skipped": result.skipped,
                   "failed": result.failed, "duplicates": result.duplicates},
        "failures": failures,
        "duplicates": duplicates,
        "files": [e for e in entries if e["status"] != "failed"],
    }
    _write_atomically(result.report_path, json.dumps(report, indent=1).encode("utf-8"))
    return result
