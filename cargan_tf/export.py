# Over 450 lines: each export format and its loader back must stay in step (one seed, one image).
"""Export a generator as a serving model (latent batch -> uint8 images), and load any export back.

A serving model maps z: float32 (N, latent_dim) to images: uint8 (N, S, S, C), the generator
followed by (g + 1) * 127.5, round, clip to [0, 255], cast. It is written as a .keras file, a
TensorFlow SavedModel folder, and LiteRT flatbuffers (.tflite) in float16 and dynamic-range
variants; each export is checked against the original generator (export_report.json).

`load_serving_model` opens any of them (or a run folder) behind one `ServingModel` interface.
Beside them, serving_controls.json holds what the design controls need and a .tflite cannot
carry: the length of z, the class names of a conditional generator (its input is z followed
by a class's one-hot) and its first SeFa directions (directions.py), a small array.
Importing this module is light: TensorFlow and Keras load inside the functions that need them,
and the LiteRT path uses only ai-edge-litert and numpy, so a Lambda image can leave TF out.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from cargan_tf import runs
from cargan_tf.errors import CarganError, first_line
from cargan_tf.io import fsync_dir
from cargan_tf.latents import (
    balanced_classes,
    interpolation_latents,
    one_hot,
    seed_to_latent,
    steer,
)

FORMATS = ("keras", "savedmodel", "litert")
FORMAT_ALIASES = {"tflite": "litert", "saved_model": "savedmodel"}

# What `export` writes inside its --out folder (one name per artefact).
KERAS_FILE = "serving.keras"
SAVEDMODEL_DIR = "serving_savedmodel"
LITERT_FILES = {"float16": "serving_float16.tflite", "dynamic_range": "serving_dynamic_range.tflite"}
REPORT_FILE = "export_report.json"
CONTROLS_FILE = "serving_controls.json"
EXPORT_DIRECTIONS = 16  # SeFa directions kept beside an export (the page shows the first few)

# The check: these seeds' first CHECK_IMAGES_PER_SEED images through the original generator
# (cargan_tf.generate, float32 then rounded in numpy) and through each reloaded export.
CHECK_SEEDS = (0, 1, 2, 3)
CHECK_IMAGES_PER_SEED = 16

# Allowed disagreement with the original generator, in uint8 levels (0..255), over the check's
# 64 images. keras and SavedModel run the same float32 graph (measured: 0). float16 stores
# weights as float16 (about 3 significant digits) and computes in float32 (measured: max 1,
# mean <= 0.01). dynamic_range stores weights as int8 (measured: max 3, mean <= 0.31; trained
# quick32 and aim64 generators and random-weight aim64). The bounds leave room for other models;
# docs/readme_serving_section.md lists the measurements.
TOLERANCES = {
    "keras": {"max_abs_diff": 2, "mean_abs_diff": 0.05},
    "savedmodel": {"max_abs_diff": 2, "mean_abs_diff": 0.05},
    "litert_float16": {"max_abs_diff": 4, "mean_abs_diff": 0.1},
    "litert_dynamic_range": {"max_abs_diff": 16, "mean_abs_diff": 1.0},
}


# --- the design controls beside a model ------------------------------------------------------

class Controls:
    """What a serving model offers beyond seeds: latent_dim (the length of z), classes (a
    conditional generator's, in one-hot order; () otherwise) and directions float32
    (D, latent_dim), its first SeFa directions (unit rows; D may be 0)."""

    def __init__(self, latent_dim: int, classes=(), directions: np.ndarray | None = None,
                 eigenvalues=None):
        self.latent_dim = int(latent_dim)
        self.classes = tuple(str(c) for c in classes)
        self.directions = np.zeros((0, self.latent_dim), np.float32) if directions is None \
            else np.asarray(directions, np.float32).reshape(-1, self.latent_dim)
        self.eigenvalues = [float(v) for v in (eigenvalues or [])]

    @property
    def input_dim(self) -> int:
        return self.latent_dim + len(self.classes)

    def to_json(self) -> dict:
        return {"latent_dim": self.latent_dim, "classes": list(self.classes),
                "directions": np.round(self.directions.astype(np.float64), 7).tolist(),
                "eigenvalues": self.eigenvalues,
                "input": "z (latent_dim) followed by a class's one-hot (len(classes))",
                "directions_method": "SeFa (cargan_tf.directions), unit rows"}

    @classmethod
    def from_json(cls, data: object, where: str) -> Controls:
        """Controls from serving_controls.json's contents; CarganError if they are malformed."""
        try:
            latent_dim = data["latent_dim"]
            classes, rows = data["classes"], data["directions"]
            ok = (isinstance(latent_dim, int) and not isinstance(latent_dim, bool)
                  and 0 < latent_dim <= 1 << 16 and isinstance(classes, list)
                  and all(isinstance(c, str) for c in classes) and isinstance(rows, list)
                  and all(isinstance(r, list) and len(r) == latent_dim for r in rows))
            directions = np.asarray(rows, np.float32).reshape(len(rows), latent_dim) if ok else None
            ok = ok and bool(np.isfinite(directions).all())
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise CarganError(f"{where} is not a cargan_tf {CONTROLS_FILE} (latent_dim, classes, "
                              "directions): export the model again")
        eigenvalues = data.get("eigenvalues") if isinstance(data.get("eigenvalues"), list) else []
        return cls(latent_dim, classes, directions, eigenvalues)


def controls_for_generator(generator, n_directions: int = EXPORT_DIRECTIONS) -> Controls:
    """A Keras generator's controls: its z length, classes and first SeFa directions."""
    from cargan_tf.conditional import class_names_of  # here: Keras (not the LiteRT path's)
    from cargan_tf.directions import sefa_directions
    from cargan_tf.generate import latent_dim_of

    try:
        found = sefa_directions(generator, n_directions)
        directions, eigenvalues = found.vectors, list(found.eigenvalues)
    except CarganError:  # a generator without a Dense / transposed conv on z: no directions
        directions, eigenvalues = None, []
    return Controls(latent_dim_of(generator), class_names_of(generator), directions, eigenvalues)


def read_controls(model_path: Path) -> Controls | None:
    """The serving_controls.json beside an export (None if there is none)."""
    path = Path(model_path).parent / CONTROLS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CarganError(f"cannot read {path} ({first_line(err)}): export the model again") \
            from err
    return Controls.from_json(data, str(path))


# --- loading: one interface for every kind of serving model ----------------------------------

class ServingModel:
    """A generator behind one interface: latents in, uint8 images out.

    `latent_dim` is the length of z; `image_shape` is (S, S, C); `controls` (Controls) its
    classes and directions. A conditional model's input is z followed by a class's one-hot
    (`input_dim` numbers). One generation runs at a time per model (a lock), which bounds a
    server's memory and keeps LiteRT's interpreter safe.
    """

    kind = "?"

    def __init__(self, path: Path, latent_dim: int, image_shape: tuple[int, int, int]):
        self.path = path
        self.input_dim = int(latent_dim)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.controls = Controls(self.input_dim)
        self._lock = threading.Lock()

    @property
    def latent_dim(self) -> int:
        return self.controls.latent_dim

    @property
    def classes(self) -> tuple[str, ...]:
        return self.controls.classes

    def set_controls(self, controls: Controls | None, where: str = "") -> None:
        """Use `controls` (None: none beyond seeds); CarganError if they do not fit the model."""
        if controls is None:
            controls = Controls(self.input_dim)
        if controls.input_dim != self.input_dim:
            raise CarganError(f"{where or CONTROLS_FILE} describes a model of {controls.input_dim} "
                              f"inputs (z {controls.latent_dim} + {len(controls.classes)} "
                              f"classes); {self.path} takes {self.input_dim}: export again")
        self.controls = controls

    def generate(self, z: np.ndarray, classes=None) -> np.ndarray:
        """z: float32 (N, latent_dim) -> uint8 (N, S, S, C). A conditional model appends the
        one-hot of `classes` (an index, or int (N,); None: 0, 1, ..., K-1, 0, ...); z of
        input_dim numbers (the one-hot already there) passes as it is."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] not in (self.latent_dim, self.input_dim):
            raise ValueError(f"z must have shape (N, {self.latent_dim}), got {z.shape}")
        if z.shape[1] != self.input_dim:
            k = len(self.classes)
            ids = balanced_classes(len(z), k) if classes is None else \
                np.broadcast_to(np.asarray(classes, np.int64), (len(z),))
            z = np.ascontiguousarray(np.concatenate([z, one_hot(ids, k)], axis=1))
        elif classes is not None and not self.classes:
            raise ValueError("this model has no classes")
        if len(z) == 0:
            return np.zeros((0, *self.image_shape), np.uint8)
        with self._lock:
            return np.asarray(self._run(z), dtype=np.uint8)

    def images_for_seed(self, seed: int, n: int = 1, classes=None,
                        amounts: dict[int, float] | None = None) -> np.ndarray:
        """uint8 (n, S, S, C): the n images a seed names (seed_to_latent, as everywhere), of
        `classes`, moved by `amounts` {direction: distance} along the controls' directions."""
        z = seed_to_latent(seed, n, self.latent_dim)
        if amounts:
            z = steer(z, self.controls.directions, amounts)
        return self.generate(z, classes)

    def interpolation(self, seed_a: int, seed_b: int, steps: int, classes=None,
                      amounts: dict[int, float] | None = None) -> np.ndarray:
        """uint8 (steps, S, S, C) walking from seed_a's first image to seed_b's."""
        z = interpolation_latents(seed_a, seed_b, steps, self.latent_dim)
        if amounts:
            z = steer(z, self.controls.directions, amounts)
        return self.generate(z, classes)

    def _run(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} {self.path} z={self.latent_dim} {self.image_shape}>"


class KerasServingModel(ServingModel):
    """A .keras serving model, or a raw generator (.keras / run folder) wrapped on load."""

    kind = "keras"

    def __init__(self, path: Path, model):
        import tensorflow as tf  # here: the LiteRT path (a Lambda image) has no TensorFlow

        super().__init__(path, model.input_shape[-1], model.output_shape[1:])
        self.model = model
        # one traced graph for every batch size: eager calls cost ~10x more per request
        self._call = tf.function(lambda z: model(z, training=False), input_signature=[
            tf.TensorSpec([None, self.latent_dim], tf.float32)])

    def _run(self, z):
        return self._call(z).numpy()


class SavedModelServingModel(ServingModel):
    """A TensorFlow SavedModel folder written by `export` (its `serve` endpoint)."""

    kind = "savedmodel"

    def __init__(self, path: Path):
        import tensorflow as tf  # here: the LiteRT path (a Lambda image) has no TensorFlow

        self.archive = tf.saved_model.load(str(path))
        if not hasattr(self.archive, "serve"):
            raise CarganError(f"{path} is a SavedModel without a `serve` endpoint: export it "
                              "with `python -m cargan_tf export ... --format savedmodel`")
        spec = self.archive.serve.concrete_functions[0]
        latent_dim = spec.structured_input_signature[0][0].shape[-1]
        image_shape = spec.structured_outputs.shape[1:]
        super().__init__(path, latent_dim, image_shape)

    def _run(self, z):
        return self.archive.serve(z).numpy()


class LiteRTServingModel(ServingModel):
    """A .tflite serving model run by ai-edge-litert's interpreter (no TensorFlow import)."""

    kind = "litert"

    def __init__(self, path: Path, num_threads: int | None = None):
        interpreter_class = litert_interpreter_class()
        try:
            self.interpreter = interpreter_class(model_path=str(path),
                                                 num_threads=num_threads or os.cpu_count() or 1)
        except (ValueError, RuntimeError) as err:
            raise CarganError(f"could not open {path} as a LiteRT model: {err}") from err
        (inp,), (out,) = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        in_shape, out_shape = inp["shape_signature"], out["shape_signature"]
        if (inp["dtype"] != np.float32 or len(in_shape) != 2 or out["dtype"] != np.uint8
                or len(out_shape) != 4):
            raise CarganError(f"{path} is not a cargan serving model (float32 (N, latent_dim) -> "
                              f"uint8 (N, S, S, C)); export one with `python -m cargan_tf export`")
        self._input_index, self._output_index = inp["index"], out["index"]
        self._batch = None
        super().__init__(path, in_shape[1], out_shape[1:])

    def _run(self, z):
        if self._batch != len(z):  # the batch axis is dynamic: resize, then re-plan memory
            self.interpreter.resize_tensor_input(self._input_index, list(z.shape), strict=True)
            self.interpreter.allocate_tensors()
            self._batch = len(z)
        self.interpreter.set_tensor(self._input_index, z)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output_index)


