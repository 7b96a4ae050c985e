"""One error path for the CLI: each failure below runs `python -m cargan_tf` in a subprocess and
ends in one `error:` line saying what to do, exit code 1 (the environment failed) or 2 (input
refused), and no traceback; nothing already written is lost.

Faults are injected by a small driver that patches the writer before calling cli.main (TF's
Checkpoint.write raising ResourceExhaustedError as SaveV2 does on a full disk, io's atomic
writer raising ENOSPC); read-only folders and files are real: a read-only bind mount in a
private mount namespace (root with `unshare`), or chmod for other users."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cargan_tf import cli, runs

from conftest import CAN_UNSHARE, REPO

DRIVER = '''
import errno, os, sys
import cargan_tf  # first: it sets TensorFlow's environment
fault, after = os.environ["CLI_FAULT"], int(os.environ.get("CLI_FAULT_AFTER", "2"))
calls = [0]
if fault == "savev2_full":  # TensorFlow's own error for SaveV2 on a full disk
    import tensorflow as tf
    real_write = tf.train.Checkpoint.write
    def write(self, file_prefix, options=None):
        calls[0] += 1
        path = real_write(self, file_prefix, options)  # some files land, then the disk is full
        if calls[0] >= after:
            raise tf.errors.ResourceExhaustedError(
                None, None, f"{file_prefix}_temp/part-00000-of-00001.data-00000-of-00001; "
                "No space left on device [Op:SaveV2]")
        return path
    tf.train.Checkpoint.write = write
elif fault == "state_enospc":  # the disk fills up while state.json is written
    from cargan_tf import io
    real_atomic = io.write_bytes_atomic
    def atomic(path, data, before_rename=None):
        if os.path.basename(path) == "state.json":
            calls[0] += 1
            if calls[0] >= after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_atomic(path, data, before_rename)
    io.write_bytes_atomic = atomic
elif fault == "oom":  # the accelerator runs out of memory in a training step
    import tensorflow as tf
    from cargan_tf import train
    real_step = train.Trainer.train_step
    def step(self, real):
        calls[0] += 1
        if calls[0] >= after:
            raise tf.errors.ResourceExhaustedError(
                None, None, "OOM when allocating tensor with shape[64,512,8,8] and type float "
                "on /job:localhost/replica:0/task:0/device:GPU:0 by allocator GPU_0_bfc")
        return real_step(self, real)
    train.Trainer.train_step = step
from cargan_tf.cli import main
sys.exit(main(sys.argv[1:]))
'''
RO_BIND = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'




def env(**extra) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in (cli.DEBUG_ENV, runs.FORCE_UNLOCK_ENV, runs.FAULT_ENV)}
    clean["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), clean.get("PYTHONPATH")]))
    return {**clean, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}


def cargan(*args: str, prefix: tuple[str, ...] = (), fault: str | None = None,
           driver: Path | None = None, **extra_env) -> subprocess.CompletedProcess:
    if fault:
        command = [sys.executable, str(driver), *args]
        extra_env = {"CLI_FAULT": fault, **extra_env}
    else:
        command = [sys.executable, "-m", "cargan_tf", *args]
    return subprocess.run([*prefix, *command], cwd=REPO, env=env(**extra_env),
                          capture_output=True, text=True, timeout=600)


def one_error_line(result: subprocess.CompletedProcess, code: int, *phrases: str) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    assert result.returncode == code, (result.returncode, result.stderr[-4000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-4000:]
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    return errors[0]


def train_args(run_dir: Path, epochs: int, *extra: str) -> tuple[str, ...]:
    return ("train", "--preset", "aim64", "--smoke", "--epochs", str(epochs), "--run-dir",
            str(run_dir), "--no-progress", "--set", "jit_compile=off", *extra)


def fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (the lock file left out)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != runs.LOCK_NAME}


def assert_checkpoints_load(run_dir: Path) -> list[Path]:
    import tensorflow as tf

    found = runs.list_checkpoints(runs.RunPaths(run_dir))
    for ckpt in found:
        assert tf.train.load_checkpoint(str(ckpt / "weights")).get_variable_to_shape_map()
        assert runs.read_json(ckpt / "state.json")["step"] == int(ckpt.name.split("-")[1])
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))  # no staging left behind
    return found


@pytest.fixture(scope="module")
def driver(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli_driver") / "cargan_with_a_fault.py"
    path.write_text(DRIVER)
    return path


@pytest.fixture
def read_only():
    """(prefix, how) to run a command with `path` read-only: a bind mount (root), chmod."""
    def make(path: Path) -> tuple[str, ...]:
        if CAN_UNSHARE:
            return ("unshare", "--mount", "--propagation", "private", "sh", "-c", RO_BIND,
                    str(path))
        if os.geteuid() == 0:
            pytest.skip("root without `unshare --mount`: no way to make a path read-only")
        path.chmod(0o555 if path.is_dir() else 0o444)
        return ()
    return make


def test_help_documents_the_exit_codes_and_the_debug_switch():
    out = subprocess.run([sys.executable, "-m", "cargan_tf", "--help"], cwd=REPO, env=env(),
                         capture_output=True, text=True)
    assert "exit codes" in out.stdout and "CARGAN_DEBUG=1" in out.stdout
    assert "1    the environment failed" in out.stdout and "2    the command refused" in out.stdout


def test_disk_full_while_a_checkpoint_is_written_then_resume(tmp_path, driver):
    run_dir = tmp_path / "run"
    # SaveV2 fails on the 2nd checkpoint (end of epoch 2): the first one stays the latest
    full = cargan(*train_args(run_dir, 3), fault="savev2_full", driver=driver)
    line = one_error_line(full, 1, "could not write checkpoint ckpt-", "ResourceExhaustedError",
                          "No space left on device", "the previous checkpoint ckpt-",
                          "is intact", "free space", "rerun the same command")
    (kept,) = assert_checkpoints_load(run_dir)
    assert kept.name in line
    assert not (run_dir / runs.LOCK_NAME).exists()  # released on the way out
    history = runs.read_history(run_dir / "history.csv")
    # state.json fails on the next try: again one line, again the same checkpoint kept
    before = fingerprint(kept)
    enospc = cargan(*train_args(run_dir, 3), fault="state_enospc", driver=driver,
                    CLI_FAULT_AFTER="1")
    one_error_line(enospc, 1, "No space left on device", "state.json", "is intact")
    assert assert_checkpoints_load(run_dir) == [kept] and fingerprint(kept) == before
    assert len(runs.read_history(run_dir / "history.csv")) >= len(history)
    # space freed: the same command resumes from the kept checkpoint and finishes
    done = cargan(*train_args(run_dir, 3))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming from {kept.name}" in done.stdout
    positions = [(r["epoch"], r["batch"]) for r in runs.read_history(run_dir / "history.csv")]
    assert positions == sorted(set(positions)) and positions[-1][0] == 3


def test_out_of_memory_in_a_training_step(tmp_path, driver):
    result = cargan(*train_args(tmp_path / "run", 2), fault="oom", driver=driver,
                    CLI_FAULT_AFTER="3")
    one_error_line(result, 1, "TensorFlow ResourceExhaustedError: OOM when allocating",
                   "lower --batch-size")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("cli_errors") / "run"
    done = cargan(*train_args(run_dir, 2))
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def test_a_schedule_change_on_a_read_only_run(finished_run, tmp_path, read_only):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    history_log = run_dir / "config_history.jsonl"
    history_log.write_text("")
    before = fingerprint(run_dir)
    # only config_history.jsonl read-only: the change cannot be logged, so nothing changes
    result = cargan(*train_args(run_dir, 4), prefix=read_only(history_log))
    one_error_line(result, 1, "could not append to", "config_history.jsonl",
                   "Nothing in the run was changed")
    assert fingerprint(run_dir) == before
    assert not (run_dir / runs.LOCK_NAME).exists()
    if not CAN_UNSHARE:
        history_log.chmod(0o644)
    # the whole run folder read-only: refused at the lock, before anything is written
    result = cargan(*train_args(run_dir, 4), prefix=read_only(run_dir))
    one_error_line(result, 1, "cannot create the lock", "Training needs a writable run folder")
    assert fingerprint(run_dir) == before
    if not CAN_UNSHARE:
        run_dir.chmod(0o755)


def junk_keras(folder: Path) -> Path:
    path = folder / "junk.keras"
    path.write_bytes(os.urandom(3000))
    return path


def test_a_junk_keras_file_given_to_sample_and_evaluate(tmp_path):
    junk = junk_keras(tmp_path)
    for args in (("sample", str(junk), "--n", "2", "--out", str(tmp_path / "out")),
                 ("evaluate", str(junk), "--n", "8", "--data", "toycars", "--features", "pixels")):
        line = one_error_line(cargan(*args), 2, str(junk))
        assert "Traceback" not in line
    assert not (tmp_path / "out").exists()
    debug = cargan("sample", str(junk), "--n", "2", "--out", str(tmp_path / "out"),
                   CARGAN_DEBUG="1")
    assert debug.returncode == 2 and "Traceback" in debug.stderr  # CARGAN_DEBUG=1: the details
    assert debug.stderr.rstrip().splitlines()[-1].startswith("error:")


def test_a_read_only_out_folder(finished_run, tmp_path, read_only):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.png").write_bytes(b"an earlier picture")
    prefix = read_only(out)
    line = one_error_line(cargan("sample", str(finished_run), "--n", "2", "--out", str(out),
                                 prefix=prefix), 1)
    assert "Read-only file system" in line or "Permission denied" in line
    line = one_error_line(cargan("evaluate", str(finished_run), "--n", "8", "--features",
                                 "pixels", "--out", str(out / "metrics.json"), prefix=prefix), 2,
                          "is not writable")
    assert sorted(p.name for p in out.iterdir()) == ["keep.png"]
    assert (out / "keep.png").read_bytes() == b"an earlier picture"
    if not CAN_UNSHARE:
        out.chmod(0o755)


@pytest.mark.skipif(not CAN_UNSHARE, reason="needs root and `unshare --mount` for a small tmpfs")
def test_a_real_full_disk_under_a_training_run(finished_run, tmp_path):
    """The run on a tmpfs with room for what it holds and little more, trained further:
    whatever write meets ENOSPC first (a grid, history.csv, SaveV2), one line, exit code 1,
    and every checkpoint still loads."""
    used_kb = sum(-(-p.stat().st_size // 4096) * 4 + 4 for p in finished_run.rglob("*"))
    mount = tmp_path / "disk"
    mount.mkdir()
    args = " ".join(f'"{a}"' for a in train_args(mount / "run", 40))
    script = (f'mount -t tmpfs -o size={used_kb + 160}k cargan-full "$0" && '
              f'cp -a "$1" "$0/run" && "{sys.executable}" -m cargan_tf {args}; '
              f'rc=$?; cp -a "$0/run" "$2"; exit $rc')
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             script, str(mount), str(finished_run), str(tmp_path / "after")],
                            cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    line = one_error_line(result, 1)
    assert "No space left on device" in line or "ResourceExhausted" in line, line
    kept = assert_checkpoints_load(tmp_path / "after")
    assert kept, "no checkpoint survived"
    before = {c.name: fingerprint(c) for c in runs.list_checkpoints(runs.RunPaths(finished_run))}
    for name, prints in before.items():  # the checkpoints that were there are unchanged
        if (tmp_path / "after" / "checkpoints" / name).exists():
            assert fingerprint(tmp_path / "after" / "checkpoints" / name) == prints
    assert json.loads((tmp_path / "after" / "config.json").read_text())["epochs"] in (2, 40)
