"""How fast toycars draws, in images per second on one CPU core, at sizes 32, 64 and 128.

Usage: python benchmarks/toycars_speed.py [--n 2000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2

try:
    from cargan_tf.data.toycars import draw_toycars
except ImportError:  # a plain checkout, not pip-installed: use the package next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cargan_tf.data.toycars import draw_toycars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="images per timed run at size 64")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per size (best kept)")
    args = parser.parse_args()

    # one core: no OpenCV worker threads, and pinned where the OS allows it
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    print(f"toycars speed, one core (OpenCV {cv2.__version__})")
    for size in (32, 64, 128):
        n = max(100, args.n * 64 // size)  # about the same wall time at each size
        draw_toycars(50, size=size, seed=1)  # warm-up: caches, first-call overheads
        best = float("inf")
        for r in range(args.repeats):
            t0 = time.perf_counter()
            draw_toycars(n, size=size, seed=r)
            best = min(best, time.perf_counter() - t0)
        print(f"  {size:>3}x{size:<3}  {n / best:8.0f} images/s   ({n} images in {best:.2f} s)")


if __name__ == "__main__":
    main()
