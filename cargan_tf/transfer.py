"""Transfer learning: start a new run from a trained generator (and discriminator).

`train --init-from RUN_OR_GENERATOR` copies the weights of a finished run's generator.keras
(the EMA weights when that run kept an EMA) and, when it is a run folder, its
discriminator.keras into the new run's freshly built models, before the first step. The
optimizers start fresh. Applied only when the new run has no checkpoint yet: a resumed run
continues from its own checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras

from cargan_tf.errors import CarganError, ConfigError
from cargan_tf.generate import load_generator, load_model_file, resolve_generator_path
from cargan_tf.runs import RunPaths


def source_models(source: str | os.PathLike) -> tuple[Path, Path | None]:
    """(generator file, discriminator file or None) for a run folder or a generator .keras."""
    path = Path(source).expanduser()
    try:
        generator = resolve_generator_path(path)
    except CarganError as err:  # the reason, reported as a problem with --init-from
        raise ConfigError(f"--init-from {source}: {err}") from err
    discriminator = RunPaths(path).discriminator if path.is_dir() else None
    return generator, discriminator if discriminator and discriminator.exists() else None


def copy_weights(source: keras.Model, target: keras.Model, what: str, origin: Path) -> None:
    """target's weights := source's, after checking that every variable's shape matches."""
    src_shapes = [tuple(w.shape) for w in source.weights]
    dst_shapes = [tuple(w.shape) for w in target.weights]
    if src_shapes != dst_shapes:
        first = next((i for i, (a, b) in enumerate(zip(src_shapes, dst_shapes)) if a != b), None)
        detail = (f"variable {first}: {src_shapes[first]} there vs {dst_shapes[first]} here"
                  if first is not None else f"{len(src_shapes)} vs {len(dst_shapes)} variables")
        raise ConfigError(
            f"--init-from: the {what} in {origin} does not fit this run's {what} ({detail}). "
            "Use the same architecture, image size, channels, latent_dim and filters as that "
            "run (its config.json), e.g. --config RUN/config.json with a new --data")
    for s, d in zip(source.weights, target.weights):
        d.assign(keras.ops.cast(s.value, d.dtype))


def init_from(source: str | os.PathLike, generator: keras.Model, discriminator: keras.Model,
              ema_generator: keras.Model | None = None) -> dict[str, str | None]:
    """Copy the source's weights into the new run's models; returns what was copied from where."""
    g_path, d_path = source_models(source)
    copy_weights(load_generator(g_path), generator, "generator", g_path)
    if ema_generator is not None:
        ema_generator.set_weights(generator.get_weights())
    if d_path is not None:
        copy_weights(load_model_file(d_path), discriminator, "discriminator", d_path)
    return {"generator": str(g_path), "discriminator": str(d_path) if d_path else None}


__all__ = ["init_from", "source_models", "copy_weights"]