def litert_interpreter_class():
    """ai_edge_litert's Interpreter; tf.lite's (deprecated) only if ai-edge-litert is absent."""
    try:
        from ai_edge_litert.interpreter import Interpreter  # here: an optional dependency
    except ImportError:
        try:
            import tensorflow as tf  # here: only when ai-edge-litert is missing
        except ImportError:
            raise CarganError("running a .tflite model needs the LiteRT runtime: "
                              "pip install ai-edge-litert") from None
        return tf.lite.Interpreter
    return Interpreter


KIND_NAMES = {
    "litert": "a LiteRT model (.tflite), run by ai-edge-litert's interpreter",
    "savedmodel": "a TensorFlow SavedModel folder (its `serve` endpoint)",
    "keras": "a Keras model (.keras file, or a run folder's generator)",
}


def serving_kind(path: str | os.PathLike) -> str:
    """Which kind of model load_serving_model would open at `path`, without opening it."""
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").exists():
        return "savedmodel"
    return "litert" if path.suffix == ".tflite" else "keras"


def provenance(path: str | os.PathLike) -> str:
    """Whether an export_report.json beside `path` lists it, and what its check said."""
    path = Path(path)
    report = _read_report(path.parent / REPORT_FILE)
    for name, entry in (report.get("exports") or {}).items():
        if isinstance(entry, dict) and entry.get("path") == path.name:
            verdict = "agrees with" if entry.get("ok") else "does NOT agree with"
            return (f"listed as {name} in {path.parent / REPORT_FILE}: it {verdict} the generator "
                    f"{report.get('source', '?')}")
    return f"not listed in an {REPORT_FILE} beside it (not checked by `export`)"


