"""Load a trained generator and turn seeds into images (the path every consumer shares)."""

from __future__ import annotations

import os
import stat
import zipfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import cargan_tf.layers  # noqa: F401  registers the custom layers for deserialisation
from cargan_tf.conditional import build_models, class_names_of, conditioning_of
from cargan_tf.config import RunConfig
from cargan_tf.errors import CarganError, first_line
from cargan_tf.latents import (
    balanced_classes,
    interpolation_latents,
    one_hot,
    seed_to_latent,
    steer,
)
from cargan_tf.models import precision_policy
from cargan_tf.runs import RunPaths, latest_checkpoint, read_json
from cargan_tf.viz import to_uint8


def resolve_generator_path(run_or_file: str | os.PathLike) -> Path:
    """A run folder (its generator.keras) or a .keras file -> the generator file's path."""
    path = Path(run_or_file)
    if path.is_dir():
        candidate = RunPaths(path).generator
        if not candidate.exists() and not RunPaths(path).config.exists():
            raise CarganError(f"{path} is not a run folder (no config.json, no generator.keras): "
                              "pass a run folder, a .keras file, or (to serve) an export file "
                              "or SavedModel folder inside an export folder")
        if not candidate.exists():
            raise CarganError(f"{path} has no generator.keras yet: finish training (rerun the "
                              "train command to resume) or pass a .keras file")
        return candidate
    if not path.exists():
        raise CarganError(f"{path} does not exist: pass a run folder or a generator .keras file")
    if path.suffix != ".keras":
        raise CarganError(f"{path} is not a .keras file: pass a run folder or generator.keras")
    return path


_EXPORTS_HINT = ("pass the run folder or its generator.keras (the exports in an export folder "
                 "are for `serve` and export.load_serving_model)")


def load_model_file(run_or_file: str | os.PathLike):
    """Any Keras model from a .keras file (a run folder: its generator.keras), compile=False;
    a file Keras cannot read is a CarganError, not a traceback."""
    path = resolve_generator_path(run_or_file)
    _check_keras_archive(path)  # a junk file is a clear message, not Keras' 'File not found'

    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError, TypeError, KeyError, EOFError, zipfile.BadZipFile) as err:
        raise CarganError(f"could not load {path} as a cargan_tf model ({first_line(err)}): "
                          f"{_EXPORTS_HINT}") from err


def _check_keras_archive(path: Path) -> None:
    """A .keras file is a zip archive: anything else (empty, cut short, another kind of file)
    is a CarganError that says so, where Keras would report "File not found"."""
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block the read
            raise CarganError(f"{path} is not a regular file: pass a run folder or a generator "
                              ".keras file")
        size = path.stat().st_size
        is_zip = zipfile.is_zipfile(path)
    except OSError as err:
        raise CarganError(f"cannot read {path} ({err.strerror or err}): check that the file "
                          "is there and readable") from err
    if not is_zip:
        what = "an empty file" if size == 0 else f"{size} bytes that are not a zip archive"
        raise CarganError(f"{path} is not a Keras model: it is {what} (a .keras file is a zip "
                          "archive; this one is damaged, cut short by a full disk or an "
                          "interrupted copy, or another kind of file): copy or save it again, "
                          "or pass the run folder it came from")


def generator_from_checkpoint(run_dir: str | os.PathLike,
                              checkpoint: str | os.PathLike | None = None):
    """The generator of a run's newest checkpoint (its EMA copy when the run keeps one, as
    generator.keras would hold): a run still training, or stopped early, can be sampled.
    checkpoint: one of the run's checkpoint folders instead of the newest (snapshots)."""
    paths = RunPaths(run_dir)
    latest = Path(checkpoint) if checkpoint is not None else latest_checkpoint(paths)
    if latest is None or not paths.config.exists():
        raise CarganError(f"{run_dir} has no generator.keras and no checkpoint yet: train it "
                          "for an epoch first, or pass a .keras file")
    cfg = RunConfig.from_json(paths.config.read_text(encoding="utf-8"))
    classes = tuple(read_json(paths.classes)["classes"]) if cfg.conditional else ()
    with precision_policy(cfg.precision):
        generator = build_models(cfg, classes)[0]
    name = "ema_generator" if cfg.ema_decay else "generator"
    status = tf.train.Checkpoint(**{name: generator}).read(str(latest / "weights"))
    status.expect_partial()  # D and the optimizers are in there too
    status.assert_existing_objects_matched()
    state = read_json(latest / "state.json")
    # A checkpoint the caller named says nothing about whether training finished.
    if checkpoint is not None:
        why = ""
    elif paths.generator.exists():
        why = "generator.keras is older than its newest checkpoint (training unfinished); "
    else:
        why = "generator.keras does not exist yet (training unfinished); "
    print(f"{run_dir}: {why}using the {name.replace('_', ' ')} of checkpoint {latest.name} "
          f"(epoch {state['epoch']}, batch {state['batch']})", flush=True)
    return generator


