"""Helpers that keep the notebooks thin: the home folder (on Drive in Colab), inline pictures,
finding a run (or training a tiny one when a notebook needs one and none is given), and the
notebooks' data and outputs lists. Colab detection and install live in env.py; the names the
notebooks use are handed on here.

No TensorFlow at import: the notebooks' first cells use this module before anything heavy.
drive_layout.md describes the folders `setup_home` creates.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from html import escape as html_escape
from pathlib import Path

import cv2
import numpy as np

from cargan_tf import config
from cargan_tf.config import normalize_data
from cargan_tf.data.decode import UnusableImage, check_header, read_image_file
from cargan_tf.data.sources import CACHE_ENV, load_images
from cargan_tf.data.toycars import draw_toycars
from cargan_tf.env import (
    INTERACTIVE_ENV,
    colab_install,
    headless_executor,
    in_colab,
    install_commands,
    installed_versions,
    is_interactive_colab,
    missing_light_deps,
    version_problems,
)
from cargan_tf.errors import CarganError
from cargan_tf.runs import RunPaths, write_json_atomic
from cargan_tf.viz import decode_png, encode_png

COLAB_DRIVE = Path("/content/drive")           # where Colab mounts Google Drive
MY_DRIVE = COLAB_DRIVE / "MyDrive"
COLAB_LOCAL_HOME = Path("/content/cargan")     # Colab without Drive: lost when the runtime goes
HOME_ENV = "CARGAN_HOME"                       # overrides the default home everywhere
HOME_SUBFOLDERS = ("data/raw", "data/prepared", "runs", "exports")
OUTPUTS_FOLDER = "notebook_outputs"            # home/notebook_outputs/<notebook>.json


# ---- the home folder -----------------------------------------------------------------------

def mount_drive() -> Path:
    """Mount Google Drive at /content/drive (interactive Colab only: asks for authorisation)."""
    if MY_DRIVE.is_dir():
        return MY_DRIVE
    if not is_interactive_colab():
        raise CarganError("Google Drive is not mounted and this kernel has no Colab front end to "
                          "authorise it (papermill?). Mount it in an interactive cell first "
                          "(from google.colab import drive; drive.mount('/content/drive')), "
                          "or pass home= a local folder")
    from google.colab import drive  # here: google.colab exists only in Colab

    drive.mount(str(COLAB_DRIVE))
    return MY_DRIVE


def default_home() -> Path:
    """$CARGAN_HOME; else MyDrive/cargan in Colab (mounting Drive when interactive and not yet
    mounted; /content/cargan with a warning when that is impossible); else ~/cargan."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    if not in_colab():
        return Path.home() / "cargan"
    if MY_DRIVE.is_dir():
        return MY_DRIVE / "cargan"
    why = "cannot be mounted from this kernel (no Colab front end)"
    if is_interactive_colab():
        try:
            return mount_drive() / "cargan"
        except Exception as err:  # refused or timed out: keep going, but say what it costs
            why = f"could not be mounted ({err})"
    print(f"WARNING: Google Drive is not mounted and {why}; using {COLAB_LOCAL_HOME}, which is "
          "lost when the runtime is recycled. Mount Drive in an interactive session first, or "
          "pass home=.")
    return COLAB_LOCAL_HOME


def setup_home(home: str | os.PathLike | None = None, smoke: bool = False) -> Path:
    """The home folder with its standard subfolders (data/raw, data/prepared, runs, exports).

    home: a folder, or None/"" for default_home(). With smoke=True and no home, smoke runs go
    to <default home>/smoke: their tiny models differ from full ones, so a full run of the same
    name would otherwise be refused as a different setup.
    """
    if home:
        path = Path(home).expanduser()
    else:
        path = default_home() / ("smoke" if smoke else "")
    try:
        for sub in HOME_SUBFOLDERS:
            (path / sub).mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CarganError(f"cannot create the home folder {path}: {err.strerror or err}. Pass "
                          "home= a writable folder (in Colab: is Drive mounted?)") from err
    path = path.resolve()
    where = " (Google Drive)" if str(path).startswith(str(COLAB_DRIVE)) else ""
    print(f"home: {path}{where}")
    return path


