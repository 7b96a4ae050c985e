"""`python -m cargan_tf plot`: redraw a run's loss and D-output plots from history.csv."""

from __future__ import annotations

from cargan_tf import viz
from cargan_tf.errors import CarganError
from cargan_tf.runs import RunPaths


def register(subparsers) -> None:
    p = subparsers.add_parser("plot", help="redraw plots/losses.png and plots/d_outputs.png",
                              description="Redraw a run's plots from its history.csv (works "
                                          "while the run is still training).")
    p.add_argument("run_dir", help="a run folder")
    p.set_defaults(func=run)


def run(args) -> int:
    paths = RunPaths(args.run_dir)
    if not paths.history.exists():
        raise CarganError(f"{paths.history} not found: is {args.run_dir} a run folder?")
    paths.plots.mkdir(parents=True, exist_ok=True)
    print(viz.plot_losses(paths.history, paths.losses_plot))
    print(viz.plot_d_outputs(paths.history, paths.d_outputs_plot))
    return 0
