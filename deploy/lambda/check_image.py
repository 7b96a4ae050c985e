"""Check the Lambda image's contents without Docker or AWS, and time its cold and warm starts.

What the image holds is rebuilt here: a clean venv with only deploy/lambda/requirements.txt
installed (wheels, as the Dockerfile's pip line), and a task folder with the package files the
Dockerfile's COPY lines name. The handler then runs in that venv, with nothing else on its path,
on API Gateway REST (payload 1.0) and HTTP API (payload 2.0) events, GET and POST, and a direct
invocation (tests/fixtures/*.json), each of which must return a PNG; a malformed event must be a
400; TensorFlow, Keras and OpenCV must not be imported.

Timing, in that venv: cold start = process start to the first PNG answered (Python start,
imports, model load, first inference, PNG encoding; AWS_LAMBDA_FUNCTION_NAME is set, so the
model loads at import as in Lambda's init phase), the median of --repeats processes; warm =
per-request latency once loaded, for n=1 (png), n=16 and n=64 (grid) and a 64-step
interpolation (the largest requests the API allows for a 64x64 model); peak RSS (VmHWM).

Run from the repository root with the project's venv (it has TensorFlow, to export a model):
  .venv/bin/python deploy/lambda/check_image.py               # tiny model: the check (CI)
  .venv/bin/python deploy/lambda/check_image.py --aim64 --cpus 1 --repeats 5 --requests 20
                                                              # aim64-sized model on one core
Exit code 0 when every check passes; the last line of stdout is the result as JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = REPO / "deploy" / "lambda"
FIXTURES = REPO / "tests" / "fixtures"
EVENTS = ("apigw_rest_v1_get", "apigw_rest_v1_post", "apigw_http_v2_get", "apigw_http_v2_post",
          "direct_invocation")
TASK_ROOT_VARIABLE = "${LAMBDA_TASK_ROOT}"

# The child, run by the clean venv's python with only the task folder on its path.
CHILD = r"""
import base64, json, re, struct, sys, time
started = time.time()
from cargan_tf.serve import lambda_handler  # loads the model too (the "init phase")
imported = time.time()
first = lambda_handler({"n": 1, "seed": 0, "format": "png"}, None)
first_at = time.time()
assert first["statusCode"] == 200, first["body"][:500]
result = {"started_at": started, "import_s": imported - started, "first_request_s": first_at - imported,
          "first_png_at": first_at}


