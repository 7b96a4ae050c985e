"""The command line: help for every command, sample from a run, errors without tracebacks."""

import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from cargan_tf import cli, viz

from conftest import REPO


def test_help_lists_every_command_and_explains_flags():
    out = subprocess.run([sys.executable, "-m", "cargan_tf", "--help"], cwd=REPO,
                         capture_output=True, text=True)
    assert out.returncode == 0
    for name in cli.COMMAND_MODULES:
        assert name in out.stdout
    parser = cli.build_parser()
    for action in parser._subparsers._group_actions[0].choices.values():
        for flag in action._actions:
            if flag.dest != "help":
                assert flag.help, f"{action.prog} {flag.dest} has no help text"


def test_help_does_not_import_tensorflow():
    code = "import sys; from cargan_tf import cli; cli.build_parser(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_sample_grid_and_files_from_a_run(tiny_run, tmp_path):
    assert cli.main(["sample", str(tiny_run), "--seed", "3", "--n", "9", "--grid",
                     "--out", str(tmp_path / "g.png")]) == 0
    grid = viz.decode_png((tmp_path / "g.png").read_bytes())
    assert grid.shape[0] >= 256
    assert cli.main(["sample", str(tiny_run), "--seed", "3", "--n", "2",
                     "--out", str(tmp_path / "files")]) == 0
    first = viz.decode_png((tmp_path / "files" / "seed3_0000.png").read_bytes())
    assert first.shape == (16, 16, 3)
    assert cli.main(["sample", str(tiny_run), "--seed", "3", "--n", "1",
                     "--out", str(tmp_path / "one")]) == 0
    again = viz.decode_png((tmp_path / "one" / "seed3_0000.png").read_bytes())
    assert (first == again).all()  # a seed names the same car whatever n is


def test_missing_run_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["sample", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["plot", "gif"])
def test_plot_and_gif_rebuild_from_a_run(tiny_run, tmp_path, command):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy)
    (copy / "evolution.gif").unlink()
    (copy / "plots" / "losses.png").unlink()
    assert cli.main([command, str(copy)]) == 0
    if command == "gif":
        assert viz.gif_frame_count(copy / "evolution.gif") == 3
    else:
        assert viz.decode_png((copy / "plots" / "losses.png").read_bytes()).size > 0


def test_gif_every_keeps_first_and_last_and_max_side_shrinks(tiny_run, tmp_path):
    import imageio.v3 as iio

    out = tmp_path / "small.gif"
    # the tiny run has 3 grids (epochs 0, 1, 2): every 2nd keeps 0 and 2
    assert cli.main(["gif", str(tiny_run), "--every", "2", "--max-side", "64",
                     "--out", str(out)]) == 0
    frames = iio.imread(out, index=None)
    full = viz.decode_png(sorted((tiny_run / "samples").glob("epoch_*.png"))[0].read_bytes())
    assert len(frames) == 2 and max(full.shape[:2]) > 64
    assert max(frames.shape[1:3]) <= 64 + 40  # the caption strip adds a few rows
    assert cli.main(["gif", str(tiny_run), "--every", "0", "--out", str(out)]) != 0


def test_gif_frames_are_thinned_evenly_keeping_first_and_last(tiny_run, tmp_path):
    kept = viz.thin_frames(range(1025))  # 1,024 epochs of a 400-image set
    assert len(kept) == viz.MAX_GIF_FRAMES and (kept[0], kept[-1]) == (0, 1024)
    gaps = np.diff(kept)
    assert gaps.min() >= 10 and gaps.max() <= 11  # even spacing
    assert viz.thin_frames(range(40)) == list(range(40)) == viz.thin_frames(range(40), 0)
    out = tmp_path / "two.gif"
    assert cli.main(["gif", str(tiny_run), "--max-frames", "2", "--out", str(out)]) == 0
    assert viz.gif_frame_count(out) == 2
    assert cli.main(["gif", str(tiny_run), "--max-frames", "-1", "--out", str(out)]) != 0


