"""Temporary stand-in (the data engineer replaces this file): toycars only."""

from __future__ import annotations

import numpy as np

from cargan_tf.errors import DataError


def load_images(data: str, size: int, channels: int, *, n: int | None = None, seed: int = 0,
                cache_dir: str | None = None, fit: str = "center_crop") -> np.ndarray:
    if data == "toycars":
        from cargan_tf.data.toycars import draw_toycars

        return draw_toycars(8192 if n is None else n, size=size, seed=seed, channels=channels)[0]
    raise DataError(f"unknown data source {data!r}")
