"""Semantic directions in a generator's latent space, without labels: SeFa (Shen & Zhou 2021,
"Closed-Form Factorization of Latent Semantics in GANs").

The generator's first layer maps z linearly: y = A z (dcgan: the Dense from z to 4x4xC;
pytorch_dcgan: the transposed conv from 1x1 to 4x4, its kernel flattened to a matrix). The
unit vectors n that this layer changes most, argmax |A n|^2, are the eigenvectors of A^T A
with the largest eigenvalues; moving z along them changes the picture most (colour, size,
body shape ... whatever the generator learned: the directions have no names until you look).
As in the authors' code, each output unit's weights are first scaled to unit length, so a
few large units do not decide alone. A conditional generator's class inputs are left out: the
directions live in z.

`python -m cargan_tf directions RUN` draws a row of cars along each direction (rows: a few
seeds) into RUN/directions/; `sample RUN --direction K --amount A` applies one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from cargan_tf.errors import CarganError
from cargan_tf.latents import seed_to_latent
from cargan_tf.viz import image_grid, save_png, upscale

AMOUNTS = (-6.0, -4.0, -2.0, 0.0, 2.0, 4.0, 6.0)  # distances along a direction in the pictures
SEEDS = (0, 1, 2, 3)                              # a row of cars per seed
N_DIRECTIONS = 8                                  # pictures the command draws
DIRECTIONS_FILE = "directions.json"


@dataclass
class Directions:
    """vectors: float32 (D, latent_dim), orthonormal rows, by decreasing eigenvalue;
    eigenvalues: float64 (D,), of A^T A (how strongly the first layer responds); layer: the
    name of the layer they come from."""

    vectors: np.ndarray
    eigenvalues: np.ndarray
    layer: str

    def to_json(self) -> dict:
        return {"method": "SeFa (Shen & Zhou 2021): eigenvectors of A^T A, A the first "
                          "layer's weights on z, each output unit's weights scaled to unit length",
                "layer": self.layer, "eigenvalues": [float(v) for v in self.eigenvalues],
                "vectors": np.round(self.vectors.astype(np.float64), 7).tolist()}

    @classmethod
    def from_json(cls, data: dict) -> Directions:
        return cls(np.asarray(data["vectors"], np.float32),
                   np.asarray(data["eigenvalues"], np.float64), str(data.get("layer", "?")))


def first_layer_matrix(generator, latent_dim: int) -> tuple[str, np.ndarray]:
    """(layer name, A^T: float64 (latent_dim, M)): the first weighted layer's weights on z.

    Row i holds what z_i adds to each of the layer's M outputs: a Dense kernel (in, M) as it
    is; a Conv2DTranspose on a 1x1 input, kernel (k, k, out, in), as (in, k*k*out). Only the
    first latent_dim inputs count (a conditional generator's class one-hot follows them).
    """
    for layer in generator.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            continue
        w = np.asarray(kernel, np.float64)
        kind = type(layer).__name__
        if kind == "Dense":
            rows = w
        elif kind == "Conv2DTranspose":
            rows = w.reshape(-1, w.shape[-1]).T
        else:
            raise CarganError(f"the generator's first weighted layer is a {kind} ({layer.name}); "
                              "SeFa needs a Dense or a Conv2DTranspose on z")
        return layer.name, rows[:latent_dim]
    raise CarganError("the generator has no weighted layer to take directions from")


def sefa(a_t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues (L,), unit eigenvectors (L, L) as rows), largest first, of A^T A for
    a_t = A^T (L, M), each column of a_t (an output unit) scaled to unit length first.

    A vector's sign is arbitrary; it is fixed so that its largest component is positive.
    """
    norms = np.linalg.norm(a_t, axis=0, keepdims=True)
    a_t = a_t / np.where(norms > 0, norms, 1.0)
    values, vectors = np.linalg.eigh(a_t @ a_t.T)          # ascending, columns
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order].T
    signs = np.sign(vectors[np.arange(len(vectors)), np.abs(vectors).argmax(axis=1)])
    return values, vectors * signs[:, None]


