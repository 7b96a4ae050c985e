"""The photo judge's architecture: a small CNN whose pooled stages are the features `evaluate`
uses on photos (trained by scripts/train_photo_judge.py; the weights ship in
assets/extractors/photo-64-v1.keras).

    trunk = build_trunk()                       image (N, 64, 64, 3) in [-1, 1] -> [features, deep]
    judge = build_judge(trunk, mean, variance)  image -> standardised features (N, 336)

The architecture lives here, not only in the saved file, so the packaged weights load on any
Keras 3 (an older Keras refuses a config that names arguments it does not have yet).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

SIZE = 64                     # the side the judge sees; features.PhotoExtractor resizes to it
WIDTHS = (24, 48, 96, 192)    # the strided stem, then the three pooled stages


def _conv(x, width: int, stride: int):
    x = layers.Conv2D(width, 3, strides=stride, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def build_trunk() -> keras.Model:
    """image float32 (N, 64, 64, 3) in [-1, 1] -> [the three stages' means concatenated
    (48 + 96 + 192 = 336), the last stage's mean (192; what the training heads read)]."""
    image = keras.Input((SIZE, SIZE, 3), name="image")
    x = _conv(image, WIDTHS[0], 2)                          # 64x64x3 -> 32x32x24
    x = _conv(x, WIDTHS[1], 1)                              # -> 32x32x48
    pooled = [layers.GlobalAveragePooling2D()(x)]
    for width in WIDTHS[2:]:                                # -> 16x16x96 -> 8x8x192
        x = _conv(x, width, 2)
        x = _conv(x, width, 1)
        pooled.append(layers.GlobalAveragePooling2D()(x))
    features = layers.Concatenate(name="features")(pooled)
    return keras.Model(image, [features, pooled[-1]], name="photo_judge_trunk")


def build_judge(trunk: keras.Model, mean: np.ndarray, variance: np.ndarray) -> keras.Model:
    """The trunk's features standardised per feature (mean 0, variance 1 over the training
    crops): every stage counts alike in FID, and FIDs come out in a readable range."""
    norm = layers.Normalization(mean=mean, variance=variance, name="standardise")
    return keras.Model(trunk.input, norm(trunk.outputs[0]), name="photo_judge")


__all__ = ["SIZE", "WIDTHS", "build_trunk", "build_judge"]
