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
    p.add_argument("--class", dest="class_name", default=None,
                   help="a conditional run: draw this class (a name from its classes.json, or "
                        "an index); default: every class in turn (a grid: a row per class)")
    p.add_argument("--direction", type=int, default=None, metavar="K",
                   help="move every car along SeFa direction K (see the directions command)")
    p.add_argument("--amount", type=float, default=None, metavar="A",
                   help="how far along --direction (z has norm about sqrt(latent_dim); try -6..6)")
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
    if (args.direction is None) != (args.amount is None):
        raise CarganError("--direction K and --amount A go together: which direction, how far")
    if args.direction is not None and args.interpolate_to is not None:
        raise CarganError("--direction moves the cars of --seed; a walk (--interpolate-to) "
                          "takes no direction: give one or the other")
    if args.direction is not None and args.direction < 0:
        raise CarganError(f"--direction {args.direction}: use 0 or more (0: the strongest)")
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
    import numpy as np

    from cargan_tf.conditional import class_names_of
    from cargan_tf.generate import class_index, images_for_seed, interpolation_images

    classes = None if args.class_name is None else class_index(generator, args.class_name)
    names = class_names_of(generator)
    if args.interpolate_to is not None:
        images = interpolation_images(generator, args.seed, args.interpolate_to, max(2, args.n),
                                      classes=classes)
        path = out if out.suffix == ".png" else out / f"interp_{args.seed}_{args.interpolate_to}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        viz.save_png(path, viz.upscale(viz.image_grid(images, cols=len(images)), 128))
        print(path)
        return 0
    directions, amounts = None, None
    if args.direction is not None:
        from cargan_tf.directions import sefa_directions

        directions = sefa_directions(generator).vectors
        if args.direction >= len(directions):
            raise CarganError(f"--direction {args.direction}: this generator has "
                              f"{len(directions)} (0..{len(directions) - 1})")
        amounts = {args.direction: args.amount}
    cols = None
    if args.grid and names and classes is None:  # a row per class, the seed's n cars in each
        cols = args.n
        images = np.concatenate([images_for_seed(generator, args.seed, args.n, k, directions,
                                                 amounts) for k in range(len(names))])
    else:
        images = images_for_seed(generator, args.seed, args.n, classes, directions, amounts)
    if args.grid:
        path = out if out.suffix == ".png" else out / f"grid_seed{args.seed}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        viz.save_grid(path, images, cols=cols)
        print(path)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        viz.save_png(out / f"seed{args.seed}_{i:04d}.png", image)
    print(f"{len(images)} image{'s' if len(images) != 1 else ''} in {out}")
    return 0
