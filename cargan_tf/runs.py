"""Run folders: every path a run writes is named here once, plus atomic writes and checkpoints.

No TensorFlow here: the atomic writer and the folder layout are used by light commands too.
drive_layout.md documents the same tree.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
from collections.abc import Iterator
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
    """Append one JSON line (logs of config changes; a torn last line is skipped on read)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")


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
    staging = paths.checkpoints / f".tmp-{final.name}-{os.getpid()}"
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
                             "The previous checkpoint is intact") from err


def remove_stale_checkpoints(paths: RunPaths, keep: int) -> list[Path]:
    """Delete unfinished staging folders and all but the newest `keep` checkpoints (0: all)."""
    removed = []
    if paths.checkpoints.exists():
        for stale in paths.checkpoints.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
            removed.append(stale)
    complete = list_checkpoints(paths)
    if keep > 0:
        for old in complete[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


def remove_stale_temp_files(paths: RunPaths) -> list[Path]:
    """Delete temporary files a killed process left behind (``.NAME.*.tmp``, ``.NAME.*.tmp.keras``).

    They are never read (the real file is only replaced by a rename), so removing them at the
    start of a resumed run is safe. Staging checkpoint folders are handled separately.
    """
    removed = []
    if paths.root.exists():
        for stale in paths.root.rglob(".*.tmp*"):
            if stale.is_file():
                with contextlib.suppress(OSError):
                    stale.unlink()
                    removed.append(stale)
    return removed


def folder_size(path: str | os.PathLike) -> int:
    """Bytes under `path` (for reporting checkpoint and run sizes)."""
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
