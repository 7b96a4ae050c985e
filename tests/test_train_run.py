"""End to end: a tiny run writes every artefact; resume, identity refusal, schedule changes."""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from cargan_tf import runs, viz
from cargan_tf.augment import ada_adjust
from cargan_tf.config import RunConfig
from cargan_tf.errors import ConfigError
from cargan_tf.train import Trainer, TrainingDivergedError, reconcile_config, train

from conftest import REPO, tiny_config


def decode(path):
    return viz.decode_png(path.read_bytes())


def test_tiny_run_writes_every_artefact(tiny_run):
    paths = runs.RunPaths(tiny_run)
    cfg = RunConfig.from_json(paths.config.read_text())
    assert cfg == tiny_config()

    info = json.loads(paths.run_info.read_text())
    for key in ("cargan_tf", "tensorflow", "keras", "python", "device", "precision",
                "frozen_d_batchnorm", "git_commit"):
        assert key in info
    assert info["frozen_d_batchnorm"] == "inference" and info["keras"].startswith("3.")
    assert info["onednn_cpu_kernels"] is True  # conftest, like importing cargan_tf, asks for it
    assert info["sizes"]["checkpoints_kept"] == 2 and info["sizes"]["checkpoint_mb"] > 0

    with open(paths.history, newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == runs.HISTORY_COLUMNS + runs.OPTIONAL_HISTORY_COLUMNS
        rows = list(reader)
    steps = cfg.data_n // cfg.batch_size
    assert [(int(r["epoch"]), int(r["batch"])) for r in rows] == \
        [(e, b) for e in range(1, cfg.epochs + 1) for b in range(steps)]
    assert all(0 <= float(r["D(x)"]) <= 1 and float(r["g_loss"]) > 0 for r in rows)

    grids = paths.list_sample_grids()
    assert [p.name for p in grids] == [f"epoch_{e:04d}.png" for e in range(cfg.epochs + 1)]
    assert decode(grids[-1]).shape[2] == 3
    assert not np.array_equal(decode(grids[0]), decode(grids[-1]))  # the generator learned
    for png in (paths.losses_plot, paths.d_outputs_plot, paths.real_vs_fake):
        assert decode(png).shape[0] > 100
    assert viz.gif_frame_count(paths.evolution_gif) == cfg.epochs + 1

    g = keras.saving.load_model(paths.generator)
    out = np.asarray(g(np.zeros((2, cfg.latent_dim), "float32")))
    assert out.shape == (2, 16, 16, 3) and np.abs(out).max() <= 1
    d = keras.saving.load_model(paths.discriminator)
    assert d.trainable and d.trainable_weights  # saved unfrozen
    assert runs.latest_checkpoint(paths).name == f"ckpt-{cfg.epochs * steps:08d}"


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    """SIGKILL in epoch 2 (as when Colab recycles the runtime), then the same command again."""
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "cargan_tf", "train", "--preset", "aim64", "--smoke",
               "--epochs", "3", "--run-dir", str(run_dir), "--set", "jit_compile=off"]
    env = {**os.environ, runs.FAULT_ENV: "after_batch", runs.FAULT_AFTER_ENV: "6"}
    killed = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr[-2000:]
    paths = runs.RunPaths(run_dir)
    assert [p.name for p in runs.list_checkpoints(paths)] == ["ckpt-00000004"]
    assert not paths.generator.exists()

    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    positions = [(r["epoch"], r["batch"]) for r in runs.read_history(paths.history)]
    assert positions == [(e, b) for e in (1, 2, 3) for b in range(4)]  # none lost, none twice
    assert json.loads(paths.run_info.read_text())["resumed_from"] == "ckpt-00000004"
    assert viz.gif_frame_count(paths.evolution_gif) == 4


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    cfg = tiny_config(progress=False)
    straight = Trainer(cfg, tmp_path / "a")
    straight.run()
    train(cfg.replace(epochs=1), tmp_path / "b")
    resumed = Trainer(cfg, tmp_path / "b")  # "train 1 more epoch": a schedule change
    resumed.run()
    for a, b in zip(straight.generator.weights, resumed.generator.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)
    log = runs.read_jsonl(runs.RunPaths(tmp_path / "b").config_history)
    assert log[-1]["changed"] == {"epochs": {"from": 1, "to": 2}}


@pytest.mark.parametrize("every,expected", [(0.0, 4), (1e9, 2)])
def test_loss_plots_are_redrawn_at_most_every_plots_seconds(tmp_path, monkeypatch, every,
                                                            expected):
    from cargan_tf import train as train_module

    calls = []
    monkeypatch.setattr(train_module, "PLOTS_EVERY_SECONDS", every)
    monkeypatch.setattr(Trainer, "write_plots",
                        lambda self: calls.append(self.epoch) or viz.plot_losses(
                            self.paths.history, self.paths.losses_plot))
    Trainer(tiny_config(progress=False, epochs=3, data_n=32), tmp_path / "run").run()
    # every epoch (3) + finish, or only after epoch 1 + finish: the final plot is never skipped
    assert len(calls) == expected
    assert decode(runs.RunPaths(tmp_path / "run").losses_plot).shape[-1] in (3, 4)


