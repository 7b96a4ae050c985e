"""Every loss the package trains with, one function each, its maths in one comment line.

D's output is D(x) in [0, 1] (a sigmoid) for loss=bce, and a raw score s(x) (a logit) for
loss=nonsaturating | hinge (models.py). y are D's (noisy) targets: ~1 for real, ~0 for fake.

The Keras engine compiles D with keras.losses.BinaryCrossentropy (d_bce's maths) and the
stacked gan with L2EnhancedGeneratorLoss (g_bce + l2_penalty); the fused engine calls d_loss,
g_loss, l2_penalty and mode_seeking_penalty inside its compiled step (engines.py).
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import layers, ops

# ---- the discriminator -------------------------------------------------------------------------


def d_bce(labels, out):
    # mean BCE(y, D(x)) = -mean(y log D(x) + (1 - y) log(1 - D(x)))
    return tf.reduce_mean(keras.losses.binary_crossentropy(labels, out))


def d_nonsaturating(labels, logits):
    # the same maths on logits: mean BCE(y, sigmoid(s(x))), computed stably
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def d_hinge(scores, real: bool):
    # real: mean(relu(1 - s(x))); fake: mean(relu(1 + s(G(z))))
    return tf.reduce_mean(tf.nn.relu(1.0 - scores) if real else tf.nn.relu(1.0 + scores))


def d_loss(loss: str, out, labels, real: bool):
    """D's loss `loss` (bce | nonsaturating | hinge) on its outputs `out` (N, 1) for one batch,
    real or fake; `labels` (N, 1) are its targets (unused by hinge)."""
    if loss == "bce":
        return d_bce(labels, out)
    out = tf.cast(out, tf.float32)
    if loss == "nonsaturating":
        return d_nonsaturating(labels, out)
    if loss == "hinge":
        return d_hinge(out, real)
    raise ValueError(f"unknown loss {loss!r}")


def r1_penalty(d_call, images, gamma: float):
    # R1 (Mescheder et al. 2018): gamma/2 * mean_i ||d s(x_i) / d x_i||^2 on the real batch:
    # D is paid to be flat around the data, so it cannot memorise the reals with sharp logits
    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        scores = tf.cast(d_call(images), tf.float32)
        total = tf.reduce_sum(scores)
    grads = tape.gradient(total, images, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    grads = tf.cast(grads, tf.float32)
    penalty = 0.5 * gamma * tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
    return scores, penalty


# ---- the generator -----------------------------------------------------------------------------


def g_bce(out):
    # -mean(log D(G(z))) = BCE(1, D(G(z))): G is paid when D calls its fakes real
    return d_bce(tf.ones_like(out), out)


def g_nonsaturating(logits):
    # mean(softplus(-s(G(z)))) = BCE(1, sigmoid(s(G(z)))), computed stably
    return tf.reduce_mean(tf.nn.softplus(-logits))


def g_hinge(scores):
    # -mean(s(G(z)))
    return -tf.reduce_mean(scores)


def g_loss(loss: str, out):
    """G's loss `loss` (bce | nonsaturating | hinge) on D's outputs for its fakes."""
    if loss == "bce":
        return g_bce(out)
    out = tf.cast(out, tf.float32)
    if loss == "nonsaturating":
        return g_nonsaturating(out)
    if loss == "hinge":
        return g_hinge(out)
    raise ValueError(f"unknown loss {loss!r}")


def penalised_kernels(generator: keras.Model) -> list:
    """Kernels the L2 term covers: every Conv2DTranspose of G except the output layer."""
    convs = [layer for layer in generator.layers if isinstance(layer, layers.Conv2DTranspose)]
    return [layer.kernel for layer in convs[:-1]]


def l2_penalty(generator: keras.Model, alpha: float):
    # alpha * sum over G's hidden Conv2DTranspose kernels W of 0.5 * ||W||^2 (0 when alpha is 0)
    kernels = penalised_kernels(generator)
    if not alpha or not kernels:
        return ops.convert_to_tensor(0.0, dtype="float32")
    total = sum(0.5 * ops.sum(ops.square(ops.cast(k, "float32"))) for k in kernels)
    return alpha * total


class L2EnhancedGeneratorLoss(keras.losses.Loss):
    """G's loss in the stacked gan: BCE(1, D(G(z))) + l2_penalty(G, alpha), the penalty read
    live from G's kernels. Per-sample values are BCE + penalty, so the batch mean is
    mean(BCE) + penalty. (The well-known original paired a *categorical* crossentropy with one
    sigmoid unit, which is identically zero; this one is not.)
    """

    def __init__(self, generator: keras.Model, alpha: float, name: str = "l2_enhanced_bce"):
        super().__init__(name=name)
        self.generator = generator
        self.alpha = float(alpha)

    def call(self, y_true, y_pred):
        # BCE(y, D(G(z))) + alpha * sum 0.5 * ||W||^2
        bce = keras.losses.binary_crossentropy(y_true, y_pred)
        return bce + ops.cast(l2_penalty(self.generator, self.alpha), bce.dtype)


def mode_seeking_penalty(images, z, weight: float, eps: float = 1e-5):
    """MSGAN's term (Mao et al. 2019), with the batch's first half paired with its second half:
    small when different latents give different images, large when G maps them to one picture
    (mode collapse). images: G(z), (n, H, W, C) with n >= 2; z: (n, latent); a float32 scalar
    (0 when weight is 0).
    """
    # weight / (mean|G(z1) - G(z2)| / mean|z1 - z2|)
    if not weight:
        return ops.convert_to_tensor(0.0, dtype="float32")
    half = ops.shape(images)[0] // 2
    images, z = ops.cast(images, "float32"), ops.cast(z, "float32")
    spread = ops.mean(ops.abs(images[:half] - images[half : 2 * half]))
    distance = ops.mean(ops.abs(z[:half] - z[half : 2 * half]))
    return weight / (spread / distance + eps)


def d_probability(loss: str, out):
    """Not a loss: D's mean output as a probability for history.csv's D(x) and D(G(z))
    columns (sigmoid(score) for the logit losses, so they stay in [0, 1])."""
    out = tf.cast(out, tf.float32)
    return tf.reduce_mean(out if loss == "bce" else tf.sigmoid(out))
