# Over 450 lines: the run folder's whole layout, its atomic writes, checkpoints and lock, named once.
"""Run folders: every path a run writes is named here once, plus atomic writes and checkpoints.

No TensorFlow here: the atomic writer and the folder layout are used by light commands too.
drive_layout.md documents the same tree.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cargan_tf import io
from cargan_tf.errors import RunFolderError

# Columns of history.csv, one row per batch. g_loss is the crossentropy part of the generator
# loss, g_loss_l2 its L2 term; D(x) and D(G(z)) are D's mean outputs on the real and fake batch.
HISTORY_COLUMNS: tuple[str, ...] = (
    "epoch", "batch", "d_loss_real", "d_loss_fake", "g_loss", "g_loss_l2", "D(x)", "D(G(z))",
    "seconds", "data_wait_seconds",
)
# Written when the run has them, read when the file has them (runs with ada_target only; empty
# otherwise): aug_p is ADA's augmentation probability in that batch, ada_r ADA's overfitting
# signal r_t (the mean sign of D's logits on the real batch; p rises while it is above target).
OPTIONAL_HISTORY_COLUMNS: tuple[str, ...] = ("aug_p", "ada_r")

CHECKPOINT_PREFIX = "ckpt-"
_CHECKPOINT_RE = re.compile(r"^ckpt-(\d{8})$")
# Test-only fault injection: CARGAN_FAULT=<point> makes fault_point(<point>) kill the process
# (SIGKILL, as when Colab recycles a runtime) on its CARGAN_FAULT_AFTER-th visit (default 1).
# The points, in the order a run meets them:
FAULT_POINTS = (
    "after_batch",                 # between two training steps
    "history_mid_append",          # half of a history.csv append written
    "atomic_before_rename",        # any file (grid, plot, json) written to its temp name only
    "checkpoint_after_weights",    # checkpoint weights staged, state.json not yet
    "checkpoint_before_rename",    # checkpoint complete in staging, not yet renamed into place
    "after_checkpoint",            # right after a checkpoint became the latest
    "model_before_rename",         # generator.keras / discriminator.keras saved to a temp name
    "gif_before_write",            # all grids done, evolution.gif not written yet
)
FAULT_ENV = "CARGAN_FAULT"
FAULT_AFTER_ENV = "CARGAN_FAULT_AFTER"
_fault_visits: dict[str, int] = {}


class RunPaths:
    """The layout of one run folder (see drive_layout.md)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    config = property(lambda self: self.root / "config.json")
    run_info = property(lambda self: self.root / "run_info.json")
    config_history = property(lambda self: self.root / "config_history.jsonl")
    history = property(lambda self: self.root / "history.csv")
    metrics = property(lambda self: self.root / "metrics.csv")
    metrics_json = property(lambda self: self.root / "metrics.json")
    best_generator = property(lambda self: self.root / "best_generator.keras")
    samples = property(lambda self: self.root / "samples")
    checkpoints = property(lambda self: self.root / "checkpoints")
    plots = property(lambda self: self.root / "plots")
    losses_plot = property(lambda self: self.root / "plots" / "losses.png")
    d_outputs_plot = property(lambda self: self.root / "plots" / "d_outputs.png")
    real_vs_fake = property(lambda self: self.root / "real_vs_fake.png")
    evolution_gif = property(lambda self: self.root / "evolution.gif")
    generator = property(lambda self: self.root / "generator.keras")
    discriminator = property(lambda self: self.root / "discriminator.keras")
    tensorboard = property(lambda self: self.root / "tensorboard")
    classes = property(lambda self: self.root / "classes.json")        # conditional runs
    directions = property(lambda self: self.root / "directions")       # `directions` command

    def sample_grid(self, epoch: int, batch: int | None = None) -> Path:
        """samples/epoch_0003.png after epoch 3; samples/epoch_0003_batch_000120.png inside it."""
        name = f"epoch_{epoch:04d}" + (f"_batch_{batch:06d}" if batch is not None else "")
        return self.samples / f"{name}.png"

    def checkpoint(self, step: int) -> Path:
        return self.checkpoints / f"{CHECKPOINT_PREFIX}{step:08d}"

    def create(self) -> None:
        """Create the folder tree; a clear error if the location cannot be written."""
        try:
            for folder in (self.root, self.samples, self.checkpoints, self.plots):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunFolderError(f"cannot create run folder {self.root}: {err.strerror}. "
                                 "Pick a writable location (is Drive mounted?)") from err

    @property
    def lock(self) -> Path:
        """train.lock: who is training in this folder (RunLock)."""
        return self.root / LOCK_NAME

    def list_sample_grids(self) -> list[Path]:
        """Per-epoch grids in order (the GIF's frames); batch grids are left out."""
        return sorted(p for p in self.samples.glob("epoch_????.png"))


