"""Sequential generator and discriminator builders for the presets in config.py.

Generators map z: float32 (N, latent_dim) to images float32 (N, S, S, C) in [-1, 1] (tanh);
discriminators map such images to D(x): float32 (N, 1) in [0, 1] (sigmoid) for loss=bce, or to
a raw score (a logit) for loss=nonsaturating|hinge.

Options (all off by default, so the published recipes and their parameter counts hold):
spectral_norm wraps every D kernel layer in SpectralNorm; minibatch_std adds a MinibatchStdDev
channel before D's last layer.
"""

from __future__ import annotations

import contextlib
import math

import keras
from keras import layers

from cargan_tf.config import RunConfig
from cargan_tf.layers import DiscriminatorBatchNorm, MinibatchStdDev, SpectralNorm


def _synchronized(cfg: RunConfig) -> bool:
    # under tf.distribute, batch statistics over the global batch (as one device computes them)
    return cfg.strategy != "default"


def _bn(cfg: RunConfig) -> layers.BatchNormalization:
    return layers.BatchNormalization(synchronized=_synchronized(cfg))


def _d_weighted(cfg: RunConfig, layer: layers.Layer) -> layers.Layer:
    """D's Conv2D / Dense `layer`, spectrally normalised when cfg.spectral_norm."""
    # the wrapper casts to its input's dtype: give it the layer's policy (float32 outputs stay so)
    return SpectralNorm(layer, dtype=layer.dtype_policy) if cfg.spectral_norm else layer


def _d_output_activation(cfg: RunConfig) -> str | None:
    """sigmoid for the BCE recipes; none (a raw score) for the logit losses."""
    return "sigmoid" if cfg.loss == "bce" else None


def build_generator(cfg: RunConfig) -> keras.Sequential:
    """The generator for cfg.architecture: z (N, latent_dim) -> images (N, S, S, C) in [-1, 1]."""
    builders = {"dcgan": _dcgan_generator, "pytorch_dcgan": _pytorch_generator,
                "fashion28": _fashion_generator}
    return builders[cfg.architecture](cfg)


def build_discriminator(cfg: RunConfig) -> keras.Sequential:
    """The discriminator for cfg.architecture: images (N, S, S, C) -> D(x) (N, 1) in [0, 1]."""
    builders = {"dcgan": _dcgan_discriminator, "pytorch_dcgan": _pytorch_discriminator,
                "fashion28": _fashion_discriminator}
    return builders[cfg.architecture](cfg)


def _activation(name: str) -> layers.Layer:
    if name == "leaky_relu":
        return layers.LeakyReLU(negative_slope=0.2)
    return layers.Activation(name)


def _initializer(activation: str) -> str:
    # SELU self-normalises only with LeCun-normal weights.
    return "lecun_normal" if activation == "selu" else "glorot_uniform"


def _filters(cfg: RunConfig, n_blocks: int) -> list[int]:
    """Filters per block from the widest (4x4) to the narrowest, doubling, capped."""
    return [min(cfg.base_filters * 2 ** (n_blocks - 1 - i), cfg.max_filters)
            for i in range(n_blocks)]


