"""Run-folder plumbing without TensorFlow: atomic writes, history repair, checkpoint staging."""

import os
import subprocess
import sys

import pytest

from cargan_tf import runs
from cargan_tf.errors import RunFolderError


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.json"
    runs.write_json_atomic(target, {"v": 1})
    runs.write_json_atomic(target, {"v": 2})
    assert runs.read_json(target) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "config.json"
    target.write_text("old")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(RunFolderError, match="No space left on device.*intact"):
        runs.write_text_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


@pytest.mark.skipif(sys.platform == "win32" or os.geteuid() == 0,
                    reason="root ignores folder permissions")
def test_read_only_folder_is_one_clear_error(tmp_path):
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(RunFolderError, match="could not write"):
            runs.write_bytes_atomic(tmp_path / "x.bin", b"1")
    finally:
        tmp_path.chmod(0o700)


def test_vanished_folder_is_one_clear_error(tmp_path):
    with pytest.raises(RunFolderError, match="could not write"):
        runs.write_bytes_atomic(tmp_path / "gone" / "x.bin", b"1")


def row(epoch, batch):
    return {k: 0.5 for k in runs.HISTORY_COLUMNS} | {"epoch": epoch, "batch": batch}


def test_history_truncation_drops_lost_work_and_torn_lines(tmp_path):
    path = tmp_path / "history.csv"
    runs.append_history(path, [row(1, b) for b in range(4)] + [row(2, b) for b in range(3)])
    with open(path, "a") as handle:
        handle.write("2,3,0.1,0.")  # a kill in the middle of an append
    assert len(runs.read_history(path)) == 7
    kept = runs.truncate_history(path, 2, 1)
    assert [(r["epoch"], r["batch"]) for r in kept] == [(1, 0), (1, 1), (1, 2), (1, 3), (2, 0)]
    assert [(r["epoch"], r["batch"]) for r in runs.read_history(path)] == \
        [(r["epoch"], r["batch"]) for r in kept]


def test_checkpoint_is_invisible_until_complete_and_retention_keeps_newest(tmp_path):
    paths = runs.RunPaths(tmp_path)
    paths.create()
    for step in (4, 8, 12):
        with runs.staged_checkpoint(paths, step) as staging:
            (staging / "weights.index").write_bytes(b"w")
            assert runs.latest_checkpoint(paths) != paths.checkpoint(step)
            runs.write_json_atomic(staging / "state.json", {"step": step})
    assert runs.latest_checkpoint(paths) == paths.checkpoint(12)
    with pytest.raises(RuntimeError):
        with runs.staged_checkpoint(paths, 16) as staging:
            runs.write_json_atomic(staging / "state.json", {"step": 16})
            raise RuntimeError("killed while writing")
    assert runs.latest_checkpoint(paths) == paths.checkpoint(12)
    runs.remove_stale_checkpoints(paths, keep=2)
    assert [p.name for p in runs.list_checkpoints(paths)] == ["ckpt-00000008", "ckpt-00000012"]
    assert not list(paths.checkpoints.glob(".tmp-*"))


def test_runs_module_does_not_import_tensorflow():
    import subprocess

    code = "import sys, cargan_tf.runs; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_stale_temp_files_are_removed_but_real_files_kept(tmp_path):
    paths = runs.RunPaths(tmp_path)
    paths.create()
    (tmp_path / ".config.json.abc123.tmp").write_text("half")
    writer = subprocess.Popen([sys.executable, "-c", "pass"])
    writer.wait()  # a killed writer's pid: no longer running (a live one's file is kept)
    (tmp_path / f".generator.{writer.pid}.tmp.keras").write_bytes(b"half")
    (paths.samples / ".epoch_0001.png.x.tmp").write_bytes(b"half")
    (tmp_path / "config.json").write_text("{}")
    removed = runs.remove_stale_temp_files(paths)
    assert len(removed) == 3
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["config.json"]


def test_atomic_files_get_normal_permissions_not_mkstemps_0600(tmp_path):
    target = tmp_path / "grid.png"
    runs.write_bytes_atomic(target, b"png")
    mask = os.umask(0)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask
