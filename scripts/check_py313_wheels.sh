#!/usr/bin/env bash
# Check that every pin in requirements.txt and requirements-dev.txt (or the files given) has a
# wheel for Python 3.13 on this platform (Colab's Python): pip download --only-binary per pin,
# so one missing wheel does not hide another. Needs the network to PyPI. Exit 1 naming each pin
# that has none.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
PYVER="${PYVER:-3.13}"
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(requirements.txt requirements-dev.txt)
dest="$(mktemp -d)"
trap 'rm -rf "$dest"' EXIT
# the pins themselves: name==version lines, comments and -r includes left out, each once
mapfile -t pins < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "${files[@]}" | grep -E '^[A-Za-z0-9._-]+(\[[^]]*\])?==' | sort -u)
failed=()
for pin in "${pins[@]}"; do
  if "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
      --python-version "$PYVER" -d "$dest" "$pin" >"$dest/log" 2>&1; then
    echo "ok      $pin"
  else
    echo "NO WHEEL $pin (Python $PYVER): $(grep -E '^ERROR' "$dest/log" | head -1)"
    failed+=("$pin")
  fi
  rm -f "$dest"/*.whl
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "check_py313_wheels: ${#failed[@]} of ${#pins[@]} pins have no Python $PYVER wheel: ${failed[*]}" >&2
  exit 1
fi
echo "check_py313_wheels: all ${#pins[@]} pins have a Python $PYVER wheel"
