"""The frozen discriminator in the stacked gan, as Keras 3 really behaves.

D.train_on_batch must update D; gan.train_on_batch must update G and leave every D variable
(kernels, biases, BatchNorm gamma/beta and moving statistics) bit-identical: with and without
XLA, whatever the order of compiling and training, after a retrace, and after save/reload.
"""

import warnings

import keras
import numpy as np
import pytest

from cargan_tf import models
from cargan_tf.gan import build_gan, set_trainable

from conftest import tiny_config

RNG = np.random.default_rng(0)


def snapshot(model):
    return [np.array(v.numpy(), copy=True) for v in model.weights]


def changed(before, after):
    return [not np.array_equal(a, b) for a, b in zip(before, after)]


def batch(cfg, n=16):
    real = RNG.uniform(-1, 1, (n, cfg.image_size, cfg.image_size, cfg.channels)).astype("float32")
    z = RNG.standard_normal((2 * n, cfg.latent_dim)).astype("float32")
    return real, z


def make(cfg):
    return build_gan(models.build_generator(cfg), models.build_discriminator(cfg), cfg)


def assert_d_trains_and_gan_freezes_it(sg, cfg, n=16):
    real, z = batch(cfg, n)
    d0 = snapshot(sg.discriminator)
    sg.train_discriminator(real, np.ones((n, 1), "float32"))
    d1 = snapshot(sg.discriminator)
    assert all(changed(d0, d1)), "every D variable (BN moving statistics too) must update"
    g0 = snapshot(sg.generator)
    sg.train_generator(z, np.ones((2 * n, 1), "float32"))
    assert not any(changed(d1, snapshot(sg.discriminator))), "the gan step must not touch D"
    assert all(changed(g0, snapshot(sg.generator))), "the gan step must update all of G"


def test_classic_recipe_leaves_d_untrained_in_keras3():
    """The trap this package guards against: compile D, freeze, compile gan, never toggle."""
    cfg = tiny_config()
    g, d = models.build_generator(cfg), models.build_discriminator(cfg)
    d.compile(optimizer="adam", loss="binary_crossentropy")
    d.trainable = False
    gan = keras.Sequential([g, d])
    gan.compile(optimizer="adam", loss="binary_crossentropy")
    real, _ = batch(cfg)
    before = snapshot(d)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d.train_on_batch(real, np.ones((16, 1), "float32"))
    assert not any(changed(before, snapshot(d)))


@pytest.mark.parametrize("jit", ["off", "on"])
def test_stacked_gan_trains_d_and_freezes_it_in_the_gan(jit):
    cfg = tiny_config(jit_compile=jit)
    sg = make(cfg)
    assert_d_trains_and_gan_freezes_it(sg, cfg)
    assert_d_trains_and_gan_freezes_it(sg, cfg)  # and again, after both functions exist


def test_order_of_training_does_not_matter():
    cfg = tiny_config()
    sg = make(cfg)
    real, z = batch(cfg)
    d0 = snapshot(sg.discriminator)
    sg.train_generator(z, np.ones((32, 1), "float32"))  # gan traced first
    assert not any(changed(d0, snapshot(sg.discriminator)))
    assert_d_trains_and_gan_freezes_it(sg, cfg)


def test_a_new_batch_shape_retraces_in_the_right_state():
    cfg = tiny_config()
    sg = make(cfg)
    assert_d_trains_and_gan_freezes_it(sg, cfg, n=16)
    assert_d_trains_and_gan_freezes_it(sg, cfg, n=8)  # e.g. a smaller last batch


@pytest.mark.parametrize("jit", ["off", "on"])
def test_after_save_and_reload_the_gan_uses_the_reloaded_d(tmp_path, jit):
    cfg = tiny_config(jit_compile=jit)
    sg = make(cfg)
    assert_d_trains_and_gan_freezes_it(sg, cfg)
    set_trainable(sg.discriminator, True)  # save D unfrozen (as the trainer does)
    sg.generator.save(tmp_path / "g.keras")
    sg.discriminator.save(tmp_path / "d.keras")
    g2 = keras.saving.load_model(tmp_path / "g.keras")
    d2 = keras.saving.load_model(tmp_path / "d.keras")
    for a, b in zip(snapshot(sg.discriminator), snapshot(d2)):
        np.testing.assert_array_equal(a, b)
    sg2 = build_gan(g2, d2, cfg)
    assert sg2.gan.layers[1] is d2 and sg2.gan.layers[0] is g2
    assert_d_trains_and_gan_freezes_it(sg2, cfg)


def gan_loss_after_poisoning(mode, poison):
    """The gan's training loss from fixed weights, with D's moving statistics poisoned or not."""
    cfg = tiny_config(frozen_d_batchnorm=mode)
    keras.utils.set_random_seed(1)
    sg = make(cfg)
    bn = [layer for layer in sg.discriminator.layers
          if isinstance(layer, models.DiscriminatorBatchNorm)]
    assert bn, "the tiny discriminator must have BatchNorm for this test"
    if poison:
        for layer in bn:
            layer.moving_mean.assign(layer.moving_mean + 3.0)
            layer.moving_variance.assign(layer.moving_variance * 25.0)
    z = np.random.default_rng(3).standard_normal((32, cfg.latent_dim)).astype("float32")
    d0 = snapshot(sg.discriminator)
    loss = sg.train_generator(z, np.ones((32, 1), "float32"))["loss"]
    assert not any(changed(d0, snapshot(sg.discriminator)))
    return loss


def test_inference_mode_uses_moving_statistics():
    assert gan_loss_after_poisoning("inference", False) != \
        pytest.approx(gan_loss_after_poisoning("inference", True), rel=1e-3)


def test_batch_mode_uses_batch_statistics():
    assert gan_loss_after_poisoning("batch", False) == \
        pytest.approx(gan_loss_after_poisoning("batch", True), rel=1e-6)


def test_d_trains_even_when_its_layers_were_frozen_behind_a_trainable_container():
    cfg = tiny_config()
    sg = make(cfg)
    real, _ = batch(cfg)
    set_trainable(sg.discriminator, True)
    for layer in sg.discriminator.layers:
        layer.trainable = False
    # Keras' setter quirk: the container says trainable while its layers are not (the state a
    # reloaded Sequential is in), and `d.trainable = True` alone would change nothing.
    sg.discriminator.trainable = True
    assert not sg.discriminator.trainable_weights
    before = snapshot(sg.discriminator)
    sg.train_discriminator(real, np.ones((16, 1), "float32"))
    assert all(changed(before, snapshot(sg.discriminator)))
