"""`python -m cargan_tf gif`: rebuild a run's evolution.gif from its per-epoch grids."""

from __future__ import annotations

from cargan_tf import viz
from cargan_tf.errors import CarganError
from cargan_tf.runs import RunPaths


def register(subparsers) -> None:
    p = subparsers.add_parser("gif", help="rebuild evolution.gif from samples/epoch_*.png",
                              description="One frame per saved epoch grid, labelled with the "
                                          "epoch; the last frame lingers.")
    p.add_argument("run_dir", help="a run folder")
    p.add_argument("--seconds-per-frame", type=float, default=0.5, help="frame duration")
    p.add_argument("--out", default=None, help="output path (default: RUN/evolution.gif)")
    p.add_argument("--every", type=int, default=1,
                   help="keep every Nth epoch grid (the first and last are always kept)")
    p.add_argument("--max-frames", type=int, default=100,
                   help="then keep at most this many, evenly spaced (0: all)")
    p.add_argument("--max-side", type=int, default=None,
                   help="shrink frames to at most this many pixels on their longer side")
    p.set_defaults(func=run)


def run(args) -> int:
    paths = RunPaths(args.run_dir)
    frames = paths.list_sample_grids()
    if not frames:
        raise CarganError(f"no samples/epoch_*.png in {args.run_dir}: train an epoch first")
    if args.every < 1:
        raise CarganError(f"--every {args.every}: use 1 or more")
    if args.max_frames < 0:
        raise CarganError(f"--max-frames {args.max_frames}: use 0 (all) or more")
    if not args.seconds_per_frame > 0:
        raise CarganError(f"--seconds-per-frame {args.seconds_per_frame}: use a positive "
                          "number, e.g. 0.5")
    if args.max_side is not None and args.max_side < 16:
        raise CarganError(f"--max-side {args.max_side}: use 16 pixels or more")
    frames = [p for i, p in enumerate(frames)
              if i % args.every == 0 or i == len(frames) - 1]
    frames = viz.thin_frames(frames, args.max_frames)
    labels = [f"epoch {int(p.stem.split('_')[1])}" for p in frames]
    out = viz.make_gif(frames, args.out or paths.evolution_gif, args.seconds_per_frame, labels,
                       max_side=args.max_side)
    print(f"{out} ({len(frames)} frames)")
    return 0
