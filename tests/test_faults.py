"""Never lose a run: SIGKILL at every named fault point and at random times, then resume.

Training runs in a subprocess (as in Colab, the process dies with no chance to clean up). The
run folder is checked after every kill and at the end: every checkpoint loads, history.csv has
each batch exactly once, grids and the GIF decode; with deterministic=true the twice-killed
run ends with exactly the weights of an uninterrupted one.
"""

import os
import random
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from cargan_tf import runs, viz
from cargan_tf.errors import RunFolderError

from conftest import REPO, tiny_config

EPOCHS, STEPS = 3, 4  # smoke: 64 images, batch 16


def command(run_dir, *extra):
    return [sys.executable, "-m", "cargan_tf", "train", "--preset", "aim64", "--smoke",
            "--epochs", str(EPOCHS), "--run-dir", str(run_dir), "--no-progress",
            "--set", "jit_compile=off", *extra]


def run_cli(run_dir, fault=None, after=1, extra=()):
    env = dict(os.environ)
    env.pop(runs.FAULT_ENV, None)
    if fault:
        env.update({runs.FAULT_ENV: fault, runs.FAULT_AFTER_ENV: str(after)})
    return subprocess.run(command(run_dir, *extra), env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def assert_consistent(run_dir, finished):
    paths = runs.RunPaths(run_dir)
    for ckpt in runs.list_checkpoints(paths):
        reader = tf.train.load_checkpoint(str(ckpt / "weights"))
        assert reader.get_variable_to_shape_map(), f"{ckpt} holds no variables"
        assert runs.read_json(ckpt / "state.json")["step"] == int(ckpt.name.split("-")[1])
    positions = [(r["epoch"], r["batch"]) for r in runs.read_history(paths.history)]
    assert len(positions) == len(set(positions)), "a batch logged twice"
    assert positions == sorted(positions)
    for png in paths.list_sample_grids():
        viz.decode_png(png.read_bytes())
    if finished:
        assert positions == [(e, b) for e in range(1, EPOCHS + 1) for b in range(STEPS)]
        assert viz.gif_frame_count(paths.evolution_gif) == EPOCHS + 1
        keras.saving.load_model(paths.generator)
        assert not list(paths.checkpoints.glob(".tmp-*"))
        assert not [p for p in paths.root.rglob("*.tmp*")]


def test_kill_at_every_fault_point_then_resume(tmp_path):
    run_dir = tmp_path / "run"
    # visit numbers chosen so each kill lands mid-run, after some progress was saved
    plan = [("after_batch", 3), ("history_mid_append", 1), ("checkpoint_after_weights", 1),
            ("checkpoint_before_rename", 1), ("atomic_before_rename", 4),
            ("after_checkpoint", 1), ("model_before_rename", 1), ("gif_before_write", 1)]
    assert {p for p, _ in plan} == set(runs.FAULT_POINTS)
    for point, after in plan:
        killed = run_cli(run_dir, point, after)
        assert killed.returncode == -signal.SIGKILL, (point, killed.stderr[-1500:])
        assert_consistent(run_dir, finished=False)
    done = run_cli(run_dir)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_consistent(run_dir, finished=True)


def test_random_kills_and_a_deterministic_resume_match_an_uninterrupted_run(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    det = ("--set", "deterministic=true")
    assert run_cli(straight, extra=det).returncode == 0
    rng = random.Random(0)
    for _ in range(2):  # killed twice at random moments, then finished
        proc = subprocess.Popen(command(killed, *det), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(6.0, 9.0))  # TensorFlow's import takes ~4 s of that
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert_consistent(killed, finished=False)
    done = run_cli(killed, extra=det)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_consistent(killed, finished=True)
    a = keras.saving.load_model(straight / "generator.keras")
    b = keras.saving.load_model(killed / "generator.keras")
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_vanished_run_folder_is_one_clear_error(tmp_path):
    import shutil

    from cargan_tf.train import train

    run_dir = tmp_path / "drive" / "run"

    def unmount(epoch, grid):  # as when Drive disconnects mid-run
        shutil.rmtree(tmp_path / "drive")

    with pytest.raises(RunFolderError, match="could not write"):
        train(tiny_config(progress=False, epochs=2), run_dir, on_epoch_end=unmount)
    assert not run_dir.exists()  # not silently recreated on the local disk


def test_divergence_restart_lowers_learning_rates(tmp_path, monkeypatch):
    from cargan_tf import train as train_module

    calls = {"n": 0}
    real_step = train_module.Trainer.train_step

    def once_nan(self, real):
        row = real_step(self, real)
        calls["n"] += 1
        if calls["n"] == 6:
            row["d_loss_real"] = float("inf")
        return row

    monkeypatch.setattr(train_module.Trainer, "train_step", once_nan)
    cfg = tiny_config(progress=False, on_divergence="restart")
    train_module.train(cfg, tmp_path)
    log = runs.read_jsonl(runs.RunPaths(tmp_path).config_history)
    assert log[-1]["changed"]["lr_d"] == {"from": cfg.lr_d, "to": cfg.lr_d / 2}
    positions = [(r["epoch"], r["batch"]) for r in runs.read_history(tmp_path / "history.csv")]
    assert positions == [(e, b) for e in (1, 2) for b in range(STEPS)]


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(tmp_path, capsys):
    from cargan_tf.train import Trainer, train

    run_dir = tmp_path / "run"
    train(tiny_config(progress=False, epochs=2), run_dir)
    older, newest = runs.list_checkpoints(runs.RunPaths(run_dir))[-2:]
    data = next(newest.glob("weights.data-*"))
    data.write_bytes(data.read_bytes()[:10])  # cut short, as by a full disk
    trainer = Trainer(tiny_config(progress=False, epochs=3), run_dir)
    assert trainer.restore_latest() and trainer.resumed_from == older
    assert "cannot be read" in capsys.readouterr().out
    assert (newest.parent / f"damaged-{newest.name}").is_dir() and not newest.exists()
    assert runs.latest_checkpoint(runs.RunPaths(run_dir)) == older
    state = runs.read_json(older / "state.json")
    assert (trainer.epoch, trainer.batch) == (state["epoch"], state["batch"])
    # every checkpoint unreadable: one clear error, nothing silently started over
    for ckpt in runs.list_checkpoints(runs.RunPaths(run_dir)):
        (ckpt / "state.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="no checkpoint in .* can be read"):
        Trainer(tiny_config(progress=False, epochs=3), run_dir).restore_latest()
