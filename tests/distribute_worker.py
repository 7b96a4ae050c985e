"""Subprocess side of tests/test_distribute.py (logical devices must be set before TensorFlow
starts, and each multi-worker task is its own process).

    python tests/distribute_worker.py mirrored OUT_DIR      # 2 logical CPUs, with and without strategy
    python tests/distribute_worker.py keras_batch OUT_DIR   # what train_on_batch gives replicas
    python tests/distribute_worker.py ada_mirrored OUT_DIR  # ADA's probability under the strategy
    python tests/distribute_worker.py multiworker OUT_DIR RUN_DIR   # one task; TF_CONFIG set

Each mode writes its findings to OUT_DIR as .npz / .json for the test to check.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tiny(**overrides):
    from cargan_tf import config

    # the quickstart's options plus BatchNorm in D (so synchronized BN is exercised), EMA
    cfg = config.smoke(config.preset("quick32")).replace(
        jit_compile="off", d_batchnorm=True, epochs=1, progress=False, keep_checkpoints=0,
        architecture="pytorch_dcgan", use_bias=False)
    return cfg.replace(**overrides)


def weights(run_dir: Path, step: int) -> dict[str, np.ndarray]:
    """Every variable of run_dir's checkpoint at `step` (G, D, EMA-G, both Adam states)."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints" / f"ckpt-{step:08d}" / "weights"))
    return {k: reader.get_tensor(k) for k in sorted(reader.get_variable_to_shape_map())
            if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def two_cpus() -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


def mirrored(out: Path) -> None:
    two_cpus()
    from cargan_tf.train import train

    steps = tiny().data_n // tiny().batch_size  # one epoch
    # one device: 2 epochs; mirrored: 1 epoch, then resumed on one device for the second
    train(tiny(epochs=2), out / "single")
    train(tiny(strategy="mirrored"), out / "mirrored")
    np.savez(out / "single_1.npz", **weights(out / "single", steps))
    np.savez(out / "mirrored_1.npz", **weights(out / "mirrored", steps))
    info = json.loads((out / "mirrored" / "run_info.json").read_text())
    train(tiny(epochs=2), out / "mirrored")
    np.savez(out / "single_2.npz", **weights(out / "single", 2 * steps))
    np.savez(out / "resumed_2.npz", **weights(out / "mirrored", 2 * steps))
    # and the other way: a one-device checkpoint resumed under the strategy for epoch 3
    shutil.copytree(out / "single", out / "single_then_mirrored")
    train(tiny(epochs=3), out / "single")
    train(tiny(epochs=3, strategy="mirrored"), out / "single_then_mirrored")
    np.savez(out / "single_3.npz", **weights(out / "single", 3 * steps))
    np.savez(out / "mirrored_3.npz", **weights(out / "single_then_mirrored", 3 * steps))
    (out / "mirrored.json").write_text(json.dumps({"steps": steps, "run_info": info}))


def ada_mirrored(out: Path) -> None:
    """ADA under the strategy: its probability moves, is logged, and lands in the checkpoint."""
    two_cpus()
    from cargan_tf import runs
    from cargan_tf.train import Trainer

    cfg = tiny(strategy="mirrored", diffaugment="translation,cutout", ada_target=0.3,
               ada_kimg=0.01)
    trainer = Trainer(cfg, out / "ada")
    trainer.run()
    saved = weights(out / "ada", trainer.step)
    (out / "ada.json").write_text(json.dumps({
        "p": float(trainer.engine.ada_p.numpy()),
        "saved_p": [float(v) for k, v in saved.items() if k.startswith("ada_p/")],
        "history_p": [r["aug_p"] for r in runs.read_history(trainer.paths.history)]}))


def keras_batch(out: Path) -> None:
    """The batch size each replica's train function is traced with under train_on_batch."""
    two_cpus()
    import keras
    import tensorflow as tf

    seen: list[int] = []

    class Record(keras.layers.Layer):
        def call(self, x):
            if x.shape[0] is not None:  # not the symbolic build call
                seen.append(int(x.shape[0]))
            return x

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((4,)), Record(), keras.layers.Dense(1)])
        model.compile(optimizer="sgd", loss="mse")
    model.train_on_batch(np.ones((16, 4), np.float32), np.ones((16, 1), np.float32))
    (out / "keras_batch.json").write_text(json.dumps({
        "replicas": strategy.num_replicas_in_sync, "batch": 16, "seen": seen}))


def multiworker(out: Path, run_dir: Path) -> None:
    """One task of a two-worker cluster (TF_CONFIG): train, then save the weights it ends with."""
    from cargan_tf.train import Trainer

    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    trainer = Trainer(tiny(strategy="multiworker"), run_dir)
    trainer.run()
    np.savez(out / f"worker{index}.npz", *trainer.generator.get_weights(),
             *trainer.discriminator.get_weights())
    (out / f"worker{index}.json").write_text(json.dumps({
        "is_chief": trainer.is_chief, "wrote": str(trainer.paths.root),
        "replicas": trainer.strategy.num_replicas_in_sync}))


if __name__ == "__main__":
    mode, out_dir = sys.argv[1], Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    if mode == "mirrored":
        mirrored(out_dir)
    elif mode == "ada_mirrored":
        ada_mirrored(out_dir)
    elif mode == "keras_batch":
        keras_batch(out_dir)
    elif mode == "multiworker":
        multiworker(out_dir, Path(sys.argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode}")
