"""Losses: binary crossentropy for D, the L2-enhanced generator loss, and the mode-seeking term.

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


def mode_seeking_penalty(images, z, weight: float, eps: float = 1e-5):
    """weight / (mean|G(z1) - G(z2)| / mean|z1 - z2|), MSGAN's term (Mao et al. 2019), with
    the batch's first half paired with its second half: small when different latents give
    different images, large when G maps them to one picture (mode collapse).

    images: G(z), (n, H, W, C) with n >= 2; z: (n, latent); a float32 scalar (0 when weight is 0).
    """
    if not weight:
        return ops.convert_to_tensor(0.0, dtype="float32")
    half = ops.shape(images)[0] // 2
    images, z = ops.cast(images, "float32"), ops.cast(z, "float32")
    spread = ops.mean(ops.abs(images[:half] - images[half : 2 * half]))
    distance = ops.mean(ops.abs(z[:half] - z[half : 2 * half]))
    return weight / (spread / distance + eps)
