"""`python -m cargan_tf restore`: denoise, deblur, upscale or complete an image with a generator."""

from __future__ import annotations

import argparse

import numpy as np

from cargan_tf import inpaint, viz
from cargan_tf.commands.inpaint import add_search_arguments, output_paths
from cargan_tf.errors import CarganError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "restore", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        help="recover a noisy, blurred, low-resolution or incomplete image",
        description="Restoration through the generator (Bora et al. 2017): find the latent z "
                    "whose image, put through the degradation A, best matches the observation "
                    "(|A(G(z)) - y|^2). By default the image is a clean one that is degraded "
                    "here first (seeded), so the comparison shows original / degraded / ours / "
                    "the OpenCV baseline; with --degraded it is the observation itself.")
    add_search_arguments(p)
    p.add_argument("--operator", required=True, choices=inpaint.OPERATORS,
                   help="denoise (Gaussian noise), deblur (known Gaussian blur), sr2 / sr4 "
                        "(super-resolution from area downsampling by 2 / 4), missing (random "
                        "pixels dropped)")
    p.add_argument("--degraded", action="store_true",
                   help="the image is already the observation (for sr2/sr4: S/2 or S/4 pixels "
                        "wide; for missing: black pixels are the missing ones)")
    p.add_argument("--noise-std", type=float, default=0.1,
                   help="denoise: noise standard deviation as a fraction of 255")
    p.add_argument("--blur-sigma", type=float, default=1.0,
                   help="deblur: the Gaussian kernel's standard deviation in pixels")
    p.add_argument("--missing-fraction", type=float, default=0.5,
                   help="missing: the fraction of pixels dropped")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.restarts < 1 or args.steps < 1:
        raise CarganError("--restarts and --steps must be >= 1")
    from cargan_tf.generate import load_generator  # here: it imports TensorFlow (--help must not)

    degradation = inpaint.Degradation(args.operator, noise_std=args.noise_std,
                                      blur_sigma=args.blur_sigma,
                                      missing_fraction=args.missing_fraction)
    generator = load_generator(args.generator)
    size, _, channels = inpaint.generator_shape(generator)
    f = degradation.factor
    if args.degraded:
        original = None
        observed = inpaint.read_image(
            args.image, size // f, channels, resize=args.resize,
            wanted=f"a --degraded {args.operator} observation for this {size}x{size} generator "
                   "is")[None]
        known = None
    else:
        original = inpaint.read_image(args.image, size, channels, resize=args.resize)[None]
        observed, known = degradation.degrade(original, seed=args.seed)
    fit = inpaint.restore(generator, observed, degradation, known, restarts=args.restarts,
                          steps=args.steps, learning_rate=args.lr, seed=args.seed,
                          progress=not args.no_progress)
    baseline = inpaint.opencv_restore(observed, degradation, known)
    shown = np.repeat(np.repeat(observed, f, axis=1), f, axis=2)  # nearest, to the full size
    result_png, comparison_png, folder = output_paths(args.out)
    viz.save_png(result_png, fit.images[0])
    viz.save_png(folder / f"{result_png.stem}_degraded.png", observed[0])
    names = {"denoise": "non-local means", "deblur": "Richardson-Lucy", "sr2": "bicubic",
             "sr4": "bicubic", "missing": "cv2 Telea"}
    columns, labels = [shown, fit.images, baseline], ["degraded", "ours", names[args.operator]]
    if original is not None:
        columns, labels = [original, *columns], ["original", *labels]
    viz.save_png(comparison_png, inpaint.comparison_strip(columns, labels))
    print(f"{result_png}\n{comparison_png}")
    if original is not None:
        ours = float(inpaint.psnr(fit.images, original)[0])
        base = float(inpaint.psnr(baseline, original)[0])
        print(f"PSNR vs the original: ours {ours:.2f} dB, {names[args.operator]} {base:.2f} dB")
    return 0
