"""Pictures: image grids, loss and D-output plots, real-vs-fake collages, the evolution GIF.

Images come in as float32 in [-1, 1] or uint8 in [0, 255], shape (N, H, W, C) with C 1 or 3
(RGB). Files are written atomically. Plots use matplotlib's Figure directly (no pyplot), so
they work headless and never change a notebook's backend.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

from cargan_tf.runs import read_history, write_bytes_atomic


def to_uint8(images: np.ndarray) -> np.ndarray:
    """float images in [-1, 1] -> uint8 [0, 255]; uint8 passes through."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images
    return np.clip(np.rint((images + 1.0) * 127.5), 0, 255).astype(np.uint8)


def image_grid(images: np.ndarray, cols: int | None = None, pad: int = 2,
               pad_value: int = 255) -> np.ndarray:
    """Tile images (N, H, W, C) into one uint8 image (rows*H + pads, cols*W + pads, C)."""
    images = to_uint8(images)
    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * h + (rows + 1) * pad, cols * w + (cols + 1) * pad, c), pad_value,
                   np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[y:y + h, x:x + w] = images[i]
    return grid


def upscale(image: np.ndarray, min_side: int = 256) -> np.ndarray:
    """Nearest-neighbour enlargement so small grids stay crisp when viewed."""
    factor = max(1, math.ceil(min_side / max(image.shape[:2])))
    if factor == 1:
        return image
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def encode_png(image: np.ndarray) -> bytes:
    """uint8 (H, W, C) RGB or (H, W, 1) gray -> PNG bytes."""
    image = to_uint8(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not encode an image of shape {image.shape} as PNG")
    return buffer.tobytes()


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> uint8 (H, W, 3) RGB or (H, W, 1) gray."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError("not a decodable PNG")
    if image.ndim == 2:
        return image[..., None]
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    write_bytes_atomic(path, encode_png(image))
    return Path(path)


def save_grid(path: str | os.PathLike, images: np.ndarray, cols: int | None = None,
              min_side: int = 256) -> Path:
    """Write a grid of images as a PNG (enlarged to at least `min_side` pixels)."""
    return save_png(path, upscale(image_grid(images, cols), min_side))


def _figure_png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < window or window < 2:
        return values
    kernel = np.ones(window) / window
    return np.convolve(values, kernel, mode="valid")


def _batch_axis(rows: Sequence[dict]) -> np.ndarray:
    """Fractional epochs for each history row: epoch - 1 + batch / batches_in_that_epoch."""
    per_epoch: dict[int, int] = {}
    for r in rows:
        per_epoch[r["epoch"]] = max(per_epoch.get(r["epoch"], 0), r["batch"] + 1)
    return np.array([r["epoch"] - 1 + r["batch"] / per_epoch[r["epoch"]] for r in rows])


def _plot_history(history_csv, out_png, series, ylabel: str, title: str, axes=None) -> Path:
    """One history plot: each (key, colour) per batch (light) and smoothed (bold)."""
    # here: matplotlib takes ~1 s to import, and `--help` and the notebooks' first cells
    # import this module
    from matplotlib.figure import Figure

    rows = read_history(history_csv)
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    if rows:
        x = _batch_axis(rows)
        window = max(1, len(rows) // 50)
        for key, colour in series:
            if any(key not in r for r in rows):  # an optional column (aug_p) this run lacks
                continue
            y = np.array([r[key] for r in rows])
            ax.plot(x, y, color=colour, alpha=0.25, linewidth=0.8)
            ax.plot(x[window - 1:], _smooth(y, window), color=colour, label=key)
        ax.legend(loc="upper right")
    if axes is not None:
        axes(ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    write_bytes_atomic(out_png, _figure_png(fig))
    return Path(out_png)


def plot_losses(history_csv: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """plots/losses.png: D real/fake loss and G loss per batch (light) and smoothed (bold)."""
    return _plot_history(history_csv, out_png,
                         (("d_loss_real", "tab:blue"), ("d_loss_fake", "tab:orange"),
                          ("g_loss", "tab:green"), ("g_loss_l2", "tab:gray")),
                         "loss", "GAN losses per batch")


def plot_d_outputs(history_csv: str | os.PathLike, out_png: str | os.PathLike) -> Path:
    """plots/d_outputs.png: D(x) and D(G(z)) per batch; 0.5 is where D can no longer tell.
    With ADA (ada_target) also aug_p, the augmentation probability, on the same 0-1 axis."""
    def half_line(ax):
        ax.axhline(0.5, color="black", linewidth=0.8, linestyle="--")
        ax.set_ylim(0, 1)

    return _plot_history(history_csv, out_png, (("D(x)", "tab:blue"), ("D(G(z))", "tab:red"),
                                                ("aug_p", "tab:purple")),
                         "mean discriminator output",
                         "D(x) on real and D(G(z)) on generated batches", axes=half_line)


def caption(image: np.ndarray, text: str) -> np.ndarray:
    """Add a white strip with black text above an RGB/gray uint8 image; a text too long for
    the image's width is drawn smaller rather than cut off at the edge."""
    h = max(18, image.shape[0] // 14)
    strip = np.full((h, image.shape[1], image.shape[2]), 255, np.uint8)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, h / 30
    width = cv2.getTextSize(text, font, scale, max(1, int(scale * 2)))[0][0]
    scale *= min(1.0, (image.shape[1] - 8) / width)  # 4 px margin each side
    cv2.putText(strip, text, (4, int(h * 0.75)), font, scale, (0,) * image.shape[2],
                max(1, int(scale * 2)), cv2.LINE_AA)
    return np.concatenate([strip, image], axis=0)


def real_vs_fake(real: np.ndarray, fake: np.ndarray, out_png: str | os.PathLike,
                 n: int = 16) -> Path:
    """real_vs_fake.png: a grid of real images beside a grid of generated ones, captioned."""
    side = math.ceil(math.sqrt(min(n, len(real), len(fake))))
    count = side * side
    left = caption(upscale(image_grid(real[:count], side), 256), "real")
    right = caption(upscale(image_grid(fake[:count], side), 256), "generated")
    gap = np.full((left.shape[0], 8, left.shape[2]), 255, np.uint8)
    return save_png(out_png, np.concatenate([left, gap, right], axis=1))


# evolution.gif keeps at most this many frames: a 400-image set trained for 6,000 steps has
# 1,000 epoch grids, which as frames would be a 90 MB GIF lasting 8 minutes
MAX_GIF_FRAMES = 100


def thin_frames(frames: Sequence, max_frames: int | None = None) -> list:
    """At most max_frames (default MAX_GIF_FRAMES) of `frames`, evenly spaced, always the first
    and the last (all of them when there are no more than max_frames, or max_frames is 0)."""
    frames = list(frames)
    max_frames = MAX_GIF_FRAMES if max_frames is None else max_frames
    if not max_frames or len(frames) <= max_frames:
        return frames
    if max_frames == 1:
        return frames[-1:]
    last = len(frames) - 1
    return [frames[round(i * last / (max_frames - 1))] for i in range(max_frames)]


def make_gif(frames: Sequence[str | os.PathLike], out_gif: str | os.PathLike,
             seconds_per_frame: float = 0.5, labels: Sequence[str] | None = None,
             max_side: int | None = None) -> Path:
    """evolution.gif: one frame per grid PNG, each captioned (e.g. 'epoch 3'); loops forever.
    max_side: shrink frames whose longer side is larger (a smaller file to share)."""

    if not frames:
        raise ValueError("no frames to make a GIF from: train at least one epoch first")
    images = []
    for i, frame in enumerate(frames):
        image = decode_png(Path(frame).read_bytes())
        if image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        if max_side and max(image.shape[:2]) > max_side:
            scale = max_side / max(image.shape[:2])
            image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                               interpolation=cv2.INTER_AREA)
        label = labels[i] if labels else Path(frame).stem.replace("_", " ")
        images.append(caption(image, label))
    shape = images[0].shape
    images = [cv2.resize(im, (shape[1], shape[0])) if im.shape != shape else im for im in images]
    buffer = io.BytesIO()
    # duration in ms per frame; the last frame lingers so the result can be seen
    durations = [int(seconds_per_frame * 1000)] * (len(images) - 1) + [2000]
    if len(images) == 1:  # Pillow takes one number, not a list, for a single frame
        durations = durations[0]
    iio.imwrite(buffer, np.stack(images), extension=".gif", duration=durations, loop=0)
    write_bytes_atomic(out_gif, buffer.getvalue())
    return Path(out_gif)


def gif_frame_count(path: str | os.PathLike) -> int:

    return len(iio.imread(path, index=None))
