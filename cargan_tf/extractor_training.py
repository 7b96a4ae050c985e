"""Training the domain feature extractors (toycars, fashion_mnist): their recipe, their small
CNN, their data, and where the trained files are kept. features.py loads them (and calls
train_domain_extractor on first use); nothing here is needed to *use* a trained extractor.

Deterministic: fixed data (toycars seed TOYCARS_SEED / the Fashion-MNIST files), a fixed
shuffling order and seeded initialisers, so a retrained extractor has the same weights.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import keras
import numpy as np
from keras import layers

from cargan_tf import io
from cargan_tf.data import sources
from cargan_tf.data.toycars import draw_toycars
from cargan_tf.errors import CarganError
from cargan_tf.runs import save_model_atomic, write_json_atomic

CACHE_ENV = "CARGAN_CACHE"
DOMAIN_EXTRACTORS = ("toycars", "fashion_mnist")
DOMAIN_VERSION = 1          # bump when the architecture or training recipe changes
FEATURE_DIM = 128           # width of the penultimate layer of the domain CNNs

# --- the domain extractors' training recipe --------------------------------------------------
TOYCARS_SEED = 104729       # toycars drawing seed for the extractor's own images (not a run's)
TOYCARS_TRAIN = 12000       # training images (drawn at the run's size)
TOYCARS_HELD_OUT = 2000     # images start TOYCARS_TRAIN.. of the same seed: never trained on
TOYCARS_EPOCHS = 4
FASHION_EPOCHS = 6
FASHION_HELD_OUT_FRACTION = 0.2  # used when only one split of the idx files is present
BATCH_SIZE = 64
LEARNING_RATE = 2e-3        # Adam, cosine-decayed to 0 over the run
INIT_SEED = 1234            # seeds every initialiser; no other randomness in training

# toycars heads: (label key, number of classes or 0 for a regression of the float label)
TOYCARS_HEADS: tuple[tuple[str, int], ...] = (
    ("body_type", 6), ("colour", 9), ("background", 4),
    ("wheel_size", 0), ("offset_x", 0), ("offset_y", 0),
)


# ---- where trained extractors are kept ---------------------------------------------------------

def cache_dir() -> Path:
    """$CARGAN_CACHE/extractors, default ~/.cache/cargan_tf/extractors."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "cargan_tf"
    return Path(root) / "extractors"


def natural_channels(name: str) -> int:
    return 3 if name == "toycars" else 1


def domain_cache_path(name: str, image_size: int, channels: int | None = None) -> Path:
    """Where the domain extractor `name` for this image size (and channels) is cached."""
    channels = channels or natural_channels(name)
    tag = "" if channels == natural_channels(name) else ("-gray" if channels == 1 else "-rgb")
    return cache_dir() / f"{name}-{image_size}{tag}-v{DOMAIN_VERSION}.keras"


# ---- the CNN, its data and its training -----------------------------------------------------

def build_domain_cnn(image_size: int, channels: int, heads: tuple[tuple[str, int], ...],
                     targets: dict[str, tuple[float, float]] | None = None):
    """(extractor, trainer): a small CNN on images valued 0..255 -> features and heads.

    Conv blocks halve the side until it is at most 7 (16 -> 4, 28 -> 7, 32 -> 4, 64 -> 4);
    features = Dense(128, relu), the penultimate layer. A classification head gives softmax
    probabilities; a regression head one number. `trainer` outputs the regressions
    standardised (so no head drowns the others in the loss); `extractor` outputs "features"
    and every head, regressions back in label units via targets[key] = (mean, std).
    Both share the same layers.
    """
    seeds = iter(range(INIT_SEED, INIT_SEED + 100))
    targets = targets or {}

    def init():
        return keras.initializers.HeNormal(seed=next(seeds))

    inputs = keras.Input((image_size, image_size, channels), name="images")  # 0..255
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    side, filters = image_size, 16
    while side > 7:
        # side x side x filters, then (side/2) x (side/2) x filters after the strided conv
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False, kernel_initializer=init())(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False,
                          kernel_initializer=init())(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        side, filters = (side + 1) // 2, min(filters * 2, 64)
    x = layers.Flatten()(x)  # keeps position: the offsets are regression targets
    features = layers.Dense(FEATURE_DIM, activation="relu", kernel_initializer=init(),
                            name="features")(x)
    trained, extracted = {}, {"features": features}
    for key, n_classes in heads:
        dense = layers.Dense(n_classes or 1, activation="softmax" if n_classes else None,
                             kernel_initializer=keras.initializers.GlorotUniform(seed=next(seeds)),
                             name=key)
        trained[key] = extracted[key] = dense(features)
        if not n_classes:
            mean, std = targets.get(key, (0.0, 1.0))
            extracted[key] = layers.Normalization(mean=mean, variance=std**2, invert=True,
                                                  name=f"{key}_units")(trained[key])
    trainer = keras.Model(inputs, trained, name="trainer")
    extractor = keras.Model(inputs, extracted, name="extractor")
    return extractor, trainer


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1] == size:
        return images
    interp = cv2.INTER_AREA if images.shape[1] > size else cv2.INTER_LINEAR
    out = np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in images])
    return out.reshape(len(images), size, size, images.shape[-1])