def png_size(reply):
    assert reply["statusCode"] == 200, reply["body"][:500]
    assert reply["isBase64Encoded"] and reply["headers"]["Content-Type"] == "image/png"
    png = base64.b64decode(reply["body"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


checks = {}
for name, event in json.loads(sys.argv[1]).items():
    reply = lambda_handler(event, None)
    checks[name] = {"size": png_size(reply), "images": int(reply["headers"]["X-Cargan-Images"])}
# the design controls: serving_controls.json beside the model gives the directions
plain = lambda_handler({"n": 4, "seed": 1}, None)
moved = lambda_handler({"n": 4, "seed": 1, "directions": "0:6,1:-6"}, None)
assert png_size(moved) == png_size(plain) and moved["body"] != plain["body"], "steering did nothing"
checks["directions=0:6,1:-6"] = {"size": png_size(moved), "differs": True}
bad = lambda_handler({"httpMethod": "GET", "queryStringParameters": "n=4"}, None)
assert bad["statusCode"] == 400 and "error" in json.loads(bad["body"]), bad
checks["malformed event"] = {"status": bad["statusCode"]}
result["checks"] = checks

requests = int(sys.argv[2])
warm = {}
if requests:
    cases = {"n=1 png": {"n": 1, "format": "png"}, "n=16 grid": {"n": 16, "format": "grid"},
             "n=64 grid": {"n": 64, "format": "grid"},
             "64-step interpolation": {"seed_b": 1, "steps": 64, "format": "grid"}}
    for label, fields in cases.items():
        lambda_handler({**fields, "seed": 10**6}, None)  # this batch size's first call
        times = []
        for i in range(requests):
            start = time.perf_counter()
            png_size(lambda_handler({**fields, "seed": i}, None))
            times.append(time.perf_counter() - start)
        times.sort()
        warm[label] = {"median_ms": 1000 * times[len(times) // 2], "max_ms": 1000 * times[-1]}
result["warm"] = warm
result["imported_heavy"] = sorted({m.split(".")[0] for m in sys.modules}
                                  & {"tensorflow", "keras", "cv2", "tf_keras"})
status = open("/proc/self/status").read()
result["peak_rss_mb"] = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
print(json.dumps(result))
"""


def dockerfile_copies(dockerfile: Path = HERE / "Dockerfile") -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY line (continuations joined, flags dropped)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    copies = []
    for line in text.splitlines():
        words = shlex.split(line.split("#", 1)[0]) if line.strip().startswith("COPY") else []
        if words:
            args = [w for w in words[1:] if not w.startswith("--")]
            copies.append((args[:-1], args[-1]))
    return copies


def build_task_root(task_root: Path) -> list[str]:
    """Copy the package files the Dockerfile puts in ${LAMBDA_TASK_ROOT}; their paths."""
    copied = []
    for sources, destination in dockerfile_copies():
        if not destination.startswith(TASK_ROOT_VARIABLE):
            continue  # the requirements (installed into the venv instead) and the model
        target = task_root / destination[len(TASK_ROOT_VARIABLE):].lstrip("/")
        for source in sources:
            path = REPO / source
            if not path.is_file():
                raise SystemExit(f"the Dockerfile copies {source}, which does not exist")
            if destination.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target / path.name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
            copied.append(source)
    return copied


def clean_venv(folder: Path) -> Path:
    """A venv holding only the image's requirements (reused while they are unchanged)."""
    requirements = HERE / "requirements.txt"
    stamp = folder / f".requirements-{hashlib.sha1(requirements.read_bytes()).hexdigest()[:12]}"
    python = folder / "bin" / "python"
    if not stamp.exists():
        shutil.rmtree(folder, ignore_errors=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "--only-binary=:all:", "-r", str(requirements)], check=True)
        stamp.touch()
    return python


def make_model(folder: Path, aim64: bool) -> Path:
    """A float16 .tflite of a random-weight generator (tiny, or aim64-sized: 64x64, z of 100)."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests"))
    import keras

    from cargan_tf import config, models
    from cargan_tf.export import export

    keras.utils.set_random_seed(0)
    if aim64:
        cfg = config.preset("aim64")
    else:
        from conftest import tiny_config

        cfg = tiny_config()
    generator = folder / "generator.keras"
    models.build_generator(cfg).save(generator)
    export(generator, folder / "export", ("litert",), verbose=False)
    return folder / "export" / "serving_float16.tflite"


def run_child(python: Path, task_root: Path, model: Path, requests: int, cpus: int | None) -> dict:
    events = {name: json.loads((FIXTURES / f"{name}.json").read_text()) for name in EVENTS}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(task_root),
           "CARGAN_MODEL": str(model), "AWS_LAMBDA_FUNCTION_NAME": "cargan-check",
           "LANG": "C.UTF-8"}
    prefix = ["taskset", "-c", ",".join(map(str, range(cpus)))] if cpus else []
    start = time.time()
    out = subprocess.run([*prefix, str(python), "-s", "-c", CHILD, json.dumps(events),
                          str(requests)], env=env, cwd=task_root, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the handler failed in the clean venv:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["cold_s"] = result.pop("first_png_at") - start
    result["python_start_s"] = result.pop("started_at") - start
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=os.path.join(tempfile.gettempdir(), "cargan-lambda-venv"),
                        help="where the clean venv lives (reused while requirements.txt is unchanged)")
    parser.add_argument("--model", help="a .tflite to serve (default: export a random generator)")
    parser.add_argument("--aim64", action="store_true", help="the random generator is aim64-sized "
                                                             "(64x64, z of 100) instead of tiny")
    parser.add_argument("--repeats", type=int, default=1, help="cold starts (median kept)")
    parser.add_argument("--requests", type=int, default=0, help="timed warm requests per case "
                                                                "(0: none, just the checks)")
    parser.add_argument("--cpus", type=int, default=None, help="pin the handler to this many "
                                                               "cores (taskset), e.g. 1 as Lambda "
                                                               "gives at 1,769 MB")
    args = parser.parse_args()

    python = clean_venv(Path(args.venv))
    with tempfile.TemporaryDirectory() as tmp:
        task_root = Path(tmp) / "task"
        copied = build_task_root(task_root)
        model = Path(args.model) if args.model else make_model(Path(tmp), args.aim64)
        runs = [run_child(python, task_root, model, args.requests if i == 0 else 0, args.cpus)
                for i in range(args.repeats)]
    first = runs[0]
    installed = subprocess.run([str(python), "-m", "pip", "freeze"], capture_output=True,
                               text=True, check=True).stdout.split()
    result = {
        "venv_packages": installed, "task_root_files": copied, "model": str(model),
        "model_bytes": model.stat().st_size if model.exists() else None,
        "cpus": args.cpus or os.cpu_count(), "load_average": os.getloadavg()[0],
        "checks": first["checks"], "imported_heavy": first["imported_heavy"],
        "cold_s_median": statistics.median(r["cold_s"] for r in runs),
        "cold_s_all": [round(r["cold_s"], 3) for r in runs],
        "import_and_model_load_s_median": statistics.median(r["import_s"] for r in runs),
        "first_request_s_median": statistics.median(r["first_request_s"] for r in runs),
        "warm": first["warm"], "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }
    problems = [f"{name}: no PNG" for name in EVENTS if name not in first["checks"]]
    if first["imported_heavy"]:
        problems.append(f"the handler imported {first['imported_heavy']}")
    print(f"clean venv {args.venv}: {', '.join(installed)}")
    print(f"task folder (the Dockerfile's COPY lines): {', '.join(copied)}")
    for name, check in first["checks"].items():
        print(f"  {name:<22} {check}")
    print(f"cold start (process start -> first PNG), median of {args.repeats}: "
          f"{result['cold_s_median']:.2f} s (imports + model load "
          f"{result['import_and_model_load_s_median']:.2f} s, first request "
          f"{result['first_request_s_median']:.3f} s); peak RSS {result['peak_rss_mb']:.0f} MB")
    for label, timing in first["warm"].items():
        print(f"  warm {label:<22} median {timing['median_ms']:8.1f} ms   max {timing['max_ms']:8.1f} ms")
    print("PROBLEMS: " + "; ".join(problems) if problems else "ok: every event answered with a PNG, "
          "no TensorFlow/Keras/OpenCV imported")
    print(json.dumps(result))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