def _checkpoint_is_newer(paths: RunPaths) -> bool:
    """True while a run trains on past its generator.keras (or has none yet)."""
    if not paths.generator.exists():
        return True
    latest = latest_checkpoint(paths)
    return latest is not None and \
        (latest / "state.json").stat().st_mtime > paths.generator.stat().st_mtime


def load_generator(run_or_file: str | os.PathLike):
    """The keras generator from a run folder or .keras file (compile=False: inference only).
    A run folder whose newest checkpoint is newer than its generator.keras (training
    unfinished, or extended with more epochs) gives that checkpoint's generator, and says so.
    A discriminator or a serving export given by mistake is a CarganError that says so."""
    run = Path(run_or_file)
    if run.is_dir() and _checkpoint_is_newer(RunPaths(run)):
        return generator_from_checkpoint(run)
    path = resolve_generator_path(run_or_file)
    model = load_model_file(path)
    inputs, outputs = model.input_shape, model.output_shape
    if not (isinstance(inputs, tuple) and len(inputs) == 2
            and isinstance(outputs, tuple) and len(outputs) == 4):
        raise CarganError(f"{path} is not a generator: it maps {inputs} to {outputs}, not "
                          "latents (N, latent_dim) to images (N, S, S, C); a discriminator? "
                          f"{_EXPORTS_HINT}")
    if str(model.outputs[0].dtype).endswith("uint8"):
        raise CarganError(f"{path} is a serving export (uint8 images out): {_EXPORTS_HINT}")
    return model


def latent_dim_of(generator) -> int:
    """The length of z (a conditional generator's input is z plus a class one-hot)."""
    layer = conditioning_of(generator)
    return layer.latent_dim if layer is not None else int(generator.input_shape[-1])


def class_index(generator, name_or_index: str | int) -> int:
    """A class of a conditional generator by name (or index) -> its index; CarganError else."""
    names = class_names_of(generator)
    if not names:
        raise CarganError("this generator is not class-conditional (train with --set "
                          "conditional=true): it has no classes to choose from")
    if isinstance(name_or_index, str) and name_or_index in names:
        return names.index(name_or_index)
    if str(name_or_index).isdigit() and int(name_or_index) < len(names):
        return int(name_or_index)
    raise CarganError(f"class {name_or_index!r} is not one of this generator's: "
                      f"{', '.join(names)}")


def generator_inputs(generator, z: np.ndarray, classes=None) -> np.ndarray:
    """What the generator takes for latents z (N, latent_dim): z itself, or for a conditional
    generator z with the one-hot of `classes` appended (an int for all rows, int64 (N,) per row;
    None: 0, 1, ..., K-1, 0, ...). z already as wide as the input passes through."""
    names = class_names_of(generator)
    if not names or z.shape[1] == int(generator.input_shape[-1]):
        if classes is not None and not names:
            raise CarganError("this generator is not class-conditional: it has no classes")
        return z
    ids = balanced_classes(len(z), len(names)) if classes is None else \
        np.broadcast_to(np.asarray(classes, np.int64), (len(z),))
    return np.concatenate([z, one_hot(ids, len(names))], axis=1)


def generate_images(generator, z: np.ndarray, batch_size: int = 64, classes=None) -> np.ndarray:
    """uint8 (N, S, S, C) images for latents z: float32 (N, latent_dim) (a conditional
    generator: see generator_inputs for `classes`)."""
    z = generator_inputs(generator, np.asarray(z, np.float32), classes)
    out = [np.asarray(generator(z[i:i + batch_size], training=False))
           for i in range(0, len(z), batch_size)]
    return to_uint8(np.concatenate(out)) if out else np.zeros((0,), np.uint8)


def images_for_seed(generator, seed: int, n: int = 1, classes=None,
                    directions: np.ndarray | None = None,
                    amounts: dict[int, float] | None = None) -> np.ndarray:
    """uint8 (n, S, S, C): the n images a seed names (the same in CLI, server and exports),
    of `classes` (conditional generators), moved by `amounts` {k: distance} along
    `directions` (D, latent_dim) (directions.py)."""
    z = seed_to_latent(seed, n, latent_dim_of(generator))
    if amounts:
        z = steer(z, directions, amounts)
    return generate_images(generator, z, classes=classes)


def interpolation_images(generator, seed_a: int, seed_b: int, steps: int,
                         classes=None) -> np.ndarray:
    """uint8 (steps, S, S, C) walking the latent arc from seed_a's image to seed_b's."""
    z = interpolation_latents(seed_a, seed_b, steps, latent_dim_of(generator))
    return generate_images(generator, z, classes=classes)