def _to_channels(images: np.ndarray, channels: int) -> np.ndarray:
    if images.shape[-1] == channels:
        return images
    if channels == 3:
        return np.repeat(images, 3, axis=-1)
    weights = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601 luma, as cv2 uses
    return np.rint(images.astype(np.float32) @ weights)[..., None].astype(np.uint8)


def _toycars_data(image_size: int, channels: int, n_train: int, n_held_out: int):
    train_x, train_y = draw_toycars(n_train, image_size, TOYCARS_SEED, channels)
    test_x, test_y = draw_toycars(n_held_out, image_size, TOYCARS_SEED, channels, start=n_train)
    keys = [k for k, _ in TOYCARS_HEADS]
    return (train_x, {k: train_y[k] for k in keys}), (test_x, {k: test_y[k] for k in keys})


def _fashion_data(image_size: int, channels: int, n_train: int | None, n_held_out: int | None,
                  path: str | os.PathLike | None = None):
    """Fashion-MNIST through the data loader (folder `path`, else where the loader looks):
    trained on the train split, held out on the test split; when only one split is present,
    a fixed 20% of it is held out."""
    splits = sources.load_fashion_mnist_splits(path)
    if splits is None:
        images, labels = sources.load_fashion_mnist(path, "train", with_labels=True)
        n_test = max(1, int(len(images) * FASHION_HELD_OUT_FRACTION))
        order = np.random.default_rng(INIT_SEED).permutation(len(images))
        test, train = order[:n_test], order[n_test:]
        splits = (images[train], labels[train]), (images[test], labels[test])
    (train_x, train_y), (test_x, test_y) = splits
    if n_train:
        train_x, train_y = train_x[:n_train], train_y[:n_train]
    if n_held_out:
        test_x, test_y = test_x[:n_held_out], test_y[:n_held_out]
    prep = lambda x: _to_channels(_resize_all(x, image_size), channels)
    return ((prep(train_x), {"class": np.asarray(train_y, np.int64)}),
            (prep(test_x), {"class": np.asarray(test_y, np.int64)}))


FASHION_CLASSES = ("t-shirt/top", "trouser", "pullover", "dress", "coat", "sandal", "shirt",
                   "sneaker", "bag", "ankle boot")


def heads_for(name: str) -> tuple[tuple[str, int], ...]:
    return TOYCARS_HEADS if name == "toycars" else (("class", len(FASHION_CLASSES)),)