def run_name(preset: str, data: str, smoke: bool = False) -> str:
    """The default name of a run's folder: <preset>-<the data's last path part>[-smoke] (the
    CLI's runs/NAME, the notebooks' home/runs/NAME). Smoke runs get their own folder: their
    tiny models would be refused as a different setup by a full run of the same name."""
    return f"{preset}-{Path(data).name or 'data'}" + ("-smoke" if smoke else "")


def fault_point(name: str) -> None:
    """Kill this process with SIGKILL when CARGAN_FAULT names this point (fault-injection tests)."""
    if os.environ.get(FAULT_ENV) != name:
        return
    _fault_visits[name] = _fault_visits.get(name, 0) + 1
    if _fault_visits[name] >= int(os.environ.get(FAULT_AFTER_ENV, "1")):
        os.kill(os.getpid(), signal.SIGKILL)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` so a reader sees the old file or the new one, never a part
    (io.write_bytes_atomic). A failure (disk full, read-only, folder vanished) raises
    RunFolderError and leaves `path` as it was.
    """
    try:
        io.write_bytes_atomic(path, data, before_rename=lambda: fault_point("atomic_before_rename"))
    except OSError as err:
        raise RunFolderError(f"could not write {path}: {err.strerror or err}. The previous "
                             "version, if any, is intact; free space or fix permissions, "
                             "then rerun the same command") from err


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_text_atomic(path, io.json_text(obj))


def save_model_atomic(model, path: Path) -> None:
    """model.save (a Keras model) into a temp .keras file beside `path`, then rename over it:
    generator.keras, discriminator.keras and the extractors are never half written."""
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.keras")
    try:
        model.save(tmp)
        fault_point("model_before_rename")
        os.replace(tmp, path)
    except OSError as err:
        raise RunFolderError(f"could not write {path}: {err.strerror or err}") from err
    finally:
        if tmp.exists():
            tmp.unlink()


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line (logs of config changes; a torn last line is skipped on read).
    A failure (read-only run, full disk) is a RunFolderError; the lines before stay."""
    try:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=str) + "\n")
    except OSError as err:
        raise RunFolderError(f"could not append to {path}: {err.strerror or err}. Nothing in "
                             "the run was changed; free space or make the run folder writable "
                             "(or copy the run somewhere writable and train there), then rerun "
                             "the same command") from err


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    records = []
    if Path(path).exists():
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                records.append(json.loads(line))
    return records


# ---- history.csv ---------------------------------------------------------------------------

def _history_row(raw: dict[str, str]) -> dict[str, float]:
    row = {k: float(raw[k]) for k in HISTORY_COLUMNS}
    row.update({k: float(raw[k]) for k in OPTIONAL_HISTORY_COLUMNS if raw.get(k)})
    row["epoch"], row["batch"] = int(row["epoch"]), int(row["batch"])
    return row


def read_history(path: str | os.PathLike) -> list[dict[str, float]]:
    """Rows of history.csv as dicts of floats; a torn or malformed row is dropped."""
    return io.read_csv_rows(path, _history_row)


def append_history(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Append rows (written in batches, off the hot path); creates the file with a header."""
    path = Path(path)
    if not rows:
        return
    # append in the file's own columns (a run started by an older version has fewer)
    columns = io.csv_header(path)
    text = io.csv_text(rows, columns or HISTORY_COLUMNS + OPTIONAL_HISTORY_COLUMNS,
                       header=columns is None)
    try:
        with open(path, "a", encoding="utf-8") as handle:
            if os.environ.get(FAULT_ENV) == "history_mid_append":  # a torn last row
                handle.write(text[: len(text) // 2])
                handle.flush()
                fault_point("history_mid_append")
            handle.write(text)
    except OSError as err:
        raise RunFolderError(f"could not append to {path}: {err.strerror or err}") from err


def truncate_history(path: str | os.PathLike, epoch: int, batch: int) -> list[dict[str, Any]]:
    """Keep rows before position (epoch, batch), rewriting the file atomically; returns them.

    A resumed run restarts at its checkpoint's position, so rows logged after it (work that was
    lost) must go, or the history would hold those batches twice.
    """
    rows = [r for r in read_history(path) if (r["epoch"], r["batch"]) < (epoch, batch)]
    write_text_atomic(path, io.csv_text(rows, HISTORY_COLUMNS + OPTIONAL_HISTORY_COLUMNS,
                                         header=True))
    return rows


# ---- checkpoints ---------------------------------------------------------------------------

def list_checkpoints(paths: RunPaths) -> list[Path]:
    """Complete checkpoints, oldest first. A checkpoint folder exists only once complete."""
    if not paths.checkpoints.exists():
        return []
    found = [p for p in paths.checkpoints.iterdir()
             if _CHECKPOINT_RE.match(p.name) and (p / "state.json").exists()]
    return sorted(found)


def latest_checkpoint(paths: RunPaths) -> Path | None:
    found = list_checkpoints(paths)
    return found[-1] if found else None


@contextlib.contextmanager
def staged_checkpoint(paths: RunPaths, step: int) -> Iterator[Path]:
    """A temporary folder to write a checkpoint into; renamed into place when the block ends.

    If the block fails or the process dies, the temporary folder is left behind (cleaned up by
    remove_stale_checkpoints) and the previous checkpoint is still the latest.
    """
    final = paths.checkpoint(step)
    # named by its owner (pid@host), so a start-up clean-up can tell a dead writer's from a
    # live one's
    staging = paths.checkpoints / f".tmp-{final.name}-{os.getpid()}@{_HOST}"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()  # no parents: a vanished run folder (Drive unmounted) must fail, not
        yield staging   # be silently recreated on the local disk
        fault_point("checkpoint_before_rename")
        if final.exists():  # same step saved twice (e.g. epoch end right after a timed save)
            shutil.rmtree(final)
        os.replace(staging, final)
        io.fsync_dir(paths.checkpoints)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise RunFolderError(f"could not write checkpoint {final}: {err.strerror or err}. "
                             "The previous checkpoint is intact; free space or fix "
                             "permissions, then rerun the same command to resume") from err
    except BaseException:  # e.g. TensorFlow's ResourceExhaustedError from SaveV2
        shutil.rmtree(staging, ignore_errors=True)
        raise


def remove_stale_checkpoints(paths: RunPaths, keep: int, before: float | None = None
                             ) -> list[Path]:
    """Delete unfinished staging folders whose writer is gone (owner_is_gone(path, before))
    and all but the newest `keep` checkpoints (0: all)."""
    removed = []
    if paths.checkpoints.exists():
        for stale in paths.checkpoints.glob(".tmp-*"):
            if owner_is_gone(stale, before):
                shutil.rmtree(stale, ignore_errors=True)
                removed.append(stale)
    complete = list_checkpoints(paths)
    if keep > 0:
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


def remove_stale_temp_files(paths: RunPaths, before: float | None = None) -> list[Path]:
    """Delete temporary files a killed process left behind (``.NAME.*.tmp``, ``.NAME.*.tmp.keras``).

    They are never read (the real file is only replaced by a rename), so removing them at the
    start of a resumed run is safe, once their writer is gone (owner_is_gone): a file that a
    live process (a `plot` or `gif` running beside training) is writing is left alone
    (see owner_is_gone for `before`).
    Staging checkpoint folders are handled separately.
    """
    removed = []
    if paths.root.exists():
        for stale in paths.root.rglob(".*.tmp*"):
            if stale.is_file() and owner_is_gone(stale, before):
                with contextlib.suppress(OSError):
                    stale.unlink()
                    removed.append(stale)
    return removed


def folder_size(path: str | os.PathLike) -> int:
    """Bytes under `path` (for reporting checkpoint and run sizes)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


# ---- who wrote a temporary file, and is it still running ---------------------------------------

_HOST = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"
# the pid (and host) a temporary name carries: .tmp-ckpt-00000012-1234@host (staging folders),
# .generator.1234.tmp.keras (models), .config.json.1234.k3j_x9a2.tmp (io.write_bytes_atomic)
_OWNER_RES = (
    re.compile(r"^\.tmp-ckpt-\d{8}-(\d+)(?:@(.+))?$"),
    re.compile(r"\.(\d+)\.(?:[A-Za-z0-9_]{8}\.)?tmp(?:\.keras)?$"),
)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie counts as gone)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OSError:
        return False
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] not in "ZX"
    return True


def _process_start(pid: int) -> str | None:
    """When `pid` started, in clock ticks since boot (/proc/PID/stat), to tell a reused pid
    from the process that wrote a lock; None where /proc is missing."""
    with contextlib.suppress(OSError, IndexError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2:].split()[19]
    return None


def _boot_id() -> str | None:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    return None


def owner_is_gone(path: Path, before: float | None = None) -> bool:
    """Whether the process that wrote temporary `path` has stopped: its name carries a pid of
    this host that is not running (or is this very process, which is not writing it now); a
    name without a pid, or from another host: last changed before `before` (a time.time();
    the trainer passes when it took the run's lock, so nothing a process started since then
    is writing goes; default: now)."""
    pid = host = None
    for pattern in _OWNER_RES:
        match = pattern.search(path.name)
        if match:
            pid = int(match.group(1))
            host = match.group(2) if match.lastindex and match.lastindex >= 2 else None
            break
    if pid is not None and host in (None, _HOST):
        return pid == os.getpid() or not pid_alive(pid)
    try:
        return path.stat().st_mtime < (time.time() if before is None else before)
    except OSError:
        return False  # vanished meanwhile: nothing to remove


# ---- the run-folder lock: one trainer per run folder ------------------------------------------

LOCK_NAME = "train.lock"
FORCE_UNLOCK_ENV = "CARGAN_FORCE_UNLOCK"
LOCK_STALE_MINUTES_ENV = "CARGAN_LOCK_STALE_MINUTES"
# a lock from another machine whose heartbeat (its file's mtime, touched every
# LOCK_HEARTBEAT_S) is older than this is taken to be left by a runtime that is gone
DEFAULT_LOCK_STALE_MINUTES = 10.0
LOCK_HEARTBEAT_S = 60.0
_HELD: dict[str, RunLock] = {}
_HELD_GUARD = threading.Lock()


class RunLockedError(RunFolderError):
    """Another live process holds the run folder's lock."""


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _ago(seconds: float) -> str:
    return f"{_duration(seconds)} ago"


class RunLock:
    """An exclusive lock on a run folder: RUN/train.lock, a small JSON file naming its owner
    (pid, host, boot id, process start, since, a random token), created atomically (written
    to a temporary name, then link()ed into place, which fails if a lock exists; O_CREAT |
    O_EXCL where the filesystem has no hard links). A daemon thread touches it every
    LOCK_HEARTBEAT_S while held.

    A lock found in place is judged: this process's own (acquire is re-entrant: a count);
    a live process on this host (refused); a pid of this host that is not running, or a host
    that rebooted since (stale: taken over, with a line saying so); another host (refused
    while its heartbeat is recent, taken over once it is older than
    $CARGAN_LOCK_STALE_MINUTES, default 10). force=True (train --force-unlock,
    $CARGAN_FORCE_UNLOCK=1) takes over any lock. Released on release(), at the end of a
    `with` block, and at interpreter exit; a SIGKILL leaves it behind, stale.
    """

    def __init__(self, root: str | os.PathLike, force: bool | None = None,
                 stale_minutes: float | None = None, quiet: bool = False):
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        if force is None:
            force = os.environ.get(FORCE_UNLOCK_ENV, "").strip().lower() in ("1", "true", "yes")
        self.force = force
        if stale_minutes is None:
            try:
                stale_minutes = float(os.environ.get(LOCK_STALE_MINUTES_ENV, "")
                                      or DEFAULT_LOCK_STALE_MINUTES)
            except ValueError:
                stale_minutes = DEFAULT_LOCK_STALE_MINUTES
        self.stale_s = 60.0 * stale_minutes
        self.quiet = quiet
        self.token = uuid.uuid4().hex
        self.count = 0
        self.acquired_at: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.took_over: str | None = None  # why a stale lock was taken over, if one was

    # -- acquiring --------------------------------------------------------------------------
    def acquire(self) -> RunLock:
        """Take the lock, or raise RunLockedError naming the holder; returns the lock held
        (an earlier one of this process on the same folder, counted, if there is one)."""
        key = os.path.realpath(self.root)
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None and held.count > 0:
                held.count += 1
                return held
            self._take()
            self.count = 1
            _HELD[key] = self
        self._start_heartbeat()
        return self

    def _record(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": _HOST, "boot_id": _boot_id(),
                "process_start": _process_start(os.getpid()), "since": _iso(time.time()),
                "token": self.token, "command": " ".join(sys.argv)[:300]}

    def _take(self) -> None:
        text = json.dumps(self._record(), indent=1) + "\n"
        for _ in range(20):
            try:
                self._create_exclusive(text)
                self.acquired_at = time.time()
                return
            except FileExistsError:
                pass
            except OSError as err:
                raise RunFolderError(
                    f"cannot create the lock {self.path}: {err.strerror or err}. Training "
                    f"needs a writable run folder: make {self.root} writable (or free space), "
                    "or copy the run somewhere writable and train there") from err
            holder_text, holder = self._read_holder()
            if holder_text is None:
                continue  # removed meanwhile: try again
            stale = self._stale_reason(holder)
            if stale is None and not self.force:
                raise RunLockedError(self._refusal(holder))
            reason = stale or (f"--force-unlock ({FORCE_UNLOCK_ENV}=1) given; it was held by "
                               f"{self._describe(holder)}")
            if self._remove_if_unchanged(holder_text):
                self.took_over = reason
                if not self.quiet:
                    print(f"took over the lock of {self.root}: {reason}", flush=True)
        raise RunLockedError(f"could not take the lock {self.path}: it keeps changing hands; "
                             "is another trainer starting on this folder?")

    def _create_exclusive(self, text: str) -> None:
        """Create self.path holding `text`, atomically; FileExistsError when it exists."""
        tmp = self.path.with_name(f".{LOCK_NAME}.{os.getpid()}.{self.token[:8]}.tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, self.path)  # atomic, and the lock is never seen half written
            except FileExistsError:
                raise
            except OSError as err:  # no hard links (some FUSE mounts): O_EXCL instead
                if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP,
                                     errno.ENOSYS, errno.EMLINK, errno.EXDEV):
                    raise
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        io.fsync_dir(self.root)

    def _read_holder(self) -> tuple[str | None, dict[str, Any]]:
        """(the lock file's text, its record); a lock being written (O_EXCL path) is read
        again for up to 2 s; ({}, text) for one that stays unreadable."""
        text = None
        for _ in range(10):
            try:
                text = self.path.read_text(encoding="utf-8")
                mtime = self.path.stat().st_mtime
            except FileNotFoundError:
                return None, {}
            except OSError:
                text, mtime = "", time.time()
            try:
                record = json.loads(text)
                if isinstance(record, dict):
                    return text, {**record, "_mtime": mtime}
            except ValueError:
                pass
            time.sleep(0.2)
        return text, {"_mtime": mtime}

    def _stale_reason(self, holder: dict[str, Any]) -> str | None:
        """Why the holder is gone, or None when it may still be running."""
        age = time.time() - holder.get("_mtime", time.time())
        pid, host = holder.get("pid"), holder.get("host")
        if not isinstance(pid, int) or not isinstance(host, str):
            if age > 60:
                return f"its lock file is unreadable and untouched since {_ago(age)}"
            return None
        if host == _HOST:
            boot = holder.get("boot_id")
            if boot and _boot_id() and boot != _boot_id():
                return f"pid {pid} on this host ran before the machine restarted"
            if pid == os.getpid():
                return None if holder.get("token") in _held_tokens() else \
                    f"it was left by this same process (pid {pid})"
            if not pid_alive(pid):
                return f"pid {pid} on this host (since {holder.get('since')}) is not running"
            start = holder.get("process_start")
            if start and _process_start(pid) not in (None, start):
                return (f"pid {pid} on this host (since {holder.get('since')}) is not running "
                        "(the pid now belongs to another process)")
            return None
        if age > self.stale_s:
            return (f"pid {pid} on host {host} (since {holder.get('since')}) has not renewed "
                    f"it for {_duration(age)} (over {self.stale_s / 60:g} min: "
                    f"${LOCK_STALE_MINUTES_ENV})")
        return None

    @staticmethod
    def _describe(holder: dict[str, Any]) -> str:
        if "pid" not in holder:
            return "an unknown process (the lock file is being written or is damaged)"
        age = time.time() - holder.get("_mtime", time.time())
        return (f"pid {holder['pid']} on host {holder.get('host')} since "
                f"{holder.get('since')} (last heartbeat {_ago(age)})")

    def _refusal(self, holder: dict[str, Any]) -> str:
        here = holder.get("host") == _HOST
        gone = ("stop that process first" if here else
                f"if that machine is gone (a Colab runtime that disconnected), wait until its "
                f"heartbeat is {self.stale_s / 60:g} min old and the lock is taken over by "
                "itself")
        return (f"{self.root} is in use: another `train` holds {self.path.name}: "
                f"{self._describe(holder)}. Two trainers on one run folder would overwrite "
                f"each other's checkpoints. Wait for it to finish, use another --run-dir, or "
                f"{gone}; only if you are sure it is not training any more, rerun with "
                f"--force-unlock ({FORCE_UNLOCK_ENV}=1 in notebooks)")

    def _remove_if_unchanged(self, holder_text: str) -> bool:
        """Remove the lock file if it still holds `holder_text`; False if it changed (someone
        else took it over first: judge again)."""
        aside = self.path.with_name(f".{LOCK_NAME}.{os.getpid()}.{self.token[:8]}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise RunFolderError(f"cannot take over the lock {self.path}: "
                                 f"{err.strerror or err}; delete it by hand if its owner "
                                 "is gone") from err
        try:
            if aside.read_text(encoding="utf-8") == holder_text:
                return True
            with contextlib.suppress(OSError):  # a new owner's lock: put it back
                os.link(aside, self.path)
            return False
        finally:
            with contextlib.suppress(OSError):
                aside.unlink()

    # -- holding -----------------------------------------------------------------------------
    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="cargan-run-lock",
                                        daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(LOCK_HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def check(self) -> None:
        """Raise RunLockedError if another process now holds the lock (taken over with
        --force-unlock, or by a machine that judged this one gone): called before each
        checkpoint. A lock file deleted by hand is put back."""
        if not self.root.is_dir():
            return  # the run folder vanished: the writes themselves say so
        try:
            record = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            with contextlib.suppress(OSError):  # FileExistsError: judged at the next call
                self._create_exclusive(json.dumps(self._record(), indent=1) + "\n")
            return
        except (OSError, ValueError):
            return  # unreadable for a moment (Drive): judged at the next checkpoint
        if isinstance(record, dict) and record.get("token") != self.token:
            raise RunLockedError(
                f"this process no longer holds {self.path}: "
                f"{self._describe({**record, '_mtime': time.time()})} took it over; "
                "stopping before the next checkpoint so that two trainers do not overwrite "
                "each other. The checkpoints written so far are intact")

    def release(self) -> None:
        """Undo one acquire; the last one stops the heartbeat and deletes the lock file if
        it is still this process's."""
        key = os.path.realpath(self.root)
        with _HELD_GUARD:
            held = _HELD.get(key, self)
            if held.count <= 0:
                return
            held.count -= 1
            if held.count > 0:
                return
            _HELD.pop(key, None)
        held._stop.set()
        try:
            if json.loads(held.path.read_text(encoding="utf-8")).get("token") == held.token:
                held.path.unlink()
        except (OSError, ValueError):
            pass

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _held_tokens() -> set[str]:
    return {lock.token for lock in _HELD.values()}


@atexit.register
def _release_all() -> None:
    """Locks still held at exit (a Trainer used without run()) are released."""
    for lock in list(_HELD.values()):
        lock.count = 1
        lock.release()
