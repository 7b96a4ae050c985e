"""Score every kept checkpoint of one or more runs with a judge: FID against real images, per step.

    python benchmarks/checkpoint_curve.py /work/runs/q32_64_s0 /work/runs/da_64_s0 \
        --real /work/data/cars_heldout --n 500 --out benchmarks/results/photo64_curves.json

Runs trained with `keep_checkpoints=0` keep a checkpoint every few epochs: this turns them into
quality curves at equal steps (what the photo-recipe search ranks candidates by) without
stopping the runs. Each checkpoint's generator (its EMA copy when the run keeps one) draws --n
samples from the fixed evaluation latents (evaluate.EVAL_SEED); --real is the reference set
(e.g. photos held out of training). Scores are cached per checkpoint in --out, so rerunning
while the runs go on only scores the new checkpoints. --every-steps thins the checkpoints.
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--real", required=True, help="a folder of real images (the reference)")
    parser.add_argument("--features", default="photo")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--every-steps", type=int, default=0,
                        help="score at most one checkpoint per this many steps (0: all)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from cargan_tf import features, metrics
    from cargan_tf.config import RunConfig
    from cargan_tf.data.sources import load_images
    from cargan_tf.evaluate import EVAL_SEED
    from cargan_tf.generate import generate_images, generator_from_checkpoint, latent_dim_of
    from cargan_tf.latents import seed_to_latent
    from cargan_tf.runs import RunPaths, list_checkpoints, read_json

    cache = json.loads(args.out.read_text()) if args.out.exists() else {}
    judge, reference = None, None
    for run in args.runs:
        cfg = RunConfig.from_json(RunPaths(run).config.read_text())
        scores = cache.setdefault(str(run), {})
        last = -10**9
        for checkpoint in list_checkpoints(RunPaths(run)):
            step = int(read_json(checkpoint / "state.json")["step"])
            if step - last < args.every_steps:
                continue
            last = step
            key = f"{args.features}-{args.n}-{step}"
            if key in scores:
                continue
            if judge is None:
                judge = features.get_extractor(args.features, cfg.image_size, cfg.channels)
                real = load_images(args.real, cfg.image_size, cfg.channels, progress=False)
                reference = judge.features(real[:args.n] if len(real) > args.n else real)
            generator = generator_from_checkpoint(run, checkpoint)
            fake = generate_images(generator, seed_to_latent(EVAL_SEED, args.n,
                                                             latent_dim_of(generator)))
            scores[key] = metrics.frechet_distance(judge.features(fake), reference)
            print(f"{run.name} step {step}: FID {scores[key]:.2f}", flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(cache, indent=2) + "\n")
    print(table(cache, args.features, args.n))


def table(cache: dict, features: str, n: int) -> str:
    prefix = f"{features}-{n}-"
    steps = sorted({int(k[len(prefix):]) for scores in cache.values() for k in scores
                    if k.startswith(prefix)})
    names = list(cache)
    lines = ["| step | " + " | ".join(Path(r).name for r in names) + " |",
             "|---|" + "---|" * len(names)]
    for step in steps:
        cells = [cache[r].get(f"{prefix}{step}") for r in names]
        lines.append(f"| {step} | " + " | ".join("" if c is None else f"{c:.1f}" for c in cells)
                     + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