def load_serving_model(path: str | os.PathLike, num_threads: int | None = None, *,
                       controls: bool = True) -> ServingModel:
    """Open a serving model: .tflite, a SavedModel folder, a .keras file or a run folder.

    A raw generator (a run folder or its generator.keras) is wrapped with the same uint8 output
    stage as the exports. `num_threads` applies to LiteRT (default: all CPU cores). controls:
    read its classes and directions (serving_controls.json beside an export, or the generator
    itself); False: seeds and raw latents only (export's check, which runs before the file
    beside it describes the new model).
    """
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").exists():
        model = SavedModelServingModel(path)
    elif path.suffix == ".tflite":
        if not path.is_file():
            raise CarganError(f"{path} does not exist: export one with `python -m cargan_tf export`")
        model = LiteRTServingModel(path, num_threads)
    else:
        return _keras_serving_model(path, controls)
    if controls:
        model.set_controls(read_controls(path), str(path.parent / CONTROLS_FILE))
    return model


def _keras_serving_model(path: Path, controls: bool = True) -> KerasServingModel:
    """A .keras serving model or raw generator (a run folder too); its controls come from the
    file beside it, else from the generator inside."""
    from cargan_tf.generate import load_model_file  # here: it imports TensorFlow (not LiteRT's)

    to_uint8 = _to_uint8_layer_class()  # registered before a serving .keras is read
    model = load_model_file(path)  # a run folder or .keras: serving or raw generator
    generator = model
    if any(isinstance(layer, to_uint8) for layer in model.layers):
        generator = next((layer for layer in model.layers if hasattr(layer, "layers")), None)
    else:
        model = build_serving_model(model)
    serving = KerasServingModel(path, model)
    if not controls:
        return serving
    found = None if path.is_dir() else read_controls(path)
    if found is None and generator is not None:
        found = controls_for_generator(generator)
    serving.set_controls(found, str(path.parent / CONTROLS_FILE))
    return serving


