"""Sample quality of the issue-5 options against the well-known recipe, at equal G steps and seed.

    python benchmarks/quality_search.py                       # small default: 3 recipes, 384 steps
    python benchmarks/quality_search.py --candidates all --steps 2048 --seeds 0,1 --jobs 2
    python benchmarks/quality_search.py --candidates all --steps 2048 --data-n 400  # small set
    python benchmarks/quality_search.py --list                # the candidates and their options

The full search of issue 5 (every candidate, 2 seeds, 2048 steps = 16 epochs of 8192 images,
then again at --data-n 400) takes about 8-12 minutes per run on 2 idle cores (0.2-0.35 s per
step, 5x5-kernel candidates slower than 4x4 ones) plus ~20 s per evaluation: about 4 hours per
data size, so run it overnight, on a bigger machine (--jobs 4 on 8+ cores), or a few
candidates at a time. At --data-n 400 an epoch is 6 steps, so train.py's per-epoch work
(a grid, plots) is a larger share of the time; compare s/step, not wall clock, there.

First finding (2048 steps, seed 0, 1000 samples; see the quick32 preset in config.py): the
classic recipe's fake batch for D comes from G in inference mode (generator.predict), while
G's own step runs it in training mode; G then fools D through batch statistics D never sees
(G-step loss ~0.05 while D rejects the inference-mode fakes) and produces the same noise for
every z. fake_batch_mode=training plus no BatchNorm in D and a minibatch-std channel gave
recognisable cars of all 6 body types (domain FID 36 vs a real-vs-real floor of 2.5).

Baseline: the aim64 recipe (architecture, Adam 2e-4 / 1.5e-4 with beta_1 0.5, label noise,
L2-enhanced BCE, 2x noise for G, BatchNorm in D) scaled to 32x32 like the quickstart
(base_filters 32, batch 64), with binary crossentropy as the loss (not the original's
always-zero categorical crossentropy), trained by the fused engine (the same maths as
train_on_batch, faster). Each candidate is the baseline plus a few options; every run uses the
same seed, batch size, data and number of generator steps, each in its own subprocess
(`python -m cargan_tf train`), at most --jobs at a time. Each finished run is scored with
`python -m cargan_tf evaluate --features domain` (the toycars CNN of cargan_tf.features) against
--eval-n held-out toycars, and the real-vs-real floor is scored once.

Printed (and written to --out as JSON): domain FID and KID, precision/recall, the diversity
ratio, body types covered (of 6), seconds per step (the load average is printed beside it:
timings from a shared machine are only comparable within one table).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]

BASELINE = dict(preset="aim64", image_size=32, base_filters=32, max_filters=256, batch_size=64,
                engine="fused")

# name: (overrides on the baseline, what it tests)
CANDIDATES: dict[str, tuple[dict, str]] = {
    "baseline": ({}, "aim64 recipe with BCE at 32x32 (BatchNorm in D, 5x5 kernels)"),
    "train_fakes": (dict(fake_batch_mode="training"),
                    "D's fake batch from G in training mode (batch statistics, as PyTorch)"),
    "no_d_bn": (dict(d_batchnorm=False),
                "no BatchNorm in D (no frozen-BN mismatch between D's and G's steps)"),
    "mbstd": (dict(d_batchnorm=False, minibatch_std=True, kernel_size=4),
              "+ minibatch std in D, 4x4 kernels"),
    "ns_mbstd_ema": (dict(loss="nonsaturating", d_batchnorm=False, minibatch_std=True,
                          kernel_size=4, ema_decay=0.999, l2_alpha=0.0, g_noise_multiplier=1,
                          lr_g=2e-4),
                     "non-saturating logits + minibatch std + 4x4 + EMA"),
    "ns_train_mbstd_ema": (dict(loss="nonsaturating", fake_batch_mode="training",
                                d_batchnorm=False, minibatch_std=True, kernel_size=4,
                                ema_decay=0.999, l2_alpha=0.0, g_noise_multiplier=1, lr_g=2e-4),
                           "ns_mbstd_ema with training-mode fakes for D"),
    "hinge_sn": (dict(loss="hinge", label_noise=False, spectral_norm=True, d_batchnorm=False,
                      kernel_size=4, l2_alpha=0.0, g_noise_multiplier=1, lr_g=2e-4),
                 "hinge loss + spectral norm in D, 4x4"),
    "hinge_sn_mbstd_ema": (dict(loss="hinge", label_noise=False, spectral_norm=True,
                                d_batchnorm=False, minibatch_std=True, kernel_size=4,
                                ema_decay=0.999, l2_alpha=0.0, g_noise_multiplier=1, lr_g=2e-4),
                           "hinge + spectral norm + minibatch std + EMA, 4x4"),
    "diffaugment": (dict(loss="hinge", label_noise=False, spectral_norm=True, d_batchnorm=False,
                         minibatch_std=True, kernel_size=4, ema_decay=0.999, l2_alpha=0.0,
                         g_noise_multiplier=1, lr_g=2e-4, diffaugment="color,translation,cutout"),
                    "hinge_sn_mbstd_ema + DiffAugment (for small sets)"),
    "joint_no_d_bn": (dict(schedule="joint", d_batchnorm=False, dropout=0.3, g_noise_multiplier=1),
                      "TF-tutorial joint step, no D BatchNorm, dropout 0.3"),
    "frozen_bn_batch": (dict(frozen_d_batchnorm="batch"),
                        "the frozen D's BatchNorm uses batch statistics in G's step"),
    "quick32": (dict(preset="quick32"), "the quick32 preset as it is now (the quickstart's recipe)"),
    "ttur": (dict(preset="quick32", lr_d=4e-4, lr_g=1e-4),
             "the quick32 preset with two time-scales: D 4e-4, G 1e-4 (Heusel et al. 2017)"),
    "quick32_diffaugment": (dict(preset="quick32", diffaugment="color,translation,cutout"),
                            "the quick32 preset + DiffAugment (for small sets)"),
    "quick32_translation": (dict(preset="quick32", diffaugment="translation"),
                            "the quick32 preset + DiffAugment translation only (keeps colours)"),
    "quick32_dropout": (dict(preset="quick32", dropout=0.3),
                        "the quick32 preset + dropout 0.3 in D (slows D's memorising)"),
    "quick32_modeseek": (dict(preset="quick32", mode_seeking=1.0),
                         "the quick32 preset + the mode-seeking term (MSGAN), weight 1"),
    "quick32_mbstd4": (dict(preset="quick32", minibatch_std_group=4),
                       "the quick32 preset with StyleGAN's minibatch-std groups of 4"),
    "quick32_ada": (dict(preset="quick32", diffaugment="color,translation,cutout", ada_target=0.6),
                    "the quick32 preset + adaptive augmentation (StyleGAN2-ADA's target 0.6)"),
    # the photo search (issue 23): real photos at 64x64, judged by the photo judge
    "photo_da": (dict(preset="quick32", diffaugment="translation,cutout"),
                 "quick32 + DiffAugment translation and cutout, always on (no colour jitter)"),
    "photo_hinge_sn_da": (dict(preset="quick32", loss="hinge", label_noise=False,
                               spectral_norm=True, diffaugment="translation,cutout"),
                          "photo_da with the hinge loss and spectral norm in D"),
    "photo_wide_ada": (dict(preset="quick32", base_filters=48, max_filters=384,
                            diffaugment="color,translation,cutout", ada_target=0.6),
                       "quick32_ada with 1.5x the filters in every layer (2.25x the work)"),
    "photo_ttur_ada": (dict(preset="quick32", lr_d=4e-4, lr_g=1e-4,
                            diffaugment="color,translation,cutout", ada_target=0.6),
                       "quick32_ada with two time-scales (D 4e-4, G 1e-4)"),
}
DEFAULT_CANDIDATES = ("baseline", "quick32")


def candidate_config(name: str, seed: int, steps: int, data_n: int, data: str = "toycars",
                     image_size: int = 32, eval_every_steps: int = 0):
    """(RunConfig, actual G steps) for a candidate: equal batch and steps for every one.
    data_n: training images (for a folder: how many it holds, or fewer to subsample);
    image_size: 32 for the search, 64 to confirm a winner (same widths, one more block);
    eval_every_steps: also score G into metrics.csv about this often (0: only at the end)."""
    from cargan_tf import config

    # a candidate naming a preset starts from that preset, the others from the baseline
    overrides = dict(CANDIDATES[name][0])
    base = {"preset": overrides.pop("preset")} if "preset" in overrides else dict(BASELINE)
    settings = {**base, **overrides, "image_size": image_size}
    cfg = config.preset(settings.pop("preset"), **settings, seed=seed, data_n=data_n, data=data)
    per_epoch = data_n // cfg.batch_size
    if per_epoch < 1:
        raise SystemExit(f"--data-n {data_n} is fewer than one batch of {cfg.batch_size}")
    epochs = max(1, math.ceil(steps / per_epoch))
    every = max(1, round(eval_every_steps / per_epoch)) if eval_every_steps else 0
    return cfg.replace(epochs=epochs, steps=0, progress=False, checkpoint_every_minutes=0.0,
                       checkpoint_every_epochs=max(1, epochs // 4), keep_checkpoints=1,
                       eval_every_epochs=every), \
        epochs * per_epoch


def load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def data_tag(args) -> str:
    """'' for toycars, else the data folder's name and a dash (run and result file names)."""
    if args.data == "toycars":
        return ""
    return Path(args.data.partition(":")[2] or args.data).name + "-"


