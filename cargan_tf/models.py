"""The generator and discriminator builders: one public function per architecture, each a plain
keras.Sequential with a shape comment per block (as PyTorch's DCGAN example writes them).

    build_generator(cfg)      z: float32 (N, latent_dim) -> images float32 (N, S, S, C) in [-1, 1]
    build_discriminator(cfg)  images -> D(x): float32 (N, 1) in [0, 1] (sigmoid) for loss=bce,
                              or a raw score (a logit) for loss=nonsaturating | hinge

cfg.architecture picks the pair: dcgan (the aim64 family: 5x5 kernels, any power-of-two size),
pytorch_dcgan (PyTorch's DCGAN tutorial), fashion28 (Hands-on ML's Fashion-MNIST DCGAN).
Shape comments show the 64x64 presets with their default widths (base_filters 64, max 512);
each block doubles (G) or halves (D) the side. The custom layers are in layers.py. Options, all
off by default so the published recipes and their parameter counts hold: spectral_norm wraps
every D kernel layer in SpectralNorm; minibatch_std adds a MinibatchStdDev channel before D's
last layer.
"""

from __future__ import annotations

import contextlib
import math

import keras
from keras import layers

from cargan_tf.config import RunConfig
from cargan_tf.env import auto_precision
from cargan_tf.layers import DiscriminatorBatchNorm, MinibatchStdDev, SpectralNorm


def build_generator(cfg: RunConfig) -> keras.Sequential:
    """The generator for cfg.architecture: z (N, latent_dim) -> images (N, S, S, C) in [-1, 1]."""
    return GENERATORS[cfg.architecture](cfg)


def build_discriminator(cfg: RunConfig) -> keras.Sequential:
    """The discriminator for cfg.architecture: images (N, S, S, C) -> D(x) (N, 1)."""
    return DISCRIMINATORS[cfg.architecture](cfg)


# ---- dcgan: the aim64 family -----------------------------------------------------------------

