"""Feature extractors for the quality metrics, behind one seam: `get_extractor(name, ...)`.

Three kinds, each an object with ``.name``, ``.hash``, ``.dim`` and ``.features(images)``:

- ``toycars`` and ``fashion_mnist``: small *domain* CNNs this package trains itself,
  deterministically (seeded initialisers, fixed data, fixed order), on first use at the run's
  image size. They are frozen and cached as ``.keras`` files in
  ``$CARGAN_CACHE/extractors/`` (default ``~/.cache/cargan_tf/extractors/``), named
  ``<name>-<size>[-gray|-rgb]-v1.keras``, with a ``.json`` beside it holding the file's sha256,
  the held-out accuracies and the training settings. Delete the files to retrain. Features are
  the penultimate layer (128 numbers); ``.predict_labels`` gives the heads' answers. toycars
  learns every drawing parameter (body type, colour, background; wheel size and offsets as
  regressions); held-out body-type accuracy 98.7% at 32x32 and 99.2% at 64x64 (2000 images).
- ``inception``: Keras' InceptionV3 (include_top=False, average pool, 2048 numbers) at
  299x299. Keras' ImageNet weights are **not** the reference TF-FID network, so its numbers
  compare runs of this package, never numbers in papers. Weights come from a file: the
  ``weights`` argument, env ``CARGAN_INCEPTION_WEIGHTS``, or Keras' cache
  (``~/.keras/models/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5``). They are
  downloaded only when asked (``allow_download=True``, e.g. on Colab); never in tests.
- ``pixels``: 16x16 area-downsampled pixels in [0, 1] (no weights). Domain-agnostic and
  honest about it: it sees colour layout, blur and noise, not whether a car looks like a car.
  The fallback for user data with no domain extractor and no Inception weights.

The hash of the features used goes into every metrics.json: numbers are comparable only
between evaluations with the same extractor name and hash. For domain extractors metrics.json
also records the sha256 of the weight values (a .keras file's own hash changes on every save).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import keras
import numpy as np
import tensorflow as tf

from cargan_tf import photo_judge
from cargan_tf.data.toycars import BODY_TYPES
from cargan_tf.errors import CarganError
from cargan_tf.extractor_training import (
    CACHE_ENV,
    DOMAIN_EXTRACTORS,
    FASHION_CLASSES,
    FEATURE_DIM,
    TOYCARS_HEADS,
    build_domain_cnn,
    cache_dir,
    domain_cache_path,
    heads_for,
    natural_channels,
    predict_heads,
    train_domain_extractor,
)
from cargan_tf.io import sha256_file

INCEPTION_ENV = "CARGAN_INCEPTION_WEIGHTS"
INCEPTION_WEIGHTS_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_WEIGHTS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/"
                         "inception_v3/" + INCEPTION_WEIGHTS_FILE)
INCEPTION_WEIGHTS_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"  # Keras' own check for this file
INCEPTION_SIZE = 299

EXTRACTOR_NAMES = (*DOMAIN_EXTRACTORS, "photo", "inception", "pixels")
# made by train_domain_extractor("toycars", 32, out=...) with its defaults (12,000 images, 4
# epochs; held-out scores in the .json beside it); a cached file of the same name wins
PACKAGED_EXTRACTORS = Path(__file__).resolve().parent / "assets" / "extractors"
PIXEL_SIZE = 16             # side of the thumbnails the pixel features use

# ---- the common interface -------------------------------------------------------------------

def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images must be uint8 (N, H, W, 1 or 3), got {images.dtype} "
                         f"{images.shape}")
    return images


class Extractor:
    """What every extractor offers. Subclasses set the attributes and implement `features`.

    name: "toycars" | "fashion_mnist" | "inception" | "pixels"; hash: sha256 hex of the
    weights file (of a definition string for "pixels"); dim: feature length;
    class_head: the classification head used for mode coverage, or None; class_names: its
    class names.
    """

    name: str = ""
    hash: str = ""
    dim: int = 0
    class_head: str | None = None
    class_names: tuple[str, ...] = ()

    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """images: uint8 (N, H, W, C) -> float32 (N, dim)."""
        raise NotImplementedError

    def predict_labels(self, images: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
        """images: uint8 (N, H, W, C) -> {head: int64 class ids or float32 values, (N,)}."""
        raise CarganError(f"the {self.name} extractor has no label heads")

    def describe(self) -> dict[str, Any]:
        """What metrics.json records about the features used."""
        return {"features": self.name, "features_hash": self.hash, "features_dim": self.dim}


# ---- pixels ---------------------------------------------------------------------------------

class PixelExtractor(Extractor):
    """16x16 thumbnails (INTER_AREA) as float32 in [0, 1], flattened: no weights, no training.

    Limits: distances here are dominated by background colour and layout. KID/precision/recall
    on them detect blur, noise, colour shifts and collapse, but not shapes that are wrong in a
    way a thumbnail cannot show. Compare runs with it; do not read it as realism.
    """

    name = "pixels"

    def __init__(self, channels: int = 3, size: int = PIXEL_SIZE):
        self.size, self.channels = size, channels
        self.dim = size * size * channels
        self.hash = hashlib.sha256(f"pixels-v1-{size}-area-c{channels}".encode()).hexdigest()

    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        images = _check_images(images)
        out = np.empty((len(images), self.dim), np.float32)
        for i, image in enumerate(images):
            small = cv2.resize(image, (self.size, self.size), interpolation=cv2.INTER_AREA)
            out[i] = small.reshape(-1)[: self.dim] / 255.0
        return out


# ---- Inception --------------------------------------------------------------------------------

def _keras_cache_candidates() -> list[Path]:
    """Where Keras' get_file keeps models: $KERAS_HOME or ~/.keras, else /tmp/.keras."""
    homes = [Path(os.environ["KERAS_HOME"])] if os.environ.get("KERAS_HOME") else []
    homes += [Path.home() / ".keras", Path("/tmp/.keras")]
    return [home / "models" / INCEPTION_WEIGHTS_FILE for home in homes]


