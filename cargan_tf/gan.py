"""The stacked gan = Sequential([generator, discriminator]) with a frozen discriminator, and
the Keras train_on_batch step on it (train_step_keras): D on real, D on fake, G through D.

Keras 3 reads ``trainable`` when a train function is *traced*, not at compile(). The classic
recipe (compile D, freeze it, compile the gan) therefore leaves D.train_on_batch updating
nothing. StackedGAN sets D's flag right before every train_on_batch, so each train function is
traced in the right state whatever the order of compiling, training, retracing or reloading.

Keras before 3.15 returns from train_on_batch the running mean of the loss and metrics since
their last reset; 3.15 resets them at the start of each call. _train_on_batch resets them first
on older Keras, so the numbers returned (history.csv, plots, progress bar) are the batch's own.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cargan_tf.conditional import conditional_gan
from cargan_tf.config import RunConfig
from cargan_tf.layers import DiscriminatorBatchNorm
from cargan_tf.losses import L2EnhancedGeneratorLoss


def set_trainable(model: keras.Model, flag: bool) -> None:
    """Set model.trainable so it takes effect on every layer.

    Keras skips the assignment when the container's flag already equals `flag` while its layers
    differ (the state a reloaded Sequential is in), so assign the opposite first.
    """
    model.trainable = not flag
    model.trainable = flag


@keras.saving.register_keras_serializable(package="cargan_tf")
class MeanPrediction(keras.metrics.Mean):
    """Mean of the model's output: D(x) on real batches, D(G(z)) on fake ones."""

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_pred, sample_weight=sample_weight)


# Keras >= 3.15 calls reset_metrics() inside train_on_batch itself (a second reset costs time)
_KERAS_RESETS_METRICS = tuple(int(p) for p in keras.version().split(".")[:2]) >= (3, 15)


def _train_on_batch(model: keras.Model, x, y) -> dict[str, float]:
    """model.train_on_batch(x, y) -> this batch's loss and metrics, on every Keras 3."""
    if not _KERAS_RESETS_METRICS:
        model.reset_metrics()
    return model.train_on_batch(x, y, return_dict=True)


def _jit(cfg: RunConfig):
    return {"auto": "auto", "on": True, "off": False}[cfg.jit_compile]


class StackedGAN:
    """D compiled on its own; the gan compiled with D frozen; both optimizers built. Use its
    two train methods (or train_step_keras, which calls them in the classic order)."""

    def __init__(self, generator: keras.Model, discriminator: keras.Model, cfg: RunConfig):
        self.generator = generator
        self.discriminator = discriminator
        self.cfg = cfg
        for layer in discriminator.layers:
            if isinstance(layer, DiscriminatorBatchNorm):
                layer.frozen_statistics = cfg.frozen_d_batchnorm

        set_trainable(discriminator, True)
        discriminator.compile(
            optimizer=keras.optimizers.Adam(cfg.lr_d, beta_1=cfg.beta_1),
            loss=keras.losses.BinaryCrossentropy(),
            metrics=[MeanPrediction(name="d_out")],
            jit_compile=_jit(cfg),
        )
        set_trainable(discriminator, False)
        self.gan = keras.Sequential([generator, discriminator], name="gan") \
            if len(discriminator.inputs) == 1 else conditional_gan(generator, discriminator)
        self.gan.compile(
            optimizer=keras.optimizers.Adam(cfg.lr_g, beta_1=cfg.beta_1),
            loss=L2EnhancedGeneratorLoss(generator, cfg.l2_alpha),
            metrics=[keras.metrics.BinaryCrossentropy(name="bce"), MeanPrediction(name="d_out")],
            jit_compile=_jit(cfg),
        )
        self.build_optimizers()  # once, here: a checkpoint restores into built optimizers
        # D's fake batch: G in inference mode, as generator.predict() gave it; with
        # fake_batch_mode=training, with G's batch statistics (updating its moving ones)
        training = cfg.fake_batch_mode == "training"
        self.fake_batch = tf.function(lambda z: generator(z, training=training),
                                      reduce_retracing=True)

    @property
    def d_optimizer(self) -> keras.optimizers.Optimizer:
        return self.discriminator.optimizer

    @property
    def g_optimizer(self) -> keras.optimizers.Optimizer:
        return self.gan.optimizer

    def build_optimizers(self) -> None:
        """Create both optimizers' slots (before restoring a checkpoint, and in a strategy's
        scope before a distributed step); the constructor calls it."""
        set_trainable(self.discriminator, True)
        if not self.d_optimizer.built:
            self.d_optimizer.build(self.discriminator.trainable_variables)
        set_trainable(self.discriminator, False)
        if not self.g_optimizer.built:
            self.g_optimizer.build(self.generator.trainable_variables)

    def set_learning_rates(self, lr_d: float, lr_g: float) -> None:
        self.d_optimizer.learning_rate.assign(lr_d)
        self.g_optimizer.learning_rate.assign(lr_g)

    def train_discriminator(self, images, labels) -> dict[str, float]:
        """One D update on images (N, S, S, C) in [-1, 1] with labels (N, 1) -> {loss, d_out}."""
        set_trainable(self.discriminator, True)
        if not self.discriminator.trainable_weights:
            raise RuntimeError("the discriminator has no trainable weights; was a layer frozen "
                               "by hand? StackedGAN manages D's trainable flag itself")
        try:
            return _train_on_batch(self.discriminator, images, labels)
        finally:
            set_trainable(self.discriminator, False)

    def train_generator(self, z, labels) -> dict[str, float]:
        """One G update through the frozen D on z (M, latent_dim) -> {loss, bce, d_out}."""
        set_trainable(self.discriminator, False)
        return _train_on_batch(self.gan, z, labels)


def train_step_keras(sg: StackedGAN, real, z_fake, z_gen, y_real, y_fake) -> dict[str, float]:
    """One step of the classic recipe with Keras' own train_on_batch (the Keras engine's step).

    real: a batch float32 (N, S, S, C) in [-1, 1]; z_fake (N, latent) makes D's fake batch;
    z_gen (M, latent) feeds G's step (M = N * g_noise_multiplier); y_real, y_fake (N, 1) are
    D's (noisy) targets. Returns the history.csv fields of this step.
    """
    fake = sg.fake_batch(z_fake)                      # G(z): D's fake batch
    d_real = sg.train_discriminator(real, y_real)     # 1. D on real images, targets ~1
    d_fake = sg.train_discriminator(fake, y_fake)     # 2. D on fake images, targets ~0
    ones = np.ones((len(z_gen), 1), np.float32)       # 3. G through the frozen D: G is paid
    g = sg.train_generator(z_gen, ones)               #    when D says "real" (L2-enhanced BCE)
    return {"d_loss_real": d_real["loss"], "d_loss_fake": d_fake["loss"],
            "g_loss": g["bce"], "g_loss_l2": g["loss"] - g["bce"],
            "D(x)": d_real["d_out"], "D(G(z))": d_fake["d_out"]}


def build_gan(generator: keras.Model, discriminator: keras.Model, cfg: RunConfig) -> StackedGAN:
    """The stacked gan for `generator` and `discriminator`; gan.gan.layers[1] *is* discriminator."""
    return StackedGAN(generator, discriminator, cfg)
