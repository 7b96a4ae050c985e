"""Start from a photo: project it into a trained generator's latent space, then edit it there
(along a SeFa direction, or toward a class of a conditional generator).

The projection is the latent search inpainting uses (inpaint.search_latents: restarts, Adam on
z, z kept near the prior), with every pixel known and an L2 pixel loss. When the photo judge
is installed (features.PhotoExtractor and its weights file), its features are an extra
perceptual loss: a frozen network compares what the photo and the candidate look like, not only
their pixels. Without it, pixels alone.

A conditional generator's input is z followed by a class's one-hot. The photo's class is not
known, so the search holds class logits beside z and feeds G their softmax, a mixture of the
classes; the projection's class is the largest weight, and an edit toward a class moves the
mixture to that class's one-hot.

Images: uint8 (S, S, C) in and out, the generator's size and channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cargan_tf.errors import CarganError
from cargan_tf.inpaint import check_images, comparison_strip, generator_shape, search_latents

STEPS = 300             # Adam steps on the latent
RESTARTS = 8            # random starts, searched together
LEARNING_RATE = 0.05
JUDGE_WEIGHT = 0.5      # weight of the photo judge's feature loss (relative squared difference)
CLASS_AMOUNTS = (0.0, 0.5, 1.0)         # fractions of the way to a class
DIRECTION_AMOUNTS = (-4.0, 0.0, 4.0)    # distances along a direction


@dataclass
class Projection:
    """Where a photo landed in the latent space."""

    photo: np.ndarray           # uint8 (S, S, C): the photo, cropped and resized
    image: np.ndarray           # uint8 (S, S, C): G at the projection
    z: np.ndarray               # float32 (latent_dim,)
    class_weights: np.ndarray | None  # float32 (K,): the class mixture (conditional), else None
    pixel_loss: float           # mean squared pixel difference in [-1, 1] units
    judge: bool                 # whether the photo judge's features were part of the loss

    @property
    def class_index(self) -> int | None:
        return None if self.class_weights is None else int(np.argmax(self.class_weights))


def photo_judge(image_size: int, channels: int):
    """The photo judge as a differentiable, frozen feature function on float32 images
    (B, S, S, C) in [-1, 1], or None where it is not installed (features.PhotoExtractor and its
    weights file). Images are resized to the judge's side as it expects (area-like down,
    bilinear up) and gray repeated to RGB."""
    try:
        from cargan_tf.features import PhotoExtractor  # on branches with the photo judge
    except ImportError:
        return None
    try:
        judge = PhotoExtractor()
    except (CarganError, OSError, ValueError):
        return None  # its weights file is missing or unreadable: pixels only
    import tensorflow as tf  # here: only a search that uses the judge needs it

    from cargan_tf.features import PHOTO_SIZE

    model = judge.model
    model.trainable = False  # frozen: the search moves z, never the judge

    def features(x):
        if channels == 1:
            x = tf.repeat(x, 3, axis=-1)
        if image_size != PHOTO_SIZE:
            x = tf.image.resize(x, (PHOTO_SIZE, PHOTO_SIZE), "bilinear",
                                antialias=image_size > PHOTO_SIZE)
        return model(x, training=False)

    return features


def _search_generator(generator):
    """(what the search optimises over, latent_dim, classes). An unconditional generator as it
    is; a conditional one behind a wrapper that takes z + class logits and feeds G
    z + softmax(logits)."""
    import keras  # here: --help reads this module without TensorFlow

    from cargan_tf.conditional import class_names_of
    from cargan_tf.generate import latent_dim_of

    latent_dim, classes = latent_dim_of(generator), class_names_of(generator)
    if not classes:
        return generator, latent_dim, classes
    inputs = keras.Input(shape=(latent_dim + len(classes),), name="z_and_class_logits")
    mixed = keras.ops.concatenate([inputs[:, :latent_dim],
                                   keras.ops.softmax(inputs[:, latent_dim:])], axis=1)
    return keras.Model(inputs, generator(mixed), name="generator_over_class_mixtures"), \
        latent_dim, classes


def project(generator, photo: np.ndarray, *, steps: int = STEPS, restarts: int = RESTARTS,
            learning_rate: float = LEARNING_RATE, judge: bool | None = None,
            judge_weight: float = JUDGE_WEIGHT, seed: int = 0,
            progress: bool = False) -> Projection:
    """The latent whose image is closest to `photo` (uint8 (S, S, C), the generator's size).

    judge: None uses the photo judge when it is installed; False never; True requires it.
    """
    size, _, channels = generator_shape(generator)
    photo = check_images(photo, (size, size, channels), what="the photo")[0]
    features = None
    if judge is not False:
        features = photo_judge(size, channels)
        if features is None and judge:
            raise CarganError("the photo judge is not installed here (features.PhotoExtractor "
                              "and its weights): project with pixels only (judge=False)")
    searched, latent_dim, classes = _search_generator(generator)
    target = photo[None].astype(np.float32) / 127.5 - 1.0
    fit = search_latents(searched, target, np.ones((1, size, size), np.float32), norm="l2",
                         restarts=restarts, steps=steps, learning_rate=learning_rate, seed=seed,
                         progress=progress, description="projecting the photo",
                         features=features, feature_weight=judge_weight if features else 0.0)
    z = fit.z[0]
    weights = None
    if classes:
        logits = z[latent_dim:].astype(np.float64)
        weights = np.exp(logits - logits.max())
        weights = (weights / weights.sum()).astype(np.float32)
    return Projection(photo, fit.generated[0], z[:latent_dim].astype(np.float32), weights,
                      float(fit.context_loss[0]), features is not None)


def edit(generator, projection: Projection, *, direction: int | None = None,
         directions: np.ndarray | None = None, target_class: int | None = None,
         amounts=None) -> np.ndarray:
    """uint8 (len(amounts), S, S, C): the projection edited along one latent direction
    (amounts: distances, default -4, 0, 4; directions: (D, latent_dim), default its SeFa
    directions) or toward class `target_class` of a conditional generator (amounts: fractions
    of the way from the projection's class mixture to that class, default 0, 0.5, 1)."""
    from cargan_tf.conditional import class_names_of
    from cargan_tf.generate import generate_images

    if (direction is None) == (target_class is None):
        raise CarganError("edit along a direction or toward a class: give one of the two")
    classes = class_names_of(generator)
    if direction is not None:
        if directions is None:
            from cargan_tf.directions import sefa_directions

            directions = sefa_directions(generator).vectors
        if not 0 <= direction < len(directions):
            raise CarganError(f"direction {direction} does not exist: there are "
                              f"{len(directions)} (0..{len(directions) - 1})")
        amounts = DIRECTION_AMOUNTS if amounts is None else amounts
        z = projection.z + np.outer(np.asarray(amounts, np.float32), directions[direction])
        mix = None if projection.class_weights is None else \
            np.tile(projection.class_weights, (len(z), 1))
    else:
        if not classes:
            raise CarganError("this generator is not class-conditional (train with --set "
                              "conditional=true): it has no class to edit toward")
        if not 0 <= target_class < len(classes):
            raise CarganError(f"class {target_class} does not exist: 0..{len(classes) - 1}")
        amounts = CLASS_AMOUNTS if amounts is None else amounts
        t = np.asarray(amounts, np.float32)[:, None]
        goal = np.eye(len(classes), dtype=np.float32)[target_class]
        mix = (1 - t) * projection.class_weights + t * goal
        z = np.tile(projection.z, (len(t), 1))
    inputs = z.astype(np.float32) if mix is None else \
        np.concatenate([z, mix], axis=1).astype(np.float32)
    return generate_images(generator, inputs)


def edit_labels(generator, direction: int | None, target_class: int | None, amounts) -> list[str]:
    """Captions of the edit columns: 'dir 0: -4', 'suv 50%'."""
    from cargan_tf.conditional import class_names_of

    if direction is not None:
        return [f"dir {direction}: {a:+g}" for a in amounts]
    name = class_names_of(generator)[target_class]
    return [f"{name} {a:.0%}" for a in amounts]


def edit_strip(projection: Projection, edits: np.ndarray, labels: list[str]) -> np.ndarray:
    """One picture, captioned: photo | projection | each edit."""
    columns = [projection.photo[None], projection.image[None], *[e[None] for e in edits]]
    return comparison_strip(columns, ["photo", "projection", *labels],
                            min_width=128 * len(columns))


def write_projection(out: str | Path, projection: Projection, strip: np.ndarray) -> list[Path]:
    """comparison.png (the strip), projection.png and latent.npy (z) into folder `out`."""
    from cargan_tf.viz import save_png

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = [save_png(out / "comparison.png", strip),
                   save_png(out / "projection.png", projection.image)]
        np.save(out / "latent.npy", projection.z)
    except OSError as err:
        raise CarganError(f"cannot write into {out} ({err.strerror or err}): give --out a "
                          "folder you can write to") from err
    return [*written, out / "latent.npy"]