def find_inception_weights(weights: str | os.PathLike | None = None) -> Path | None:
    """The InceptionV3 no-top weights file to use, or None: argument, env, Keras' cache."""
    if weights is not None:
        return Path(weights)
    if os.environ.get(INCEPTION_ENV):
        return Path(os.environ[INCEPTION_ENV])
    return next((p for p in _keras_cache_candidates() if p.is_file()), None)


def inception_weights_missing_message() -> str:
    looked = ", ".join(str(p) for p in _keras_cache_candidates())
    return (f"no InceptionV3 weights found (looked at ${INCEPTION_ENV} and {looked}). Pass a "
            f"local {INCEPTION_WEIGHTS_FILE}, set {INCEPTION_ENV}, or allow the one-off "
            f"download (`--allow-download`, allow_download=True; about 84 MB, e.g. on Colab)")


class InceptionExtractor(Extractor):
    """Keras InceptionV3 pool features (2048) at 299x299 from a local weights file.

    Not the reference TF-FID Inception graph: values compare runs of this package only.
    """

    name = "inception"
    dim = 2048

    def __init__(self, weights_path: str | os.PathLike):
        path = Path(weights_path)
        if not path.is_file():
            raise CarganError(f"InceptionV3 weights file {path} does not exist")
        self.weights_path = path
        self.hash = sha256_file(path)
        try:
            self.model = keras.applications.InceptionV3(
                include_top=False, pooling="avg", weights=str(path),
                input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
        except (ValueError, OSError) as err:
            raise CarganError(f"could not load InceptionV3 weights from {path}: {err}") from err
        self._fn = None

    def features(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        images = _check_images(images)
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)  # grayscale goes in as R = G = B
        if self._fn is None:
            model = self.model

            @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
            def fn(batch):
                x = tf.image.resize(tf.cast(batch, tf.float32), (INCEPTION_SIZE, INCEPTION_SIZE),
                                    method="bilinear")
                return model(x / 127.5 - 1.0, training=False)  # Inception's "tf" preprocessing

            self._fn = fn
        out = [np.asarray(self._fn(images[i:i + batch_size]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.dim), np.float32)


def inception_extractor(weights: str | os.PathLike | None = None,
                        allow_download: bool = False) -> InceptionExtractor:
    """The Inception extractor; downloads the weights only with allow_download=True."""
    path = find_inception_weights(weights)
    if path is None or (weights is None and not path.is_file()):
        if not allow_download:
            raise CarganError(inception_weights_missing_message())
        path = Path(keras.utils.get_file(INCEPTION_WEIGHTS_FILE, INCEPTION_WEIGHTS_URL,
                                         cache_subdir="models", file_hash=INCEPTION_WEIGHTS_MD5))
    return InceptionExtractor(path)


# ---- domain extractors ------------------------------------------------------------------------
def load_model_portably(path: Path, rebuild: Callable[[dict], keras.Model]) -> keras.Model:
    """A saved extractor on any Keras 3: Keras' own loader first; when this Keras cannot read
    the file's config (an older one refuses arguments it does not have yet: Colab's 3.13 and
    the packaged files, saved by 3.15), `rebuild(config)` makes the architecture from this
    package's code and Keras' load_weights copies the weights out of the same .keras file."""
    try:
        return keras.saving.load_model(path, compile=False)
    except (TypeError, ValueError):
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
        model = rebuild(config)
        model.load_weights(path)
        return model


def saved_layer_config(config: dict, name: str) -> dict:
    """The config of the layer called `name` in a saved functional model's config.json."""
    for layer in config["config"]["layers"]:
        if layer["config"]["name"] == name:
            return layer["config"]
    raise CarganError(f"the saved model has no layer {name!r}: it is not this package's")


class DomainExtractor(Extractor):
    """A trained domain CNN loaded from its .keras file (frozen, inference only)."""

    def __init__(self, name: str, path: str | os.PathLike):
        self.name, self.path = name, Path(path)
        self.model = load_model_portably(self.path, self._rebuild)
        self.model.trainable = False
        self.hash = sha256_file(self.path)
        self.dim = FEATURE_DIM
        meta_path = self.path.with_suffix(".json")
        self.meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        self.heads = heads_for(name)
        self.class_head = self.heads[0][0]
        self.class_names = BODY_TYPES if name == "toycars" else FASHION_CLASSES
        shape = self.model.input_shape
        self.image_size, self.channels = int(shape[1]), int(shape[-1])

    def _rebuild(self, config: dict) -> keras.Model:
        shape = config["config"]["layers"][0]["config"]["batch_shape"]
        targets = {}
        for key, n_classes in heads_for(self.name):
            if not n_classes:  # a regression head maps back to label units with these
                units = saved_layer_config(config, f"{key}_units")
                targets[key] = (float(units["mean"]), float(units["variance"]) ** 0.5)
        return build_domain_cnn(int(shape[1]), int(shape[-1]), heads_for(self.name), targets)[0]

    def _run(self, images: np.ndarray, batch_size: int) -> dict[str, np.ndarray]:
        images = _check_images(images)
        if images.shape[1:] != (self.image_size, self.image_size, self.channels):
            raise CarganError(
                f"the {self.name} extractor at {self.path.name} takes "
                f"{self.image_size}x{self.image_size}x{self.channels} images, got "
                f"{'x'.join(map(str, images.shape[1:]))}: get_extractor at the run's size")
        if not len(images):
            return {"features": np.zeros((0, self.dim), np.float32)}
        return predict_heads(self.model, images, batch_size)

    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self._run(images, batch_size)["features"].astype(np.float32)

    def predict_labels(self, images: np.ndarray, batch_size: int = 256) -> dict[str, np.ndarray]:
        outputs = self._run(images, batch_size)
        labels = {}
        for key, n_classes in self.heads:
            if n_classes:
                labels[key] = outputs[key].argmax(1).astype(np.int64)
            else:
                labels[key] = outputs[key][:, 0].astype(np.float32)
        return labels

    def weights_sha256(self) -> str:
        """sha256 of the weight values themselves: equal for equal weights, unlike the file's
        hash (a .keras zip differs on every save)."""
        digest = hashlib.sha256()
        for array in self.model.get_weights():
            digest.update(np.ascontiguousarray(array, np.float32).tobytes())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "features_file": str(self.path),
                "features_weights_sha256": self.weights_sha256(),
                "features_held_out": self.meta.get("held_out")}


def domain_extractor(name: str, image_size: int, channels: int | None = None,
                     **train_kwargs: Any) -> DomainExtractor:
    """The cached domain extractor, trained first if the cache has none (train_kwargs: see
    train_domain_extractor; they only matter for that first training)."""
    if name not in DOMAIN_EXTRACTORS:
        raise CarganError(f"no domain extractor {name!r}: use one of {', '.join(DOMAIN_EXTRACTORS)}")
    channels = channels or natural_channels(name)
    path = domain_cache_path(name, image_size, channels)
    if not path.exists():
        # the package ships the extractor of its main job (toycars at 32x32): everyone's FIDs
        # on it use the same weights (one features_hash), and nobody waits for its training
        packaged = PACKAGED_EXTRACTORS / path.name
        if packaged.exists():
            return DomainExtractor(name, packaged)
        train_domain_extractor(name, image_size, channels, out=path, **train_kwargs)
    return DomainExtractor(name, path)


# ---- photos ---------------------------------------------------------------------------------

PHOTO_MODEL = PACKAGED_EXTRACTORS / "photo-64-v1.keras"
PHOTO_SIZE = photo_judge.SIZE  # the side the photo judge sees; other sizes are resized to it


class PhotoExtractor(Extractor):
    """The photo judge: a small CNN trained self-supervised on 64x64 vehicle and road-scene
    crops (scripts/train_photo_judge.py; its data and provenance are in the .json beside the
    model and in assets/extractors/PROVENANCE.md). Ships with the package, so it works
    offline. Features: the mean of each of its three stages, concatenated (336 numbers), so
    colour and texture statistics count beside shape.

    Any size from 32 to 128 px works: images are resized to 64x64 (area filter down,
    bilinear up) and gray ones repeated to RGB. Validated on Stanford Cars photos it never saw
    (benchmarks/judge_validation.py, BENCHMARKS.md): its FID rises with blur, noise, cutout,
    colour shift, mode dropping and mixed-in road scenes, and it orders a training run's
    snapshots. Numbers compare only with the same features_hash.
    """

    name = "photo"

    def __init__(self, path: str | os.PathLike | None = None):
        self.path = Path(path or PHOTO_MODEL)
        if not self.path.is_file():
            raise CarganError(f"the photo judge's weights are missing at {self.path}: reinstall "
                              "cargan_tf, or retrain them with scripts/train_photo_judge.py")
        self.model = load_model_portably(self.path, self._rebuild)
        self.model.trainable = False
        self.hash = sha256_file(self.path)
        self.dim = int(self.model.output_shape[-1])
        meta_path = self.path.with_suffix(".json")
        self.meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}

    @staticmethod
    def _rebuild(config: dict) -> keras.Model:
        standardise = saved_layer_config(config, "standardise")
        return photo_judge.build_judge(photo_judge.build_trunk(),
                                       np.asarray(standardise["mean"], np.float32),
                                       np.asarray(standardise["variance"], np.float32))

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 1 or 3) -> float32 (N, 64, 64, 3) in [-1, 1], as the judge sees them."""
        images = _check_images(images)
        if images.shape[1:3] != (PHOTO_SIZE, PHOTO_SIZE):
            shrink = images.shape[1] > PHOTO_SIZE
            method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
            images = np.stack([cv2.resize(im, (PHOTO_SIZE, PHOTO_SIZE), interpolation=method)
                               .reshape(PHOTO_SIZE, PHOTO_SIZE, -1) for im in images])
        if images.shape[-1] == 1:
            images = np.repeat(images, 3, axis=-1)
        return images.astype(np.float32) / 127.5 - 1.0

    def features(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        images = _check_images(images)
        out = np.empty((len(images), self.dim), np.float32)
        for start in range(0, len(images), batch_size):
            batch = self.prepare(images[start:start + batch_size])
            out[start:start + len(batch)] = np.asarray(self.model(batch, training=False))
        return out

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "features_file": str(self.path),
                "features_held_out": self.meta.get("held_out")}


def domain_name_for(data: str) -> str | None:
    """The domain extractor for a config's `data` (toycars, fashion_mnist), None for others."""
    return data if data in DOMAIN_EXTRACTORS else None


