"""The seeds' recipes on real photos, each for the same wall time, judged by the photo judge.

    python benchmarks/photo_recipes.py --data TRAIN --held-out HELD --minutes 60 \
        --out benchmarks/results/photo_recipes.json --grid docs/images/photo_recipes.jpg
    # a recipe with changes: NAME=PRESET[:KEY=VALUE,KEY=VALUE]
    python benchmarks/photo_recipes.py --data TRAIN --held-out HELD --minutes 15 \
        --recipe aim64 --recipe aim64_fixed=aim64:fake_batch_mode=training,d_batchnorm=false

Issue 23 asks how the recipes the seeds' readers arrive with (aim64, dcgan64, selu128: each
at its own image size) do on photos when given the same time as the photo recipe, and which
smallest `--set` changes make each draw cars. Each recipe trains with `python -m cargan_tf
train --preset P --data TRAIN --minutes M` (the measured warm-up sets its steps), one at a
time so each has the whole machine; then `evaluate --features photo` scores its generator
(the EMA copy where the recipe keeps one) with --n samples against --n photos of HELD, which
no run trains on. Printed and written to --out: FID, precision, recall, diversity, steps done
and seconds per step. --grid puts each run's last sample grid side by side, labelled.
A finished run is not trained again (its folder is reused), so the command can be rerun.
--reference NAME=RUN_DIR@STEP adds an existing run's checkpoint at STEP (e.g. the photo recipe
at the step it reaches alone in --minutes), scored by checkpoint_curve.py with the same judge,
latents, --n and held-out photos, and its grid from that epoch, first in the table and picture.
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
sys.path.insert(0, str(REPO))
DEFAULT_RECIPES = ("aim64", "dcgan64", "selu128")


def parse_recipe(text: str) -> tuple[str, str, list[str]]:
    """'NAME=PRESET:K=V,K=V' (or just 'PRESET') -> (name, preset, ['K=V', ...]).

    A piece with no '=' continues the value before it, so a setting whose value is itself a
    comma list reads as on the command line: 'ada=photo64cpu:diffaugment=color,translation'.
    """
    head, _, changes = text.partition(":")
    name, _, preset = head.partition("=")
    preset = preset or name
    settings: list[str] = []
    for piece in (p for p in changes.split(",") if p):
        if "=" in piece:
            settings.append(piece)
        elif settings:
            settings[-1] += "," + piece
        else:
            raise SystemExit(f"--recipe {text!r}: {piece!r} is not KEY=VALUE")
    return name, preset, settings


def run_dir_for(name: str, args) -> Path:
    return args.workdir / f"{name}-seed{args.seed}"


def train_command(name: str, preset: str, settings: list[str], args) -> list[str]:
    command = [sys.executable, "-m", "cargan_tf", "train", "--preset", preset,
               "--data", str(args.data), "--run-dir", str(run_dir_for(name, args)),
               "--no-progress", "--set", "data_n=none", "--set", f"seed={args.seed}"]
    for setting in settings:
        command += ["--set", setting]
    # --smoke keeps its own 2 epochs: a length asked for on the command line would win over it
    return command + (["--smoke"] if args.smoke else ["--minutes", str(args.minutes)])


def side_by_side(rows: list[dict], out: Path, height: int = 384) -> None:
    """Each run's last grid, scaled to one height, with its name and FID written above it."""
    import cv2
    import numpy as np

    from cargan_tf.viz import caption

    panels = []
    for row in rows:
        grid = cv2.imread(row["grid"])
        grid = cv2.resize(grid, (height * grid.shape[1] // grid.shape[0], height),
                          interpolation=cv2.INTER_AREA)
        panels.append(caption(grid, f"{row['recipe']}  FID {row['fid']:.0f}  {row['steps']} steps"))
    gap = np.full((panels[0].shape[0], 8, 3), 255, np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.hstack([p for panel in panels for p in (panel, gap)][:-1]),
                [cv2.IMWRITE_JPEG_QUALITY, 90])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the training photos")
    parser.add_argument("--held-out", type=Path, required=True,
                        help="photos no run trains on (the judge's reference)")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall time per recipe")
    parser.add_argument("--recipe", action="append", default=[],
                        help="NAME=PRESET[:KEY=VALUE,...] (repeatable; default: the seeds' "
                             f"{', '.join(DEFAULT_RECIPES)})")
    parser.add_argument("--reference", action="append", default=[],
                        help="NAME=RUN_DIR@STEP: an existing run's checkpoint, shown first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=500, help="samples and held-out photos scored")
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "photo_recipes")
    parser.add_argument("--out", type=Path, default=None, help="a JSON of the scores")
    parser.add_argument("--grid", type=Path, default=None, help="the side-by-side grids (.jpg)")
    parser.add_argument("--smoke", action="store_true",
                        help="train each recipe at tiny sizes for 2 epochs (checks the command)")
    args = parser.parse_args(argv)
    for folder, flag in ((args.data, "--data"), (args.held_out, "--held-out")):
        if not folder.is_dir():
            raise SystemExit(f"{flag} {folder}: not a folder of photos")

    rows = [reference_row(text, args) for text in args.reference]
    for row in rows:
        print(format_row(row), flush=True)
    for text in args.recipe or DEFAULT_RECIPES:
        name, preset, settings = parse_recipe(text)
        run_dir = run_dir_for(name, args)
        if not (run_dir / "generator.keras").exists():
            print(f"{name}: training {'(smoke)' if args.smoke else f'{args.minutes:g} min'} ...",
                  flush=True)
            run_dir.mkdir(parents=True, exist_ok=True)
            with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
                subprocess.run(train_command(name, preset, settings, args), cwd=REPO,
                               stdout=log, stderr=subprocess.STDOUT, check=True)
        metrics_path = run_dir / f"photo_metrics_n{args.n}.json"
        subprocess.run([sys.executable, "-m", "cargan_tf", "evaluate", str(run_dir),
                        "--features", "photo", "--n", str(args.n), "--data", str(args.held_out),
                        "--no-memorisation", "--out", str(metrics_path)],
                       cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        scores = json.loads(metrics_path.read_text())
        rows.append(summarise(name, preset, settings, run_dir, scores))
        print(format_row(rows[-1]), flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    if args.grid:
        side_by_side(rows, args.grid)


def reference_row(text: str, args) -> dict:
    """'NAME=RUN_DIR@STEP' -> that checkpoint's scores and grid, in a recipe's row format."""
    from cargan_tf.runs import RunPaths, list_checkpoints, read_json

    name, _, rest = text.partition("=")
    run_text, _, step_text = rest.rpartition("@")
    if not (name and run_text and step_text.isdigit()):
        raise SystemExit(f"--reference {text!r}: use NAME=RUN_DIR@STEP")
    run_dir, step = Path(run_text), int(step_text)
    steps = [int(read_json(c / "state.json")["step"]) for c in list_checkpoints(RunPaths(run_dir))]
    if step not in steps:
        raise SystemExit(f"--reference {text!r}: {run_dir} has no checkpoint at step {step} "
                         f"(it has {', '.join(map(str, steps)) or 'none'})")
    curve = args.workdir / "reference_scores.json"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "checkpoint_curve.py"),
                    str(run_dir), "--real", str(args.held_out), "--features", "photo",
                    "--n", str(args.n), "--at", str(step), "--out", str(curve)],
                   cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    key = f"photo-{args.n}-{step}"  # checkpoint_curve's key: features-n-step
    scores = read_json(curve)[str(run_dir)]
    seconds = step_seconds(run_dir)[:step]
    # the newest grid up to the end of the epoch that holds STEP (grids are named by epoch)
    epoch = math.ceil(step / read_json(run_dir / "run_info.json")["steps_per_epoch"])
    grids = [g for g in RunPaths(run_dir).list_sample_grids() if int(g.stem[6:]) <= epoch]
    preset = read_json(run_dir / "config.json")["preset"]
    return {"recipe": name, "preset": preset, "set": [], "from": f"{run_dir}@{step}",
            "steps": step, "seconds_per_step": sum(seconds) / max(1, len(seconds)),
            "fid": scores[key], **{k: scores[f"{key}-spread"][k]
                                   for k in ("precision", "recall", "diversity")},
            "grid": str(grids[-1])}


def step_seconds(run_dir: Path) -> list[float]:
    """Each training step's seconds, in order (history.csv has one row a step)."""
    import csv

    with open(run_dir / "history.csv") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def summarise(name: str, preset: str, settings: list[str], run_dir: Path, scores: dict) -> dict:
    from cargan_tf.runs import RunPaths

    seconds = step_seconds(run_dir)
    return {"recipe": name, "preset": preset, "set": settings, "steps": len(seconds),
            "seconds_per_step": sum(seconds) / max(1, len(seconds)),
            "fid": scores["fid"], "precision": scores["precision"], "recall": scores["recall"],
            "diversity": scores["diversity"], "grid": str(RunPaths(run_dir).list_sample_grids()[-1])}


def format_row(row: dict) -> str:
    changes = (f"(checkpoint {row['from']})" if "from" in row
               else " ".join(f"--set {s}" for s in row["set"]) or "(as published)")
    return (f"{row['recipe']:<16} {row['steps']:>6} steps  {row['seconds_per_step']:.2f} s/step  "
            f"FID {row['fid']:7.1f}  precision {row['precision']:.3f}  recall "
            f"{row['recall']:.3f}  diversity {row['diversity']:.3f}  {changes}")


if __name__ == "__main__":
    main()
