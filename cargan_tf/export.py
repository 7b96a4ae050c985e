"""Export a generator as a serving model (latent batch -> uint8 images), and load any export back.

A serving model maps z: float32 (N, latent_dim) to images: uint8 (N, S, S, C), the generator
followed by (g + 1) * 127.5, round, clip to [0, 255], cast. It is written as a .keras file, a
TensorFlow SavedModel folder, and LiteRT flatbuffers (.tflite) in float16 and dynamic-range
variants; each export is checked against the original generator (export_report.json).

`load_serving_model` opens any of them (or a run folder) behind one `ServingModel` interface.
Importing this module is light: TensorFlow and Keras load inside the functions that need them,
and the LiteRT path uses only ai-edge-litert and numpy, so a Lambda image can leave TF out.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile
import threading
from pathlib import Path

import numpy as np

from cargan_tf.errors import CarganError, first_line
from cargan_tf.latents import interpolation_latents, seed_to_latent
from cargan_tf.runs import write_bytes_atomic, write_json_atomic

FORMATS = ("keras", "savedmodel", "litert")
FORMAT_ALIASES = {"tflite": "litert", "saved_model": "savedmodel"}

# What `export` writes inside its --out folder (one name per artefact).
KERAS_FILE = "serving.keras"
SAVEDMODEL_DIR = "serving_savedmodel"
LITERT_FILES = {"float16": "serving_float16.tflite", "dynamic_range": "serving_dynamic_range.tflite"}
REPORT_FILE = "export_report.json"

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


# --- loading: one interface for every kind of serving model ----------------------------------

class ServingModel:
    """A generator behind one interface: latents in, uint8 images out.

    `latent_dim` is the length of z; `image_shape` is (S, S, C). One generation runs at a time
    per model (a lock), which bounds a server's memory and keeps LiteRT's interpreter safe.
    """

    kind = "?"

    def __init__(self, path: Path, latent_dim: int, image_shape: tuple[int, int, int]):
        self.path = path
        self.latent_dim = int(latent_dim)
        self.image_shape = tuple(int(s) for s in image_shape)
        self._lock = threading.Lock()

    def generate(self, z: np.ndarray) -> np.ndarray:
        """z: float32 (N, latent_dim) -> uint8 (N, S, S, C)."""
        z = np.ascontiguousarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"z must have shape (N, {self.latent_dim}), got {z.shape}")
        if len(z) == 0:
            return np.zeros((0, *self.image_shape), np.uint8)
        with self._lock:
            return np.asarray(self._run(z), dtype=np.uint8)

    def images_for_seed(self, seed: int, n: int = 1) -> np.ndarray:
        """uint8 (n, S, S, C): the n images a seed names (seed_to_latent, as everywhere)."""
        return self.generate(seed_to_latent(seed, n, self.latent_dim))

    def interpolation(self, seed_a: int, seed_b: int, steps: int) -> np.ndarray:
        """uint8 (steps, S, S, C) walking from seed_a's first image to seed_b's."""
        return self.generate(interpolation_latents(seed_a, seed_b, steps, self.latent_dim))

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


def load_serving_model(path: str | os.PathLike, num_threads: int | None = None) -> ServingModel:
    """Open a serving model: .tflite, a SavedModel folder, a .keras file or a run folder.

    A raw generator (a run folder or its generator.keras) is wrapped with the same uint8 output
    stage as the exports. `num_threads` applies to LiteRT (default: all CPU cores).
    """
    path = Path(path)
    if path.is_dir() and (path / "saved_model.pb").exists():
        return SavedModelServingModel(path)
    if path.suffix == ".tflite":
        if not path.is_file():
            raise CarganError(f"{path} does not exist: export one with `python -m cargan_tf export`")
        return LiteRTServingModel(path, num_threads)
    from cargan_tf.generate import load_model_file  # here: it imports TensorFlow (not LiteRT's)

    to_uint8 = _to_uint8_layer_class()  # registered before a serving .keras is read
    model = load_model_file(path)  # a run folder or .keras: serving or raw generator
    if not any(isinstance(layer, to_uint8) for layer in model.layers):
        model = build_serving_model(model)
    return KerasServingModel(path, model)


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
    """
    # "keras, tflite" from a notebook: spaces, case and the file suffix tflite are accepted
    formats = tuple(dict.fromkeys(FORMAT_ALIASES.get(f.strip().lower(), f.strip().lower())
                                  for f in formats if f.strip()))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise CarganError(f"unknown export format(s) {unknown}: use {', '.join(FORMATS)}")
    from cargan_tf.generate import generate_images, load_generator  # here: it imports TensorFlow

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    generator = load_generator(source)
    serving = build_serving_model(generator)
    z = check_latents(generator.input_shape[-1])
    reference = generate_images(generator, z)  # the original generator, rounded in numpy

    written: dict[str, Path] = {}
    if "keras" in formats:
        written["keras"] = out / KERAS_FILE
        serving.save(written["keras"])
    if "savedmodel" in formats:
        written["savedmodel"] = out / SAVEDMODEL_DIR
        serving.export(str(written["savedmodel"]), format="tf_saved_model", verbose=False)
    if "litert" in formats:
        for variant, name in LITERT_FILES.items():
            written[f"litert_{variant}"] = out / name
        _write_litert(serving, written["savedmodel"] if "savedmodel" in written else None,
                      {v: out / name for v, name in LITERT_FILES.items()})

    report_path = out / REPORT_FILE
    report = _read_report(report_path)
    report.update(source=str(source), latent_dim=int(z.shape[1]),
                  image_shape=list(reference.shape[1:]),
                  check={"seeds": list(CHECK_SEEDS), "images_per_seed": CHECK_IMAGES_PER_SEED,
                         "latents": "cargan_tf.latents.seed_to_latent(seed, n, latent_dim)",
                         "reference": "the original generator via cargan_tf.generate.generate_images",
                         "units": "uint8 levels (0..255)"})
    exports = report.setdefault("exports", {})
    for name, path in written.items():
        exports[name] = _check_export(name, path, z, reference)
    # exports written earlier into this folder, maybe from another generator (the run trained
    # on since): checked against this one too, so the report never calls a stale file ok
    for name, entry in list(exports.items()):
        if name in written:
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
    write_json_atomic(report_path, report)
    if verbose:
        print(format_report(report, out))
    failed = [name for name in written if not exports[name]["ok"]]
    if failed:
        raise CarganError(f"export(s) {', '.join(failed)} disagree with the original generator "
                          f"beyond the tolerance: see {report_path}")
    return report


