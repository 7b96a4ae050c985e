"""FID at more samples than the held-out set has: against the full training set, and at N -> infinity.

    python benchmarks/fid_sample_size.py --train TRAIN --held HELD --sizes 500,1000,2000,5000,10000 \
        --run photo64cpu=runs/photo64cpu/s1@30342 --run quick32=runs/q32/s1@13455 \
        --baseline quick32 --out benchmarks/results/photo64cpu_fid_full_s1.json

fid_floor.py scores 500 samples against the 500 held-out photos, and at that size FID's upward
bias (about 8.6 for real photos against real photos) squeezes every ratio towards 1. Two ways
the field measures with less bias, both here:
- **against the full training set** (StyleGAN2-ADA's `fid50k_full`: many samples against every
  image the generator learnt from): the reference is every photo in --train, and each run draws
  the largest of --sizes samples; its FID is reported at each size, on the first N latents of
  evaluate.EVAL_SEED (so N = 500 draws exactly the samples every other table scores);
- **FID at infinitely many samples** (Chong & Forsyth 2020, "Effectively Unbiased FID"): FID is
  linear in 1/N, so a least-squares line through the sizes' FIDs, read at 1/N = 0, removes the
  samples' share of the bias (the reference's, at len(--train) photos, stays).
--held gives the real photos' own numbers against the same reference: photos the runs never saw,
at sizes up to all of them, and their line's value at infinity (the reference's own bias plus any
difference between the folders): the floor a perfect generator would reach here. Each run's
`fid_inf_above_floor` is its FID-at-infinity minus that one. A run that copies training photos
scores low against the training set: read these with the memorisation ratio `evaluate` prints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from fid_floor import add_ratios, add_run_arguments, checkpoint_at, image_shape_of, runs_of  # noqa: E402  (a sibling script)

METRICS = ("fid_at_largest", "fid_inf", "fid_inf_above_floor")


def parse_sizes(text: str) -> list[int]:
    """'500,1000,2000' -> [500, 1000, 2000], with the error a user needs otherwise."""
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        sizes = []
    if len(sizes) < 2 or sizes[0] < 2:
        raise SystemExit(f"--sizes {text!r}: give two or more sample counts of at least 2, "
                         "comma-separated, e.g. 500,1000,2000,5000")
    return sizes


def fid_at_infinity(sizes: list[int], fids: list[float]) -> float:
    """The intercept of the least-squares line FID = a + b / N (Chong & Forsyth 2020)."""
    import numpy as np

    _, intercept = np.polyfit(1.0 / np.asarray(sizes, np.float64), np.asarray(fids), 1)
    return float(intercept)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="the photos the runs trained on: the reference")
    parser.add_argument("--held", required=True, help="real photos the runs never saw")
    parser.add_argument("--features", default="photo", help="the judge (evaluate's --features)")
    parser.add_argument("--sizes", default="500,1000,2000,5000,10000", type=parse_sizes,
                        help="sample counts, comma-separated; the largest is drawn per run")
    parser.add_argument("--held-steps", type=int, default=5,
                        help="the held photos are scored at this many evenly spaced sizes")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    runs = runs_of(args)

    import numpy as np

    from cargan_tf import features, metrics
    from cargan_tf.data.sources import load_images
    from cargan_tf.evaluate import EVAL_SEED
    from cargan_tf.generate import generate_images, generator_from_checkpoint, latent_dim_of
    from cargan_tf.latents import seed_to_latent

    size, channels = image_shape_of(runs)
    judge = features.get_extractor(args.features, size, channels)
    train = load_images(args.train, size, channels, progress=False)
    reference = metrics.gaussian_stats(judge.features(train))
    held = judge.features(load_images(args.held, size, channels, progress=False))
    if len(held) < 2 * args.held_steps:
        raise SystemExit(f"--held has {len(held)} images: it needs at least "
                         f"{2 * args.held_steps} (two per --held-steps)")

    def curve(feats: np.ndarray, sizes: list[int]) -> dict:
        fids = [metrics.frechet_distance_from_stats(*metrics.gaussian_stats(feats[:n]), *reference)
                for n in sizes]
        return {"sizes": sizes, "fid": fids, "fid_inf": fid_at_infinity(sizes, fids)}

    held_sizes = [len(held) * k // args.held_steps for k in range(1, args.held_steps + 1)]
    floor = curve(held, held_sizes)
    result = {"train": str(args.train), "reference_images": len(train), "held": str(args.held),
              "floor": floor, "runs": {}}
    print(f"held-out photos vs all {len(train)} training photos: FID "
          + ", ".join(f"{f:.2f} at {n}" for n, f in zip(held_sizes, floor["fid"]))
          + f"; at infinity {floor['fid_inf']:.2f}", flush=True)

    for name, run, step in runs:
        generator = generator_from_checkpoint(run, checkpoint_at(run, step))
        z = seed_to_latent(EVAL_SEED, args.sizes[-1], latent_dim_of(generator))
        row = curve(judge.features(generate_images(generator, z)), args.sizes)
        row.update(run=str(run), step=step, fid_at_largest=row["fid"][-1],
                   fid_inf_above_floor=row["fid_inf"] - floor["fid_inf"])
        result["runs"][name] = row
        print(f"{name} ({run}@{step}): FID " + ", ".join(
            f"{f:.2f} at {n}" for n, f in zip(args.sizes, row["fid"]))
            + f"; at infinity {row['fid_inf']:.2f} ({row['fid_inf_above_floor']:.2f} above "
            "the held photos')", flush=True)

    if args.baseline:
        add_ratios(result["runs"], args.baseline, METRICS)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
