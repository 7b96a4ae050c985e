"""tf.distribute (issue 9): the fused engine under MirroredStrategy and MultiWorkerMirroredStrategy
on two logical CPUs / two local worker processes, each in a subprocess (tests/distribute_worker.py),
because logical devices and collectives must be set up before TensorFlow starts.

Tolerance: every checkpoint variable (G, D, EMA-G, both Adam states) within a relative 1e-5 of the
one-device run. Measured: 5e-7 (float32 rounding: the replicas sum in a different order).
Without synchronized BatchNorm the same comparison is off by ~1 (relative), so it can fail.
The tiny config has no biases in front of BatchNorm: their true gradient is 0, and Adam turns
the rounding noise of a 0 gradient into full-size steps that no tolerance could compare.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cargan_tf import config
from cargan_tf.errors import ConfigError

WORKER = Path(__file__).with_name("distribute_worker.py")
REPO = Path(__file__).resolve().parents[1]
RTOL = 1e-5


def run_worker(*args: str, env: dict | None = None, timeout: int = 240) -> None:
    out = subprocess.run([sys.executable, str(WORKER), *args], cwd=REPO, capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, **(env or {})})
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


def assert_close(a: dict, b: dict) -> None:
    assert set(a) == set(b) and len(a) > 20
    for key in a:
        scale = max(float(np.abs(a[key]).max()), 1e-3)
        assert np.abs(a[key] - b[key]).max() <= RTOL * scale, key


def load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def mirrored_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mirrored")
    run_worker("mirrored", str(out))
    return out


def test_mirrored_two_replicas_take_the_one_device_step(mirrored_out):
    info = json.loads((mirrored_out / "mirrored.json").read_text())
    assert info["run_info"]["strategy"] == "mirrored" and info["run_info"]["replicas"] == 2
    assert_close(load(mirrored_out / "single_1.npz"), load(mirrored_out / "mirrored_1.npz"))


def test_checkpoint_saved_under_the_strategy_resumes_on_one_device(mirrored_out):
    assert_close(load(mirrored_out / "single_2.npz"), load(mirrored_out / "resumed_2.npz"))
    history = (mirrored_out / "mirrored" / "history.csv").read_text().splitlines()
    steps = json.loads((mirrored_out / "mirrored.json").read_text())["steps"]
    assert len(history) == 1 + 2 * steps  # header + both epochs, none repeated


def test_one_device_checkpoint_resumes_under_the_strategy(mirrored_out):
    assert_close(load(mirrored_out / "single_3.npz"), load(mirrored_out / "mirrored_3.npz"))


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_end_identical_and_only_the_chief_writes(mirrored_out, tmp_path):
    cluster = {"worker": [f"localhost:{p}" for p in _free_ports(2)]}
    run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    procs = []
    for index in range(2):
        env = {**os.environ, "TMPDIR": str(scratch), "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, str(WORKER), "multiworker", str(tmp_path), str(run_dir)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)

    chief, other = (json.loads((tmp_path / f"worker{i}.json").read_text()) for i in range(2))
    assert chief["is_chief"] and not other["is_chief"] and chief["replicas"] == 2
    assert chief["wrote"] == str(run_dir)
    assert not any(scratch.iterdir())  # the non-chief's scratch folder is gone
    assert (run_dir / "generator.keras").exists() and (run_dir / "checkpoints").is_dir()
    w0, w1 = load(tmp_path / "worker0.npz"), load(tmp_path / "worker1.npz")
    assert all(np.array_equal(w0[k], w1[k]) for k in w0)
    # and the two workers together took the one-device step on the global batch
    sys.path.insert(0, str(WORKER.parent))
    from distribute_worker import weights

    steps = json.loads((mirrored_out / "mirrored.json").read_text())["steps"]
    assert_close(load(mirrored_out / "single_1.npz"), weights(run_dir, steps))


def test_keras_train_on_batch_gives_every_replica_the_whole_batch(tmp_path):
    """Why strategy needs engine=fused: Keras 3 does not split train_on_batch's batch."""
    run_worker("keras_batch", str(tmp_path))
    found = json.loads((tmp_path / "keras_batch.json").read_text())
    assert found["replicas"] == 2 and found["seen"] and set(found["seen"]) == {found["batch"]}


def test_ada_probability_moves_and_is_checkpointed_under_the_strategy(tmp_path):
    run_worker("ada_mirrored", str(tmp_path))
    found = json.loads((tmp_path / "ada.json").read_text())
    assert found["history_p"][0] == 0.0 and len(set(found["history_p"])) > 1  # it adapted
    assert found["saved_p"] == [pytest.approx(found["p"])]


# ---- config and errors (no strategy needed) ---------------------------------------------------

def test_strategy_needs_the_fused_engine_and_a_known_name():
    with pytest.raises(ConfigError, match="engine=fused"):
        config.preset("aim64", strategy="mirrored")
    with pytest.raises(ConfigError, match="default, mirrored, tpu, multiworker"):
        config.preset("quick32", strategy="horovod")
    assert config.preset("quick32", strategy="mirrored").strategy == "mirrored"
    assert "strategy" in config.SCHEDULE_KEYS  # a run may resume with or without one


def test_batch_must_split_across_replicas():
    from cargan_tf.distribute import check_batch

    class ThreeReplicas:
        num_replicas_in_sync = 3

    cfg = config.preset("quick32", strategy="mirrored")
    with pytest.raises(ConfigError, match="multiple of 3, e.g. --batch-size 63"):
        check_batch(cfg, ThreeReplicas())
    assert check_batch(cfg.replace(batch_size=66), ThreeReplicas()) == 22
    grouped = cfg.replace(batch_size=66, minibatch_std_group=6)  # 6 divides 66, not 22
    with pytest.raises(ConfigError, match="per-replica batch 22.*multiple of 18, e.g. "
                                          "--batch-size 54"):
        check_batch(grouped, ThreeReplicas())
    assert check_batch(grouped.replace(batch_size=72), ThreeReplicas()) == 24


def test_multiworker_without_tf_config_says_how_to_set_it(monkeypatch):
    from cargan_tf.distribute import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="TF_CONFIG.*index 1 on the second"):
        make_strategy(config.preset("quick32", strategy="multiworker"))


def test_cli_strategy_flag_on_the_keras_engine_is_refused_before_training(capsys, tmp_path):
    from cargan_tf import cli

    code = cli.main(["train", "--preset", "aim64", "--smoke", "--strategy", "mirrored",
                     "--run-dir", str(tmp_path / "run")])
    assert code != 0 and "engine=fused" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
