"""Subcommands of `python -m cargan_tf`, one module each (see cargan_tf/cli.py)."""
