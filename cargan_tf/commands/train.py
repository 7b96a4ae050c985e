"""`python -m cargan_tf train`: train (or resume) a DCGAN into a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from cargan_tf.config import PRESETS, RunConfig, describe_length, parse_override, resolve
from cargan_tf.env import nvidia_gpu_present
from cargan_tf.errors import ConfigError
from cargan_tf.runs import run_name


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a GAN, or resume one: rerun the same command on the same run folder",
        description="Train a DCGAN into a run folder (config.json, history.csv, samples/, "
                    "checkpoints/, plots/, evolution.gif, generator.keras). Rerunning the same "
                    "command continues from the latest checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None,
                   help="toycars (drawn on the fly, no download), fashion_mnist, a prepared "
                        "cache folder or a folder of images; default: the preset's")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="default: the run's own config when --run-dir already holds a run, "
                        "else quick32. A well-known recipe: aim64 (64x64 cars, 5x5 kernels), "
                        "dcgan64 (PyTorch DCGAN), selu128 (128x128 SELU), fashion28 (Fashion-MNIST), quick32 "
                        "(the CPU quickstart: 10-14 minutes on 2 cores), small32 (quick32 with "
                        "adaptive augmentation for a few hundred images; keeps up to 400: "
                        "--set data_n=N for more), photo64 (a folder of car photos at 64x64: flips, "
                        "R1, 7,000 steps), photo64cpu (photo64 at batch 32 for 14,000 steps, in "
                        "bfloat16 on a CPU that computes it, R1 gamma 0.2: the fastest photo "
                        "recipe on a CPU), photo64ada (photo64cpu with adaptive augmentation and "
                        "R1 gamma 0.05: more whole cars counted by eye, photo-judge FID a few "
                        "points worse)")
    p.add_argument("--epochs", type=int, default=None,
                   help="total epochs (clears the preset's step budget); default: the preset's")
    p.add_argument("--minutes", type=float, default=None,
                   help="train for about this many minutes: after a short measured warm-up "
                        "the run's steps are set to what fits (logged in "
                        "config_history.jsonl; a resume keeps them)")
    p.add_argument("--steps", type=int, default=None,
                   help="total generator steps, whatever the set's size (sets the epochs once "
                        "the data is loaded); default: the preset's")
    p.add_argument("--batch-size", type=int, default=None, help="images per D step")
    p.add_argument("--image-size", type=int, default=None, help="output side (power of two)")
    p.add_argument("--strategy", default=None, choices=("default", "mirrored", "tpu", "multiworker"),
                   help="tf.distribute strategy (needs --set engine=fused): mirrored = all local "
                        "GPUs, tpu = the Colab/Cloud TPU, multiworker = the cluster in TF_CONFIG; "
                        "--batch-size stays the global batch")
    p.add_argument("--init-from", default=None, metavar="RUN_OR_GENERATOR",
                   help="transfer learning: start from a trained run's generator and "
                        "discriminator (or a generator .keras) with the same architecture")
    p.add_argument("--run-dir", default=None,
                   help="run folder; default runs/<preset>-<data> (…-smoke with --smoke)")
    p.add_argument("--config", default=None,
                   help="a config.json to start from instead of a preset (e.g. a run's own)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any RunConfig key, e.g. --set lr_g=1e-4 --set "
                        "frozen_d_batchnorm=batch (repeatable; see cargan_tf/config.py)")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes that finish in seconds, through the same code path")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (for a log file: the run's lines still print, the "
                        "time estimate after the warm-up and one line an epoch)")
    p.add_argument("--force-unlock", action="store_true",
                   help="take over the run folder's train.lock even if the process holding "
                        "it may still be alive (another machine's lock is otherwise respected "
                        "until it is 10 minutes old, a dead process's is taken over anyway); "
                        "only when you are sure no other trainer uses this folder")
    p.set_defaults(func=run)


def config_from_args(args) -> RunConfig:
    """The run's config from the command line, through config.resolve (the notebooks' way too)."""
    # --set values are applied as written (data_n=none: no limit); a flag only when given, so
    # `--set batch_size=32` without --batch-size is not undone by the flag's unset default
    settings = dict(parse_override(text) for text in args.set)
    overrides = {flag: getattr(args, flag)
                 for flag in ("batch_size", "image_size", "strategy", "init_from")
                 if getattr(args, flag) is not None}
    if args.no_progress:
        overrides["progress"] = False
    return resolve(args.preset, overrides, settings=settings, data=args.data, run_dir=args.run_dir,
                   smoke=args.smoke, epochs=args.epochs, steps=args.steps,
                   minutes=args.minutes, config_file=args.config)


def photo_hint(args, cfg: RunConfig) -> str | None:
    """A tip when a folder of images trains on the default preset (no --preset, no --config):
    quick32 at 32x32 draws colour smears on car photos, photo64 draws cars, photo64cpu
    draws them sooner on a machine without an NVIDIA GPU and photo64ada (photo64cpu with ADA)
    more whole ones counted by eye (BENCHMARKS.md)."""
    if args.preset or args.config or cfg.preset != "quick32" or not cfg.data \
            or not Path(cfg.data).is_dir():
        return None
    tip = "tip: on car photos the default (quick32, 32x32) draws colour smears; "
    if nvidia_gpu_present():
        return tip + "--preset photo64 draws cars at 64x64 (BENCHMARKS.md: 'Photo recipe search')"
    return tip + ("--preset photo64cpu draws cars at 64x64 on a CPU (about 27 min on 2 cores "
                  "with bfloat16 instructions, 35 without; BENCHMARKS.md: 'photo64cpu'), "
                  "--preset photo64ada more whole ones (adaptive augmentation, ~12% slower)")


def run(args) -> int:
    cfg = config_from_args(args)
    hint = photo_hint(args, cfg)
    if hint:
        print(hint, flush=True)
    run_dir = Path(args.run_dir or Path("runs") / run_name(cfg.preset, cfg.data, args.smoke))
    from cargan_tf.train import train  # here: it imports TensorFlow, which `--help` must not

    if not isinstance(cfg.epochs, int) or cfg.epochs < 0:
        raise ConfigError("--epochs must be a non-negative integer")
    print(f"training {cfg.preset} on {cfg.data} ({cfg.image_size}x{cfg.image_size}x"
          f"{cfg.channels}, {describe_length(cfg)}) into {run_dir}", flush=True)
    out = train(cfg, run_dir, force_unlock=args.force_unlock or None)
    print(f"\nrun folder: {out.resolve()}\n  samples/ (the epochs' grids), plots/losses.png, "
          f"plots/d_outputs.png, real_vs_fake.png, evolution.gif, generator.keras", flush=True)
    return 0
