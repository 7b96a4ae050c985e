"""`python -m cargan_tf inpaint`: fill a hole in an image with a trained generator."""

from __future__ import annotations

import argparse
from pathlib import Path

from cargan_tf import inpaint, masks, viz
from cargan_tf.errors import CarganError
from cargan_tf.inpaint import (  # TensorFlow only inside its functions: --help stays fast
    BLEND_METHODS,
    DEFAULT_BLEND,
    LEARNING_RATE,
    PRIOR_WEIGHT,
    RESTARTS,
    STEPS,
)


def add_search_arguments(p) -> None:
    """The latent-search flags inpaint and restore share."""
    p.add_argument("--generator", required=True, help="a run folder or a generator .keras file")
    p.add_argument("--image", required=True, help="the image file (PNG, JPEG, ...)")
    p.add_argument("--out", required=True,
                   help="output folder (result.png, comparison.png, ...), or a .png path for "
                        "the result (the comparison goes beside it as <name>_comparison.png)")
    p.add_argument("--resize", action="store_true",
                   help="centre-crop and resize the image to the generator's size (otherwise "
                        "a different size is an error)")
    p.add_argument("--restarts", type=int, default=RESTARTS,
                   help="random starting latents per image, searched together")
    p.add_argument("--steps", type=int, default=STEPS, help="Adam steps on the latents")
    p.add_argument("--lr", type=float, default=LEARNING_RATE, help="Adam's learning rate on z")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the starting latents (and random masks / degradations)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def output_paths(out: str) -> tuple[Path, Path, Path]:
    """(result.png, comparison.png, folder) for --out, a folder or a .png path."""
    out_path = Path(out)
    if out_path.suffix.lower() == ".png":
        folder = out_path.parent
        result, comparison = out_path, out_path.with_name(f"{out_path.stem}_comparison.png")
    else:
        folder = out_path
        result, comparison = folder / "result.png", folder / "comparison.png"
    folder.mkdir(parents=True, exist_ok=True)
    return result, comparison, folder


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "inpaint", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="fill a hole in an image by searching the generator's latent space",
        description="Semantic inpainting (Yeh et al. 2017): find the latent whose image best "
                    "matches the known pixels around the hole (plus the discriminator's "
                    "realism score), then blend its pixels into the hole. Writes the result and "
                    "a comparison: original / masked / ours / cv2.inpaint (Telea).")
    add_search_arguments(p)
    p.add_argument("--mask", default="center",
                   help="the hole: center[:FRACTION] (area, default 0.25), boxes, strokes, left, "
                        "right, or a mask image (nonzero = hole, resized with nearest)")
    p.add_argument("--discriminator", default=None,
                   help="a discriminator .keras file (default: the run folder's, if any)")
    p.add_argument("--prior-weight", type=float, default=PRIOR_WEIGHT,
                   help="weight of the discriminator's log(1 - D(G(z))) term (0: ignore D)")
    p.add_argument("--blend", default=DEFAULT_BLEND, choices=BLEND_METHODS,
                   help="how the fill joins the known pixels: Poisson (cv2.seamlessClone), a "
                        "feathered edge, or a hard paste")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.restarts < 1 or args.steps < 1:
        raise CarganError("--restarts and --steps must be >= 1")
    from cargan_tf.generate import load_generator  # here: it imports TensorFlow (--help must not)

    generator = load_generator(args.generator)
    size, _, channels = inpaint.generator_shape(generator)
    discriminator = None
    if args.prior_weight > 0:
        discriminator = inpaint.load_discriminator(args.discriminator or (
            args.generator if Path(args.generator).is_dir() else None))
    image = inpaint.read_image(args.image, size, channels, resize=args.resize)[None]
    hole = masks.parse_mask(args.mask, size, seed=args.seed)[None]
    fit = inpaint.inpaint(generator, image, hole, discriminator=discriminator,
                          prior_weight=args.prior_weight, restarts=args.restarts,
                          steps=args.steps, learning_rate=args.lr, blend_method=args.blend,
                          seed=args.seed, progress=not args.no_progress)
    hole = inpaint.check_holes(hole, 1, size)
    telea = inpaint.opencv_inpaint(image, hole, "telea")
    result_png, comparison_png, folder = output_paths(args.out)
    viz.save_png(result_png, fit.images[0])
    masks.save_mask(folder / f"{result_png.stem}_mask.png", hole[0])
    strip = inpaint.comparison_strip(
        [image, inpaint.masked_view(image, hole), fit.images, telea],
        ["original", "masked", "ours", "cv2 Telea"])
    viz.save_png(comparison_png, strip)
    print(f"{result_png}\n{comparison_png}")
    print(f"contextual loss {float(fit.context_loss[0]):.4f} (restart {int(fit.restart[0])}, "
          f"D {'used' if discriminator is not None else 'not used'})")
    return 0