def setup(home: str | os.PathLike | None = None, smoke: bool = False) -> Path:
    """A notebook's setup in one call: TF_CPP_MIN_LOG_LEVEL=2 (fewer TensorFlow start-up
    messages; before TensorFlow is imported, and only when unset), the home folder
    (setup_home), and CARGAN_CACHE_DIR=home/data/prepared when unset (an image folder given to
    training is prepared there once). Returns the home folder."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    path = setup_home(home, smoke)
    os.environ.setdefault(CACHE_ENV, str(path / "data" / "prepared"))
    return path


def flush_and_unmount_drive(home: str | os.PathLike | None = None) -> bool:
    """drive.flush_and_unmount() in interactive Colab when Drive is mounted; True if it ran.

    Writes to a Drive mount are uploaded in the background; flushing before the runtime goes
    away makes sure the last checkpoint and artefacts reach Drive. Elsewhere it does nothing
    (papermill kernels share the interactive session's mount, so they must not unmount it).
    """
    if not (is_interactive_colab() and MY_DRIVE.is_dir()):
        print("not an interactive Colab session with Drive mounted: nothing to flush")
        return False
    if home is not None and not str(Path(home).resolve()).startswith(str(COLAB_DRIVE)):
        print(f"home {home} is not on Drive: nothing to flush")
        return False
    from google.colab import drive  # here: google.colab exists only in Colab

    drive.flush_and_unmount()
    print("Drive flushed and unmounted; mount it again to keep working")
    return True


# ---- showing pictures ----------------------------------------------------------------------

def _ipython_display():
    """IPython.display in an IPython session (notebook, Colab, terminal IPython), else None."""
    try:
        from IPython import display, get_ipython  # here: IPython is optional (notebooks only)
    except ImportError:
        return None
    return display if get_ipython() is not None else None


def _display(make, fallback: str) -> None:
    """display(make(Image)) in an IPython session; print `fallback` elsewhere."""
    ipython = _ipython_display()
    if ipython is None:
        print(fallback)
    else:
        ipython.display(make(ipython.Image))


def _display_png(image: str | os.PathLike | np.ndarray, width: int | None) -> bytes:
    """PNG bytes of `image` (a file or a uint8 array), no wider than 2 x width (sharp on
    high-DPI screens): what a notebook saves is then ~width-sized, not a full-size grid."""
    if isinstance(image, np.ndarray):
        array = image
    else:
        try:  # the guard: a regular file under the byte limit, then the pixel limit
            data = read_image_file(image).tobytes()
            if not width:
                return data
            check_header(data)
        except UnusableImage as reason:
            raise CarganError(f"cannot show {image}: {reason}") from None
        array = decode_png(data)
    if width and array.shape[1] > 2 * width:
        height = max(1, round(array.shape[0] * 2 * width / array.shape[1]))
        array = cv2.resize(array, (2 * width, height), interpolation=cv2.INTER_AREA)
        array = array.reshape(height, 2 * width, -1)
    return encode_png(array)


def show_image(image: str | os.PathLike | np.ndarray, width: int | None = None,
               caption: str | None = None) -> None:
    """Show a PNG file, or a uint8 (H, W, C) image array, inline (prints the path elsewhere).
    With `width`, a larger picture is stored at twice that width, not at full size."""
    if caption:
        print(caption)
    fallback = f"<image {image.shape}>" if isinstance(image, np.ndarray) else str(image)
    _display(lambda Image: Image(data=_display_png(image, width), format="png", width=width),
             fallback)


class LiveImage:
    """One picture that every show() replaces in place (Jupyter, Colab, papermill): a training
    cell keeps the latest sample grid, not one output per epoch (the run's evolution.gif keeps
    them all). Outside IPython, show() prints the caption and the path.

    A LiveImage is also an on_epoch_end callback for training:
    `train(cfg, run_dir, on_epoch_end=nb.LiveImage(width=320))` shows each epoch's grid.
    """

    def __init__(self, width: int | None = None):
        self.width = width
        self._handle = None

    def __call__(self, epoch: int, grid_png: str | os.PathLike | None) -> None:
        """Show `grid_png` captioned "after epoch N"; None (an epoch without a grid: long runs
        keep one every few epochs, see samples_every_epochs) changes nothing."""
        if grid_png is not None:
            self.show(grid_png, caption=f"after epoch {epoch}")

    def show(self, image: str | os.PathLike, caption: str = "") -> None:
        ipython = _ipython_display()
        if ipython is None:
            print(f"{caption}: {image}" if caption else str(image))
            return
        data = base64.b64encode(_display_png(image, self.width)).decode("ascii")
        size = f' width="{self.width}"' if self.width else ""
        html = ipython.HTML(f"<div>{html_escape(caption)}</div>"
                            f'<img src="data:image/png;base64,{data}"{size}>')
        if self._handle is None:
            self._handle = ipython.display(html, display_id=True)
        else:
            self._handle.update(html)


def show_gif(path: str | os.PathLike, width: int | None = None) -> None:
    """Show an animated GIF inline (Jupyter and Colab play it)."""
    data = Path(path).read_bytes()
    _display(lambda Image: Image(data=data, format="gif", width=width), str(path))


# ---- runs, data and the outputs list --------------------------------------------------------

def under_home(home: str | os.PathLike, path: str | os.PathLike) -> Path:
    """`path` as given when absolute (or ~), else under `home`: the notebooks' convention."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else Path(home) / path


def resolve_data(dataset: str, home: str | os.PathLike) -> str:
    """A notebook's `dataset` as training's `data`: a named source as it is (its FOLDER, as in
    fashion_mnist:FOLDER or stanford_cars:FOLDER, under home when relative), any other relative
    path under home."""
    return normalize_data(str(dataset), base=home)


def _finished_runs(home: str | os.PathLike, limit: int = 20) -> str:
    """A sentence naming the finished runs under home/runs, for error messages."""
    folder = Path(home) / "runs"
    names = sorted(p.name for p in folder.iterdir()
                   if p.is_dir() and RunPaths(p).generator.exists()) if folder.is_dir() else []
    if not names:
        return f"There is no finished run in {folder} yet: notebook 02 trains one."
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"Finished runs in {folder}: {', '.join(names[:limit])}{more} (set run_name to one)."


def find_run(run_dir: str | os.PathLike | None, run_name: str, home: str | os.PathLike,
             smoke: bool = False) -> Path:
    """The run folder a notebook reads: run_dir (relative: under home), else
    home/runs/<run_name>, else, with smoke=True, a tiny run trained here (tiny_run_if_missing).

    Raises CarganError naming the folder that is missing and the finished runs there are.
    """
    path = under_home(home, run_dir) if run_dir else \
        Path(home) / "runs" / run_name if run_name else None
    if path is not None and not path.is_dir():
        raise CarganError(f"no run folder at {path}. {_finished_runs(home)}")
    if path is None and not smoke:
        raise CarganError("no run given: set run_name (a folder under "
                          f"{Path(home) / 'runs'}) or run_dir, or smoke=True to train a tiny "
                          f"run here. {_finished_runs(home)}")
    return tiny_run_if_missing(path, home, smoke=smoke)


def tiny_run_if_missing(run_dir: str | os.PathLike | None, home: str | os.PathLike,
                        smoke: bool = True, name: str = "tiny-smoke",
                        preset_name: str = "aim64") -> Path:
    """run_dir if it is a finished run folder; with no run_dir and smoke=True, a tiny toycars
    run in home/runs/<name> (trained here in seconds, reused next time).

    Raises CarganError for a run_dir without generator.keras, or no run_dir outside smoke mode.
    """
    if run_dir:
        path = Path(run_dir).expanduser()
        if not RunPaths(path).generator.exists():
            raise CarganError(f"{path} has no generator.keras: pass a finished run folder "
                              "(rerun notebook 02 on it to finish or resume training)")
        return path
    if not smoke:
        raise CarganError("run_dir is empty: set it to a run folder such as "
                          f"{Path(home) / 'runs' / '<run_name>'} (notebook 02 writes one), "
                          "or set smoke=True to build a tiny one here")
    from cargan_tf.train import train  # here: it imports TensorFlow, which the setup cells skip

    path = Path(home) / "runs" / name
    if not RunPaths(path).generator.exists():
        print(f"no run_dir given: training a tiny smoke run in {path} (a few seconds)")
        train(config.resolve(preset_name, data="toycars", smoke=True), path)
    return path


def shared_data(name: str) -> Path | None:
    """../shared/data/<name> beside the repository (the project's test data), or None.

    $CARGAN_SHARED_DATA, when set, is the only place looked at (set it to a missing folder to
    see what a fresh clone without the shared data does).
    """
    if os.environ.get("CARGAN_SHARED_DATA"):
        candidates = [Path(os.environ["CARGAN_SHARED_DATA"]) / name]
    else:
        repo = Path(__file__).resolve().parents[1]
        candidates = [repo.parent / "shared" / "data" / name,
                      Path.cwd().parent / "shared" / "data" / name,
                      Path.cwd().parent.parent / "shared" / "data" / name]
    return next((p for p in candidates if p.is_dir()), None)


def dataset_stats(images: np.ndarray, chunk: int = 1024) -> tuple[dict, np.ndarray]:
    """Statistics of uint8 (N, H, W, C) images, computed in chunks (no float copy of the set).

    Returns ({count, image_shape, channel_mean, channel_std} with pixel values 0-255, the mean
    image uint8 (H, W, C)).
    """
    images = np.asarray(images)
    if images.ndim != 4 or len(images) == 0:
        raise CarganError(f"expected images (N, H, W, C) with N > 0, got shape {images.shape}")
    n, h, w, c = images.shape
    total, squares = np.zeros(c), np.zeros(c)
    image_sum = np.zeros((h, w, c))
    for start in range(0, n, chunk):
        block = images[start:start + chunk].astype(np.float64)
        total += block.sum(axis=(0, 1, 2))
        squares += np.square(block).sum(axis=(0, 1, 2))
        image_sum += block.sum(axis=0)
    pixels = n * h * w
    mean = total / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean**2, 0.0))
    stats = {"count": int(n), "image_shape": [int(h), int(w), int(c)],
             "channel_mean": [round(float(v), 2) for v in mean],
             "channel_std": [round(float(v), 2) for v in std]}
    return stats, np.clip(np.rint(image_sum / n), 0, 255).astype(np.uint8)


