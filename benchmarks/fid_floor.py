"""How low can the judge's FID go at this sample size? The real-vs-real floor, and bias-free scores.

    python benchmarks/fid_floor.py --train TRAIN --real HELD \
        --n 500 --run photo64cpu=runs/photo64cpu/s0@30342 --run quick32=runs/q32/s0@13182 \
        --baseline quick32 --out benchmarks/results/photo64cpu_floor.json

FID is biased upwards at small sample sizes (Binkowski et al. 2018; Chong & Forsyth 2020): two
sets of 500 real photos drawn from one distribution do not score 0. The `floor` here is that
number for this judge: --draws random sets of --n training photos (photos the generators learnt
from, as close to "perfect samples" as exists) against the first --n images of --real, the
reference checkpoint_curve.py and sampling_choices.py use. A generator's FID minus the floor
estimates how far it is from real photos; a ratio of raw FIDs near the floor understates every
gain (at a floor of 8.5, a perfect generator scores 0.45x of one at 18.9).

Per --run NAME=RUN@STEP (the checkpoint's EMA generator, as everywhere else), on --latent-sets
sets of --n latents (evaluate.EVAL_SEED, +100, +200: the first is checkpoint_curve.py's):
- `fid`: the judge's FID against the reference, as reported elsewhere;
- `fid_above_floor`: fid minus the floor's mean;
- `kid_x1000`: Kernel Inception Distance x 1000 in the same features (unbiased: about 0 for real
  photos; what StyleGAN2-ADA reports for small sets for this reason).
Each is the mean over the latent sets, with its range and every set's value. With --baseline NAME,
each run's three ratios to that run are printed and saved.
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

METRICS = ("fid", "fid_above_floor", "kid_x1000")


def parse_run(text: str) -> tuple[str, Path, int]:
    """NAME=RUN@STEP -> (NAME, RUN, STEP), with the error a user needs if it is malformed."""
    name, sep, rest = text.partition("=")
    run, at, step = rest.rpartition("@")
    if not (sep and at and name and run and step.isdigit()):
        raise SystemExit(f"--run {text!r}: expected NAME=RUN_DIR@STEP, e.g. s0=runs/a@30342")
    return name, Path(run), int(step)


def checkpoint_at(run: Path, step: int) -> Path:
    from cargan_tf.runs import RunPaths, list_checkpoints

    paths = RunPaths(run)
    kept = list_checkpoints(paths)  # complete ones only
    if paths.checkpoint(step) not in kept:
        raise SystemExit(f"{run} has no checkpoint at step {step} "
                         f"(it has {', '.join(p.name for p in kept) or 'none'})")
    return paths.checkpoint(step)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """--run NAME=RUN_DIR@STEP (repeatable), --baseline NAME and --out FILE."""
    parser.add_argument("--run", action="append", default=[], help="NAME=RUN_DIR@STEP")
    parser.add_argument("--baseline", default="", help="a --run NAME the ratios are taken to")
    parser.add_argument("--out", type=Path, required=True)


def runs_of(args: argparse.Namespace) -> list[tuple[str, Path, int]]:
    """The parsed --run values; SystemExit if --baseline names none of them."""
    runs = [parse_run(text) for text in args.run]
    if args.baseline and args.baseline not in {name for name, _, _ in runs}:
        raise SystemExit(f"--baseline {args.baseline!r} is not one of the --run names")
    return runs


def image_shape_of(runs: list[tuple[str, Path, int]]) -> tuple[int, int]:
    """(size, channels) the runs all draw (64x64 RGB with no runs); SystemExit if they differ."""
    from cargan_tf.config import RunConfig
    from cargan_tf.runs import RunPaths

    shapes = {(cfg.image_size, cfg.channels) for cfg in (
        RunConfig.from_json(RunPaths(run).config.read_text()) for _, run, _ in runs)} or {(64, 3)}
    if len(shapes) > 1:
        raise SystemExit(f"the runs draw images of different sizes {sorted(shapes)}: "
                         "score each size with its own command")
    return shapes.pop()


def add_ratios(runs: dict, baseline: str, metrics, value=lambda cell: cell) -> None:
    """Stores and prints each run's ratio to the --baseline run's, metric by metric."""
    base = runs[baseline]
    for name, row in runs.items():
        row["ratio_to_baseline"] = {m: value(row[m]) / value(base[m]) for m in metrics}
        print(f"{name} / {baseline}: " + "  ".join(
            f"{m} {r:.2f}" for m, r in row["ratio_to_baseline"].items()), flush=True)


def summary(values: list[float]) -> dict:
    return {"mean": sum(values) / len(values), "min": min(values), "max": max(values),
            "values": values}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", required=True, help="the photos the runs trained on")
    parser.add_argument("--real", required=True, help="the reference folder (held-out photos)")
    parser.add_argument("--features", default="photo", help="the judge (evaluate's --features)")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--draws", type=int, default=5, help="random training sets for the floor")
    parser.add_argument("--latent-sets", type=int, default=3)
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
    real = load_images(args.real, size, channels, progress=False)
    train = load_images(args.train, size, channels, progress=False)
    if len(real) < args.n or len(train) < args.n:
        raise SystemExit(f"--n {args.n} needs that many images in both folders "
                         f"(--real has {len(real)}, --train {len(train)})")
    reference = judge.features(real[:args.n])

    def scores(fake_features: np.ndarray) -> tuple[float, float]:
        kid, _ = metrics.kid(fake_features, reference, subsets=1, subset_size=args.n)
        return metrics.frechet_distance(fake_features, reference), 1000.0 * kid

    rng = np.random.default_rng(0)
    floor_fid, floor_kid = [], []
    for _ in range(args.draws):
        fid, kid = scores(judge.features(train[rng.choice(len(train), args.n, replace=False)]))
        floor_fid.append(fid)
        floor_kid.append(kid)
    floor, floor_kid = summary(floor_fid), summary(floor_kid)
    result = {"n": args.n, "train": str(args.train), "real": str(args.real),
              "floor": {"fid": floor, "kid_x1000": floor_kid}, "runs": {}}
    print(f"floor ({args.draws} sets of {args.n} training photos vs {args.n} of --real): "
          f"FID {floor['mean']:.2f} ({floor['min']:.2f}-{floor['max']:.2f}), "
          f"KID x1000 {floor_kid['mean']:.2f}", flush=True)

    for name, run, step in runs:
        generator = generator_from_checkpoint(run, checkpoint_at(run, step))
        per_set = {metric: [] for metric in METRICS}
        for k in range(args.latent_sets):
            z = seed_to_latent(EVAL_SEED + 100 * k, args.n, latent_dim_of(generator))
            fid, kid = scores(judge.features(generate_images(generator, z)))
            per_set["fid"].append(fid)
            per_set["fid_above_floor"].append(fid - floor["mean"])
            per_set["kid_x1000"].append(kid)
        result["runs"][name] = {"run": str(run), "step": step,
                                **{metric: summary(v) for metric, v in per_set.items()}}
        print(f"{name} ({run}@{step}): " + "  ".join(
            f"{metric} {np.mean(v):.2f}" for metric, v in per_set.items()), flush=True)

    if args.baseline:
        add_ratios(result["runs"], args.baseline, METRICS, value=lambda cell: cell["mean"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
