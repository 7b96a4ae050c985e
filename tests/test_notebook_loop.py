"""Notebook 02's written-out train_on_batch loop is the package's training, not a look-alike: run
from the notebook's own cells (tiny quick32: EMA of G, training-mode fakes, no BatchNorm in D,
minibatch std), it ends with exactly the weights and optimizer state of cargan_tf.train.train on
the same config, also when it is stopped part-way and the notebook is run again."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from cargan_tf import notebook as nb
from cargan_tf import runs
from cargan_tf.train import train

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "notebooks" / "src" / "02_train_dcgan.py"


class Stopped(Exception):
    """Stands for a recycled runtime: the loop cell stops between two batches."""


def notebook_cells(monkeypatch) -> list[str]:
    """Notebook 02's own code cells up to its training loop (the shared include cells left out)."""
    spec = importlib.util.spec_from_file_location("build_notebooks",
                                                  REPO / "notebooks" / "build_notebooks.py")
    builder = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "build_notebooks", builder)  # dataclasses look it up
    spec.loader.exec_module(builder)
    cells = [c.source for c in builder.read_source(SOURCE).cells
             if c.kind == "code" and "include" not in c.options]
    loop = next(i for i, c in enumerate(cells) if "trainer.end_epoch" in c)
    assert "train_on_batch" in cells[loop] and "train(cfg, run_dir" in cells[loop]
    return cells[: loop + 1]


def run_notebook(cells: list[str], home: Path, run_name: str) -> dict:
    """The cells as a notebook runs them, with papermill-style parameters (smoke, tiny)."""
    namespace: dict = {"nb": nb}
    exec(compile(cells[0], "parameters", "exec"), namespace)
    assert namespace["engine"] == "keras" and namespace["preset"] == "quick32"  # the defaults
    namespace.update(smoke=True, run_name=run_name, home=nb.setup(home, smoke=True))
    for i, cell in enumerate(cells[1:], 1):
        exec(compile(cell, f"02_train_dcgan cell {i}", "exec"), namespace)
    return namespace


def checkpoint_values(run_dir: Path) -> dict[str, np.ndarray]:
    """Every variable of the run's newest checkpoint: G, D, EMA of G, both optimizers' state."""
    path = str(runs.latest_checkpoint(runs.RunPaths(run_dir)) / "weights")
    reader = tf.train.load_checkpoint(path)
    return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(path)
            if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def assert_same_weights(a: Path, b: Path) -> None:
    va, vb = checkpoint_values(a), checkpoint_values(b)
    assert va.keys() == vb.keys()
    # a variable is saved once, under the first path to it: G's and D's trainable weights under
    # their optimizers (_trainable_variables), beside the Adam slots; G's BatchNorm statistics
    # under generator/
    for group in ("d_optimizer/_trainable_variables/", "g_optimizer/_trainable_variables/",
                  "d_optimizer/_variables/", "generator/", "ema_generator/"):
        assert any(k.startswith(group) for k in va), f"no {group} variables in the checkpoint"
    different = [k for k in va if not np.array_equal(va[k], vb[k])]
    assert not different, f"{len(different)} of {len(va)} variables differ, e.g. {different[:3]}"


def test_notebook_loop_equals_train_and_resumes_to_the_same_weights(tmp_path, monkeypatch):
    cells = notebook_cells(monkeypatch)
    home = tmp_path / "home"

    # 1. the notebook's loop, start to end
    ns = run_notebook(cells, home, "loop")
    cfg, loop_dir = ns["cfg"], ns["run_dir"]
    assert (cfg.engine, cfg.fake_batch_mode, cfg.d_batchnorm, cfg.minibatch_std) == \
        ("keras", "training", False, True)
    assert cfg.ema_decay > 0 and ns["trainer"].step == cfg.epochs * ns["trainer"].steps_per_epoch
    assert runs.RunPaths(loop_dir).generator.exists()

    # 2. the package's train() on the same final config: the same weights, bit for bit
    package_dir = train(cfg, tmp_path / "package")
    assert_same_weights(loop_dir, package_dir)

    # 3. the notebook stopped in epoch 2 (after its 6th batch), then run again from the top
    visits = {"after_batch": 0}
    real_fault_point = runs.fault_point

    def stop_after_six(name):
        if name == "after_batch":
            visits[name] += 1
            if visits[name] == 6:
                raise Stopped
        real_fault_point(name)

    monkeypatch.setattr(runs, "fault_point", stop_after_six)
    with pytest.raises(Stopped):
        run_notebook(cells, home, "resumed")
    resumed = runs.RunPaths(home / "runs" / "resumed")
    assert [p.name for p in runs.list_checkpoints(resumed)] == ["ckpt-00000004"]
    monkeypatch.setattr(runs, "fault_point", real_fault_point)
    ns = run_notebook(cells, home, "resumed")
    assert ns["trainer"].resumed_from.name == "ckpt-00000004"
    assert_same_weights(resumed.root, package_dir)
    positions = [(r["epoch"], r["batch"]) for r in runs.read_history(resumed.history)]
    assert positions == [(e, b) for e in (1, 2) for b in range(4)]  # none lost, none twice