def _dcgan_generator(cfg: RunConfig) -> keras.Sequential:
    # aim64 at 64x64: z -> 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3.
    n_up = int(math.log2(cfg.image_size // 4))
    widths = _filters(cfg, n_up)
    init = _initializer(cfg.g_activation)
    model = keras.Sequential(name="generator")
    model.add(keras.Input(shape=(cfg.latent_dim,), name="z"))
    model.add(layers.Dense(4 * 4 * widths[0], kernel_initializer=init))
    model.add(layers.Reshape((4, 4, widths[0])))                          # 4 x 4 x widths[0]
    if cfg.batchnorm:
        model.add(_bn(cfg))
    model.add(_activation(cfg.g_activation))
    for width in widths[1:]:                                              # side doubles per block
        model.add(layers.Conv2DTranspose(width, cfg.kernel_size, strides=2, padding="same",
                                         use_bias=cfg.use_bias, kernel_initializer=init))
        if cfg.batchnorm:
            model.add(_bn(cfg))
        model.add(_activation(cfg.g_activation))
    model.add(layers.Conv2DTranspose(cfg.channels, cfg.kernel_size, strides=2, padding="same",
                                     activation="tanh", dtype="float32"))  # S x S x C in [-1, 1]
    return model


def _dcgan_discriminator(cfg: RunConfig) -> keras.Sequential:
    # aim64 at 64x64: 64x64x3 -> 32x32x64 -> 16x16x128 -> 8x8x256 -> 4x4x512 -> 1.
    n_down = int(math.log2(cfg.image_size // 4))
    widths = _filters(cfg, n_down)[::-1]
    init = _initializer(cfg.d_activation)
    model = keras.Sequential(name="discriminator")
    model.add(keras.Input(shape=(cfg.image_size, cfg.image_size, cfg.channels), name="image"))
    for i, width in enumerate(widths):                                    # side halves per block
        model.add(_d_weighted(cfg, layers.Conv2D(width, cfg.kernel_size, strides=2,
                                                 padding="same", use_bias=cfg.use_bias,
                                                 kernel_initializer=init)))
        if cfg.batchnorm and cfg.d_batchnorm and i > 0:                   # DCGAN: none on block 1
            model.add(DiscriminatorBatchNorm(synchronized=_synchronized(cfg)))
        model.add(_activation(cfg.d_activation))
        if cfg.dropout:
            model.add(layers.Dropout(cfg.dropout))
    if cfg.minibatch_std:
        model.add(MinibatchStdDev(synchronized=_synchronized(cfg),  # 4 x 4 x (widths[-1]+1)
                                  group_size=cfg.minibatch_std_group))
    model.add(layers.Flatten())                                           # 4 * 4 * widths[-1]
    model.add(_d_weighted(cfg, layers.Dense(1, activation=_d_output_activation(cfg),
                                            dtype="float32")))
    return model


def _pytorch_generator(cfg: RunConfig) -> keras.Sequential:
    # PyTorch DCGAN at 64x64: z as 1x1x100 -> 4x4x512 -> 8x8x256 -> 16x16x128 -> 32x32x64 -> 64x64x3.
    n_up = int(math.log2(cfg.image_size // 4))
    widths = _filters(cfg, n_up)
    k = cfg.kernel_size
    model = keras.Sequential(name="generator")
    model.add(keras.Input(shape=(cfg.latent_dim,), name="z"))
    model.add(layers.Reshape((1, 1, cfg.latent_dim)))
    model.add(layers.Conv2DTranspose(widths[0], k, strides=1, padding="valid", use_bias=False))
    model.add(_bn(cfg))
    model.add(layers.ReLU())
    for width in widths[1:]:
        model.add(layers.Conv2DTranspose(width, k, strides=2, padding="same", use_bias=False))
        model.add(_bn(cfg))
        model.add(layers.ReLU())
    model.add(layers.Conv2DTranspose(cfg.channels, k, strides=2, padding="same", use_bias=False,
                                     activation="tanh", dtype="float32"))
    return model


def _pytorch_discriminator(cfg: RunConfig) -> keras.Sequential:
    # PyTorch DCGAN at 64x64: 64x64x3 -> 32x32x64 -> ... -> 4x4x512 -> 4x4 valid conv -> 1x1x1.
    n_down = int(math.log2(cfg.image_size // 4))
    widths = _filters(cfg, n_down)[::-1]
    k = cfg.kernel_size
    model = keras.Sequential(name="discriminator")
    model.add(keras.Input(shape=(cfg.image_size, cfg.image_size, cfg.channels), name="image"))
    for i, width in enumerate(widths):
        model.add(_d_weighted(cfg, layers.Conv2D(width, k, strides=2, padding="same",
                                                 use_bias=False)))
        if i > 0 and cfg.d_batchnorm:
            model.add(DiscriminatorBatchNorm(synchronized=_synchronized(cfg)))
        model.add(layers.LeakyReLU(negative_slope=0.2))
    if cfg.minibatch_std:
        model.add(MinibatchStdDev(synchronized=_synchronized(cfg),
                                  group_size=cfg.minibatch_std_group))
    model.add(_d_weighted(cfg, layers.Conv2D(1, 4, strides=1, padding="valid", use_bias=False,
                                             activation=_d_output_activation(cfg),
                                             dtype="float32")))  # 1 x 1 x 1
    model.add(layers.Flatten())
    return model


def _fashion_generator(cfg: RunConfig) -> keras.Sequential:
    # Hands-on ML: z -> 7x7x128 -> 14x14x64 (selu) -> 28x28x1 (tanh).
    wide, narrow = 2 * cfg.base_filters, cfg.base_filters
    return keras.Sequential([
        keras.Input(shape=(cfg.latent_dim,), name="z"),
        layers.Dense(7 * 7 * wide),
        layers.Reshape((7, 7, wide)),
        _bn(cfg),
        layers.Conv2DTranspose(narrow, 5, strides=2, padding="same", activation="selu"),
        _bn(cfg),
        layers.Conv2DTranspose(cfg.channels, 5, strides=2, padding="same", activation="tanh",
                               dtype="float32"),
    ], name="generator")


def _fashion_discriminator(cfg: RunConfig) -> keras.Sequential:
    # Hands-on ML: 28x28x1 -> 14x14x64 -> 7x7x128 -> 1.
    narrow, wide = cfg.base_filters, 2 * cfg.base_filters
    return keras.Sequential([
        keras.Input(shape=(28, 28, cfg.channels), name="image"),
        _d_weighted(cfg, layers.Conv2D(narrow, 5, strides=2, padding="same")),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Dropout(cfg.dropout),
        _d_weighted(cfg, layers.Conv2D(wide, 5, strides=2, padding="same")),
        layers.LeakyReLU(negative_slope=0.2),
        layers.Dropout(cfg.dropout),
        *([MinibatchStdDev(synchronized=_synchronized(cfg), group_size=cfg.minibatch_std_group)]
          if cfg.minibatch_std else []),
        layers.Flatten(),
        _d_weighted(cfg, layers.Dense(1, activation="sigmoid", dtype="float32")),
    ], name="discriminator")


@contextlib.contextmanager
def precision_policy(name: str):
    """Build models under Keras' dtype policy `name`, then restore the global policy.

    Layers keep the policy they were built with, so the global setting need not outlive the
    build (notebooks that build other models afterwards are unaffected). Output layers are
    always float32, so images, D's scores and the losses stay float32.
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def parameter_counts(model: keras.Model) -> dict[str, int]:
    """{'total', 'trainable', 'non_trainable'} as in model.summary()."""
    trainable = sum(int(math.prod(w.shape)) for w in model.trainable_weights)
    non_trainable = sum(int(math.prod(w.shape)) for w in model.non_trainable_weights)
    return {"total": trainable + non_trainable, "trainable": trainable,
            "non_trainable": non_trainable}
