#!/usr/bin/env bash
# Create (or reuse) .venv and install the pinned requirements into it, only when they changed.
# Used by `make quickstart`, `make test` and CI, so a fresh clone needs no other set-up step.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.requirements-$(cat requirements.txt requirements-dev.txt pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "installing pinned requirements into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements-dev.txt
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  rm -f "$VENV"/.requirements-*
  touch "$stamp"
fi
