"""Budgets that fit the folder: quick32's step budget, --minutes and the warm-up estimate."""

from __future__ import annotations

import json

import pytest

from cargan_tf import config, pace, runs
from cargan_tf.errors import ConfigError

from conftest import tiny_config


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_pace_skips_the_compile_step_and_waits_for_the_warmup():
    clock = FakeClock()
    p = pace.Pace(clock)
    clock.now += 30.0  # the first step traces and compiles: not measured
    p.step_done(1)
    for step in range(2, 1 + pace.WARMUP_STEPS):
        clock.now += 0.5
        p.step_done(step)
        assert not p.ready(step)
    step = 1 + pace.WARMUP_STEPS
    clock.now += 0.5
    p.step_done(step)
    assert p.ready(step) and p.measured_steps(step) == pace.WARMUP_STEPS
    assert p.seconds_per_step(step) == pytest.approx(0.5)  # the compile step left out
    assert pace.steps_for_minutes(10, 0.5, done=100) == 1200
    assert pace.steps_for_minutes(0.001, 0.5, done=100) == 100  # never fewer than trained
    assert pace.duration(40) == "40 s" and pace.duration(600) == "10 min"
    assert pace.duration(7500) == "2 h 05 min"


def test_with_lazy_r1_the_warmup_leaves_out_both_compile_steps():
    # photo64: step % 4 == 0 runs the R1 step, the others the plain one; each compiles once
    def measured(start):
        clock = FakeClock()
        p = pace.Pace(clock, r1_every=4)
        first_r1 = next(s for s in range(start, start + 9) if s % 4 == 0)
        first_plain = next(s for s in range(start, start + 9) if s % 4)
        for step in range(start, start + 60):       # step: 0-based, before it runs
            compiles = step in (first_r1, first_plain)
            clock.now += 2.0 if compiles else 0.1   # a compile costs 2 s, a step 0.1 s
            p.step_done(step + 1)
        return p.compile_steps(), p.seconds_per_step(start + 60)

    assert measured(0) == (2, pytest.approx(0.1))   # R1 first, then the plain step compiles
    assert measured(4) == (2, pytest.approx(0.1))   # a resume at an R1 step
    assert measured(5) == (4, pytest.approx(0.1))   # a resume 3 steps before the next R1 step
    assert measured(7) == (2, pytest.approx(0.1))   # plain first, R1 next
    old = pace.Pace(FakeClock(), r1_every=0)        # no R1: only the first step is left out
    old.step_done(1)
    assert old.compile_steps() == 1


def test_a_folder_of_any_size_gets_quick32s_step_budget():
    quickstart = config.finish(config.preset("quick32"), 8192)
    assert (quickstart.steps, quickstart.epochs) == (6144, 48)  # the toycars quickstart
    photos = config.resolve("quick32", n_images=1400)           # ~1,400 photos, batch 64
    assert photos.steps == 6144 and photos.epochs * (1400 // 64) >= quickstart.steps


def test_minutes_are_one_length_among_three(tmp_path):
    with pytest.raises(ConfigError, match="give one length, not both"):
        config.length_overrides(steps=100, minutes=5)
    cfg = config.resolve("quick32", minutes=30)
    assert (cfg.minutes, cfg.steps, cfg.epochs) == (30.0, 0, config.PROVISIONAL_EPOCHS)
    assert config.minutes_pending(cfg) and "about 30 minutes" in config.describe_length(cfg)
    with pytest.raises(ConfigError, match="minutes=-1"):
        cfg.replace(minutes=-1.0)
    # a resume asking for the same budget keeps the steps its warm-up set; another budget
    # is measured again
    run = tmp_path / "run"
    run.mkdir()
    runs.RunPaths(run).config.write_text(cfg.replace(steps=900, epochs=15).to_json())
    again = config.resolve("quick32", run_dir=run, minutes=30)
    assert again.steps == 900 and not config.minutes_pending(again)
    assert config.minutes_pending(config.resolve("quick32", run_dir=run, minutes=45))
    assert config.resolve("quick32", run_dir=run, epochs=3).minutes == 0.0


def test_a_minutes_budget_becomes_steps_after_the_warmup(tmp_path, capsys):
    from cargan_tf.train import train

    # 4 batches an epoch: the warm-up ends at the first epoch end 20 steps after the first;
    # a budget far below that stops at that epoch's end
    cfg = tiny_config(progress=True, minutes=0.001, epochs=config.PROVISIONAL_EPOCHS)
    run = tmp_path / "run"
    train(cfg, run)
    paths = runs.RunPaths(run)
    saved = json.loads(paths.config.read_text())
    assert saved["minutes"] == 0.001 and saved["steps"] == 24 and saved["epochs"] == 6
    assert len(runs.read_history(paths.history)) == 24
    events = runs.read_jsonl(paths.config_history)
    event = next(e for e in events if e.get("event") == "minutes_budget")
    assert event["changed"]["steps"] == {"from": 0, "to": 24}
    assert event["seconds_per_step"] > 0
    printed = capsys.readouterr().out
    assert "a budget of 0.001 minutes at this pace: 24 steps" in printed
    assert "pace: " in printed and "steps left, done around" in printed
    # resumed with the same budget: nothing more to train, nothing measured again
    train(config.resolve(run_dir=run, minutes=0.001), run)
    assert len(runs.read_history(paths.history)) == 24


def test_without_a_progress_bar_the_budget_estimate_and_epoch_lines_still_print(tmp_path, capsys):
    from cargan_tf.train import train

    # `train --no-progress > log`: the bar goes, the lines a log file is read for stay
    cfg = tiny_config(progress=False, minutes=0.001, epochs=config.PROVISIONAL_EPOCHS)
    train(cfg, tmp_path / "run")
    out, err = capsys.readouterr()
    assert "a budget of 0.001 minutes at this pace: 24 steps" in out
    assert "pace: " in out and "steps left, done around" in out
    # before the warm-up has set the length an epoch is "of ?", as the bar shows it, not of
    # the provisional 1,000,000
    assert "epoch 1/?: d_loss " in out and "epoch 6/6: d_loss " in out
    assert "/1000000" not in out
    assert "it/s" not in out + err and "s/it" not in out + err  # no tqdm bar