def test_a_run_with_more_epochs_than_gif_frames_gets_a_thinned_gif(tmp_path, monkeypatch):
    monkeypatch.setattr(viz, "MAX_GIF_FRAMES", 3)
    paths = runs.RunPaths(Trainer(tiny_config(progress=False, epochs=4, data_n=32),
                                  tmp_path / "run").run())
    assert len(paths.list_sample_grids()) == 5  # every epoch grid is kept on disk
    assert viz.gif_frame_count(paths.evolution_gif) == 3  # epochs 0, 2 and 4


@pytest.mark.parametrize("every,cap,expected", [
    (2, 200, [0, 2, 4, 5]),  # every 2nd epoch, and the last one always
    (0, 2, [0, 3, 5]),       # auto: 5 epochs over a cap of 2 grids -> every 3rd, and the last
])
def test_samples_every_epochs_thins_the_grids_on_disk(tmp_path, monkeypatch, every, cap,
                                                      expected):
    from cargan_tf import train as train_module

    monkeypatch.setattr(train_module, "AUTO_MAX_EPOCH_GRIDS", cap)
    seen = []
    cfg = tiny_config(progress=False, epochs=5, data_n=32, samples_every_epochs=every)
    paths = runs.RunPaths(train(cfg, tmp_path / "run",
                                on_epoch_end=lambda e, grid: seen.append((e, grid))))
    assert [p.name for p in paths.list_sample_grids()] == \
        [f"epoch_{e:04d}.png" for e in expected]
    assert [e for e, grid in seen if grid is not None] == expected[1:]
    assert [e for e, _ in seen] == [1, 2, 3, 4, 5]  # the callback still runs every epoch
    assert viz.gif_frame_count(paths.evolution_gif) == len(expected)


def test_a_step_budget_trains_whole_epochs_of_the_set_it_loads(tmp_path):
    # 32 images in batches of 16: 2 steps per epoch, so 5 steps are 3 epochs (6 steps)
    cfg = tiny_config(progress=False, epochs=99, steps=5, data_n=32)
    paths = runs.RunPaths(train(cfg, tmp_path / "run"))
    saved = RunConfig.from_json(paths.config.read_text())
    assert (saved.steps, saved.epochs) == (5, 3)
    assert len(runs.read_history(paths.history)) == 6
    # a longer budget continues the same run (steps is a schedule key)
    train(cfg.replace(steps=8), tmp_path / "run")
    assert len(runs.read_history(paths.history)) == 8
    assert RunConfig.from_json(paths.config.read_text()).epochs == 4


def test_epoch_end_checkpoints_wait_a_minimum_interval_but_the_last_is_always_written(tmp_path):
    # a small folder's epochs take seconds: a checkpoint each would rewrite GBs on Drive
    steps_kept = {}
    for wait in (0.0, 3600.0):
        cfg = tiny_config(progress=False, epochs=3, keep_checkpoints=0,
                          checkpoint_min_seconds=wait)
        paths = runs.RunPaths(train(cfg, tmp_path / f"wait{wait:g}"))
        steps_kept[wait] = [runs.read_json(c / "state.json")["step"]
                            for c in runs.list_checkpoints(paths)]
    assert steps_kept[0.0] == [4, 8, 12]   # 64 images in batches of 16: every epoch end
    assert steps_kept[3600.0] == [12]      # only the last: the run can still be resumed


def test_negative_samples_every_epochs_is_refused():
    with pytest.raises(ConfigError, match="samples_every_epochs=-1 is not valid"):
        tiny_config(samples_every_epochs=-1).validate()


def test_identity_change_is_refused_with_the_keys_that_differ(tmp_path):
    paths = runs.RunPaths(tmp_path)
    paths.create()
    reconcile_config(paths, tiny_config())
    with pytest.raises(ConfigError) as err:
        reconcile_config(paths, tiny_config(image_size=32, seed=3, epochs=9))
    message = str(err.value)
    assert "image_size: 16 (run) -> 32 (now)" in message and "seed: 0 (run) -> 3" in message
    assert "epochs: " not in message
    assert RunConfig.from_json(paths.config.read_text()) == tiny_config()  # left as it was


def test_non_finite_loss_stops_with_a_message_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=2, progress=False)
    train(cfg.replace(epochs=1), tmp_path)
    trainer = Trainer(cfg, tmp_path)
    real_step = trainer.train_step
    calls = []

    def diverging(real):
        row = real_step(real)
        calls.append(1)
        if len(calls) == 2:
            row["g_loss"] = float("nan")
        return row

    monkeypatch.setattr(trainer, "train_step", diverging)
    with pytest.raises(TrainingDivergedError, match="epoch 2, batch 1") as err:
        trainer.run()
    assert "lr_d" in str(err.value)
    paths = runs.RunPaths(tmp_path)
    assert runs.latest_checkpoint(paths).name == "ckpt-00000004"
    assert json.loads((tmp_path / "divergence.json").read_text())["batch"] == 1


