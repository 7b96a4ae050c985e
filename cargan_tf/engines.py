"""How one training step is taken. Both engines share the models, optimizers and the loop.

- ``keras``: the canonical recipe through Keras' own ``train_on_batch``: D on a real batch,
  D on a fake batch, then G through the stacked gan with D frozen (gan.py).
- ``fused``: the same maths in one compiled ``tf.function`` (three optimizer steps, a fresh
  generator pass for the G step, the same label noise, losses and frozen-D BatchNorm mode),
  without three Python round trips per step.
- ``fused`` with ``schedule="joint"``: the TensorFlow DCGAN tutorial's recipe, a different
  recipe, not the same maths: one generator pass reused by both losses, and one D update on
  the summed real + fake loss.

Options of the fused engine only: ``loss`` nonsaturating | hinge (D's output is then a raw
score; the history's D(x) and D(G(z)) columns show sigmoid(score) so they stay in [0, 1]), and
``diffaugment`` (augment.py: the same differentiable T on every image D sees, real or fake, in
D's and G's updates; its randomness is a pure function of (seed, step)), and ``ada_target``
(each op applied with a probability p kept in a variable beside the optimizers: after every
step p moves by augment.ada_adjust from the sign of D's outputs on that step's real batch, so
it rises while D memorises the training set), and ``r1_gamma`` (the R1 penalty on the reals D
sees, in D's real update; lazily on every ``r1_every``-th step, weighted that many times).

Under a tf.distribute strategy (distribute.py) the fused step runs on each replica's slice of
the global batch through ``strategy.run``; each replica's loss is divided by the number of
replicas before its gradient, since Keras' optimizer sums gradients across replicas, so the
update equals one device's on the whole batch. The history's numbers are the replicas' mean.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from cargan_tf import distribute, latents
from cargan_tf.augment import ada_adjust, diff_augment
from cargan_tf.config import RunConfig, parse_policy
from cargan_tf.gan import StackedGAN, set_trainable, train_step_keras
from cargan_tf.losses import (
    d_loss,
    d_probability,
    g_loss,
    l2_penalty,
    mode_seeking_penalty,
    r1_penalty,
)


def step_inputs(cfg: RunConfig, step: int, n: int, n_classes: int = 0) -> dict[str, np.ndarray]:
    """Noise and labels of global step `step` for a real batch of n: the same for both engines.

    z_fake (n, latent) feeds the fake batch for D; z_gen (n * g_noise_multiplier, latent) the
    G step; y_real / y_fake (n, 1) are D's (noisy) targets; aug_keys int64 (3, 2) seed
    DiffAugment of the real batch, the fake batch and the G step (used by the fused engine);
    r1_now: whether this step's D update carries the (lazy) R1 penalty (fused engine).
    n_classes > 0 (a conditional run): each z row gets a uniformly drawn class's one-hot
    appended, (latent + n_classes), which G reads and D is shown beside the fake.
    """
    z_all = latents.step_noise(cfg.seed, step, n * (1 + cfg.g_noise_multiplier), cfg.latent_dim)
    if n_classes:
        classes = latents.step_classes(cfg.seed, step, len(z_all), n_classes)
        z_all = np.concatenate([z_all, latents.one_hot(classes, n_classes)], axis=1)
    if cfg.label_noise:
        y_real = latents.step_labels(cfg.seed, step, 0, n, *cfg.real_label_range)
        y_fake = latents.step_labels(cfg.seed, step, 1, n, *cfg.fake_label_range)
    else:
        y_real, y_fake = np.ones((n, 1), np.float32), np.zeros((n, 1), np.float32)
    aug_keys = np.random.default_rng([int(cfg.seed), 13, int(step)]).integers(
        0, 2**62, size=(3, 2), dtype=np.int64)
    return {"z_fake": z_all[:n], "z_gen": z_all[n:], "y_real": y_real, "y_fake": y_fake,
            "aug_keys": aug_keys, "r1_now": bool(cfg.r1_gamma) and step % cfg.r1_every == 0}


class KerasEngine:
    """Three ``train_on_batch`` calls per step on D and the stacked gan (gan.train_step_keras)."""

    name = "keras"

    def __init__(self, sg: StackedGAN, cfg: RunConfig):
        self.sg, self.cfg = sg, cfg

    def step(self, real: tf.Tensor, inputs: dict[str, np.ndarray]) -> dict[str, float]:
        return train_step_keras(self.sg, real, inputs["z_fake"], inputs["z_gen"],
                                inputs["y_real"], inputs["y_fake"])


class FusedEngine:
    """One ``tf.function`` per step, with the same optimizers and variables as the stacked gan.

    D's trainable flag is toggled *while the function is traced*, exactly as StackedGAN
    toggles it before each train_on_batch, so every D call in the graph behaves as it does
    in the Keras engine (frozen BatchNorm mode in the G step, dropout active, no updates).
    """

    name = "fused"

    def __init__(self, sg: StackedGAN, cfg: RunConfig, schedule: str = "classic",
                 strategy: tf.distribute.Strategy | None = None):
        if schedule not in ("classic", "joint"):
            raise ValueError(f"schedule must be classic or joint, got {schedule!r}")
        self.sg, self.cfg, self.schedule = sg, cfg, schedule
        # a projection discriminator (conditional.py) reads the classes beside the images:
        # the real batch arrives as (images, one-hot), a fake's class is the end of its z
        self.conditional = len(sg.discriminator.inputs) > 1
        self.loss = cfg.loss
        self.policy = parse_policy(cfg.diffaugment)
        self.strategy = strategy
        self.replicas = distribute.replicas(strategy) if strategy is not None else 1
        # ADA's augmentation probability: a variable so checkpoints save it (train.py tracks it)
        self.ada_p = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="ada_p") \
            if cfg.ada_target else None
        jit = {"auto": None, "on": True, "off": False}[cfg.jit_compile]
        body = self._classic if schedule == "classic" else self._joint
        if strategy is None:
            self._step = tf.function(body, jit_compile=jit if jit is not None else _auto_jit(),
                                     reduce_retracing=True)
        else:
            # XLA is not asked for around strategy.run (TPUStrategy compiles the step anyway)
            def distributed(*args):
                out = strategy.run(body, args=args)
                return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)
                        for k, v in out.items()}

            self._step = tf.function(distributed, reduce_retracing=True)

    def step(self, real, inputs: dict[str, np.ndarray]) -> dict[str, float]:
        """One step on `real`: a global batch, or (under a strategy) a per-replica value from
        distribute.distribute_dataset; the noise and labels are split the same way."""
        aug_keys = inputs.get("aug_keys")
        if aug_keys is None:
            aug_keys = np.zeros((3, 2), np.int64)
        args = [inputs["z_fake"], inputs["z_gen"], inputs["y_real"], inputs["y_fake"]]
        if self.strategy is not None:
            args = [distribute.split_across_replicas(self.strategy, a) for a in args]
        p = float(self.ada_p.numpy()) if self.ada_p is not None else 1.0
        # a Python bool: two traces at most (with and without the lazy R1 penalty)
        r1_now = bool(inputs.get("r1_now", False))
        out = {k: float(v) for k, v in
               self._step(real, *args, aug_keys, tf.constant(p), r1_now).items()}
        if self.ada_p is not None:
            cfg = self.cfg
            self.ada_p.assign(ada_adjust(p, out["ada_r"], cfg.ada_target, cfg.batch_size,
                                         cfg.ada_kimg))
            out["aug_p"] = p  # the probability this step used
        return out

    def _augment(self, images, key, p):
        if not self.policy:
            return images
        if self.replicas > 1:  # each replica its own draws, not a copy of replica 0's
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            key = tf.random.experimental.stateless_fold_in(key, replica)
        return diff_augment(images, self.policy, key, p if self.ada_p is not None else None)

    def _overfit(self, real_out):
        """ADA's r_t on a real batch: the mean sign of D's logits (bce: of its output - 0.5)."""
        out = tf.cast(real_out, tf.float32)
        return tf.reduce_mean(tf.sign(out - 0.5 if self.loss == "bce" else out))

    def _per_replica(self, loss):
        """The share of `loss` whose gradient, summed over the replicas, is the global one."""
        return loss / self.replicas if self.replicas > 1 else loss

    def _d(self, images, classes, key, p):
        """D on augmented images (and, for a conditional D, their one-hot classes)."""
        images = self._augment(images, key, p)
        D = self.sg.discriminator
        return D(images, training=True) if classes is None else D([images, classes], training=True)

    def _d_real(self, images, classes, key, p, r1_now: bool):
        """D on the augmented real batch, and the R1 penalty on it (0 when not due)."""
        if not r1_now:
            return self._d(images, classes, key, p), 0.0
        D = self.sg.discriminator

        def scores(x):
            return D(x, training=True) if classes is None else D([x, classes], training=True)

        gamma = self.cfg.r1_gamma * self.cfg.r1_every  # lazy: N x the weight every Nth step
        return r1_penalty(scores, self._augment(images, key, p), gamma)

    def _split(self, real):
        """(images, one-hot classes or None) of a real batch."""
        return tuple(real) if self.conditional else (real, None)

    def _classes_of(self, z):
        """The one-hot class part of a conditional z (None when unconditional)."""
        if not self.conditional:
            return None
        return z[:, self.cfg.latent_dim:]

    def _d_update(self, images, labels, real: bool, key, p, classes=None, r1_now=False):
        D = self.sg.discriminator
        set_trainable(D, True)
        with tf.GradientTape() as tape:
            if real:
                pred, r1 = self._d_real(images, classes, key, p, r1_now)
            else:
                pred, r1 = self._d(images, classes, key, p), 0.0
            loss = d_loss(self.loss, pred, labels, real)
            # loss scaling under mixed_float16 (identity otherwise); apply_gradients unscales
            scaled = self.sg.d_optimizer.scale_loss(self._per_replica(loss + r1))
        grads = tape.gradient(scaled, D.trainable_variables)
        self.sg.d_optimizer.apply_gradients(zip(grads, D.trainable_variables))
        set_trainable(D, False)
        return loss, pred

    def _g_update(self, z, key, p):
        G, D = self.sg.generator, self.sg.discriminator
        set_trainable(D, False)
        with tf.GradientTape() as tape:
            fake = G(z, training=True)
            pred = self._d(fake, self._classes_of(z), key, p)
            loss = g_loss(self.loss, pred)
            l2 = l2_penalty(G, self.cfg.l2_alpha)
            extra = mode_seeking_penalty(fake, z, self.cfg.mode_seeking)
            scaled = self.sg.g_optimizer.scale_loss(self._per_replica(loss + l2 + extra))
        grads = tape.gradient(scaled, G.trainable_variables)
        self.sg.g_optimizer.apply_gradients(zip(grads, G.trainable_variables))
        return loss, l2

    def _classic(self, real, z_fake, z_gen, y_real, y_fake, aug_keys, p, r1_now=False):
        fake = self.sg.generator(z_fake, training=self.cfg.fake_batch_mode == "training")
        real, real_classes = self._split(real)
        d_loss_real, real_out = self._d_update(real, y_real, True, aug_keys[0], p, real_classes,
                                               r1_now)
        d_loss_fake, fake_out = self._d_update(fake, y_fake, False, aug_keys[1], p,
                                               self._classes_of(z_fake))
        g_loss_, g_l2 = self._g_update(z_gen, aug_keys[2], p)
        return self._row(d_loss_real, d_loss_fake, g_loss_, g_l2, real_out, fake_out)

    def _row(self, d_loss_real, d_loss_fake, g_loss_, g_l2, real_out, fake_out):
        row = {"d_loss_real": d_loss_real, "d_loss_fake": d_loss_fake, "g_loss": g_loss_,
               "g_loss_l2": g_l2, "D(x)": d_probability(self.loss, real_out),
               "D(G(z))": d_probability(self.loss, fake_out)}
        if self.ada_p is not None:
            row["ada_r"] = self._overfit(real_out)
        return row

    def _joint(self, real, z_fake, z_gen, y_real, y_fake, aug_keys, p, r1_now=False):
        # TF DCGAN tutorial: one G pass, both losses from it, one D update on real + fake.
        G, D = self.sg.generator, self.sg.discriminator
        set_trainable(D, True)
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = G(z_fake, training=True)
            real, real_classes = self._split(real)
            real_out, r1 = self._d_real(real, real_classes, aug_keys[0], p, r1_now)
            fake_out = self._d(fake, self._classes_of(z_fake), aug_keys[1], p)
            d_loss_real = d_loss(self.loss, real_out, y_real, True)
            d_loss_fake = d_loss(self.loss, fake_out, y_fake, False)
            d_loss_ = d_loss_real + d_loss_fake + r1
            g_loss_ = g_loss(self.loss, fake_out)
            g_l2 = l2_penalty(G, self.cfg.l2_alpha)
            g_extra = mode_seeking_penalty(fake, z_fake, self.cfg.mode_seeking)
            d_scaled = self.sg.d_optimizer.scale_loss(self._per_replica(d_loss_))
            g_scaled = self.sg.g_optimizer.scale_loss(
                self._per_replica(g_loss_ + g_l2 + g_extra))
        d_grads = d_tape.gradient(d_scaled, D.trainable_variables)
        g_grads = g_tape.gradient(g_scaled, G.trainable_variables)
        self.sg.d_optimizer.apply_gradients(zip(d_grads, D.trainable_variables))
        self.sg.g_optimizer.apply_gradients(zip(g_grads, G.trainable_variables))
        set_trainable(D, False)
        return self._row(d_loss_real, d_loss_fake, g_loss_, g_l2, real_out, fake_out)


def _auto_jit() -> bool:
    # Keras' "auto": XLA only with a GPU; on CPU XLA makes transposed convolutions ~10x slower.
    return bool(tf.config.list_physical_devices("GPU"))


def make_engine(sg: StackedGAN, cfg: RunConfig, strategy: tf.distribute.Strategy | None = None):
    """The engine cfg.engine names (keras | fused), with cfg.schedule for the fused one;
    `strategy`: run the fused step under it (None: one device)."""
    if cfg.engine == "keras":
        return KerasEngine(sg, cfg)
    return FusedEngine(sg, cfg, cfg.schedule, strategy)
