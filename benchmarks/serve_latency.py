"""Serving latency: cold start and warm requests/s for .keras vs SavedModel vs LiteRT, side by side.

The generator is aim64-sized (z of 100 -> 64x64x3, about 5M weights) with random weights, unless
--source names a trained run: latency depends on the layers, not on what the weights learned.
It is exported in every format, then each format runs in fresh processes through the Lambda
handler (cargan_tf.serve.lambda_handler, the model path in $CARGAN_MODEL):
  cold start  process start -> first PNG answered (Python start, imports, model load, first
              inference, PNG encoding); the median of --repeats processes.
  warm        requests per second once loaded: n=1 (format png) and n=16 (one grid PNG).
  peak RSS    the process's peak resident memory (a guide to Lambda's memory setting).

Usage: python benchmarks/serve_latency.py [--source RUN_OR_KERAS] [--repeats 3] [--seconds 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTEFACTS = ("keras", "savedmodel", "litert_float16", "litert_dynamic_range")

# The child: one process per measurement, so nothing is cached between formats.
CHILD = r"""
import json, os, re, sys, time
from cargan_tf.serve import lambda_handler

first = lambda_handler({"n": 1, "seed": 0, "format": "png"}, None)
first_image_at = time.time()
assert first["statusCode"] == 200, first["body"]
result = {"first_image_at": first_image_at,
          "tensorflow_imported": "tensorflow" in sys.modules}
seconds = float(sys.argv[1])
for n in ([1, 16] if seconds > 0 else []):
    event = {"n": n, "seed": 1, "format": "png" if n == 1 else "grid"}
    lambda_handler(event, None)  # warm-up: this batch size's first call
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        event["seed"] = count
        assert lambda_handler(event, None)["statusCode"] == 200
        count += 1
    result[f"rps_n{n}"] = count / (time.perf_counter() - start)
# VmHWM: this process's peak resident memory (ru_maxrss would include the parent's, from fork)
status = open("/proc/self/status").read()
result["peak_rss_mb"] = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
print(json.dumps(result))
"""


def build_random_aim64(folder: Path) -> Path:
    """generator.keras: the aim64 generator with seeded random weights."""
    import keras

    from cargan_tf import config, models

    keras.utils.set_random_seed(0)
    generator = models.build_generator(config.preset("aim64"))
    path = folder / "generator.keras"
    generator.save(path)
    return path


def measure(model: Path, seconds: float) -> dict:
    env = {**os.environ, "CARGAN_MODEL": str(model), "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    start = time.time()
    out = subprocess.run([sys.executable, "-c", CHILD, str(seconds)], env=env, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the benchmark process for {model} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cold_s"] = result.pop("first_image_at") - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", help="a run folder or generator .keras (default: random aim64)")
    parser.add_argument("--repeats", type=int, default=3, help="cold starts per format (median kept)")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per warm measurement")
    parser.add_argument("--keep", help="export into this folder and keep it (default: a temp folder)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from cargan_tf.export import export

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        source = Path(args.source) if args.source else build_random_aim64(Path(tmp))
        print(f"exporting {'random-weight aim64 generator' if not args.source else source} ...")
        report = export(source, folder, verbose=False)
        shape = "x".join(map(str, report["image_shape"]))
        rows = []
        for name in ARTEFACTS:
            entry = report["exports"][name]
            runs = [measure(folder / entry["path"], args.seconds if i == 0 else 0)
                    for i in range(args.repeats)]
            rows.append((name, entry["bytes"] / 1e6, statistics.median(r["cold_s"] for r in runs),
                         runs[0]["rps_n1"], runs[0]["rps_n16"], runs[0]["peak_rss_mb"],
                         runs[0]["tensorflow_imported"]))

    print(f"\nserving latency through lambda_handler: z {report['latent_dim']} -> {shape}, "
          f"{os.cpu_count()} CPU cores, cold start = median of {args.repeats} processes, "
          f"warm = {args.seconds:g} s each")
    print(f"{'format':<22}{'size MB':>9}{'cold start s':>14}{'req/s n=1':>11}{'req/s n=16':>12}"
          f"{'images/s n=16':>15}{'peak RSS MB':>13}  imports TF")
    for name, size, cold, rps1, rps16, rss, tf_imported in rows:
        print(f"{name:<22}{size:>9.2f}{cold:>14.2f}{rps1:>11.1f}{rps16:>12.2f}{rps16 * 16:>15.1f}"
              f"{rss:>13.0f}  {'yes' if tf_imported else 'no'}")


if __name__ == "__main__":
    main()