# --- building and exporting -------------------------------------------------------------------

@functools.cache
def _to_uint8_layer_class():
    """The output stage as a Keras layer, defined on first use so importing stays light."""
    import keras  # here: the LiteRT path (a Lambda image) has no TensorFlow

    @keras.saving.register_keras_serializable(package="cargan_tf")
    class ToUint8(keras.layers.Layer):
        """float images in [-1, 1] -> uint8 [0, 255]: (x + 1) * 127.5, round half to even, clip.

        The same arithmetic as cargan_tf.viz.to_uint8 (np.rint also rounds half to even).
        """

        def call(self, images):
            levels = keras.ops.round((images + 1.0) * 127.5)
            return keras.ops.cast(keras.ops.clip(levels, 0.0, 255.0), "uint8")

        def compute_output_spec(self, images):
            return keras.KerasTensor(images.shape, dtype="uint8")

    return ToUint8


def build_serving_model(generator):
    """Wrap a generator (z -> float images in [-1, 1]) as z: float32 -> uint8 (N, S, S, C)."""
    import keras  # here: the LiteRT path (a Lambda image) has no TensorFlow

    z = keras.Input(shape=(generator.input_shape[-1],), dtype="float32", name="z")
    to_uint8 = _to_uint8_layer_class()(name="to_uint8")
    images = to_uint8(generator(z, training=False))
    return keras.Model(z, images, name="cargan_serving")


