"""`python -m cargan_tf export`: a serving model (latents -> uint8 images) as .keras, SavedModel, LiteRT."""

from __future__ import annotations

from pathlib import Path

from cargan_tf.errors import CarganError
from cargan_tf.export import export

FORMATS = ("keras", "savedmodel", "litert")  # cargan_tf.export.FORMATS, without importing it here


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="export the generator for serving (.keras, SavedModel, LiteRT) and check it",
        description="Write a serving model that maps a latent batch float32 (N, latent_dim) to "
                    "uint8 images (N, S, S, C): .keras, a TensorFlow SavedModel folder, and LiteRT "
                    "(.tflite, float16 and dynamic-range variants). Each export is reloaded and "
                    "compared with the original generator; sizes and differences are printed and "
                    "written to OUT/export_report.json.")
    p.add_argument("generator", help="a run folder or a generator .keras file")
    p.add_argument("--format", action="append", choices=(*FORMATS, "all"), default=None,
                   help="what to write (repeatable); default all. litert writes both the float16 "
                        "and the dynamic-range (int8 weights) .tflite")
    p.add_argument("--out", default="export", help="output folder (created if missing)")
    p.set_defaults(func=run)


def run(args) -> int:
    formats = tuple(args.format or ["all"])
    formats = FORMATS if "all" in formats else tuple(dict.fromkeys(formats))
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise CarganError(f"--out {args.out} is a file: give a folder for the exports")
    report = export(args.generator, args.out, formats)
    if not report["ok"]:  # an earlier export in the same folder is stale or failed its check
        raise CarganError(f"some exports in {args.out} do not match this generator (STALE or "
                          "FAILED above): export them again, e.g. --format all")
    return 0
