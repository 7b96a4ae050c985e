"""The package's layers (pyproject.toml [tool.importlinter]): kept today, and an upward import
added to a scratch copy of the package makes `lint-imports` fail with a message naming it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    """The lint-imports command beside this Python (the venv's), or on PATH; skip if absent."""
    beside = Path(sys.executable).with_name("lint-imports")
    found = str(beside) if beside.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.skip("import-linter is not installed (requirements-dev.txt pins it)")
    return found


def _run(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # this copy's package, not an installed one
    return subprocess.run([_lint_imports(), "--no-cache", "--no-logo"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)


def _scratch_copy(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root)
    shutil.copytree(REPO / "cargan_tf", root / "cargan_tf",
                    ignore=shutil.ignore_patterns("__pycache__", "assets"))
    return root


def test_the_layers_are_kept(tmp_path):
    out = _run(_scratch_copy(tmp_path))
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_an_upward_import_fails_and_is_named(tmp_path):
    root = _scratch_copy(tmp_path)
    low = root / "cargan_tf" / "runs.py"  # the foundation layer
    low.write_text(low.read_text(encoding="utf-8")
                   + "\n\nfrom cargan_tf import train  # noqa: E402,F401  an upward import\n",
                   encoding="utf-8")
    out = _run(root)
    assert out.returncode != 0
    assert "BROKEN" in out.stdout
    assert "cargan_tf.runs -> cargan_tf.train" in out.stdout


def test_every_long_module_says_why_at_its_top():
    # issue 21: one job per file; a file over 450 lines opens with a one-line reason
    long_without_reason = []
    for path in sorted((REPO / "cargan_tf").rglob("*.py")):
        lines = path.read_text(encoding="utf-8").splitlines()
        if len(lines) > 450 and not lines[0].startswith("# Over 450 lines:"):
            long_without_reason.append(f"{path.relative_to(REPO)} ({len(lines)} lines)")
    assert not long_without_reason, ("long modules without a '# Over 450 lines: <why>' first "
                                     "line (split them, or say why not): "
                                     + ", ".join(long_without_reason))
