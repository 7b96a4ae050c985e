"""`sample` and `export` in a real subprocess: a bad argument, a read-only --out folder, a junk
.keras file and a full disk each end in one `error:` line saying what to do, no traceback, and
exit code 2 for refused input or 1 when the machine failed the command (read-only, disk full).
Read-only folders and the full disk are real: a read-only bind mount and a small tmpfs in a
private mount namespace (as root, `unshare`), or a chmod'ed folder for other users."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import CAN_UNSHARE

RO_SCRIPT = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
TMPFS_SCRIPT = 'mount -t tmpfs -o size="$1" cargan-full "$0" && cp -a "$2" "$0/export" && shift 2 && "$@"'
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def cli(*args: str, prefix: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "cargan_tf", *args], env=ENV,
                          capture_output=True, text=True, timeout=300)


def one_error_line(result: subprocess.CompletedProcess, *phrases: str, code: int = 2) -> str:
    """Exit code `code` (cli.EXIT_BAD_INPUT, or EXIT_ENVIRONMENT for a read-only folder or a
    full disk), no traceback, exactly one `error:` line holding each phrase."""
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == code and len(errors) == 1, (result.returncode, result.stderr)
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    return errors[0]




@pytest.fixture
def read_only(tmp_path):
    """A folder this process cannot write to, and the command prefix that makes it so."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if CAN_UNSHARE:
        return folder, ("unshare", "--mount", "--propagation", "private", "sh", "-c", RO_SCRIPT,
                        str(folder))
    if os.geteuid() == 0:
        pytest.skip("root without `unshare --mount`: no way to make a folder read-only")
    folder.chmod(0o555)
    return folder, ()


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    import keras

    from cargan_tf import models

    from conftest import tiny_config

    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("cli_messages") / "g.keras"
    models.build_generator(tiny_config()).save(path)
    return path


def test_sample_interpolate_to_a_negative_seed(generator):
    one_error_line(cli("sample", str(generator), "--interpolate-to", "-5"),
                   "--interpolate-to -5", "non-negative integer")


@pytest.mark.parametrize("out", ["folder", "subfolder/grid.png"])
def test_sample_into_a_read_only_folder(generator, read_only, out):
    folder, prefix = read_only
    extra = ("--grid",) if out.endswith(".png") else ()
    line = one_error_line(cli("sample", str(generator), "--n", "2", *extra, "--out",
                              str(folder / out if "/" in out else folder), prefix=prefix), code=1)
    assert "Read-only file system" in line or "Permission denied" in line
    assert "--out" in line or "fix permissions" in line  # what to do


def test_export_into_a_read_only_folder(generator, read_only):
    folder, prefix = read_only
    for out in (folder, folder / "new"):
        line = one_error_line(cli("export", str(generator), "--out", str(out), prefix=prefix),
                              "give a writable --out folder", "unchanged", code=1)
        assert "Read-only file system" in line or "Permission denied" in line


def junk_files(folder: Path) -> dict[str, Path]:
    files = {name: folder / f"{name}.keras" for name in ("random", "empty", "zip", "truncated")}
    files["random"].write_bytes(os.urandom(3000))
    files["empty"].write_bytes(b"")
    with zipfile.ZipFile(files["zip"], "w") as archive:
        archive.writestr("hello.txt", "not a model")
    return files


def test_a_junk_keras_file_is_named_as_such_not_file_not_found(generator, tmp_path):
    files = junk_files(tmp_path)
    files["truncated"].write_bytes(generator.read_bytes()[:20_000])
    runs = [("sample", name, path) for name, path in files.items()] + [
        ("export", "random", files["random"])]
    for command, name, path in runs:
        line = one_error_line(cli(command, str(path), "--out", str(tmp_path / "out")))
        assert "File not found" not in line, line
        if name == "zip":
            assert "could not load" in line and "pass the run folder" in line
        else:
            assert "is not a Keras model" in line and "copy or save it again" in line, line


@pytest.mark.skipif(not CAN_UNSHARE, reason="needs root and `unshare --mount` for a small tmpfs")
def test_export_onto_a_full_disk_leaves_the_previous_export(generator, tmp_path):
    """A real ENOSPC: the old export is copied onto a tmpfs with room for it and not much more,
    then a re-export of another generator fails; the old export is byte for byte the same."""
    import keras

    from cargan_tf import export as ex
    from cargan_tf import models

    from conftest import tiny_config

    old = tmp_path / "old"
    ex.export(generator, old, verbose=False)
    keras.utils.set_random_seed(1)
    other = tmp_path / "other.keras"
    models.build_generator(tiny_config()).save(other)

    pages = sum(-(-p.stat().st_size // 4096) + 1 for p in old.rglob("*"))  # tmpfs: 4 KiB pages
    size_k = int(pages * 4 * 1.3)  # the old export, and about a third of a new one
    mount = tmp_path / "disk"
    mount.mkdir()
    check = ("import hashlib, json, pathlib, sys; root = pathlib.Path(sys.argv[1]); "
             "print(json.dumps({str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() "
             "for p in sorted(root.rglob('*')) if p.is_file()}))")
    script = (f'{TMPFS_SCRIPT} && "{sys.executable}" -m cargan_tf export "{other}" --out "$0/export"'
              f'; echo "rc=$?" >&2; "{sys.executable}" -c "{check}" "$0/export"')
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                             str(mount), f"{size_k}k", str(old), "true"], env=ENV,
                            capture_output=True, text=True, timeout=300)
    assert "rc=1" in result.stderr, result.stderr[-3000:]
    export_run = subprocess.CompletedProcess([], 1, "", result.stderr.replace("rc=1", ""))
    line = one_error_line(export_run, "unchanged", "free space", code=1)
    assert os.strerror(errno.ENOSPC) in line or "ResourceExhausted" in line, line
    after = json.loads(result.stdout.strip().splitlines()[-1])
    before = {str(p.relative_to(old)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in sorted(old.rglob("*")) if p.is_file()}
    assert after == before  # the same files, the same bytes, no staged leftovers
