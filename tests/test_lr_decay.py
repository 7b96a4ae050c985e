"""lr_decay_from: the learning rates fall linearly over the end of a run, and the compiled
steps of both engines really train at the lowered rates."""

from __future__ import annotations

import numpy as np
import pytest

from cargan_tf import config
from cargan_tf.errors import ConfigError
from cargan_tf.lr_decay import lr_factor

from conftest import real_batch, tiny_config


def test_the_factor_is_one_until_the_decay_then_falls_linearly_to_the_last_step():
    assert [lr_factor(s, 10, 0.6) for s in range(10)] == [1, 1, 1, 1, 1, 1, 1, .75, .5, .25]
    assert lr_factor(9_999, 10_000, 0.0) == 1.0  # off
    assert lr_factor(5, 0, 0.5) == 1.0  # no known length (a minutes budget before its warm-up)


def test_a_decay_outside_the_run_is_refused_with_the_key():
    with pytest.raises(ConfigError, match="lr_decay_from.*fraction of the run"):
        config.preset("photo64", lr_decay_from=1.0)
    assert "lr_decay_from" in config.SCHEDULE_KEYS  # a resumed run may add or change it


def _largest_g_update(tmp_path, engine: str, step: int) -> float:
    """The largest change of any G weight in one step taken as global step `step` of an
    8-step run (2 epochs of 4 batches) whose rates decay from half-way, on a fresh G."""
    from cargan_tf.train import Trainer

    cfg = tiny_config(engine=engine, lr_decay_from=0.5, epochs=2, progress=False)
    trainer = Trainer(cfg, tmp_path / f"{engine}-{step}")
    try:
        assert trainer.cfg.epochs * trainer.steps_per_epoch == 8
        before = [w.numpy() for w in trainer.generator.trainable_weights]
        trainer.step = step
        trainer.train_step(real_batch(cfg, cfg.batch_size))
        after = [w.numpy() for w in trainer.generator.trainable_weights]
    finally:
        trainer.close()
    return max(float(np.abs(a - b).max()) for a, b in zip(after, before))


@pytest.mark.parametrize("engine", ["keras", "fused"])
def test_steps_in_the_decay_move_g_by_the_lowered_rate(tmp_path, engine):
    # Adam's first step moves each weight by lr * g / |g|: the largest change is the rate
    lr_g = tiny_config().lr_g
    assert _largest_g_update(tmp_path, engine, 0) == pytest.approx(lr_g, rel=0.02)
    # step 6 of 8, decaying from step 4: factor (8 - 6) / (8 - 4) = 0.5
    assert _largest_g_update(tmp_path, engine, 6) == pytest.approx(0.5 * lr_g, rel=0.02)


def test_a_run_ends_at_the_decayed_rate_and_a_resume_follows_the_schedule(tmp_path):
    from cargan_tf.train import Trainer

    cfg = tiny_config(lr_decay_from=0.5, epochs=2, progress=False)
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.run()
    last = lr_factor(7, 8, 0.5)  # the last step's factor, 0.25
    assert float(trainer.gan.g_optimizer.learning_rate.numpy()) == pytest.approx(cfg.lr_g * last)
    assert float(trainer.gan.d_optimizer.learning_rate.numpy()) == pytest.approx(cfg.lr_d * last)
    # resumed for 2 more epochs (a schedule change): the decay now spans steps 8-15
    longer = cfg.replace(epochs=4)
    resumed = Trainer(longer, tmp_path / "run")
    assert resumed.restore_latest() and resumed.step == 8
    resumed.run()
    assert float(resumed.gan.g_optimizer.learning_rate.numpy()) == pytest.approx(
        cfg.lr_g * lr_factor(15, 16, 0.5))
