"""The Keras engine's numbers are each batch's own, on every supported Keras.

Keras before 3.15 returns from ``train_on_batch`` the running mean of the loss and metrics since
their last reset, not the batch's values; history.csv, the loss plots and the progress bar
would then show averages. Here every number a train call returns, over several steps, equals
that batch's loss computed independently: the same forward pass (training=True, D frozen in
the G step) through ``stateless_call`` on the weights just before the call, which changes no
variable.
"""

import keras
import numpy as np
import pytest

from cargan_tf.gan import set_trainable
from cargan_tf.losses import l2_penalty

from conftest import fresh, tiny_config

STEPS = 3


def forward(model, x):
    """model(x, training=True) on its current weights, leaving every variable as it was."""
    out, _ = model.stateless_call([v.value for v in model.trainable_variables],
                                  [v.value for v in model.non_trainable_variables], x, training=True)
    return np.asarray(out, np.float32)


def bce(labels, out):
    return float(np.mean(keras.losses.binary_crossentropy(labels, out)))


def expect(where, returned, **wanted):
    for key, value in wanted.items():
        assert float(returned[key]) == pytest.approx(value, rel=1e-5, abs=1e-6), f"{where}: {key}"


@pytest.mark.parametrize("bn_mode", ["inference", "batch"])
def test_every_returned_loss_is_the_batchs_own(bn_mode):
    cfg = tiny_config(frozen_d_batchnorm=bn_mode)
    sg = fresh(cfg)
    d, g = sg.discriminator, sg.generator
    rng = np.random.default_rng(9)
    n, shape = 16, (cfg.image_size, cfg.image_size, cfg.channels)
    for step in range(STEPS):
        real = rng.uniform(-1, 1, (n, *shape)).astype("float32")
        fake = rng.uniform(-1, 1, (n, *shape)).astype("float32")
        y_real = rng.uniform(0.7, 1.0, (n, 1)).astype("float32")
        y_fake = rng.uniform(0.0, 0.3, (n, 1)).astype("float32")
        z = rng.standard_normal((2 * n, cfg.latent_dim)).astype("float32")
        ones = np.ones((2 * n, 1), "float32")
        for what, images, labels in (("real", real, y_real), ("fake", fake, y_fake)):
            set_trainable(d, True)
            out = forward(d, images)
            set_trainable(d, False)
            row = sg.train_discriminator(images, labels)
            expect(f"step {step}, D on {what}", row, loss=bce(labels, out), d_out=float(out.mean()))
        set_trainable(d, False)
        out = forward(sg.gan, z)
        penalty = float(l2_penalty(g, cfg.l2_alpha))
        row = sg.train_generator(z, ones)
        expect(f"step {step}, G", row, bce=bce(ones, out), loss=bce(ones, out) + penalty,
               d_out=float(out.mean()))
    assert int(sg.d_optimizer.iterations) == 2 * STEPS and int(sg.g_optimizer.iterations) == STEPS