def test_ema_generator_is_an_average_saved_as_generator_keras(tmp_path):
    cfg = tiny_config(ema_decay=0.9, epochs=1, progress=False)
    trainer = Trainer(cfg, tmp_path)
    trainer.run()
    live = [w.numpy() for w in trainer.generator.weights]
    ema = [w.numpy() for w in trainer.ema_generator.weights]
    assert any(not np.allclose(a, b) for a, b in zip(live, ema))  # an average, not a copy
    saved = keras.saving.load_model(tmp_path / "generator.keras")
    for a, b in zip(saved.weights, ema):
        np.testing.assert_array_equal(a.numpy(), b)
    resumed = Trainer(cfg, tmp_path)
    resumed.restore_latest()
    for a, b in zip(resumed.ema_generator.weights, ema):  # the checkpoint holds the EMA too
        np.testing.assert_array_equal(a.numpy(), b)


def test_ada_probability_is_logged_plotted_and_resumed(tmp_path):
    cfg = tiny_config(engine="fused", diffaugment="translation,cutout", ada_target=0.6,
                      ada_kimg=0.05, epochs=2, progress=False)  # p moves 0.32 per step
    trainer = Trainer(cfg, tmp_path)
    trainer.run()
    rows = runs.read_history(trainer.paths.history)
    assert rows[0]["aug_p"] == 0.0 and all(0.0 <= r["aug_p"] <= 1.0 for r in rows)
    assert all(-1.0 <= r["ada_r"] <= 1.0 for r in rows)
    for before, after in zip(rows, rows[1:]):  # each step moved p by ADA's rule
        assert after["aug_p"] == pytest.approx(
            ada_adjust(before["aug_p"], before["ada_r"], 0.6, 16, 0.05), abs=1e-5)
    assert decode(trainer.paths.d_outputs_plot).shape[2] == 3
    trainer.engine.ada_p.assign(0.37)
    trainer.save_checkpoint()
    resumed = Trainer(cfg.replace(epochs=3), tmp_path)
    resumed.restore_latest()
    assert float(resumed.engine.ada_p.numpy()) == pytest.approx(0.37)  # in the checkpoint


def test_history_of_an_older_run_keeps_its_columns_when_appended(tmp_path):
    path = tmp_path / "history.csv"
    old = [{k: 0.5 for k in runs.HISTORY_COLUMNS} | {"epoch": 1, "batch": b} for b in range(2)]
    path.write_text(",".join(runs.HISTORY_COLUMNS) + "\n" + "".join(
        ",".join(str(r[k]) for k in runs.HISTORY_COLUMNS) + "\n" for r in old[:1]))
    runs.append_history(path, [old[1] | {"aug_p": 0.25}])
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        assert all(len(line) == len(runs.HISTORY_COLUMNS) for line in reader)
    assert [r["batch"] for r in runs.read_history(path)] == [0, 1]


def test_periodic_evaluation_writes_metrics_and_keeps_the_best_generator(tmp_path):
    from cargan_tf.evaluate import read_metrics

    cfg = tiny_config(eval_every_epochs=1, eval_n=64, eval_features="pixels", progress=False)
    train(cfg, tmp_path)
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == [1, 2] and [r["step"] for r in rows] == [4, 8]
    assert all(np.isfinite(r["fid"]) and r["fid"] > 0 for r in rows)
    best = keras.saving.load_model(tmp_path / "best_generator.keras")
    assert best.output_shape == (None, 16, 16, 3)


def test_tensorboard_scalars_are_written_without_the_tensorboard_package(tmp_path, monkeypatch):
    import glob

    import tensorflow as tf

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as on a machine without it
    run_dir = train(tiny_config(progress=False, epochs=1, tensorboard=True), tmp_path / "run")
    events = glob.glob(str(runs.RunPaths(run_dir).tensorboard / "events.out.tfevents.*"))
    assert events
    values = {}
    for event in tf.compat.v1.train.summary_iterator(events[0]):
        for value in event.summary.value:
            if value.tag != "samples":
                assert value.metadata.plugin_data.plugin_name == "scalars"
                values.setdefault(value.tag, []).append(float(tf.make_ndarray(value.tensor)))
    history = runs.read_history(run_dir / "history.csv")
    assert {"d_loss_real", "g_loss", "D_x", "D_G_z"} <= set(values)
    assert values["g_loss"] == pytest.approx([r["g_loss"] for r in history], rel=1e-5)
    samples = [e for e in tf.compat.v1.train.summary_iterator(events[0])
               for v in e.summary.value if v.tag == "samples"]
    value = samples[-1].summary.value[0]
    assert value.metadata.plugin_data.plugin_name == "images"
    width, height, *pngs = tf.make_ndarray(value.tensor)
    assert (int(width), int(height)) == (16, 16) and len(pngs) == 16
    assert viz.decode_png(pngs[0]).shape == (16, 16, 3)


def test_trainer_takes_the_final_config_and_keeps_it(tmp_path):
    cfg = tiny_config(progress=False, epochs=1, data_n=32)
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.cfg is cfg and trainer.gan.cfg is cfg and trainer.engine.cfg is cfg
    with pytest.raises(ConfigError, match="final config"):
        Trainer(cfg.replace(steps=5), tmp_path / "other")  # a budget not yet in epochs