def _check_export(name: str, path: Path, z: np.ndarray, reference: np.ndarray) -> dict:
    """The report entry of the export `name` at `path`: its images for z against `reference`."""
    tolerance = TOLERANCES[name]
    try:
        images = load_serving_model(path).generate(z)
    except (CarganError, ValueError) as err:  # another latent size, a file that will not load
        images, problem = None, first_line(err)
    else:
        problem = None if images.shape == reference.shape else \
            f"it makes {images.shape[1:]} images from z of {z.shape[1]}, not {reference.shape[1:]}"
    if problem is not None:
        return {"path": path.name, "bytes": artefact_bytes(path), "tolerance": tolerance,
                "ok": False, "problem": problem}
    diff = np.abs(images.astype(np.int16) - reference.astype(np.int16))
    return {
        "path": path.name, "bytes": artefact_bytes(path),
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


def _write_litert(serving, savedmodel: Path | None, targets: dict[str, Path]) -> None:
    """Convert the serving model to LiteRT: float16 weights, and int8 (dynamic-range) weights."""
    import tensorflow as tf  # here: the LiteRT path (a Lambda image) has no TensorFlow

    with tempfile.TemporaryDirectory() as tmp:
        if savedmodel is None:  # the converter reads a SavedModel; write a throwaway one
            savedmodel = Path(tmp) / "savedmodel"
            serving.export(str(savedmodel), format="tf_saved_model", verbose=False)
        for variant, target in targets.items():
            converter = tf.lite.TFLiteConverter.from_saved_model(str(savedmodel))
            converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range by default
            if variant == "float16":
                converter.target_spec.supported_types = [tf.float16]
            write_bytes_atomic(target, converter.convert())
