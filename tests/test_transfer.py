"""Transfer learning (issue 5): --init-from copies a trained run's G and D into a new run."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from cargan_tf import cli, viz
from cargan_tf.errors import ConfigError
from cargan_tf.train import Trainer, train

from conftest import tiny_config


def _weights(path):
    return keras.saving.load_model(path, compile=False).get_weights()


def test_init_from_a_run_starts_with_its_generator_and_discriminator(tiny_run, tmp_path):
    # epochs=0: nothing trains, so generator.keras / discriminator.keras are the copied weights
    out = train(tiny_config(epochs=0, init_from=str(tiny_run), data_n=32), tmp_path / "ft")
    for name in ("generator.keras", "discriminator.keras"):
        src, dst = _weights(tiny_run / name), _weights(out / name)
        assert len(src) == len(dst) and all(np.array_equal(a, b) for a, b in zip(src, dst))
    info = json.loads((out / "run_info.json").read_text())
    assert info["initialised_from"]["generator"].endswith("generator.keras")
    assert viz.gif_frame_count(out / "evolution.gif") == 1  # a one-frame GIF still encodes


def test_fine_tuning_trains_from_there_and_a_resume_keeps_its_own_checkpoint(tiny_run, tmp_path):
    run = tmp_path / "ft"
    train(tiny_config(epochs=1, init_from=str(tiny_run), data_n=32), run)
    after_one = _weights(run / "generator.keras")
    assert not all(np.array_equal(a, b) for a, b in zip(_weights(tiny_run / "generator.keras"),
                                                          after_one))
    # a second call resumes from ft's own checkpoint; init_from is not applied again
    trainer = Trainer(tiny_config(epochs=1, init_from=str(tiny_run), data_n=32), run)
    assert trainer.restore_latest()
    live = trainer.generator.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(live, after_one))
    assert json.loads((run / "run_info.json").read_text())["initialised_from"]


def test_a_generator_file_alone_gives_g_and_leaves_d_fresh(tiny_run, tmp_path):
    out = train(tiny_config(epochs=0, init_from=str(tiny_run / "generator.keras"), data_n=32),
                tmp_path / "g_only")
    src = _weights(tiny_run / "discriminator.keras")
    assert not all(np.array_equal(a, b) for a, b in zip(src, _weights(out / "discriminator.keras")))
    assert json.loads((out / "run_info.json").read_text())["initialised_from"][
        "discriminator"] is None


def test_mismatched_architecture_is_a_clear_error(tiny_run, tmp_path):
    with pytest.raises(ConfigError, match="does not fit this run's generator.*same architecture"):
        train(tiny_config(epochs=0, base_filters=4, init_from=str(tiny_run), data_n=32),
              tmp_path / "bad")


def test_cli_init_from_a_missing_run_says_so(tmp_path, capsys):
    code = cli.main(["train", "--preset", "aim64", "--smoke", "--init-from",
                     str(tmp_path / "nope"), "--run-dir", str(tmp_path / "run"), "--no-progress"])
    assert code != 0 and "does not exist" in capsys.readouterr().err
