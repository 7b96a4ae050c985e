"""Benchmark: `prepare` against keras.utils.image_dataset_from_directory doing the same job,
turning photo-sized JPEGs into 64x64 centre crops; prints images/s for each and the ratio.

    python benchmarks/prepare_speed.py            # 2,000 generated 640x480 JPEGs
    python benchmarks/prepare_speed.py --n 4000 --repeats 3

Both read the same files from a warm OS cache and use every core (prepare: one decoding
thread per core; Keras: tf.data's parallel map). prepare also writes its cache to disk and
hashes every image for duplicates; the Keras pipeline only yields batches. Each side is timed
`--repeats` times, alternating, and the best run counts (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from cargan_tf.data.cache import load_cache
from cargan_tf.data.prepare import prepare

N_IMAGES = 2000
WIDTH, HEIGHT = 640, 480  # a typical listing photo
SIZE = 64
JPEG_QUALITY = 90


def make_jpegs(folder: Path, n: int, seed: int = 0, texture: bool = True) -> int:
    """Write n random smooth 640x480 JPEGs; with texture they are ~90 KB each, like photos
    (without, ~40 KB: less entropy-coded data, which every JPEG decoder must read in full)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    total = 0
    for i in range(n):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        img = cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
        if texture:
            grain = rng.integers(-12, 13, img.shape, dtype=np.int16)
            img = np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        (folder / f"car_{i:05d}.jpg").write_bytes(buf.tobytes())
        total += len(buf)
    return total


def time_prepare(src: Path, dst: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of all threads, images) for one full prepare."""
    shutil.rmtree(dst, ignore_errors=True)  # a full prepare every time
    wall, cpu = time.perf_counter(), time.process_time()
    result = prepare(src, dst, size=SIZE, channels=3, fit="center_crop", progress=False)
    return time.perf_counter() - wall, time.process_time() - cpu, result.count


def time_keras(src: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of all threads, images) for one pass over the directory."""
    import keras

    wall, cpu = time.perf_counter(), time.process_time()
    dataset = keras.utils.image_dataset_from_directory(
        src, labels=None, image_size=(SIZE, SIZE), crop_to_aspect_ratio=True,
        batch_size=64, shuffle=False, verbose=False,
    )
    count = sum(int(batch.shape[0]) for batch in dataset.as_numpy_iterator())
    return time.perf_counter() - wall, time.process_time() - cpu, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=N_IMAGES, help="JPEGs to generate (>= 2000)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per side (best counts)")
    parser.add_argument("--smooth", action="store_true",
                        help="no film-grain texture: smaller, easier JPEGs (~40 KB)")
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras  # imported before timing: its import is not part of the job

    with tempfile.TemporaryDirectory(prefix="cargan_bench_") as tmp:
        src, dst = Path(tmp) / "photos", Path(tmp) / "cache"
        t0 = time.perf_counter()
        total = make_jpegs(src, args.n, texture=not args.smooth)
        print(f"generated {args.n} {WIDTH}x{HEIGHT} JPEGs ({total / args.n / 1024:.0f} KiB each) "
              f"in {time.perf_counter() - t0:.1f}s; {os.cpu_count()} CPU cores; "
              f"keras {keras.__version__}, OpenCV {cv2.__version__}")
        for path in src.iterdir():  # warm the OS file cache for both contenders
            path.read_bytes()

        runs: dict[str, list[tuple[float, float]]] = {"prepare": [], "keras": []}
        for _ in range(args.repeats):
            for name, timed in (("prepare", lambda: time_prepare(src, dst)),
                                ("keras", lambda: time_keras(src))):
                wall, cpu, count = timed()
                assert count == args.n, (name, count)
                runs[name].append((wall, cpu))

        start = time.perf_counter()
        rerun = prepare(src, dst, size=SIZE, progress=False)
        rerun_s = time.perf_counter() - start
        start = time.perf_counter()
        images = load_cache(dst)
        load_s = time.perf_counter() - start
        if images.shape != (args.n, SIZE, SIZE, 3):
            raise SystemExit(f"unexpected cache shape {images.shape}")

    rate = {name: args.n / min(w for w, _ in r) for name, r in runs.items()}
    per_cpu = {name: args.n / min(c for _, c in r) for name, r in runs.items()}
    labels = {"prepare": "prepare (cargan_tf)", "keras": "keras image_dataset_from_directory"}
    for name, label in labels.items():
        walls = ", ".join(f"{w:.2f}s" for w, _ in runs[name])
        print(f"{label:<36} {rate[name]:7.0f} images/s  {per_cpu[name]:7.0f} images/CPU-s"
              f"  (runs: {walls})")
    print(f"ratio prepare / keras: {rate['prepare'] / rate['keras']:.2f}x in images/s, "
          f"{per_cpu['prepare'] / per_cpu['keras']:.2f}x in images per CPU-second")
    print(f"re-run with nothing changed: {rerun_s:.2f}s (up to date: {rerun.up_to_date})")
    # What every later epoch costs: the cache is one read, the Keras pipeline decodes again.
    print(f"each later epoch: load_cache {args.n / load_s:,.0f} images/s ({load_s * 1000:.0f} ms) "
          f"vs keras re-decoding {rate['keras']:,.0f} images/s: "
          f"{args.n / load_s / rate['keras']:,.0f}x")


if __name__ == "__main__":
    main()