def dcgan_generator(cfg: RunConfig) -> keras.Sequential:
    """Dense to 4x4, then a stride-2 Conv2DTranspose per doubling; BatchNorm (cfg.batchnorm)
    and cfg.g_activation after each hidden layer, tanh at the end."""
    n_up = int(math.log2(cfg.image_size // 4))
    widths = filters_per_block(cfg, n_up)                 # aim64: [512, 256, 128, 64]
    init = _initializer(cfg.g_activation)
    model = keras.Sequential(name="generator")
    model.add(keras.Input(shape=(cfg.latent_dim,), name="z"))
    model.add(layers.Dense(4 * 4 * widths[0], kernel_initializer=init))
    model.add(layers.Reshape((4, 4, widths[0])))          # z (100) -> 4x4x512
    if cfg.batchnorm:
        model.add(_bn(cfg))
    model.add(_activation(cfg.g_activation))
    for width in widths[1:]:                              # 4x4x512 -> 8x8x256 -> 16x16x128
        model.add(layers.Conv2DTranspose(width, cfg.kernel_size, strides=2, padding="same",
                                         use_bias=cfg.use_bias, kernel_initializer=init))
        if cfg.batchnorm:                                 #   -> 32x32x64
            model.add(_bn(cfg))
        model.add(_activation(cfg.g_activation))
    model.add(layers.Conv2DTranspose(cfg.channels, cfg.kernel_size, strides=2, padding="same",
                                     activation="tanh", dtype="float32"))  # 32x32x64 -> 64x64x3
    return model


def dcgan_discriminator(cfg: RunConfig) -> keras.Sequential:
    """A stride-2 Conv2D per halving (BatchNorm from the second block, cfg.d_activation,
    optional dropout), then Flatten and one Dense unit."""
    n_down = int(math.log2(cfg.image_size // 4))
    widths = filters_per_block(cfg, n_down)[::-1]         # aim64: [64, 128, 256, 512]
    init = _initializer(cfg.d_activation)
    model = keras.Sequential(name="discriminator")
    model.add(keras.Input(shape=(cfg.image_size, cfg.image_size, cfg.channels), name="image"))
    for i, width in enumerate(widths):                    # 64x64x3 -> 32x32x64 -> 16x16x128
        model.add(_d_weighted(cfg, layers.Conv2D(width, cfg.kernel_size, strides=2,
                                                 padding="same", use_bias=cfg.use_bias,
                                                 kernel_initializer=init)))
        if cfg.batchnorm and cfg.d_batchnorm and i > 0:   #   -> 8x8x256 -> 4x4x512
            model.add(DiscriminatorBatchNorm(synchronized=_synchronized(cfg)))  # none on block 1
        model.add(_activation(cfg.d_activation))
        if cfg.dropout:
            model.add(layers.Dropout(cfg.dropout))
    if cfg.minibatch_std:
        model.add(MinibatchStdDev(synchronized=_synchronized(cfg),  # 4x4x512 -> 4x4x513
                                  group_size=cfg.minibatch_std_group))
    model.add(layers.Flatten())                           # 4x4x512 -> 8192
    model.add(_d_weighted(cfg, layers.Dense(1, activation=_d_output_activation(cfg),
                                            dtype="float32")))  # 8192 -> 1
    return model


# ---- pytorch_dcgan: PyTorch's DCGAN tutorial --------------------------------------------------

def pytorch_dcgan_generator(cfg: RunConfig) -> keras.Sequential:
    """z as a 1x1 image, a valid 4x4 transposed conv to 4x4, then stride-2 transposed convs;
    BatchNorm + ReLU after each, no biases, tanh at the end."""
    n_up = int(math.log2(cfg.image_size // 4))
    widths = filters_per_block(cfg, n_up)                 # dcgan64: [512, 256, 128, 64]
    k = cfg.kernel_size
    model = keras.Sequential(name="generator")
    model.add(keras.Input(shape=(cfg.latent_dim,), name="z"))
    model.add(layers.Reshape((1, 1, cfg.latent_dim)))     # z (100) -> 1x1x100
    model.add(layers.Conv2DTranspose(widths[0], k, strides=1, padding="valid", use_bias=False))
    model.add(_bn(cfg))                                   # 1x1x100 -> 4x4x512
    model.add(layers.ReLU())
    for width in widths[1:]:                              # 4x4x512 -> 8x8x256 -> 16x16x128
        model.add(layers.Conv2DTranspose(width, k, strides=2, padding="same", use_bias=False))
        model.add(_bn(cfg))                               #   -> 32x32x64
        model.add(layers.ReLU())
    model.add(layers.Conv2DTranspose(cfg.channels, k, strides=2, padding="same", use_bias=False,
                                     activation="tanh", dtype="float32"))  # -> 64x64x3
    return model


def pytorch_dcgan_discriminator(cfg: RunConfig) -> keras.Sequential:
    """Stride-2 convs with LeakyReLU(0.2) (BatchNorm from the second), no biases, then a valid
    4x4 conv to one number."""
    n_down = int(math.log2(cfg.image_size // 4))
    widths = filters_per_block(cfg, n_down)[::-1]         # dcgan64: [64, 128, 256, 512]
    k = cfg.kernel_size
    model = keras.Sequential(name="discriminator")
    model.add(keras.Input(shape=(cfg.image_size, cfg.image_size, cfg.channels), name="image"))
    for i, width in enumerate(widths):                    # 64x64x3 -> 32x32x64 -> 16x16x128
        model.add(_d_weighted(cfg, layers.Conv2D(width, k, strides=2, padding="same",
                                                 use_bias=False)))
        if i > 0 and cfg.d_batchnorm:                     #   -> 8x8x256 -> 4x4x512
            model.add(DiscriminatorBatchNorm(synchronized=_synchronized(cfg)))
        model.add(layers.LeakyReLU(negative_slope=0.2))
    if cfg.minibatch_std:
        model.add(MinibatchStdDev(synchronized=_synchronized(cfg),  # 4x4x512 -> 4x4x513
                                  group_size=cfg.minibatch_std_group))
    model.add(_d_weighted(cfg, layers.Conv2D(1, 4, strides=1, padding="valid", use_bias=False,
                                             activation=_d_output_activation(cfg),
                                             dtype="float32")))  # 4x4x512 -> 1x1x1
    model.add(layers.Flatten())                           # 1x1x1 -> 1
    return model


# ---- fashion28: Hands-on ML's Fashion-MNIST DCGAN ---------------------------------------------

def fashion28_generator(cfg: RunConfig) -> keras.Sequential:
    """Dense to 7x7, two stride-2 transposed convs (SELU, then tanh), BatchNorm between."""
    wide, narrow = 2 * cfg.base_filters, cfg.base_filters  # fashion28: 128, 64
    return keras.Sequential([
        keras.Input(shape=(cfg.latent_dim,), name="z"),
        layers.Dense(7 * 7 * wide),
        layers.Reshape((7, 7, wide)),                     # z (100) -> 7x7x128
        _bn(cfg),
        layers.Conv2DTranspose(narrow, 5, strides=2, padding="same", activation="selu"),
        _bn(cfg),                                         # 7x7x128 -> 14x14x64
        layers.Conv2DTranspose(cfg.channels, 5, strides=2, padding="same", activation="tanh",
                               dtype="float32"),          # 14x14x64 -> 28x28x1
    ], name="generator")


def fashion28_discriminator(cfg: RunConfig) -> keras.Sequential:
    """Two stride-2 convs with LeakyReLU(0.2) and dropout, then one sigmoid unit."""
    narrow, wide = cfg.base_filters, 2 * cfg.base_filters  # fashion28: 64, 128
    return keras.Sequential([
        keras.Input(shape=(28, 28, cfg.channels), name="image"),
        _d_weighted(cfg, layers.Conv2D(narrow, 5, strides=2, padding="same")),  # -> 14x14x64
        layers.LeakyReLU(negative_slope=0.2),
        layers.Dropout(cfg.dropout),
        _d_weighted(cfg, layers.Conv2D(wide, 5, strides=2, padding="same")),    # -> 7x7x128
        layers.LeakyReLU(negative_slope=0.2),
        layers.Dropout(cfg.dropout),
        *([MinibatchStdDev(synchronized=_synchronized(cfg), group_size=cfg.minibatch_std_group)]
          if cfg.minibatch_std else []),                 # 7x7x128 -> 7x7x129
        layers.Flatten(),                                 # 7x7x128 -> 6272
        _d_weighted(cfg, layers.Dense(1, activation="sigmoid", dtype="float32")),  # -> 1
    ], name="discriminator")


GENERATORS = {"dcgan": dcgan_generator, "pytorch_dcgan": pytorch_dcgan_generator,
              "fashion28": fashion28_generator}
DISCRIMINATORS = {"dcgan": dcgan_discriminator, "pytorch_dcgan": pytorch_dcgan_discriminator,
                  "fashion28": fashion28_discriminator}


# ---- the small helpers the builders share ------------------------------------------------------

def filters_per_block(cfg: RunConfig, n_blocks: int) -> list[int]:
    """Filters per block from the widest (4x4) to the narrowest, doubling, capped at
    cfg.max_filters: aim64's 4 blocks are [512, 256, 128, 64]."""
    return [min(cfg.base_filters * 2 ** (n_blocks - 1 - i), cfg.max_filters)
            for i in range(n_blocks)]


def _activation(name: str) -> layers.Layer:
    if name == "leaky_relu":
        return layers.LeakyReLU(negative_slope=0.2)
    return layers.Activation(name)


def _initializer(activation: str) -> str:
    # SELU self-normalises only with LeCun-normal weights.
    return "lecun_normal" if activation == "selu" else "glorot_uniform"


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


@contextlib.contextmanager
def precision_policy(name: str):
    """Build models under Keras' dtype policy `name`, then restore the global policy.

    Layers keep the policy they were built with, so the global setting need not outlive the
    build (notebooks that build other models afterwards are unaffected). Output layers are
    always float32, so images, D's scores and the losses stay float32. "auto" (a preset's,
    before config.finish() settled it) becomes this machine's choice, env.auto_precision().
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(auto_precision()[0] if name == "auto" else name)
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


__all__ = ["build_generator", "build_discriminator", "dcgan_generator", "dcgan_discriminator",
           "pytorch_dcgan_generator", "pytorch_dcgan_discriminator", "fashion28_generator",
           "fashion28_discriminator", "filters_per_block", "precision_policy", "parameter_counts",
           "DiscriminatorBatchNorm", "SpectralNorm", "MinibatchStdDev"]