def fashion_mnist_images(fashion_mnist_dir: str | os.PathLike | None, smoke: bool,
                         n: int | None = None, size: int = 28) -> tuple[np.ndarray, str, str]:
    """Fashion-MNIST training images for notebook 06, never failing for lack of data.

    Returns (uint8 (n, size, size, 1), the `data` string for the run config, a note or "").
    fashion_mnist_dir: a folder with the standard idx files (an error if it cannot be read).
    None: what sources.load_images("fashion_mnist") finds ($CARGAN_FASHION_MNIST, Keras' cache,
    Keras' download in Colab); smoke mode outside Colab prefers the project's small sample
    ../shared/data/fashion_mnist_900, which is also the fallback. When nothing can be had,
    toycars in grayscale at size x size stand in, and the note says so.
    """
    if fashion_mnist_dir:
        data = f"fashion_mnist:{Path(fashion_mnist_dir).expanduser()}"
        return load_images(data, size, 1, n=n), data, ""
    sample = shared_data("fashion_mnist_900")
    if not (smoke and sample is not None and not in_colab()):
        try:
            return load_images("fashion_mnist", size, 1, n=n), "fashion_mnist", ""
        except Exception as err:  # no files, offline, a broken download: fall back, loudly
            why = f"no Fashion-MNIST ({err})"
        if sample is None:
            cars, _ = draw_toycars(n or 1024, size, seed=0, channels=1)
            return cars, "toycars", (f"{why}; training on {len(cars)} grayscale toycars at "
                                     f"{size}x{size} instead, in a run folder of its own")
    data = f"fashion_mnist:{sample}"
    note = "" if smoke else f"using the 900-image sample in {sample}, not the full data set"
    return load_images(data, size, 1, n=n), data, note


