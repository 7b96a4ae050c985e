"""Class-conditional DCGANs (`--set conditional=true`): which kind of car to draw.

The choice made here, and why:

- The **generator** sees z with the class's one-hot appended, (N, latent_dim + K): Mirza &
  Osindero's cGAN input. Its first layer (Dense or the 1x1 -> 4x4 transposed conv) is linear,
  so this equals a learned class embedding added to the first layer's output, with no new
  layer type. G stays a plain keras.Sequential with one input, so every path that takes "a
  generator" (EMA copy, generator.keras, export, LiteRT, serving) works unchanged; a
  ClassConditioning layer at its front (an identity) records latent_dim and the class names,
  so a generator.keras file says by itself which classes it draws.
- The **discriminator** is a projection discriminator (Miyato & Koyama 2018):
  D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, before the sigmoid (bce) or as the raw score
  (nonsaturating, hinge). phi is the unconditional D's body up to its last layer, flattened;
  embed is a bias-free Dense on the one-hot (an embedding lookup). It is a functional model
  with two inputs, images and one-hot classes.
- Fake classes are drawn uniformly (latents.step_classes), so the grids and the
  classifier-agreement benchmark see every class equally often.

The stacked gan for the pair is functional (conditional_gan): D reads G's image and the class
part of G's input. Training runs in the fused engine (engines.py), which passes the real
batch's classes to D.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import layers

from cargan_tf.config import RunConfig
from cargan_tf.latents import one_hot, seed_to_latent
from cargan_tf.layers import SpectralNorm
from cargan_tf.models import (
    _d_output_activation,
    _d_weighted,
    build_discriminator,
    build_generator,
)


@keras.saving.register_keras_serializable(package="cargan_tf")
class ClassConditioning(layers.Layer):
    """An identity on (N, latent_dim + K) at the front of a conditional generator: its config
    holds latent_dim and the K class names, so a saved generator says what its input means
    (the first latent_dim numbers are z, the last K a class's one-hot)."""

    def __init__(self, latent_dim: int, classes: list[str] | tuple[str, ...], **kwargs):
        super().__init__(**kwargs)
        self.latent_dim = int(latent_dim)
        self.classes = tuple(str(c) for c in classes)

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "latent_dim": self.latent_dim,
                "classes": list(self.classes)}


def conditioning_of(generator) -> ClassConditioning | None:
    """The ClassConditioning layer of a conditional generator; None for an unconditional one."""
    for layer in getattr(generator, "layers", ())[:1]:
        if isinstance(layer, ClassConditioning):
            return layer
    return None


def class_names_of(generator) -> tuple[str, ...]:
    """The class names a generator draws, in one-hot order; () for an unconditional one."""
    layer = conditioning_of(generator)
    return layer.classes if layer is not None else ()


def conditional_generator(cfg: RunConfig, classes: tuple[str, ...]) -> keras.Sequential:
    """cfg's generator on z + one-hot: (N, latent_dim + K) -> images (N, S, S, C) in [-1, 1].

    The same blocks as build_generator(cfg), built for an input K wider, behind a
    ClassConditioning layer."""
    k = len(classes)
    body = build_generator(cfg.replace(latent_dim=cfg.latent_dim + k))
    return keras.Sequential([
        keras.Input(shape=(cfg.latent_dim + k,), name="z_and_class"),   # z (100) + one-hot (K)
        ClassConditioning(cfg.latent_dim, classes, name="class_conditioning"),
        *body.layers,                                                    # as build_generator
    ], name="generator")


def _has_kernel(layer: layers.Layer) -> bool:
    return isinstance(layer, SpectralNorm) or hasattr(layer, "kernel")


def conditional_discriminator(cfg: RunConfig, n_classes: int) -> keras.Model:
    """A projection discriminator: [images (N, S, S, C), one-hot (N, K)] -> D(x, y) (N, 1).

    phi(x): build_discriminator(cfg)'s layers before its last weighted layer, flattened
    (aim64: 4x4x512 -> 8192); psi: Dense(1); embed: Dense(K -> dim(phi), no bias).
    """
    body = build_discriminator(cfg)
    cut = max(i for i, layer in enumerate(body.layers) if _has_kernel(layer))
    image = keras.Input(shape=(cfg.image_size, cfg.image_size, cfg.channels), name="image")
    label = keras.Input(shape=(n_classes,), name="class")
    x = image
    for layer in body.layers[:cut]:                       # as build_discriminator, minus its
        x = layer(x)                                      # last layer: 64x64x3 -> 4x4x512
    phi = layers.Flatten()(x) if len(x.shape) > 2 else x  # -> 8192
    score = _d_weighted(cfg, layers.Dense(1, dtype="float32", name="score"))(phi)
    embed = _d_weighted(cfg, layers.Dense(int(phi.shape[-1]), use_bias=False, dtype="float32",
                                          name="class_embedding"))(label)
    projection = layers.Dot(axes=1, dtype="float32", name="projection")([embed, phi])
    logit = layers.Add(dtype="float32")([score, projection])  # psi(phi) + <embed(y), phi>
    activation = _d_output_activation(cfg)
    out = layers.Activation(activation, dtype="float32")(logit) if activation else logit
    return keras.Model([image, label], out, name="discriminator")


def conditional_gan(generator: keras.Model, discriminator: keras.Model) -> keras.Model:
    """The stacked gan of a conditional pair: z + one-hot -> D(G(z, y), y)."""
    width = int(generator.input_shape[-1])
    n_classes = int(discriminator.inputs[1].shape[-1])
    zc = keras.Input(shape=(width,), name="z_and_class")
    label = zc[:, width - n_classes:]
    return keras.Model(zc, discriminator([generator(zc), label]), name="gan")


def build_models(cfg: RunConfig, classes: tuple[str, ...] = ()) -> tuple[keras.Model, keras.Model]:
    """(generator, discriminator) for cfg: the unconditional builders (models.py), or with
    cfg.conditional the conditional pair for `classes` (in one-hot order)."""
    if not cfg.conditional:
        return build_generator(cfg), build_discriminator(cfg)
    return conditional_generator(cfg, classes), conditional_discriminator(cfg, len(classes))


def grid_latents(cfg: RunConfig, classes: tuple[str, ...] = ()) -> tuple:
    """(generator inputs for the training grids, the grid's number of columns or None).

    Unconditional: seed_to_latent(seed, grid_size, latent_dim), a square grid. Conditional:
    one row per class, the same sqrt(grid_size) latents in every row (the columns hold z
    fixed, so a row differs from the next only by its class).
    """
    if not classes:
        return seed_to_latent(cfg.seed, cfg.grid_size, cfg.latent_dim), None
    cols = max(1, math.isqrt(cfg.grid_size))
    z = seed_to_latent(cfg.seed, cols, cfg.latent_dim)
    return with_class_rows(z, len(classes)), cols


def with_class_rows(z, n_classes: int):
    """z (cols, latent_dim) repeated once per class, the class's one-hot appended:
    float32 (n_classes * cols, latent_dim + n_classes), class-major (a grid row per class)."""
    cols = len(z)
    classes = np.repeat(np.arange(n_classes), cols)
    return np.concatenate([np.tile(z, (n_classes, 1)), one_hot(classes, n_classes)], axis=1)


__all__ = ["ClassConditioning", "conditioning_of", "class_names_of", "conditional_generator",
           "conditional_discriminator", "conditional_gan", "build_models", "grid_latents",
           "with_class_rows"]
