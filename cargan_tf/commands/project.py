"""`python -m cargan_tf project`: put a photo into a trained generator's latent space, then edit
it there (along a latent direction, or toward a class)."""

from __future__ import annotations

import argparse

from cargan_tf.errors import CarganError


def register(subparsers) -> None:
    from cargan_tf.controls import LEARNING_RATE, RESTARTS, STEPS  # no TensorFlow at import

    p = subparsers.add_parser(
        "project", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="find a photo's latent (projection) and edit it along a direction or toward a class",
        description="Projects the photo (centre-cropped and resized to the generator's size) "
                    "with the latent search inpainting uses, its pixels plus the photo judge's "
                    "features when that is installed, then draws edits of the projection. "
                    "Writes comparison.png (photo | projection | edits), projection.png and "
                    "latent.npy into --out.")
    p.add_argument("generator", help="a run folder or a generator .keras file")
    p.add_argument("--image", required=True, help="the photo (PNG, JPEG, ...)")
    p.add_argument("--out", default="project_out", help="output folder")
    p.add_argument("--direction", type=int, default=None, metavar="K",
                   help="edit along SeFa direction K (see the directions command)")
    p.add_argument("--class", dest="class_name", default=None,
                   help="a conditional run: edit toward this class instead")
    p.add_argument("--amounts", default=None,
                   help="comma-separated, with = when the first is negative "
                        "(--amounts=-4,0,4): distances along --direction (default -4,0,4), "
                        "or fractions of the way to --class (default 0,0.5,1)")
    p.add_argument("--steps", type=int, default=STEPS, help="Adam steps on the latent")
    p.add_argument("--restarts", type=int, default=RESTARTS, help="random starting latents")
    p.add_argument("--lr", type=float, default=LEARNING_RATE, help="Adam's learning rate on z")
    p.add_argument("--seed", type=int, default=0, help="seeds the starting latents")
    p.add_argument("--no-judge", action="store_true",
                   help="pixels only, even where the photo judge is installed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    from cargan_tf.directions import parse_amounts

    if args.restarts < 1 or args.steps < 1:
        raise CarganError("--restarts and --steps must be >= 1")
    if args.direction is None and args.class_name is None:
        args.direction = 0  # the strongest direction
    if args.direction is not None and args.class_name is not None:
        raise CarganError("edit along --direction or toward --class: give one of the two")
    amounts = parse_amounts(args.amounts) if args.amounts else None
    # here: TensorFlow, which `--help` must not import
    from cargan_tf import controls
    from cargan_tf.generate import class_index, load_generator
    from cargan_tf.inpaint import generator_shape, read_image

    generator = load_generator(args.generator)
    target = None if args.class_name is None else class_index(generator, args.class_name)
    size, _, channels = generator_shape(generator)
    photo = read_image(args.image, size, channels, resize=True)
    projection = controls.project(generator, photo, steps=args.steps, restarts=args.restarts,
                                  learning_rate=args.lr, judge=False if args.no_judge else None,
                                  seed=args.seed, progress=not args.no_progress)
    edits = controls.edit(generator, projection, direction=args.direction, target_class=target,
                          amounts=amounts)
    if amounts is None:
        amounts = controls.DIRECTION_AMOUNTS if target is None else controls.CLASS_AMOUNTS
    strip = controls.edit_strip(projection, edits,
                                controls.edit_labels(generator, args.direction, target, amounts))
    written = controls.write_projection(args.out, projection, strip)
    print("\n".join(map(str, written)))
    from cargan_tf.conditional import class_names_of

    names = class_names_of(generator)
    kind = f"; looks most like {names[projection.class_index]}" if names else ""
    print(f"pixel loss {projection.pixel_loss:.4f} (photo judge "
          f"{'used' if projection.judge else 'not used: pixels only'}){kind}")
    return 0