def train_domain_extractor(name: str, image_size: int, channels: int | None = None, *,
                           n_train: int | None = None, n_held_out: int | None = None,
                           epochs: int | None = None, out: str | os.PathLike | None = None,
                           data_path: str | os.PathLike | None = None,
                           verbose: bool = True) -> Path:
    """Train the domain extractor `name` at `image_size` and save it (atomically) to `out`.

    data_path: the Fashion-MNIST folder (default: where the data loader looks).
    Deterministic: fixed data (toycars seed TOYCARS_SEED / the Fashion-MNIST files), a fixed
    shuffling order and seeded initialisers; writes a .json beside the .keras file with the
    held-out accuracies (and regression errors), settings, seconds and the file's sha256.
    """
    if name not in DOMAIN_EXTRACTORS:
        raise CarganError(f"no domain extractor {name!r}: use one of {', '.join(DOMAIN_EXTRACTORS)}")
    channels = channels or natural_channels(name)
    out = Path(out) if out is not None else domain_cache_path(name, image_size, channels)
    heads = heads_for(name)
    if name == "toycars":
        epochs = epochs or TOYCARS_EPOCHS
        (train_x, train_y), (test_x, test_y) = _toycars_data(
            image_size, channels, n_train or TOYCARS_TRAIN, n_held_out or TOYCARS_HELD_OUT)
    else:
        epochs = epochs or FASHION_EPOCHS
        (train_x, train_y), (test_x, test_y) = _fashion_data(image_size, channels, n_train,
                                                             n_held_out, data_path)
    start = time.perf_counter()
    if verbose:
        print(f"training the {name} feature extractor at {image_size}x{image_size} on "
              f"{len(train_x)} images (first use only; cached as {out})", file=sys.stderr,
              flush=True)

    # regressions train on standardised targets; the extractor maps them back to label units
    targets = {key: (float(np.mean(train_y[key])), float(np.std(train_y[key])) or 1.0)
               for key, n_classes in heads if not n_classes}
    extractor, trainer = build_domain_cnn(image_size, channels, heads, targets)
    losses = {key: "sparse_categorical_crossentropy" if n_classes else "mse"
              for key, n_classes in heads}
    fit_y = {key: (value - targets[key][0]) / targets[key][1] if key in targets else value
             for key, value in train_y.items()}
    steps = epochs * (len(train_x) // BATCH_SIZE)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, max(1, steps))
    trainer.compile(optimizer=keras.optimizers.Adam(schedule), loss=losses)

    x = train_x.astype(np.float32)
    for epoch in range(epochs):
        order = np.random.default_rng([INIT_SEED, epoch]).permutation(len(x))
        order = order[: len(order) - len(order) % BATCH_SIZE]  # one batch shape: one trace
        trainer.fit(x[order], {k: v[order] for k, v in fit_y.items()}, batch_size=BATCH_SIZE,
                    epochs=1, shuffle=False, verbose=0)
        if verbose:
            print(f"  epoch {epoch + 1}/{epochs}  {time.perf_counter() - start:.0f} s",
                  file=sys.stderr, flush=True)

    report = _held_out_report(extractor, test_x, test_y, heads)
    extractor.trainable = False
    out.parent.mkdir(parents=True, exist_ok=True)
    save_model_atomic(extractor, out)
    meta = {
        "name": name, "image_size": image_size, "channels": channels,
        "version": DOMAIN_VERSION, "sha256": io.sha256_file(out), "held_out": report,
        "n_train": len(train_x), "n_held_out": len(test_x), "epochs": epochs,
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(out.with_suffix(".json"), meta)
    if verbose:
        summary = ", ".join(f"{k} {v:.3f}" for k, v in report.items())
        print(f"  held-out: {summary}", file=sys.stderr, flush=True)
    return out

def predict_heads(model, images: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
    """{"features" and each head: its outputs} for uint8 images, in batches of batch_size."""
    parts: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(images), batch_size):
        result = model(images[i:i + batch_size].astype(np.float32), training=False)
        for key, value in result.items():
            parts.setdefault(key, []).append(np.asarray(value))
    return {key: np.concatenate(value) for key, value in parts.items()}


def _held_out_report(model, images, labels, heads) -> dict[str, float]:
    """Accuracy per classification head, RMSE (in label units) per regression head."""
    outputs = predict_heads(model, images, 256)
    report = {}
    for key, n_classes in heads:
        if n_classes:
            report[f"{key}_accuracy"] = float(np.mean(outputs[key].argmax(1) == labels[key]))
        else:
            report[f"{key}_rmse"] = float(np.sqrt(np.mean((outputs[key][:, 0] - labels[key]) ** 2)))
    return report


__all__ = ["train_domain_extractor", "build_domain_cnn", "heads_for", "predict_heads",
           "domain_cache_path", "cache_dir", "natural_channels", "CACHE_ENV", "DOMAIN_EXTRACTORS",
           "FEATURE_DIM", "TOYCARS_HEADS", "FASHION_CLASSES"]
