"""The custom Keras layers of the discriminator, each a small fix or addition to a Keras layer.

- DiscriminatorBatchNorm: BatchNormalization whose maths while frozen inside the stacked gan
  is selectable (Keras' moving statistics, or the batch's own as PyTorch's G step uses).
- SpectralNorm: keras.layers.SpectralNormalization that leaves a frozen D's kernel alone.
- MinibatchStdDev: ProGAN's extra channel, the batch's feature spread (anti-collapse).

All are registered for saving, so a generator.keras or discriminator.keras that holds them
loads after `import cargan_tf.layers`.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from cargan_tf.distribute import cross_replica_sum


@keras.saving.register_keras_serializable(package="cargan_tf")
class DiscriminatorBatchNorm(layers.BatchNormalization):
    """BatchNormalization whose behaviour while *frozen* inside the stacked gan is selectable.

    Keras runs a non-trainable BatchNormalization in inference mode (moving statistics) even
    when called with training=True. The PyTorch and TensorFlow-tutorial generator steps instead
    normalise D's activations with the batch's own statistics. ``frozen_statistics = "batch"``
    gives that maths; either way the frozen layer updates none of its variables.
    The attribute is read when a train function is traced; StackedGAN sets it before that.
    """

    frozen_statistics = "inference"

    def call(self, inputs, training=None, mask=None):
        if training and not self.trainable and self.frozen_statistics == "batch":
            x = ops.cast(inputs, keras.backend.result_type(inputs.dtype, "float32"))
            mean, variance = self._moments(x, mask)
            outputs = ops.batch_normalization(
                x, mean, variance, axis=self.axis,
                offset=ops.cast(self.beta, x.dtype) if self.center else None,
                scale=ops.cast(self.gamma, x.dtype) if self.scale else None,
                epsilon=self.epsilon,
            )
            return ops.cast(outputs, self.compute_dtype)
        return super().call(inputs, training=training, mask=mask)


@keras.saving.register_keras_serializable(package="cargan_tf")
class SpectralNorm(layers.SpectralNormalization):
    """keras.layers.SpectralNormalization that leaves a *frozen* D alone.

    Keras' wrapper re-normalises its kernel in place (kernel / sigma, one power iteration)
    whenever it is called with training=True, even while frozen inside the stacked gan's
    G step. Here that happens only while the layer is trainable (D's own update), so the G
    step changes none of D's variables, as with the frozen BatchNorm.
    """

    def call(self, inputs, training=False):
        return super().call(inputs, training=bool(training) and self.trainable)


@keras.saving.register_keras_serializable(package="cargan_tf")
class MinibatchStdDev(layers.Layer):
    """(N, H, W, C) -> (N, H, W, C + 1): the last channel is the batch's mean feature std.

    ProGAN's minibatch standard deviation over the whole batch: the std of each feature
    across the N images, averaged to one number and broadcast as a constant map. A
    collapsed generator's batch has a std near 0, which D can then see. No weights.
    group_size G > 0 (StyleGAN): the std over groups of G images (image i is in group
    i mod N/G), each image getting its own group's number; N must be a multiple of G.
    synchronized: under tf.distribute, the std of the global batch (all replicas' images);
    with groups, each replica's groups are its own images.
    """

    def __init__(self, epsilon: float = 1e-8, synchronized: bool = False, group_size: int = 0,
                 **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.synchronized = synchronized
        self.group_size = group_size

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if self.group_size:
            return ops.concatenate([inputs, ops.cast(self._group_std(x), inputs.dtype)], -1)
        if self.synchronized:
            n = ops.cast(ops.shape(x)[0], "float32")
            total, squares, n = cross_replica_sum(ops.sum(x, axis=0), ops.sum(x * x, axis=0), n)
            variance = ops.maximum(squares / n - ops.square(total / n), 0.0)
        else:
            variance = ops.var(x, axis=0)
        std = ops.sqrt(variance + self.epsilon)                  # (H, W, C)
        stat = ops.ones_like(x[..., :1]) * ops.mean(std)        # (N, H, W, 1)
        return ops.concatenate([inputs, ops.cast(stat, inputs.dtype)], axis=-1)

    def _group_std(self, x):
        """(N, H, W, C) -> (N, H, W, 1): each image's group std, as StyleGAN computes it."""
        _, h, w, c = ops.shape(x)
        groups = ops.reshape(x, (self.group_size, -1, h, w, c))       # [g, N/G, ...]: strided
        std = ops.sqrt(ops.var(groups, axis=0) + self.epsilon)       # (N/G, H, W, C)
        stat = ops.mean(std, axis=(1, 2, 3))                          # (N/G,)
        stat = ops.tile(stat, (self.group_size,))                     # image i: stat[i % N/G]
        return ops.ones_like(x[..., :1]) * ops.reshape(stat, (-1, 1, 1, 1))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon,
                "synchronized": self.synchronized, "group_size": self.group_size}


__all__ = ["DiscriminatorBatchNorm", "SpectralNorm", "MinibatchStdDev"]
