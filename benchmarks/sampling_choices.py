"""Free quality after training? Score one checkpoint's generator sampled several ways.

    python benchmarks/sampling_choices.py runs/photo64cpu/s0 --step 30342 \
        --real /work/data/cars_heldout --n 500 --out benchmarks/results/photo64cpu_sampling.json

Each way costs no training time, so a win here would be free for every run:
- `raw`: the trained generator itself, not its EMA copy;
- `ema`: the EMA copy (what grids, generator.keras and checkpoint_curve.py use), and on two
  other sets of latents (`ema-latents+1`, `+2`: how much the score moves by chance);
- `avg-K`: the EMA weights averaged over the run's last K checkpoints up to --step (a longer,
  post-hoc average: does a slower EMA than the run's help?);
- `z*S`: latents scaled by S (a truncation trick: precision up, recall down);
- `batch-stats`: BatchNorm on each batch of --batch samples (as D saw G's fakes in training);
- `standing-stats`: BatchNorm's moving statistics recomputed for the EMA weights over 400
  batches (BigGAN's "standing statistics").
Same latents (evaluate.EVAL_SEED) and reference (the first --n images of --real) as
checkpoint_curve.py, so `ema` reproduces its score for that step.
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
    parser.add_argument("run", type=Path)
    parser.add_argument("--step", type=int, required=True, help="the checkpoint's step")
    parser.add_argument("--real", required=True, help="a folder of real images (the reference)")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--average", default="4,8", help="K values for avg-K")
    parser.add_argument("--scales", default="0.9,0.8", help="S values for z*S")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import keras
    import numpy as np
    import tensorflow as tf

    from cargan_tf import features, metrics
    from cargan_tf.conditional import build_models
    from cargan_tf.config import RunConfig
    from cargan_tf.data.sources import load_images
    from cargan_tf.evaluate import EVAL_SEED
    from cargan_tf.generate import generate_images, generator_from_checkpoint, to_uint8
    from cargan_tf.latents import seed_to_latent
    from cargan_tf.models import precision_policy
    from cargan_tf.runs import RunPaths, list_checkpoints, read_json

    cfg = RunConfig.from_json(RunPaths(args.run).config.read_text())
    if cfg.conditional:
        raise SystemExit("sampling_choices.py scores unconditional runs only")
    steps = {c: int(read_json(c / "state.json")["step"])
             for c in list_checkpoints(RunPaths(args.run))}
    checkpoints = [c for c, step in steps.items() if step <= args.step]
    if not checkpoints or steps[checkpoints[-1]] != args.step:
        raise SystemExit(f"{args.run} has no checkpoint at step {args.step}")
    judge = features.get_extractor("photo", cfg.image_size, cfg.channels)
    real = load_images(args.real, cfg.image_size, cfg.channels, progress=False)
    reference = judge.features(real[:args.n])
    z = seed_to_latent(EVAL_SEED, args.n, cfg.latent_dim)

    cache = json.loads(args.out.read_text()) if args.out.exists() else {}
    scores = cache.setdefault(f"{args.run}@{args.step}", {})

    def score(name: str, images: np.ndarray) -> None:
        fake = judge.features(images)
        precision, recall = metrics.precision_recall(reference, fake)
        scores[name] = {"fid": metrics.frechet_distance(fake, reference),
                        "precision": precision, "recall": recall}
        print(f"{name}: FID {scores[name]['fid']:.2f}  precision {precision:.3f}  "
              f"recall {recall:.3f}", flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(cache, indent=2) + "\n")

    with precision_policy(cfg.precision):
        raw = build_models(cfg)[0]
    status = tf.train.Checkpoint(generator=raw).read(str(checkpoints[-1] / "weights"))
    status.expect_partial()  # the EMA copy, D and the optimizers are in there too
    status.assert_existing_objects_matched()
    score("raw", generate_images(raw, z))
    ema = generator_from_checkpoint(args.run, checkpoints[-1])
    score("ema", generate_images(ema, z))
    # the judge's noise: the same generator on two other sets of latents
    for other in (1, 2):
        score(f"ema-latents+{other}", generate_images(
            ema, seed_to_latent(EVAL_SEED + 100 * other, args.n, cfg.latent_dim)))
    for scale in (float(s) for s in args.scales.split(",") if s):
        score(f"z*{scale:g}", generate_images(ema, z * scale))
    # training=True also moves ema's BatchNorm moving statistics: keep this its last use
    score("batch-stats", to_uint8(np.concatenate(
        [np.asarray(ema(z[i:i + args.batch], training=True)) for i in range(0, args.n, args.batch)])))
    for k in (int(k) for k in args.average.split(",") if k):
        generators = [generator_from_checkpoint(args.run, c) for c in checkpoints[-k:]]
        averaged = generators[-1]
        averaged.set_weights([np.mean(ws, axis=0)
                              for ws in zip(*(g.get_weights() for g in generators))])
        score(f"avg-{k}", generate_images(averaged, z))
    standing = generator_from_checkpoint(args.run, checkpoints[-1])
    norms = [layer for layer in standing.layers
             if isinstance(layer, keras.layers.BatchNormalization)]
    if norms:
        for layer in norms:
            layer.momentum = 0.98  # ~50 batches of memory: 400 batches forget the trained stats
        rng = np.random.default_rng(EVAL_SEED + 1)
        for _ in range(400):
            standing(rng.standard_normal((args.batch, cfg.latent_dim)).astype("float32"),
                     training=True)
        score("standing-stats", generate_images(standing, z))


if __name__ == "__main__":
    main()
