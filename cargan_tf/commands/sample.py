"""`python -m cargan_tf sample`: images or a grid from a trained generator for a seed."""

from __future__ import annotations

from pathlib import Path

from cargan_tf import viz
from cargan_tf.errors import CarganError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample", help="write N generated images, or one grid, for a seed",
        description="Generate images from a run folder or a generator .keras file. A seed names "
                    "the same images everywhere (CLI, notebooks, server, exports).")
    p.add_argument("generator", help="a run folder or a generator .keras file")
    p.add_argument("--seed", type=int, default=0, help="which images (a non-negative integer)")
    p.add_argument("--n", type=int, default=16, help="how many images (1..1024)")
    p.add_argument("--grid", action="store_true", help="write one grid PNG instead of N files")
    p.add_argument("--interpolate-to", type=int, default=None, metavar="SEED_B",
                   help="instead: a strip of --n images walking from --seed to SEED_B")
    p.add_argument("--out", default="samples_out",
                   help="output folder (N files), or a .png path with --grid/--interpolate-to")
    p.set_defaults(func=run)


def run(args) -> int:
    if not 1 <= args.n <= 1024:
        raise CarganError(f"--n {args.n}: use 1..1024")
    if args.seed < 0:
        raise CarganError(f"--seed {args.seed}: use a non-negative integer")
    if args.interpolate_to is not None and args.interpolate_to < 0:
        raise CarganError(f"--interpolate-to {args.interpolate_to}: give the seed to walk to, a "
                          "non-negative integer")
    out = Path(args.out)
    one_file = args.grid or args.interpolate_to is not None
    if out.suffix.lower() in IMAGE_SUFFIXES and (out.suffix != ".png" or not one_file):
        raise CarganError(
            f"--out {out}: " + ("the grid and the strip are written as PNG: give a .png path "
                                "or a folder" if one_file else
                                f"{args.n} images need a folder, not a file name (or add "
                                "--grid for one picture)"))
    if out.exists() and not out.is_dir() and not one_file:
        raise CarganError(f"--out {out} is a file: give a folder for the images")
    # here: generate imports TensorFlow, which `--help` must not
    from cargan_tf.generate import load_generator

    generator = load_generator(args.generator)
    try:
        return _write(args, generator, out)
    except CarganError:
        raise
    except OSError as err:  # a read-only or full folder: a message, not a traceback
        where = err.filename or out
        raise CarganError(f"cannot write to {where} ({err.strerror or err}): give --out a "
                          "folder you can write to (and room on its disk)") from err


def _write(args, generator, out: Path) -> int:
    from cargan_tf.generate import images_for_seed, interpolation_images

    if args.interpolate_to is not None:
        images = interpolation_images(generator, args.seed, args.interpolate_to, max(2, args.n))
        path = out if out.suffix == ".png" else out / f"interp_{args.seed}_{args.interpolate_to}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        viz.save_png(path, viz.upscale(viz.image_grid(images, cols=len(images)), 128))
        print(path)
        return 0
    images = images_for_seed(generator, args.seed, args.n)
    if args.grid:
        path = out if out.suffix == ".png" else out / f"grid_seed{args.seed}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        viz.save_grid(path, images)
        print(path)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        viz.save_png(out / f"seed{args.seed}_{i:04d}.png", image)
    print(f"{len(images)} image{'s' if len(images) != 1 else ''} in {out}")
    return 0
