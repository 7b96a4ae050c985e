"""Losses: binary crossentropy for D, and the L2-enhanced generator loss.

The L2-enhanced loss is BCE(D(G(z)), 1) + alpha * sum(0.5 * ||W||^2) over the kernels of the
generator's Conv2DTranspose layers except the last. (The well-known original paired a
*categorical* crossentropy with one sigmoid unit, which is identically zero; this one is not.)
"""

from __future__ import annotations

import keras
from keras import layers, ops


def penalised_kernels(generator: keras.Model) -> list:
    """Kernels the L2 term covers: every Conv2DTranspose of G except the output layer."""
    convs = [layer for layer in generator.layers if isinstance(layer, layers.Conv2DTranspose)]
    return [layer.kernel for layer in convs[:-1]]


def l2_penalty(generator: keras.Model, alpha: float):
    """alpha * sum(0.5 * ||W||^2): a float32 scalar tensor (0 when alpha is 0)."""
    kernels = penalised_kernels(generator)
    if not alpha or not kernels:
        return ops.convert_to_tensor(0.0, dtype="float32")
    total = sum(0.5 * ops.sum(ops.square(ops.cast(k, "float32"))) for k in kernels)
    return alpha * total


class L2EnhancedGeneratorLoss(keras.losses.Loss):
    """BCE on D's output for the gan, plus the generator's L2 term (read live from its kernels).

    Per-sample values are BCE + penalty, so the batch mean is mean(BCE) + penalty.
    """

    def __init__(self, generator: keras.Model, alpha: float, name: str = "l2_enhanced_bce"):
        super().__init__(name=name)
        self.generator = generator
        self.alpha = float(alpha)

    def call(self, y_true, y_pred):
        bce = keras.losses.binary_crossentropy(y_true, y_pred)
        return bce + ops.cast(l2_penalty(self.generator, self.alpha), bce.dtype)
