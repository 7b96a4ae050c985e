"""How one training step is taken. Both engines share the models, optimizers and the loop.

- ``keras``: the canonical recipe through Keras' own ``train_on_batch``: D on a real batch,
  D on a fake batch, then G through the stacked gan with D frozen (gan.py).
- ``fused``: the same maths in one compiled ``tf.function`` (three optimizer steps, a fresh
  generator pass for the G step, the same label noise, losses and frozen-D BatchNorm mode),
  without three Python round trips per step.
- ``fused`` with ``schedule="joint"``: the TensorFlow DCGAN tutorial's recipe, a different
  recipe, not the same maths: one generator pass reused by both losses, and one D update on
  the summed real + fake loss.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cargan_tf import latents
from cargan_tf.config import RunConfig
from cargan_tf.gan import StackedGAN, set_trainable
from cargan_tf.losses import l2_penalty


def step_inputs(cfg: RunConfig, step: int, n: int) -> dict[str, np.ndarray]:
    """Noise and labels of global step `step` for a real batch of n: the same for both engines.

    z_fake (n, latent) feeds the fake batch for D; z_gen (n * g_noise_multiplier, latent) the
    G step; y_real / y_fake (n, 1) are D's (noisy) targets.
    """
    z_all = latents.step_noise(cfg.seed, step, n * (1 + cfg.g_noise_multiplier), cfg.latent_dim)
    if cfg.label_noise:
        y_real = latents.step_labels(cfg.seed, step, 0, n, *cfg.real_label_range)
        y_fake = latents.step_labels(cfg.seed, step, 1, n, *cfg.fake_label_range)
    else:
        y_real, y_fake = np.ones((n, 1), np.float32), np.zeros((n, 1), np.float32)
    return {"z_fake": z_all[:n], "z_gen": z_all[n:], "y_real": y_real, "y_fake": y_fake}


class KerasEngine:
    """Three ``train_on_batch`` calls per step on D and the stacked gan."""

    name = "keras"

    def __init__(self, sg: StackedGAN, cfg: RunConfig):
        self.sg, self.cfg = sg, cfg
        self._generate = tf.function(lambda z: sg.generator(z, training=False),
                                     reduce_retracing=True)

    def step(self, real: tf.Tensor, inputs: dict[str, np.ndarray]) -> dict[str, float]:
        # the fake batch comes from G in inference mode, as generator.predict() gave it
        fake = self._generate(inputs["z_fake"])
        d_real = self.sg.train_discriminator(real, inputs["y_real"])
        d_fake = self.sg.train_discriminator(fake, inputs["y_fake"])
        ones = np.ones((len(inputs["z_gen"]), 1), np.float32)
        g = self.sg.train_generator(inputs["z_gen"], ones)
        return {"d_loss_real": d_real["loss"], "d_loss_fake": d_fake["loss"],
                "g_loss": g["bce"], "g_loss_l2": g["loss"] - g["bce"],
                "D(x)": d_real["d_out"], "D(G(z))": d_fake["d_out"]}


def _bce(y_true, y_pred):
    return tf.reduce_mean(keras.losses.binary_crossentropy(y_true, y_pred))


class FusedEngine:
    """One ``tf.function`` per step, with the same optimizers and variables as the stacked gan.

    D's trainable flag is toggled *while the function is traced*, exactly as StackedGAN
    toggles it before each train_on_batch, so every D call in the graph behaves as it does
    in the Keras engine (frozen BatchNorm mode in the G step, dropout active, no updates).
    """

    name = "fused"

    def __init__(self, sg: StackedGAN, cfg: RunConfig, schedule: str = "classic"):
        if schedule not in ("classic", "joint"):
            raise ValueError(f"schedule must be classic or joint, got {schedule!r}")
        self.sg, self.cfg, self.schedule = sg, cfg, schedule
        sg.build_optimizers()
        jit = {"auto": None, "on": True, "off": False}[cfg.jit_compile]
        body = self._classic if schedule == "classic" else self._joint
        self._step = tf.function(body, jit_compile=jit if jit is not None else _auto_jit(),
                                 reduce_retracing=True)

    def step(self, real: tf.Tensor, inputs: dict[str, np.ndarray]) -> dict[str, float]:
        out = self._step(real, inputs["z_fake"], inputs["z_gen"], inputs["y_real"],
                         inputs["y_fake"])
        return {k: float(v) for k, v in out.items()}

    def _d_update(self, images, labels):
        D = self.sg.discriminator
        set_trainable(D, True)
        with tf.GradientTape() as tape:
            pred = D(images, training=True)
            loss = _bce(labels, pred)
            # loss scaling under mixed_float16 (identity otherwise); apply_gradients unscales
            scaled = self.sg.d_optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, D.trainable_variables)
        self.sg.d_optimizer.apply_gradients(zip(grads, D.trainable_variables))
        set_trainable(D, False)
        return loss, tf.reduce_mean(pred)

    def _g_update(self, z):
        G, D = self.sg.generator, self.sg.discriminator
        set_trainable(D, False)
        with tf.GradientTape() as tape:
            pred = D(G(z, training=True), training=True)
            bce = _bce(tf.ones_like(pred), pred)
            l2 = l2_penalty(G, self.cfg.l2_alpha)
            scaled = self.sg.g_optimizer.scale_loss(bce + l2)
        grads = tape.gradient(scaled, G.trainable_variables)
        self.sg.g_optimizer.apply_gradients(zip(grads, G.trainable_variables))
        return bce, l2

    def _classic(self, real, z_fake, z_gen, y_real, y_fake):
        fake = self.sg.generator(z_fake, training=False)
        d_loss_real, d_x = self._d_update(real, y_real)
        d_loss_fake, d_gz = self._d_update(fake, y_fake)
        g_loss, g_l2 = self._g_update(z_gen)
        return {"d_loss_real": d_loss_real, "d_loss_fake": d_loss_fake, "g_loss": g_loss,
                "g_loss_l2": g_l2, "D(x)": d_x, "D(G(z))": d_gz}

    def _joint(self, real, z_fake, z_gen, y_real, y_fake):
        # TF DCGAN tutorial: one G pass, both losses from it, one D update on real + fake.
        G, D = self.sg.generator, self.sg.discriminator
        set_trainable(D, True)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = G(z_fake, training=True)
            real_out = D(real, training=True)
            fake_out = D(fake, training=True)
            d_loss_real = _bce(y_real, real_out)
            d_loss_fake = _bce(y_fake, fake_out)
            d_loss = d_loss_real + d_loss_fake
            g_loss = _bce(tf.ones_like(fake_out), fake_out)
            g_l2 = l2_penalty(G, self.cfg.l2_alpha)
            d_scaled = self.sg.d_optimizer.scale_loss(d_loss)
            g_scaled = self.sg.g_optimizer.scale_loss(g_loss + g_l2)
        d_grads = d_tape.gradient(d_scaled, D.trainable_variables)
        g_grads = g_tape.gradient(g_scaled, G.trainable_variables)
        self.sg.d_optimizer.apply_gradients(zip(d_grads, D.trainable_variables))
        self.sg.g_optimizer.apply_gradients(zip(g_grads, G.trainable_variables))
        set_trainable(D, False)
        return {"d_loss_real": d_loss_real, "d_loss_fake": d_loss_fake, "g_loss": g_loss,
                "g_loss_l2": g_l2, "D(x)": tf.reduce_mean(real_out),
                "D(G(z))": tf.reduce_mean(fake_out)}


def _auto_jit() -> bool:
    # Keras' "auto": XLA only with a GPU; on CPU XLA makes transposed convolutions ~10x slower.
    return bool(tf.config.list_physical_devices("GPU"))


def make_engine(sg: StackedGAN, cfg: RunConfig):
    """The engine cfg.engine names (keras | fused), with cfg.schedule for the fused one."""
    if cfg.engine == "keras":
        return KerasEngine(sg, cfg)
    return FusedEngine(sg, cfg, cfg.schedule)