def check_latents(latent_dim: int) -> np.ndarray:
    """float32 (len(CHECK_SEEDS) * CHECK_IMAGES_PER_SEED, latent_dim): the check's inputs."""
    return np.concatenate([seed_to_latent(seed, CHECK_IMAGES_PER_SEED, latent_dim)
                           for seed in CHECK_SEEDS])


def artefact_bytes(path: Path) -> int:
    """Size of a file, or of all files under a folder (a SavedModel)."""
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def export(source: str | os.PathLike, out_dir: str | os.PathLike,
           formats: tuple[str, ...] = FORMATS, verbose: bool = True) -> dict:
    """Export the generator in `source` (run folder or .keras) to `out_dir`; return the report.

    Writes the requested formats (litert = a float16 and a dynamic-range .tflite), reloads each
    through load_serving_model, compares its images for CHECK_SEEDS with the original
    generator's, and writes export_report.json (merged with an earlier report in the folder).
    Raises CarganError, after writing the report, if an export is outside its tolerance.

    Nothing is replaced until every format is written and checked: each goes to a hidden
    staging name in `out_dir` first (so the folder needs room for the old and the new export
    at once). A failure while writing (disk full, read-only folder) removes the staged files
    and raises RunFolderError; the earlier exports and their report are left as they were.
    Then the report stops naming the exports about to be replaced, each staged export is
    renamed over its old one, and the full report is written last, so at every instant the
    report describes files that are there.
    """
    # "keras, tflite" from a notebook: spaces, case and the file suffix tflite are accepted
    formats = tuple(dict.fromkeys(FORMAT_ALIASES.get(f.strip().lower(), f.strip().lower())
                                  for f in formats if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise CarganError(f"unknown export format(s) {unknown}: use {', '.join(FORMATS)}")
    from cargan_tf.generate import generate_images, load_generator  # here: it imports TensorFlow

    out = Path(out_dir)
    generator = load_generator(source)  # first: a bad source leaves no empty --out folder
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise _write_error(out, f"creating {out}", err) from err
    _recover(out)
    serving = build_serving_model(generator)
    z = check_latents(generator.input_shape[-1])
    reference = generate_images(generator, z)  # the original generator, rounded in numpy

    report_path = out / REPORT_FILE
    report = _read_report(report_path)
    exports = report.setdefault("exports", {})
    staged = _write_staged(serving, out, formats)  # name -> (staged path, final path)
    replaced: list[str] = []
    try:
        checked = {name: _check_export(name, tmp, z, reference, shown=final.name)
                   for name, (tmp, final) in staged.items()}
        if any(name in exports for name in staged):
            # the report stops naming the files about to be replaced (it is written again, in
            # full, once they are in place); if this write fails, nothing has been replaced
            for name in staged:
                exports.pop(name, None)
            report["ok"] = False  # incomplete until the renames are done and it is rewritten
            report["replacing"] = sorted(staged)
            runs.write_json_atomic(report_path, report)
        for name in list(staged):
            tmp, final = staged[name]
            _swap_into_place(tmp, final)
            del staged[name]
            replaced.append(name)
    except OSError as err:
        raise _write_error(out, "putting the new exports in place", err, replaced) from err
    finally:
        _remove_staged(staged)

    controls = controls_for_generator(generator)
    try:  # the controls of the exports just put in place (the server and Lambda read them)
        runs.write_json_atomic(out / CONTROLS_FILE, controls.to_json())
    except OSError as err:
        raise _write_error(out, f"writing {CONTROLS_FILE}", err, replaced) from err
    report.pop("replacing", None)
    report["controls"] = {"file": CONTROLS_FILE, "latent_dim": controls.latent_dim,
                          "classes": list(controls.classes),
                          "directions": len(controls.directions)}
    report.update(source=str(source), latent_dim=int(z.shape[1]),
                  image_shape=list(reference.shape[1:]),
                  check={"seeds": list(CHECK_SEEDS), "images_per_seed": CHECK_IMAGES_PER_SEED,
                         "latents": "cargan_tf.latents.seed_to_latent(seed, n, latent_dim)",
                         "reference": "the original generator via cargan_tf.generate.generate_images",
                         "units": "uint8 levels (0..255)"})
    exports.update(checked)
    # exports written earlier into this folder, maybe from another generator (the run trained
    # on since): checked against this one too, so the report never calls a stale file ok
    for name, entry in list(exports.items()):
        if name in checked:
            continue
        path = entry.get("path")
        if name not in TOLERANCES or not path or not (out / path).exists():
            del exports[name]  # its file is gone
            continue
        exports[name] = _check_export(name, out / path, z, reference)
        if not exports[name]["ok"]:
            exports[name]["stale"] = (f"an earlier export that does not match {source}'s "
                                      f"generator: export it again (--format "
                                      f"{name.split('_')[0]})")
    report["ok"] = all(entry["ok"] for entry in exports.values())
    runs.write_json_atomic(report_path, report)
    if verbose:
        print(format_report(report, out))
    failed = [name for name in checked if not exports[name]["ok"]]
    if failed:
        raise CarganError(f"export(s) {', '.join(failed)} disagree with the original generator "
                          f"beyond the tolerance: see {report_path}")
    return report


# --- writing: staged names, then renames --------------------------------------------------------

# Hidden names in the export folder while a format is written: ".serving.tmp-<pid>-<hex>.keras"
# (Keras wants the suffix), and ".serving_savedmodel.old-<pid>-<hex>" for an old SavedModel
# folder during a swap. The pid lets a later export tell a dead writer's leftovers from a live one's.
_STAGED = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>[0-9]+)-[0-9a-f]+(?P<suffix>\.[a-z]+)?$")


def _staging_path(final: Path, kind: str = "tmp") -> Path:
    stem, suffix = (final.stem, final.suffix) if final.suffix in (".keras", ".tflite") else \
        (final.name, "")
    return final.with_name(f".{stem}.{kind}-{os.getpid()}-{secrets.token_hex(4)}{suffix}")


def _write_keras(serving, path: Path) -> None:
    serving.save(path)


def _write_savedmodel(serving, path: Path) -> None:
    serving.export(str(path), format="tf_saved_model", verbose=False)


def _write_litert(savedmodel: Path, variant: str, path: Path) -> None:
    """Convert a serving SavedModel to LiteRT: float16 weights, or int8 (dynamic-range) weights."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range by default
    if variant == "float16":
        converter.target_spec.supported_types = [tf.float16]
    path.write_bytes(converter.convert())


def _write_staged(serving, out: Path, formats: tuple[str, ...]) -> dict[str, tuple[Path, Path]]:
    """Write each format under a staging name in `out`, fsynced; {name: (staged, final)}.

    On any failure the staged files are removed; a full disk, a read-only folder or a
    TensorFlow resource error (its SaveV2 on a full disk) becomes a RunFolderError.
    """
    import tensorflow as tf

    staged: dict[str, tuple[Path, Path]] = {}
    what = "?"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            if "keras" in formats:
                what = KERAS_FILE
                staged["keras"] = (_staging_path(out / KERAS_FILE), out / KERAS_FILE)
                _write_keras(serving, staged["keras"][0])
            savedmodel = None
            if "savedmodel" in formats:
                what = SAVEDMODEL_DIR
                staged["savedmodel"] = (_staging_path(out / SAVEDMODEL_DIR), out / SAVEDMODEL_DIR)
                savedmodel = staged["savedmodel"][0]
                _write_savedmodel(serving, savedmodel)
            if "litert" in formats:
                if savedmodel is None:  # the converter reads a SavedModel: a throwaway one
                    what = "a SavedModel for the LiteRT converter"
                    savedmodel = Path(scratch) / "savedmodel"
                    _write_savedmodel(serving, savedmodel)
                for variant, name in LITERT_FILES.items():
                    what = name
                    staged[f"litert_{variant}"] = (_staging_path(out / name), out / name)
                    _write_litert(savedmodel, variant, staged[f"litert_{variant}"][0])
            what = "the staged exports to disk (fsync)"
            for tmp, _ in staged.values():
                _fsync_tree(tmp)
    except (OSError, tf.errors.OpError) as err:
        _remove_staged(staged)
        raise _write_error(out, f"writing {what}", err) from err
    except BaseException:
        _remove_staged(staged)
        raise
    return staged


def _write_error(out: Path, doing: str, err: BaseException,
                 replaced: list[str] | None = None) -> Exception:
    """A RunFolderError: what failed, what was (not) replaced, and what to do."""
    from cargan_tf.errors import RunFolderError

    if isinstance(err, RunFolderError) and err.__cause__ is not None:
        err = err.__cause__  # write_json_atomic's own wrapping: report the OS's reason
    code = getattr(err, "errno", None)
    kind = type(err).__name__
    if code in (errno.ENOSPC, errno.EDQUOT) or "ResourceExhausted" in kind:
        todo = ("free space on that disk (the folder needs room for the old and the new export "
                "at once), or give another --out")
    elif code in (errno.EROFS, errno.EACCES, errno.EPERM) or "PermissionDenied" in kind:
        todo = "give a writable --out folder"
    else:
        todo = "fix the cause, or give another --out"
    if replaced:
        state = (f"{', '.join(replaced)} were replaced and the other exports are unchanged; "
                 f"{REPORT_FILE} lists only the unchanged ones")
    else:
        state = f"the exports already there and {REPORT_FILE} are unchanged"
    reason = getattr(err, "strerror", None)
    if not reason:  # TensorFlow's errors: "<long path>; No space left on device [Op:SaveV2]"
        text = first_line(err, 2000)
        reason = f"{kind}: {text if len(text) <= 160 else '...' + text[-157:]}"
    return RunFolderError(f"export to {out} failed while {doing} ({reason}); {state}: {todo}, "
                          "then run the command again")


def _fsync_tree(path: Path) -> None:
    """fsync a file, or every file and folder under a folder, so a rename publishes full files."""
    items = [path] if path.is_file() else [*sorted(path.rglob("*")), path]
    for item in items:
        if item.is_file():
            with open(item, "rb") as handle:
                os.fsync(handle.fileno())
        else:
            with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened
                fd = os.open(item, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)


def _swap_into_place(staged: Path, final: Path) -> None:
    """Rename a staged export over the old one.

    A file: one rename(2), atomic (a reader opens the old file or the new one).

    A folder (the SavedModel): rename(2) cannot replace a folder that has files in it, so on
    Linux renameat2(RENAME_EXCHANGE) swaps the two names in one atomic step, and the old
    folder, now under the staging name, is deleted. Where that call is missing (other OSes,
    Drive's FUSE mount), two renames: the old folder aside to .<name>.old-*, the new one into
    place, then the old one deleted. Each rename is atomic, but between them there is an
    instant with no folder at `final` (a reader gets "not found", never a mix of old and new
    files), and a crash in that instant leaves the old folder under its .old- name, which the
    next export puts back before anything else (_recover). Neither way is atomic for a reader
    that is part-way through reading the old folder: it may find files deleted under it.
    """
    if staged.is_dir() and final.is_dir():
        if _exchange(staged, final):
            shutil.rmtree(staged, ignore_errors=True)
            return
        aside = _staging_path(final, "old")
        os.replace(final, aside)
        try:
            os.replace(staged, final)
        except OSError:
            os.replace(aside, final)  # put the old one back
            raise
        shutil.rmtree(aside, ignore_errors=True)
    elif final.is_dir() and not final.is_symlink():
        raise IsADirectoryError(errno.EISDIR, f"{final} is a folder, not an export file", str(final))
    else:
        os.replace(staged, final)
    fsync_dir(final.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Linux renameat2(RENAME_EXCHANGE): swap two names atomically; False where unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EPERM):
        return False  # the filesystem or kernel cannot do it: fall back to two renames
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


def _remove_staged(staged: dict[str, tuple[Path, Path]]) -> None:
    for tmp, _ in staged.values():
        _remove(tmp)
    staged.clear()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is not ours to signal
        return True
    return True


def _recover(out: Path) -> None:
    """Tidy what a killed export left in `out`: put back a SavedModel folder that a swap had
    moved aside, and remove staged files whose writer is gone (a live writer's are kept; a
    writer on another machine sharing the folder is taken as live for an hour)."""
    try:
        leftovers = [(m, p) for p in out.iterdir() if (m := _STAGED.match(p.name))]
    except OSError:
        return
    for match, path in sorted(leftovers, key=lambda mp: _mtime(mp[1]), reverse=True):
        if _pid_alive(int(match["pid"])) and time.time() - _mtime(path) < 3600:
            continue
        final = out / (match["name"] + (match["suffix"] or ""))
        with contextlib.suppress(OSError):
            if match["kind"] == "old" and not final.exists():
                os.replace(path, final)  # a swap died between its two renames
                continue
            _remove(path)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _check_export(name: str, path: Path, z: np.ndarray, reference: np.ndarray,
                  shown: str | None = None) -> dict:
    """The report entry of the export `name` at `path`: its images for z against `reference`.

    `shown`: the file name the report gives (a staged export is checked before its rename)."""
    tolerance = TOLERANCES[name]
    shown = shown or path.name
    try:
        images = load_serving_model(path, controls=False).generate(z)
    except (CarganError, ValueError) as err:  # another latent size, a file that will not load
        images, problem = None, first_line(err)
    else:
        problem = None if images.shape == reference.shape else \
            f"it makes {images.shape[1:]} images from z of {z.shape[1]}, not {reference.shape[1:]}"
    if problem is not None:
        return {"path": shown, "bytes": artefact_bytes(path), "tolerance": tolerance,
                "ok": False, "problem": problem}
    diff = np.abs(images.astype(np.int16) - reference.astype(np.int16))
    return {
        "path": shown, "bytes": artefact_bytes(path),
        "max_abs_diff": int(diff.max()), "mean_abs_diff": round(float(diff.mean()), 4),
        "pixels_off_by_more_than_2": round(float((diff > 2).mean()), 6),
        "tolerance": tolerance,
        "ok": bool(diff.max() <= tolerance["max_abs_diff"]
                   and diff.mean() <= tolerance["mean_abs_diff"]),
    }


def format_report(report: dict, out: Path) -> str:
    """The report as an aligned table: format, path, size, agreement with the original."""
    lines = [f"exports of {report['source']} in {out} (z: {report['latent_dim']}, images: "
             f"{'x'.join(map(str, report['image_shape']))}); |diff| vs the original in uint8 levels:"]
    for name, e in report["exports"].items():
        tol = e["tolerance"]
        status = "ok" if e["ok"] else "STALE" if e.get("stale") else "FAILED"
        detail = f"{status}: {e['problem']}" if "problem" in e else (
            f"max {e['max_abs_diff']:>3} (<= {tol['max_abs_diff']})   "
            f"mean {e['mean_abs_diff']:.3f} (<= {tol['mean_abs_diff']})   {status}")
        lines.append(f"  {name:<21} {e['path']:<30} {e['bytes'] / 1e6:8.2f} MB   {detail}")
        if e.get("stale"):
            lines.append(f"    {e['stale']}")
    lines.append(f"report: {out / REPORT_FILE}")
    return "\n".join(lines)


def _read_report(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
