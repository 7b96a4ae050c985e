"""Score every kept checkpoint of one or more runs with a judge: FID, recall, diversity, per step.

    python benchmarks/checkpoint_curve.py /work/runs/q32_64_s0 /work/runs/da_64_s0 \
        --real /work/data/cars_heldout --n 500 --out benchmarks/results/photo64_curves.json

Runs trained with `keep_checkpoints=0` keep a checkpoint every few epochs: this turns them into
quality curves at equal steps (what the photo-recipe search ranks candidates by) without
stopping the runs. Each checkpoint's generator (its EMA copy when the run keeps one) draws --n
samples from the fixed evaluation latents (evaluate.EVAL_SEED); --real is the reference set
(e.g. photos held out of training). Beside FID it records, in the same judge's features,
precision and recall (Kynkaanniemi et al., k=3) and the diversity ratio (mean pairwise distance
of samples / of the real images): FID alone does not punish a run that repeats a few shapes or
tiles one texture (BENCHMARKS, "Photo recipe search"), recall and diversity do. Scores are
cached per checkpoint in --out, so rerunning while the runs go on only scores the new
checkpoints. --every-steps thins the checkpoints; --last scores only each run's newest one,
--at only the steps listed.
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
    parser.add_argument("--last", action="store_true", help="only each run's newest checkpoint")
    parser.add_argument("--at", default="", help="only these steps, e.g. 1170,3027")
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
        checkpoints = list_checkpoints(RunPaths(run))
        for checkpoint in checkpoints[-1:] if args.last else checkpoints:
            step = int(read_json(checkpoint / "state.json")["step"])
            if step - last < args.every_steps or (args.at and str(step) not in args.at.split(",")):
                continue
            last = step
            key = f"{args.features}-{args.n}-{step}"
            if key in scores and f"{key}-spread" in scores:
                continue
            if judge is None:
                judge = features.get_extractor(args.features, cfg.image_size, cfg.channels)
                real = load_images(args.real, cfg.image_size, cfg.channels, progress=False)
                reference = judge.features(real[:args.n] if len(real) > args.n else real)
            generator = generator_from_checkpoint(run, checkpoint)
            fake = generate_images(generator, seed_to_latent(EVAL_SEED, args.n,
                                                             latent_dim_of(generator)))
            fake_features = judge.features(fake)
            scores[key] = metrics.frechet_distance(fake_features, reference)
            precision, recall = metrics.precision_recall(reference, fake_features)
            scores[f"{key}-spread"] = spread = {
                "precision": precision, "recall": recall,
                "diversity": metrics.diversity_ratio(fake_features, reference)}
            print(f"{run.name} step {step}: FID {scores[key]:.2f}  precision "
                  f"{precision:.3f}  recall {recall:.3f}  diversity {spread['diversity']:.3f}",
                  flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(cache, indent=2) + "\n")
    print(table(cache, args.features, args.n))


def table(cache: dict, features: str, n: int) -> str:
    prefix = f"{features}-{n}-"
    steps = sorted({int(k[len(prefix):]) for scores in cache.values() for k in scores
                    if k.startswith(prefix) and not k.endswith("-spread")})
    names = list(cache)
    lines = ["| step | " + " | ".join(Path(r).name for r in names) + " |",
             "|---|" + "---|" * len(names)]
    for step in steps:
        cells = [cell(cache[r], f"{prefix}{step}") for r in names]
        lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cell(scores: dict, key: str) -> str:
    """FID, and recall / diversity when scored: '92.9 (r 0.41, d 0.93)'."""
    if key not in scores:
        return ""
    spread = scores.get(f"{key}-spread")
    extra = f" (r {spread['recall']:.2f}, d {spread['diversity']:.2f})" if spread else ""
    return f"{scores[key]:.1f}{extra}"


if __name__ == "__main__":
    main()