@pytest.mark.parametrize("argv,steps,epochs", [
    (["--preset", "small32"], 12288, None),
    (["--preset", "small32", "--epochs", "10"], 0, 10),          # epochs win over the budget
    (["--preset", "quick32", "--steps", "500"], 500, None),
])
def test_train_takes_a_step_budget_or_epochs(argv, steps, epochs):
    from cargan_tf.commands.train import config_from_args

    args = cli.build_parser().parse_args(["train", *argv])
    cfg = config_from_args(args)
    assert cfg.steps == steps and (epochs is None or cfg.epochs == epochs)


def test_set_values_are_kept_unless_a_flag_is_given():
    # --set batch_size=32 was undone by --batch-size's unset default, and --set data_n=none
    # (no limit) was read as "the preset's" 8,192
    from cargan_tf.commands.train import config_from_args

    def cfg_of(*argv):
        return config_from_args(cli.build_parser().parse_args(["train", "--preset", "quick32",
                                                               *argv]))

    cfg = cfg_of("--set", "batch_size=32", "--set", "data_n=none", "--set", "image_size=64")
    assert (cfg.batch_size, cfg.data_n, cfg.image_size) == (32, None, 64)
    assert cfg_of("--set", "batch_size=32", "--batch-size", "16").batch_size == 16  # the flag
    assert (cfg_of().batch_size, cfg_of().data_n) == (64, 8192)                     # the preset's


def test_a_photo_folder_on_the_default_preset_gets_the_photo64_tip(tmp_path, monkeypatch):
    from cargan_tf.commands import train as train_command
    from cargan_tf.commands.train import config_from_args, photo_hint

    monkeypatch.setattr(train_command, "nvidia_gpu_present", lambda: True)

    def hint(*argv):
        args = cli.build_parser().parse_args(["train", *argv])
        return photo_hint(args, config_from_args(args))

    (tmp_path / "photos").mkdir()
    folder = str(tmp_path / "photos")
    assert "--preset photo64" in hint("--data", folder, "--run-dir", str(tmp_path / "r"))
    assert hint("--data", folder, "--preset", "quick32") is None      # asked for by name
    assert hint("--data", folder, "--preset", "photo64") is None
    assert hint("--data", "toycars", "--run-dir", str(tmp_path / "r")) is None
    monkeypatch.setattr(train_command, "nvidia_gpu_present", lambda: False)  # a CPU machine
    cpu_tip = hint("--data", folder, "--run-dir", str(tmp_path / "r"))
    assert "--preset photo64cpu" in cpu_tip and "--preset photo64ada" in cpu_tip
    assert hint("--data", folder, "--preset", "photo64cpu") is None
    assert hint("--data", folder, "--preset", "photo64ada") is None


def test_train_refuses_both_epochs_and_steps(capsys):
    assert cli.main(["train", "--preset", "small32", "--epochs", "10", "--steps", "60"]) == 2
    assert "give one length, not both" in capsys.readouterr().err


def test_bad_override_is_reported_without_traceback(capsys):
    assert cli.main(["train", "--smoke", "--set", "lr_gg=1"]) == 2
    assert "did you mean 'lr_g'" in capsys.readouterr().err


