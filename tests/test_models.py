"""Builders: output shapes and the published parameter counts of each recipe."""

import keras
import numpy as np
import pytest

from cargan_tf import config, models


def counts(preset_name):
    cfg = config.preset(preset_name)
    return (models.parameter_counts(models.build_generator(cfg)),
            models.parameter_counts(models.build_discriminator(cfg)))


def test_aim64_counts_match_keras_summary_of_the_original():
    g, d = counts("aim64")
    assert (g["total"], g["trainable"]) == (5_137_283, 5_135_363)
    assert (d["total"], d["trainable"]) == (4_318_337, 4_316_545)


def test_dcgan64_trainable_counts_match_pytorch_tutorial():
    g, d = counts("dcgan64")
    assert g["trainable"] == 3_576_704
    assert d["trainable"] == 2_765_568


def test_fashion28_counts_match_published_summary():
    g, d = counts("fashion28")
    assert (g["total"], g["trainable"]) == (840_705, 840_321)
    assert d["total"] == 212_865


@pytest.mark.parametrize("size", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_generic_sizes_and_channels(size, channels):
    cfg = config.preset("aim64", image_size=size, channels=channels, base_filters=4,
                        max_filters=16, latent_dim=8)
    g, d = models.build_generator(cfg), models.build_discriminator(cfg)
    z = np.random.default_rng(0).standard_normal((2, 8)).astype("float32")
    images = np.asarray(g(z))
    assert images.shape == (2, size, size, channels)
    assert images.min() >= -1 and images.max() <= 1  # tanh
    scores = np.asarray(d(images))
    assert scores.shape == (2, 1) and ((scores >= 0) & (scores <= 1)).all()


def test_selu128_has_no_batchnorm_and_selu_everywhere():
    cfg = config.preset("selu128", base_filters=4, max_filters=16)
    g = models.build_generator(cfg)
    assert g.output_shape == (None, 128, 128, 3)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in g.layers)
    activations = [layer.get_config()["activation"] for layer in g.layers
                   if isinstance(layer, keras.layers.Activation)]
    assert activations and set(activations) == {"selu"}
    transposed = [layer for layer in g.layers if isinstance(layer, keras.layers.Conv2DTranspose)]
    assert len(transposed) == 5  # 4 -> 8 -> 16 -> 32 -> 64 -> 128: one more block than 64x64


def test_pytorch_dcgan_ends_in_valid_4x4_conv_without_biases():
    cfg = config.preset("dcgan64", base_filters=4, max_filters=32)
    d = models.build_discriminator(cfg)
    last_conv = [layer for layer in d.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    assert last_conv.kernel_size == (4, 4) and last_conv.padding == "valid"
    assert all(not getattr(layer, "use_bias", False) for layer in d.layers
               if isinstance(layer, keras.layers.Conv2D))
