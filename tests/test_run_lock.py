"""One trainer per run folder: train.lock names its owner; a second `train` on the folder is
refused with the holder's pid, host and start; a killed owner's lock is taken over with a line
saying so; another host's lock is respected while its heartbeat is fresh; start-up clean-up
leaves the staging folders and temporary files of live writers alone."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from cargan_tf import runs

from conftest import REPO


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.fixture
def live_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


def write_lock(root, **fields):
    record = {"pid": 1, "host": runs._HOST, "since": "2026-01-01T00:00:00+00:00",
              "token": "someone-else", **fields}
    (root / runs.LOCK_NAME).write_text(json.dumps(record))
    return root / runs.LOCK_NAME


def test_a_lock_is_exclusive_reentrant_and_released(tmp_path, capsys):
    lock = runs.RunLock(tmp_path).acquire()
    record = json.loads((tmp_path / "train.lock").read_text())
    assert record["pid"] == os.getpid() and record["host"] == runs._HOST
    assert record["token"] == lock.token and record["since"]
    again = runs.RunLock(tmp_path).acquire()  # the same process: counted, not refused
    assert again is lock and lock.count == 2
    again.release()
    assert (tmp_path / "train.lock").exists()
    lock.release()
    assert not (tmp_path / "train.lock").exists()
    assert not list(tmp_path.iterdir())  # no temporary file left beside it
    assert capsys.readouterr().out == ""


def test_a_live_holder_on_this_host_is_refused_by_name(tmp_path, live_pid):
    write_lock(tmp_path, pid=live_pid, since="2026-01-02T03:04:05+00:00",
               process_start=runs._process_start(live_pid))
    with pytest.raises(runs.RunLockedError) as refused:
        runs.RunLock(tmp_path).acquire()
    message = str(refused.value)
    assert f"{tmp_path} is in use" in message and f"pid {live_pid} on host {runs._HOST}" in message
    assert "since 2026-01-02T03:04:05+00:00" in message and "--force-unlock" in message
    assert "\n" not in message
    forced = runs.RunLock(tmp_path, force=True, quiet=True).acquire()  # what --force-unlock does
    assert "--force-unlock" in forced.took_over
    forced.release()


def test_a_killed_owners_lock_is_taken_over_with_a_line(tmp_path, capsys, live_pid):
    pid = dead_pid()
    write_lock(tmp_path, pid=pid)
    lock = runs.RunLock(tmp_path).acquire()
    out = capsys.readouterr().out
    assert f"took over the lock of {tmp_path}: pid {pid} on this host" in out
    assert "is not running" in out
    lock.release()
    # a pid that is alive but belongs to another process now (pid reuse) counts as gone too
    write_lock(tmp_path, pid=live_pid, process_start="1")
    lock = runs.RunLock(tmp_path).acquire()
    assert "the pid now belongs to another process" in capsys.readouterr().out
    lock.release()


def test_another_hosts_lock_is_respected_until_its_heartbeat_is_old(tmp_path, monkeypatch):
    path = write_lock(tmp_path, pid=4242, host="colab-runtime-1")
    with pytest.raises(runs.RunLockedError, match="pid 4242 on host colab-runtime-1.*"
                                                  "wait until its heartbeat is 10 min old"):
        runs.RunLock(tmp_path).acquire()
    old = time.time() - 11 * 60
    os.utime(path, (old, old))
    lock = runs.RunLock(tmp_path, quiet=True).acquire()
    assert "has not renewed it for 11 min (over 10 min" in lock.took_over
    lock.release()
    write_lock(tmp_path, pid=4242, host="colab-runtime-1")
    monkeypatch.setenv(runs.FORCE_UNLOCK_ENV, "1")  # the notebooks' way to force it
    lock = runs.RunLock(tmp_path, quiet=True).acquire()
    assert lock.took_over.startswith("--force-unlock")
    lock.release()


def test_without_hard_links_the_lock_falls_back_to_o_excl(tmp_path, monkeypatch, live_pid):
    def no_link(src, dst):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_link)  # as on some FUSE mounts
    lock = runs.RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / "train.lock").read_text())["token"] == lock.token
    lock.release()
    write_lock(tmp_path, pid=live_pid)
    with pytest.raises(runs.RunLockedError):
        runs.RunLock(tmp_path).acquire()


def test_a_lock_taken_over_elsewhere_stops_the_old_holder_at_its_next_checkpoint(tmp_path):
    lock = runs.RunLock(tmp_path).acquire()
    lock.check()
    write_lock(tmp_path, pid=4242, host="colab-runtime-2", token="new-owner")
    with pytest.raises(runs.RunLockedError, match="no longer holds .*pid 4242 on host "
                                                  "colab-runtime-2.* took it over"):
        lock.check()
    lock.release()
    assert json.loads((tmp_path / "train.lock").read_text())["token"] == "new-owner"  # kept


def test_cleanup_keeps_what_live_writers_hold(tmp_path, live_pid):
    paths = runs.RunPaths(tmp_path)
    paths.create()
    gone = dead_pid()
    live_staging = paths.checkpoints / f".tmp-ckpt-00000004-{live_pid}@{runs._HOST}"
    dead_staging = paths.checkpoints / f".tmp-ckpt-00000008-{gone}@{runs._HOST}"
    old_style = paths.checkpoints / f".tmp-ckpt-00000012-{gone}"  # before names had a host
    far_staging = paths.checkpoints / ".tmp-ckpt-00000016-77@other-host"
    for folder in (live_staging, dead_staging, old_style, far_staging):
        folder.mkdir()
        (folder / "weights.index").write_bytes(b"partial")
    live_file = paths.root / f".generator.{live_pid}.tmp.keras"
    dead_file = paths.samples / f".epoch_0001.png.{gone}.abcd_123.tmp"
    anonymous = paths.root / ".config.json.x1y2z3w4.tmp"  # no pid: judged by its age
    for file in (live_file, dead_file, anonymous):
        file.write_bytes(b"half")
    lock_start = time.time()
    os.utime(far_staging, (lock_start - 5, lock_start - 5))
    fresh = paths.plots / ".losses.png.q9w8e7r6.tmp"  # written after the lock was taken
    fresh.write_bytes(b"half")
    os.utime(anonymous, (lock_start - 5, lock_start - 5))
    os.utime(fresh, (lock_start + 5, lock_start + 5))

    removed = runs.remove_stale_checkpoints(paths, keep=0, before=lock_start)
    removed += runs.remove_stale_temp_files(paths, before=lock_start)
    assert set(removed) == {dead_staging, old_style, far_staging, dead_file, anonymous}
    assert live_staging.is_dir() and live_file.exists() and fresh.exists()


def test_io_temp_names_carry_the_writers_pid(tmp_path, monkeypatch, live_pid):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: seen.append(a) or real_replace(a, b))
    runs.write_text_atomic(tmp_path / "config.json", "{}")
    name = os.path.basename(seen[0])
    assert name.startswith(f".config.json.{os.getpid()}.") and name.endswith(".tmp")
    live = tmp_path / name.replace(str(os.getpid()), str(live_pid))
    live.write_text("half")
    assert not runs.owner_is_gone(live)


def train_command(run_dir, epochs, *extra):
    return [sys.executable, "-m", "cargan_tf", "train", "--preset", "aim64", "--smoke",
            "--epochs", str(epochs), "--run-dir", str(run_dir), "--no-progress",
            "--set", "jit_compile=off", *extra]


def test_a_second_trainer_is_refused_and_a_killed_ones_lock_taken_over(tmp_path, live_pid):
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != runs.FORCE_UNLOCK_ENV}
    first = subprocess.Popen(train_command(run_dir, 400), cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (run_dir / "checkpoints").is_dir() or not runs.list_checkpoints(
                runs.RunPaths(run_dir)):
            assert first.poll() is None, first.stderr.read()[-2000:]
            assert time.time() < deadline, "the first trainer never wrote a checkpoint"
            time.sleep(0.5)
        holder = json.loads((run_dir / "train.lock").read_text())
        assert holder["pid"] == first.pid

        second = subprocess.run(train_command(run_dir, 400), cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == 1, second.stderr[-3000:]
        assert "Traceback" not in second.stderr
        errors = [line for line in second.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, second.stderr
        assert f"pid {first.pid} on host {runs._HOST} since {holder['since']}" in errors[0]
        assert "is in use" in errors[0] and "--force-unlock" in errors[0]
        assert first.poll() is None  # the first one trains on, undisturbed
    finally:
        first.send_signal(signal.SIGKILL)  # as when Colab recycles the runtime
        first.wait()
    assert json.loads((run_dir / "train.lock").read_text())["pid"] == first.pid  # left behind

    # a staging folder of a live writer (pid alive on this host) survives the start-up clean-up
    live_staging = run_dir / "checkpoints" / f".tmp-ckpt-99999999-{live_pid}@{runs._HOST}"
    live_staging.mkdir()
    third = subprocess.run(train_command(run_dir, 1), cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"took over the lock of {run_dir}: pid {first.pid} on this host" in third.stdout
    assert "is not running" in third.stdout
    assert live_staging.is_dir()
    assert not list((run_dir / "checkpoints").glob(f".tmp-*-{first.pid}@*"))  # the dead one's
    assert not (run_dir / "train.lock").exists()  # released at the end
