"""`python -m cargan_tf evaluate`: score a generator (FID, KID, precision/recall, diversity,
coverage, memorisation) against real images and write metrics.json."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cargan_tf.errors import CarganError

FEATURE_CHOICES = ("domain", "photo", "inception", "pixels", "toycars", "fashion_mnist")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="score a generator's samples against real images into metrics.json",
        description="Score N samples of a run's generator against N real images: FID, KID "
                    "(± std), precision/recall, a diversity ratio and class coverage, written to "
                    "metrics.json in the run folder, and a memorisation check (are samples "
                    "closer to training images than new images are?) with a picture of the "
                    "closest pairs. Numbers compare runs only at the same --n "
                    "with the same features (metrics.json records the features' hash). Photos "
                    "are judged by the packaged photo judge (offline); the domain extractors "
                    "(toycars, fashion_mnist) are trained once on first use "
                    "and cached in $CARGAN_CACHE/extractors (default ~/.cache/cargan_tf). "
                    "Inception uses Keras' ImageNet weights, not the reference TF-FID network: "
                    "its numbers compare runs, not papers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("generator", metavar="RUN_OR_GENERATOR",
                   help="a run folder or a generator .keras file")
    p.add_argument("--features", default="domain", choices=FEATURE_CHOICES,
                   help="domain: the data's own judge (the toycars or fashion_mnist CNN; for "
                        "photos and other image folders the packaged photo judge); photo: that "
                        "judge by name; inception: InceptionV3 from a local weights file; "
                        "pixels: 16x16 thumbnails (no weights; the fallback when nothing else "
                        "is available)")
    p.add_argument("--n", type=int, default=5000,
                   help="samples and real images to score (5000 for numbers to compare)")
    p.add_argument("--data", default=None,
                   help="real images: toycars, fashion_mnist[:FOLDER] or an image folder; "
                        "default: the run's config")
    p.add_argument("--floor", action="store_true",
                   help="also score a second, disjoint real set against the first: the best "
                        "value any generator can reach at this --n")
    p.add_argument("--baseline", default=None, metavar="METRICS_JSON",
                   help="also print a reference run's scores (its metrics.json, scored with the "
                        "same features and --n) and this run's FID relative to it")
    p.add_argument("--inception-weights", default=None, metavar="H5",
                   help="InceptionV3 no-top weights file (default: $CARGAN_INCEPTION_WEIGHTS, "
                        "then Keras' cache ~/.keras/models)")
    p.add_argument("--allow-download", action="store_true",
                   help="download the Inception weights (about 84 MB) if no local copy exists")
    p.add_argument("--held-out", default=None, metavar="FOLDER",
                   help="real images of the same kind the run never trained on, for the "
                        "memorisation check (default: toycars' held-out draw; for other data "
                        "each training image's nearest other training image stands in)")
    p.add_argument("--no-memorisation", action="store_true",
                   help="skip the memorisation check (it embeds the whole training set)")
    p.add_argument("--out", default=None,
                   help="where to write the JSON (default: RUN/metrics.json)")
    p.set_defaults(func=run)


def check_writable(out: Path) -> None:
    if out.is_dir():
        raise CarganError(f"--out {out} is a folder: give a file name, e.g. {out / 'metrics.json'}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CarganError(f"--out {out}: cannot create {out.parent} "
                          f"({err.strerror or err})") from err
    if not os.access(out.parent, os.W_OK):
        raise CarganError(f"--out {out}: {out.parent} is not writable")


def run(args) -> int:
    if args.n < 2:
        raise CarganError(f"--n {args.n}: use at least 2 (5000 for numbers to compare)")
    if args.baseline and not Path(args.baseline).is_file():
        raise CarganError(f"--baseline {args.baseline}: no such file (a metrics.json of the "
                          "reference run)")
    if args.features == "inception" and not args.allow_download:
        # asked for by name: no quiet fallback to pixel features (the training loop has one)
        # here: features imports TensorFlow, which `--help` must not
        from cargan_tf.features import find_inception_weights, inception_weights_missing_message

        found = find_inception_weights(args.inception_weights)
        if found is None or not found.is_file():
            raise CarganError(f"--features inception: {inception_weights_missing_message()}")
    # here: evaluate imports TensorFlow, which `--help` must not
    from cargan_tf.evaluate import baseline_lines, evaluate_run, read_baseline, summary_lines

    if args.baseline:  # checked before minutes of scoring, not after
        read_baseline(args.baseline)
    if args.out:
        check_writable(Path(args.out))
    if args.held_out and not Path(args.held_out).is_dir():
        raise CarganError(f"--held-out {args.held_out}: no such folder (give a folder of real "
                          "images the run did not train on)")

    result, path = evaluate_run(
        args.generator, features=args.features, n=args.n, data=args.data, floor=args.floor,
        weights=args.inception_weights, allow_download=args.allow_download, out=args.out,
        memorisation=not args.no_memorisation, held_out=args.held_out)
    lines = summary_lines(result)
    if args.baseline:
        lines += baseline_lines(result, args.baseline)
    for line in lines:
        print(line)
    print(path)
    return 0