def test_a_run_resumes_whatever_way_its_data_folder_is_written(tmp_path, monkeypatch, capsys):
    from cargan_tf.cli import main
    from cargan_tf.data.prepare import prepare
    from cargan_tf.data.toycars import draw_toycars

    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, car in enumerate(draw_toycars(40, 32, seed=0)[0]):
        cv2.imwrite(str(photos / f"car_{i:02d}.png"), car[..., ::-1])
    prepare(photos, tmp_path / "c16", size=16, channels=3, progress=False)
    base = ["train", "--preset", "aim64", "--smoke", "--no-progress", "--set", "jit_compile=off",
            "--run-dir", "run"]
    assert main([*base, "--data", "c16", "--epochs", "1"]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["data"] == str(tmp_path / "c16")  # absolute: resumable from anywhere
    assert main([*base, "--data", "c16/", "--epochs", "2"]) == 0  # tab completion's slash
    assert main([*base, "--data", "./c16/../c16", "--epochs", "3"]) == 0
    # photos added and prepared again: the run goes on over the new set, and says so
    for i, car in enumerate(draw_toycars(8, 32, seed=1)[0]):
        cv2.imwrite(str(photos / f"more_{i}.png"), car[..., ::-1])
    prepare(photos, tmp_path / "c16", size=16, channels=3, progress=False)
    capsys.readouterr()
    # from another folder, by the run's folder alone: the run's own config
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["train", "--run-dir", str(tmp_path / "run"), "--epochs", "4",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming with the run's own config" in out and "resuming from ckpt-" in out
    assert "the data now has 48 images (40 when this run last trained)" in out
    rows = (tmp_path / "run" / "history.csv").read_text().splitlines()[1:]
    assert {int(r.split(",")[0]) for r in rows} == {1, 2, 3, 4}


def test_train_with_a_missing_or_broken_config_is_a_clear_error(tmp_path, capsys):
    from cargan_tf.cli import main

    assert main(["train", "--config", str(tmp_path / "nofile.json")]) == 2
    assert "cannot read the config" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("[1, 2]")
    assert main(["train", "--config", str(tmp_path / "bad.json")]) == 2
    assert "is not a cargan_tf config.json" in capsys.readouterr().err


def test_simple_mistakes_are_one_line_errors_not_tracebacks(tiny_run, tmp_path, capsys):
    from cargan_tf.cli import main

    a_file = tmp_path / "config.json"
    a_file.write_text("{}")
    for argv, message in [
        (["sample", str(tiny_run), "--n", "2", "--out", str(tmp_path / "pic.png")],
         "need a folder, not a file name"),
        (["sample", str(tiny_run), "--grid", "--out", str(tmp_path / "g.jpg")],
         "written as PNG"),
        (["gif", str(tiny_run), "--seconds-per-frame", "-1"], "use a positive number"),
        (["export", str(tiny_run), "--out", str(a_file)], "is a file"),
        (["serve", str(tiny_run), "--port", "99999"], "use 1..65535"),
    ]:
        assert main(argv) == 2, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "pic.png").exists() and not (tmp_path / "g.jpg").exists()


def test_a_run_without_generator_keras_samples_from_its_newest_checkpoint(
        tiny_run, tmp_path, capsys):
    import shutil

    from cargan_tf.generate import generator_from_checkpoint, images_for_seed, load_generator

    run = tmp_path / "unfinished"
    shutil.copytree(tiny_run, run)
    (run / "generator.keras").unlink()  # as when the runtime died before the end
    from_checkpoint = images_for_seed(load_generator(run), 5, 4)
    assert "generator.keras does not exist yet (training unfinished); using the generator of " \
        "checkpoint ckpt-" in capsys.readouterr().out
    # the last checkpoint holds the final weights: the same images as generator.keras
    assert (from_checkpoint == images_for_seed(load_generator(tiny_run), 5, 4)).all()
    assert cli.main(["sample", str(run), "--n", "2", "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) == 2
    # a finished run trained on with more epochs: its newest checkpoint wins over the old file
    capsys.readouterr()
    shutil.copy(tiny_run / "generator.keras", run / "generator.keras")  # a new mtime: now
    load_generator(run)
    assert "using" not in capsys.readouterr().out  # finished: generator.keras is the newest
    newest = sorted((run / "checkpoints").iterdir())[-1] / "state.json"
    later = (run / "generator.keras").stat().st_mtime + 60
    os.utime(newest, (later, later))
    load_generator(run)
    assert "generator.keras is older than its newest checkpoint" in capsys.readouterr().out
    # a checkpoint asked for by name (benchmarks' snapshots) is not called unfinished
    generator_from_checkpoint(run, newest.parent)
    out = capsys.readouterr().out
    assert f"using the generator of checkpoint {newest.parent.name}" in out
    assert "training unfinished" not in out
    shutil.rmtree(run / "checkpoints")
    (run / "generator.keras").unlink()
    assert cli.main(["sample", str(run), "--n", "2"]) == 2
    assert "no generator.keras and no checkpoint yet" in capsys.readouterr().err