def sefa_directions(generator, n: int | None = None) -> Directions:
    """The generator's first n SeFa directions (all latent_dim of them by default)."""
    from cargan_tf.generate import latent_dim_of  # here: it imports TensorFlow

    latent_dim = latent_dim_of(generator)
    name, a_t = first_layer_matrix(generator, latent_dim)
    values, vectors = sefa(a_t)
    n = latent_dim if n is None else max(1, min(int(n), latent_dim))
    return Directions(vectors[:n].astype(np.float32), values[:n], name)


def parse_amounts(text: str) -> tuple[float, ...]:
    """'-3,0,3' -> (-3.0, 0.0, 3.0); CarganError for anything else."""
    try:
        amounts = tuple(float(a) for a in text.split(",") if a.strip())
    except ValueError:
        raise CarganError(f"amounts {text!r}: give numbers separated by commas, e.g. -3,0,3") \
            from None
    if not amounts or not all(np.isfinite(amounts)):
        raise CarganError(f"amounts {text!r}: give finite numbers separated by commas, e.g. -3,0,3")
    return amounts


def direction_rows(generator, directions: Directions, k: int, seeds=SEEDS, amounts=AMOUNTS,
                   classes=None) -> np.ndarray:
    """uint8 (len(seeds) * len(amounts), S, S, C): for each seed (its first latent), the car
    moved by each amount along direction k, row after row. A conditional generator draws
    `classes` (an index), or by default class i % K in row i."""
    from cargan_tf.conditional import class_names_of
    from cargan_tf.generate import generate_images, latent_dim_of  # here: TensorFlow

    if not 0 <= k < len(directions.vectors):
        raise CarganError(f"direction {k} does not exist: there are {len(directions.vectors)} "
                          f"(0..{len(directions.vectors) - 1})")
    latent_dim = latent_dim_of(generator)
    z = np.concatenate([seed_to_latent(s, 1, latent_dim) for s in seeds])
    moved = np.concatenate([z[i] + np.outer(amounts, directions.vectors[k])
                            for i in range(len(seeds))]).astype(np.float32)
    names = class_names_of(generator)
    if names and classes is None:  # a conditional generator: a class per row, in turn
        classes = np.repeat(np.arange(len(seeds)) % len(names), len(amounts))
    return generate_images(generator, moved, classes=classes)


def direction_picture(generator, directions: Directions, k: int, seeds=SEEDS, amounts=AMOUNTS,
                      classes=None, min_width: int = 640) -> np.ndarray:
    """One uint8 picture: a row of cars per seed moving along direction k, the amounts above."""
    images = direction_rows(generator, directions, k, seeds, amounts, classes)
    grid = upscale(image_grid(images, cols=len(amounts)), min_width)
    if grid.shape[2] == 1:
        grid = np.repeat(grid, 3, axis=2)
    header = np.full((24, grid.shape[1], 3), 255, np.uint8)
    step = grid.shape[1] / len(amounts)
    for i, amount in enumerate(amounts):
        cv2.putText(header, f"{amount:+g}", (int(i * step + step / 2) - 12, 17),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    title = np.full((24, grid.shape[1], 3), 255, np.uint8)
    cv2.putText(title, f"direction {k} (eigenvalue {directions.eigenvalues[k]:.3g})", (6, 17),
                cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([title, header, grid], axis=0)


def write_direction_pictures(generator, out: str | os.PathLike, n: int = N_DIRECTIONS,
                             seeds=SEEDS, amounts=AMOUNTS, classes=None) -> list[Path]:
    """direction_00.png ... (one picture per direction, the first n) and directions.json (the
    vectors and eigenvalues) into `out`; returns the paths written."""
    directions = sefa_directions(generator)
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [save_png(out / f"direction_{k:02d}.png",
                            direction_picture(generator, directions, k, seeds, amounts, classes))
                   for k in range(min(n, len(directions.vectors)))]
        kept = Directions(directions.vectors[:max(n, 16)], directions.eigenvalues[:max(n, 16)],
                          directions.layer)
        (out / DIRECTIONS_FILE).write_text(json.dumps(kept.to_json(), indent=1) + "\n")
    except OSError as err:
        raise CarganError(f"cannot write into {out} ({err.strerror or err}): give --out a "
                          "folder you can write to") from err
    return [*written, out / DIRECTIONS_FILE]
