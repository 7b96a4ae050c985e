"""What deterministic mode (TensorFlow op determinism) costs in training speed, side by side.

    python benchmarks/deterministic_cost.py [--preset quick32] [--images 2048] [--repeats 2]

Trains the same short run with deterministic=false and =true in fresh subprocesses (op
determinism is process-wide), alternating, and prints the median seconds per step of each
(the first 5 steps, tracing, are left out) and their ratio.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def seconds_per_step(run_dir: Path) -> float:
    with open(run_dir / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return statistics.median(float(r["seconds"]) for r in rows[5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="quick32")
    parser.add_argument("--images", type=int, default=2048, help="training images (one epoch)")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    results: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for det in (False, True):
                run_dir = Path(tmp) / f"{det}-{i}"
                subprocess.run([sys.executable, "-m", "cargan_tf", "train", "--preset",
                                args.preset, "--epochs", "1", "--run-dir", str(run_dir),
                                "--no-progress", "--set", f"data_n={args.images}",
                                "--set", f"deterministic={str(det).lower()}"],
                               check=True, capture_output=True)
                results[det].append(seconds_per_step(run_dir))
    off, on = statistics.median(results[False]), statistics.median(results[True])
    print(f"{args.preset}: deterministic off {off:.3f} s/step, on {on:.3f} s/step, "
          f"cost {on / off:.2f}x")


if __name__ == "__main__":
    main()
