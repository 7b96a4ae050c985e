#!/usr/bin/env bash
# Create (or reuse) .venv-colab, a second environment pinned to Colab's stack (Python 3.13,
# requirements-colab.txt), with the package installed editable; reinstalls only when the pins
# change. Used by `make test-colab`, scripts/wheel_smoke.sh and CI.
# PYTHON picks the interpreter; by default the first Python 3.13 found (python3.13, then pyenv's).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv-colab}"
find_py313() {
  local c
  for c in python3.13 "$(command -v pyenv >/dev/null && pyenv root)/versions/3.13"*/bin/python3.13; do
    if [ -n "$c" ] && "$c" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null; then
      echo "$c"; return 0
    fi
  done
  return 1
}
PYTHON="${PYTHON:-$(find_py313 || true)}"
if [ -z "$PYTHON" ]; then
  echo "ensure_colab_venv: no Python 3.13 found; set PYTHON=/path/to/python3.13" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating $VENV with $("$PYTHON" --version)"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.requirements-$(cat requirements-colab.txt pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  echo "installing Colab's pins into $VENV (first time: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r requirements-colab.txt
  # the package itself, without letting pip touch the pinned stack
  "$VENV/bin/python" -m pip install -q --no-deps -e .
  "$VENV/bin/python" -m pip check
  rm -f "$VENV"/.requirements-*
  touch "$stamp"
fi
# scripts/wheel_smoke.sh installs the wheel here for a while: the tests want this checkout
if ! "$VENV/bin/python" -c "import importlib.util as u, sys; s = u.find_spec('cargan_tf');
sys.exit(not (s and s.origin.startswith(sys.argv[1])))" "$PWD/cargan_tf/"; then
  echo "reinstalling this checkout (editable) into $VENV"
  "$VENV/bin/python" -m pip install -q --no-deps -e .
fi