def get_extractor(name: str, image_size: int | None = None, channels: int | None = None, *,
                  weights: str | os.PathLike | None = None, allow_download: bool = False,
                  **train_kwargs: Any) -> Extractor:
    """The extractor called `name`: toycars | fashion_mnist | photo | inception | pixels.

    image_size, channels: the run's images (domain extractors are trained at that size; pixels
    uses channels). weights, allow_download: Inception only.
    """
    if name in DOMAIN_EXTRACTORS:
        if image_size is None:
            raise CarganError(f"the {name} extractor needs the run's image size")
        return domain_extractor(name, image_size, channels, **train_kwargs)
    if name == "photo":
        return PhotoExtractor()
    if name == "inception":
        return inception_extractor(weights, allow_download)
    if name == "pixels":
        return PixelExtractor(channels or 3)
    raise CarganError(f"unknown feature extractor {name!r}: use one of {', '.join(EXTRACTOR_NAMES)}")


__all__ = [
    "Extractor", "PixelExtractor", "InceptionExtractor", "DomainExtractor", "PhotoExtractor",
    "get_extractor",
    "domain_extractor", "inception_extractor", "train_domain_extractor", "find_inception_weights",
    "domain_cache_path", "cache_dir", "domain_name_for", "sha256_file", "build_domain_cnn",
    "EXTRACTOR_NAMES", "DOMAIN_EXTRACTORS", "CACHE_ENV", "INCEPTION_ENV", "FEATURE_DIM",
    "TOYCARS_HEADS",
]
