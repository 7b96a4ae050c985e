"""Benchmark: how long training waits for its next batch when it reads a prepared cache
(issue 11's goal: input waiting under 5% of step time).

    python benchmarks/input_wait.py                          # quick32 and aim64, both engines
    python benchmarks/input_wait.py --presets quick32 --steps 120

The path a user's photos take: N toycars written as PNG files, `prepare` into a cache, then
`train --data CACHE` for --steps generator steps of each preset and engine (a temporary run
folder each). history.csv times every batch: `data_wait_seconds` is the time spent in
`next()` on the input pipeline, `seconds` the whole step including that wait. The first
--warmup steps (tracing, first epoch's pipeline start) are left out. Printed per
configuration: mean step, mean wait, wait as % of step time (the goal), and the same at epoch
starts alone (each epoch builds its shuffled tf.data pipeline anew, the one place a wait
could hide).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np

from cargan_tf import config, runs
from cargan_tf.data.prepare import prepare
from cargan_tf.data.toycars import draw_toycars
from cargan_tf.train import train


def write_pngs(folder: Path, n: int, size: int) -> None:
    """n toycars as size x size PNG files (a stand-in for a folder of photos)."""
    folder.mkdir(parents=True, exist_ok=True)
    images, _ = draw_toycars(n, size=size, seed=0)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"car_{i:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


def measure(preset: str, engine: str, cache: Path, n: int, steps: int, warmup: int,
            workdir: Path) -> dict:
    cfg = config.preset(preset, data=str(cache), data_n=n, steps=steps, engine=engine,
                        progress=False, checkpoint_every_minutes=0.0,
                        checkpoint_every_epochs=10**6, keep_checkpoints=1)
    run_dir = train(cfg, workdir / f"{preset}-{engine}")
    rows = runs.read_history(runs.RunPaths(run_dir).history)[warmup:]
    step = np.array([r["seconds"] for r in rows])
    wait = np.array([r["data_wait_seconds"] for r in rows])
    starts = np.array([r["batch"] == 0 for r in rows])
    return {"preset": preset, "engine": engine, "batch": cfg.batch_size, "steps": len(rows),
            "step_ms": 1000 * step.mean(), "wait_ms": 1000 * wait.mean(),
            "wait_pct": 100 * wait.sum() / step.sum(),
            "epoch_start_wait_ms": 1000 * wait[starts].mean() if starts.any() else float("nan")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="quick32,aim64", help="comma list of presets")
    parser.add_argument("--engines", default="keras,fused", help="comma list of engines")
    parser.add_argument("--n", type=int, default=1024, help="images in the prepared cache")
    parser.add_argument("--steps", type=int, default=60, help="generator steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="first steps left out")
    args = parser.parse_args(argv)

    results = []
    with tempfile.TemporaryDirectory(prefix="cargan_input_wait_") as tmp:
        tmp = Path(tmp)
        for preset in args.presets.split(","):
            size = config.preset(preset).image_size
            cache = tmp / f"cache{size}"
            if not cache.exists():
                write_pngs(tmp / f"pngs{size}", args.n, size)
                prepare(tmp / f"pngs{size}", cache, size=size, progress=False)
            for engine in args.engines.split(","):
                results.append(measure(preset, engine, cache, args.n, args.steps,
                                       args.warmup, tmp))
                r = results[-1]
                print(f"{preset:8s} {engine:6s} batch {r['batch']:3d}  {r['steps']} steps  "
                      f"step {r['step_ms']:8.1f} ms  wait {r['wait_ms']:6.2f} ms "
                      f"({r['wait_pct']:.2f}%)  epoch-start wait "
                      f"{r['epoch_start_wait_ms']:.2f} ms", flush=True)
    worst = max(r["wait_pct"] for r in results)
    print(f"\nworst input wait: {worst:.2f}% of step time (goal: under 5%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
