"""Transfer learning on a small set: fine-tune a trained run vs train from scratch, equal steps.

    python benchmarks/transfer_learning.py --source runs/quickstart        # after make quickstart
    python benchmarks/transfer_learning.py --source runs/quickstart --steps 768 --n-train 400

The small set: --n-train toycars of one body type (default 400 sports cars, the size of the
original Indian-cars set), written as PNGs to WORKDIR/<type>_train; held-out images of the same
type (never trained on) to WORKDIR/<type>_held_out. Three generators are scored against the
held-out set with the packaged toycars features (domain FID, KID, precision, recall, and the
share of samples the extractor calls that body type):

- source: the --source run's generator as it is (0 steps on the small set);
- scratch: the quick32 recipe trained on the small set from random weights;
- fine-tuned: the same recipe and steps, started with `train --init-from SOURCE`.

Both trainings use the same seed, batch (64) and number of generator steps.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]


def write_set(folder: Path, body_type: str, n: int, start: int) -> Path:
    """n toycars of body_type at 32x32 as PNGs, drawn from index `start` on (seed 11)."""
    import cv2

    from cargan_tf.data.toycars import BODY_TYPES, draw_toycars

    if folder.is_dir() and len(list(folder.glob("*.png"))) >= n:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    want = BODY_TYPES.index(body_type)
    kept, index = 0, start
    while kept < n:
        images, labels = draw_toycars(2000, 32, seed=11, start=index)
        for image, label in zip(images, labels["body_type"]):
            if label == want and kept < n:
                cv2.imwrite(str(folder / f"{kept:05d}.png"), image[..., ::-1])
                kept += 1
        index += 2000
    return folder


def train(run_dir: Path, data: Path, epochs: int, init_from: str | None) -> float:
    """Train (or resume, or find finished) a run; returns its training seconds (history.csv)."""
    import csv

    cmd = [sys.executable, "-m", "cargan_tf", "train", "--preset", "quick32", "--data", str(data),
           "--epochs", str(epochs), "--run-dir", str(run_dir), "--no-progress",
           "--set", "data_n=100000", "--set", f"checkpoint_every_epochs={max(1, epochs // 4)}",
           "--set", "checkpoint_every_minutes=0"]
    if init_from:
        cmd += ["--init-from", init_from]
    if not (run_dir / "generator.keras").exists():
        print(f"training {run_dir.name}", flush=True)
        subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    with open(run_dir / "history.csv") as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f))


def evaluate(generator: Path, held_out: Path, n: int, out: Path) -> dict:
    subprocess.run([sys.executable, "-m", "cargan_tf", "evaluate", str(generator), "--features",
                    "toycars", "--data", str(held_out), "--n", str(n), "--out", str(out)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=REPO / "runs" / "quickstart",
                        help="a finished 32x32 toycars run (make quickstart)")
    parser.add_argument("--body-type", default="sports")
    parser.add_argument("--n-train", type=int, default=400)
    parser.add_argument("--n-eval", type=int, default=1000, help="held-out images and samples")
    parser.add_argument("--steps", type=int, default=384, help="generator steps per training")
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "transfer")
    args = parser.parse_args(argv)
    if not (args.source / "generator.keras").exists():
        parser.error(f"{args.source} has no generator.keras: run `make quickstart` first")

    train_set = write_set(args.workdir / f"{args.body_type}_train", args.body_type,
                          args.n_train, 0)
    held_out = write_set(args.workdir / f"{args.body_type}_held_out", args.body_type,
                         args.n_eval, 10_000_000)
    epochs = math.ceil(args.steps / (args.n_train // 64))
    rows = []
    source_metrics = evaluate(args.source / "generator.keras", held_out, args.n_eval,
                              args.workdir / "source_metrics.json")
    rows.append(("source (0 steps)", 0, 0.0, source_metrics))
    for name, init in (("scratch", None), ("fine-tuned", str(args.source))):
        run_dir = args.workdir / f"{name}-{args.body_type}{args.n_train}-s{args.steps}"
        seconds = train(run_dir, train_set, epochs, init)
        metrics = evaluate(run_dir, held_out, args.n_eval, run_dir / "metrics.json")
        rows.append((name, epochs * (args.n_train // 64), seconds, metrics))

    from cargan_tf.data.toycars import BODY_TYPES

    want = BODY_TYPES.index(args.body_type)
    print(f"\n{args.n_train} {args.body_type} toycars (32x32), batch 64; scored on "
          f"{args.n_eval} held-out {args.body_type} cars with the packaged toycars features")
    print(f"{'start':18s} {'steps':>5s} {'FID':>7s} {'KID':>7s} {'prec':>5s} {'rec':>5s} "
          f"{args.body_type + ' %':>9s} {'seconds':>7s}")
    for name, steps, seconds, m in rows:
        share = (m.get("coverage") or {}).get("hist_samples", [float("nan")] * 6)[want]
        print(f"{name:18s} {steps:5d} {m['fid']:7.2f} {m['kid']:7.3f} {m['precision']:5.2f} "
              f"{m['recall']:5.2f} {100 * share:9.1f} {seconds:7.0f}")
    out = args.workdir / f"results-{args.body_type}{args.n_train}-s{args.steps}.json"
    out.write_text(json.dumps([{"start": r[0], "steps": r[1], "seconds": r[2], "metrics": r[3]}
                               for r in rows], indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
