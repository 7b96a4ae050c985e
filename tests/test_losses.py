"""The L2-enhanced generator loss: value, gradient, and a crossentropy part that is not zero."""

import keras
import numpy as np
import tensorflow as tf

from cargan_tf import config, losses, models


def tiny_generator():
    cfg = config.preset("aim64", image_size=32, base_filters=4, max_filters=16, latent_dim=8)
    return models.build_generator(cfg)


def test_l2_term_equals_a_hand_computation():
    g = tiny_generator()
    transposed = [layer for layer in g.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert len(transposed) == 3
    by_hand = sum(0.5 * np.sum(np.square(layer.kernel.numpy())) for layer in transposed[:-1])
    alpha = 5e-4
    assert np.isclose(float(losses.l2_penalty(g, alpha)), alpha * by_hand, rtol=1e-6)
    assert float(losses.l2_penalty(g, 0.0)) == 0.0


def test_l2_gradient_is_alpha_times_kernel_and_skips_the_output_layer():
    g = tiny_generator()
    alpha = 1e-2
    kernels = losses.penalised_kernels(g)
    last = [layer for layer in g.layers if isinstance(layer, keras.layers.Conv2DTranspose)][-1]
    with tf.GradientTape() as tape:
        value = losses.l2_penalty(g, alpha)
    grads = tape.gradient(value, [*kernels, last.kernel])
    for kernel, grad in zip(kernels, grads[:-1]):
        np.testing.assert_allclose(grad.numpy(), alpha * kernel.numpy(), rtol=1e-5, atol=1e-9)
    assert grads[-1] is None


def test_loss_is_bce_plus_penalty_and_bce_part_is_not_zero():
    g = tiny_generator()
    y_true = np.ones((4, 1), "float32")
    y_pred = np.array([[0.2], [0.4], [0.6], [0.9]], "float32")
    loss = losses.L2EnhancedGeneratorLoss(g, alpha=5e-4)
    bce = float(keras.losses.BinaryCrossentropy()(y_true, y_pred))
    assert bce > 0.1
    assert np.isclose(float(loss(y_true, y_pred)), bce + float(losses.l2_penalty(g, 5e-4)),
                      rtol=1e-6)


def test_the_original_categorical_crossentropy_bug_is_identically_zero():
    # One sigmoid unit under *categorical* crossentropy: the softmax-style normalisation makes
    # every prediction 1.0 of its single class, so the loss never moves. Ours is binary.
    y_true = np.ones((3, 1), "float32")
    y_pred = np.array([[0.1], [0.5], [0.9]], "float32")
    # (zero up to Keras' epsilon clipping, whatever the prediction)
    assert float(keras.losses.CategoricalCrossentropy()(y_true, y_pred)) < 1e-6
    assert float(keras.losses.BinaryCrossentropy()(y_true, y_pred)) > 0.1
