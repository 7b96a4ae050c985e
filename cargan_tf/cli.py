"""The command-line interface: one subcommand per module in cargan_tf/commands/.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func=run``; ``run(args) -> int`` does the work. Modules import TensorFlow inside ``run``
only, so ``--help`` and light commands stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from cargan_tf.errors import CarganError

# Order here is the order in `--help`.
COMMAND_MODULES = (
    "download",
    "prepare",
    "train",
    "sample",
    "directions",
    "plot",
    "gif",
    "evaluate",
    "compare",
    "inpaint",
    "restore",
    "project",
    "export",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m cargan_tf",
        description="Train DCGANs that design cars (and Fashion-MNIST clothes) with Keras 3.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"cargan_tf.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CarganError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