def record_outputs(home: str | os.PathLike, notebook: str,
                   files: Iterable[str | os.PathLike]) -> Path:
    """Write home/notebook_outputs/<notebook>.json listing the files a notebook wrote.

    Printed too, with sizes, so a reader sees what to look at (and papermill tests check it).
    """
    files = [Path(f).resolve() for f in files]
    out = Path(home) / OUTPUTS_FOLDER / f"{notebook}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out, {"notebook": notebook,
                            "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                            "files": [str(f) for f in files]})
    print(f"{notebook} wrote:")
    for f in files:
        size = f"{f.stat().st_size / 1e6:.2f} MB" if f.exists() else "MISSING"
        print(f"  {f}  ({size})")
    print(f"(list in {out})")
    return out


def read_outputs(path: str | os.PathLike) -> list[Path]:
    """The files listed in a record_outputs JSON."""
    return [Path(f) for f in json.loads(Path(path).read_text(encoding="utf-8"))["files"]]


__all__ = ["INTERACTIVE_ENV", "in_colab", "is_interactive_colab", "headless_executor", "mount_drive",
           "default_home", "setup", "setup_home", "flush_and_unmount_drive", "colab_install",
           "install_commands", "missing_light_deps", "version_problems", "installed_versions",
           "show_image", "LiveImage", "show_gif", "tiny_run_if_missing", "shared_data", "dataset_stats",
           "fashion_mnist_images", "record_outputs", "read_outputs"]