def size_tag(args) -> str:
    """'' at the search's 32x32, else e.g. '-64px' (run and result file names)."""
    return "" if args.image_size == 32 else f"-{args.image_size}px"


def run_dir_for(name: str, seed: int, args) -> Path:
    return args.workdir / (f"{data_tag(args)}{name}-seed{seed}-n{args.data_n}-s{args.steps}"
                           f"{size_tag(args)}")


def run_candidate(name: str, seed: int, args) -> subprocess.Popen:
    cfg, _ = candidate_config(name, seed, args.steps, args.data_n, args.data, args.image_size,
                              args.eval_every_steps)
    if args.eval_every_steps:  # the curve scored like the end point
        cfg = cfg.replace(eval_n=args.eval_n, eval_features=args.features)
    run_dir = run_dir_for(name, seed, args)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path = run_dir / "requested_config.json"
    config_path.write_text(cfg.to_json())
    log = open(run_dir / "train.log", "w")
    return subprocess.Popen([sys.executable, "-m", "cargan_tf", "train", "--config",
                             str(config_path), "--run-dir", str(run_dir), "--no-progress"],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)


def evaluate(run_dir: Path, n: int, floor: bool = False, features: str = "domain") -> dict:
    out = run_dir / "metrics.json"
    cmd = [sys.executable, "-m", "cargan_tf", "evaluate", str(run_dir), "--features", features,
           "--n", str(n), "--out", str(out)] + (["--floor"] if floor else [])
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def summarise(name: str, seed: int, run_dir: Path, metrics: dict, steps: int) -> dict:
    import csv

    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    seconds = [float(r["seconds"]) for r in rows]
    coverage = metrics.get("coverage") or {}
    tail = rows[-min(len(rows), 100):]
    return {
        "candidate": name, "seed": seed, "steps": len(rows), "steps_requested": steps,
        "fid": metrics["fid"], "kid": metrics["kid"], "kid_std": metrics["kid_std"],
        "precision": metrics["precision"], "recall": metrics["recall"],
        "diversity": metrics["diversity"], "classes_hit": coverage.get("classes_hit"),
        "n_classes": len(coverage.get("class_names") or []) or None,
        "seconds_per_step": sorted(seconds)[len(seconds) // 2] if seconds else None,
        "train_seconds": round(sum(seconds), 1),
        "d_of_x": sum(float(r["D(x)"]) for r in tail) / len(tail),
        "d_of_g_z": sum(float(r["D(G(z))"]) for r in tail) / len(tail),
        "run_dir": str(run_dir),
    }


def print_table(results: list[dict], floor: dict | None, load: list[float]) -> None:
    header = (f"{'candidate':22s} {'seed':>4s} {'steps':>5s} {'FID':>7s} {'KID':>7s} "
              f"{'prec':>5s} {'rec':>5s} {'div':>5s} {'types':>5s} {'s/step':>6s} "
              f"{'D(x)':>5s} {'D(Gz)':>5s}")
    print(header)
    print("-" * len(header))
    for r in sorted(results, key=lambda r: (r["fid"], r["seed"])):
        types = f"{r['classes_hit']}/{r['n_classes']}" if r["classes_hit"] is not None else "-"
        print(f"{r['candidate']:22s} {r['seed']:4d} {r['steps']:5d} {r['fid']:7.2f} "
              f"{r['kid']:7.4f} {r['precision']:5.2f} {r['recall']:5.2f} {r['diversity']:5.2f} "
              f"{types:>5s} {r['seconds_per_step']:6.3f} {r['d_of_x']:5.2f} {r['d_of_g_z']:5.2f}")
    if floor:
        print(f"{'real vs real (floor)':22s} {'':4s} {'':5s} {floor['fid']:7.2f} "
              f"{floor['kid']:7.4f} {floor['precision']:5.2f} {floor['recall']:5.2f} "
              f"{floor['diversity']:5.2f}")
    if load:
        print(f"load average (1 min) while training: {min(load):.1f} .. {max(load):.1f} "
              f"on {os.cpu_count()} cores")


def write_reference(results: list[dict], args) -> None:
    """The first baseline result's metrics.json plus a note on how it was made."""
    base = next((r for r in results if r["candidate"] == "baseline"), None)
    if base is None:
        raise SystemExit("--reference-out needs the baseline among --candidates")
    metrics = json.loads((Path(base["run_dir"]) / "metrics.json").read_text())
    metrics["reference"] = {
        "name": "aim64 recipe at 32x32 (BCE, 5x5 kernels, BatchNorm in D, label noise)",
        "note": f"{base['steps']} G steps, {base['train_seconds']:.0f} s of training, "
                f"seed {base['seed']}",
        "command": f"python benchmarks/quality_search.py --candidates baseline --steps "
                   f"{args.steps} --seeds {base['seed']} --eval-n {args.eval_n} "
                   f"--reference-out {args.reference_out}",
        "train_seconds": base["train_seconds"], "steps": base["steps"],
    }
    args.reference_out.parent.mkdir(parents=True, exist_ok=True)
    args.reference_out.write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"written {args.reference_out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default=",".join(DEFAULT_CANDIDATES),
                        help="comma list of candidate names, or 'all' (see --list)")
    parser.add_argument("--steps", type=int, default=384,
                        help="generator steps per run (rounded up to whole epochs)")
    parser.add_argument("--seeds", default="0", help="comma list of seeds")
    parser.add_argument("--data-n", type=int, default=8192,
                        help="toycars training images (400: the original Indian-cars set size)")
    parser.add_argument("--data", default="toycars",
                        help="training data, as train's --data (e.g. stanford_cars:FOLDER); "
                             "for a folder, set --data-n to its size and --features pixels")
    parser.add_argument("--image-size", type=int, default=32, choices=(32, 64, 128),
                        help="32 for the search; 64 to confirm the winner (same widths)")
    parser.add_argument("--features", default="domain",
                        help="evaluate's features: domain (toycars), pixels (any data)")
    parser.add_argument("--eval-n", type=int, default=1000,
                        help="samples and held-out real images per evaluation (5000 for "
                             "numbers to compare with evaluate's defaults)")
    parser.add_argument("--eval-every-steps", type=int, default=0,
                        help="also score each run about every N steps into its metrics.csv "
                             "(the curve; features as --features, --eval-n images)")
    parser.add_argument("--jobs", type=int, default=1, help="trainings at a time")
    parser.add_argument("--workdir", type=Path, default=REPO / "runs" / "quality_search",
                        help="where the run folders go (a finished run is reused)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON results (default: WORKDIR/results-n<data_n>-s<steps>.json)")
    parser.add_argument("--reference-out", type=Path, default=None,
                        help="also write the baseline's metrics.json, with how it was made, "
                             "here: the quickstart prints it beside its own scores "
                             "(benchmarks/results/quickstart_baseline.json)")
    parser.add_argument("--list", action="store_true", help="list the candidates and exit")
    args = parser.parse_args(argv)

    if args.list:
        for name, (overrides, what) in CANDIDATES.items():
            shown = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "-"
            print(f"{name:20s} {what}\n{'':20s}   {shown}")
        return 0
    names = list(CANDIDATES) if args.candidates == "all" else args.candidates.split(",")
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidates {unknown}: see --list")
    seeds = [int(s) for s in args.seeds.split(",")]
    args.workdir.mkdir(parents=True, exist_ok=True)

    # candidate by candidate, its seeds side by side: a stopped search has whole pairs
    queue = [(name, seed) for name in names for seed in seeds]
    running: list[tuple[str, int, subprocess.Popen]] = []
    results, loads = [], []
    start = time.time()
    while queue or running:
        while queue and len(running) < max(1, args.jobs):
            name, seed = queue.pop(0)
            _, steps = candidate_config(name, seed, args.steps, args.data_n, args.data,
                                        args.image_size)
            run_dir = run_dir_for(name, seed, args)
            if (run_dir / "generator.keras").exists():
                print(f"reusing {run_dir}", flush=True)
                running.append((name, seed, None))
                continue
            print(f"training {name} (seed {seed}, {steps} steps)", flush=True)
            running.append((name, seed, run_candidate(name, seed, args)))
        time.sleep(2)
        load = load_average()
        if load is not None:
            loads.append(load)
        for item in list(running):
            name, seed, proc = item
            if proc is not None and proc.poll() is None:
                continue
            running.remove(item)
            run_dir = run_dir_for(name, seed, args)
            if proc is not None and proc.returncode != 0:
                print(f"{name} seed {seed} failed (exit {proc.returncode}): see "
                      f"{run_dir / 'train.log'}", flush=True)
                continue
            _, steps = candidate_config(name, seed, args.steps, args.data_n, args.data,
                                        args.image_size)
            metrics = evaluate(run_dir, args.eval_n, features=args.features)
            results.append(summarise(name, seed, run_dir, metrics, steps))
            print(f"  {name} seed {seed}: FID {metrics['fid']:.2f}  "
                  f"({time.time() - start:.0f} s so far)", flush=True)

    floor = None
    if results:
        floor_run = Path(results[0]["run_dir"])
        floor = (evaluate(floor_run, args.eval_n, floor=True, features=args.features)
                 or {}).get("floor")
        # leave that run's metrics.json without the floor
        evaluate(floor_run, args.eval_n, features=args.features)
    print()
    print(f"{args.data} at {args.image_size}x{args.image_size}, {args.data_n} training images, "
          f"batch 64, equal G steps, "
          f"{args.features} features, {args.eval_n} samples vs {args.eval_n} real images")
    print_table(results, floor, loads)
    if args.reference_out:
        write_reference(results, args)
    out = args.out or args.workdir / (f"results-{data_tag(args)}n{args.data_n}-s{args.steps}"
                                             f"{size_tag(args)}.json")
    out.write_text(json.dumps({"results": results, "floor": floor, "load": loads[::10],
                               "args": {k: str(v) for k, v in vars(args).items()}}, indent=2))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
