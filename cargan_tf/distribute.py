"""tf.distribute for the fused engine: which strategy, who writes, how a batch is split.

The strategy is made first, before any other TensorFlow op runs (MultiWorkerMirroredStrategy
must configure collectives at start-up). Models and optimizers are built in its scope by the
Trainer; the fused engine runs its step with ``strategy.run`` on per-replica slices of the
global batch, each replica's loss divided by the number of replicas (Keras' optimizer sums
gradients across replicas), so N replicas take the same step as one device on the whole batch.
BatchNormalization (and the minibatch-std layer) then compute their batch statistics across
replicas, as one device would.

Only the chief writes the run folder; other workers write to a scratch folder they delete (they
must still save checkpoints: saving distributed variables is a collective operation) and
resume from the chief's checkpoints.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from cargan_tf.config import RunConfig
from cargan_tf.env import is_chief_task
from cargan_tf.errors import ConfigError


def make_strategy(cfg: RunConfig) -> tf.distribute.Strategy:
    """The tf.distribute strategy cfg.strategy names (default: TensorFlow's no-op strategy)."""
    if cfg.strategy == "default":
        return tf.distribute.get_strategy()
    if cfg.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if cfg.strategy == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=cfg.tpu or None)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.NotFoundError, RuntimeError) as err:
            raise ConfigError(
                f"strategy=tpu: no TPU found ({err}). In Colab choose Runtime > Change runtime "
                "type > TPU; elsewhere pass the TPU's name with --set tpu=NAME") from err
        return tf.distribute.TPUStrategy(resolver)
    if cfg.strategy == "multiworker":
        if not os.environ.get("TF_CONFIG"):
            raise ConfigError(
                "strategy=multiworker reads the cluster from the TF_CONFIG environment "
                "variable, which is not set. Set it on every worker, e.g. TF_CONFIG='{\"cluster\":"
                " {\"worker\": [\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": "
                "\"worker\", \"index\": 0}}' (index 1 on the second), then run the same command")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {cfg.strategy!r}")


def replicas(strategy: tf.distribute.Strategy) -> int:
    return int(strategy.num_replicas_in_sync)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes the run folder: always, except a non-chief worker (the
    cluster in TF_CONFIG, as env.is_chief_task reads it)."""
    return not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or is_chief_task()


def check_batch(cfg: RunConfig, strategy: tf.distribute.Strategy) -> int:
    """The per-replica batch; batch_size must split evenly across the replicas."""
    n = replicas(strategy)
    if cfg.batch_size % n:
        raise ConfigError(
            f"batch_size={cfg.batch_size} does not split across {n} replicas: batch_size is "
            f"the global batch (per-replica batch x replicas); use a multiple of {n}, e.g. "
            f"--batch-size {max(n, cfg.batch_size // n * n)}")
    per_replica, group = cfg.batch_size // n, cfg.minibatch_std_group
    if group and per_replica % group:  # each replica forms its groups from its own slice
        step = n * group
        raise ConfigError(
            f"minibatch_std_group={group} does not divide the per-replica batch {per_replica} "
            f"(batch_size={cfg.batch_size} over {n} replicas): use a batch_size that is a "
            f"multiple of {step}, e.g. --batch-size {max(step, cfg.batch_size // step * step)}, "
            "or a smaller group")
    return per_replica


def distribute_dataset(strategy: tf.distribute.Strategy, ds: tf.data.Dataset):
    """ds (global batches) split across the replicas in order: replica r gets rows
    [r*b, (r+1)*b) of each batch. Every worker builds the same batches (the order is a pure
    function of seed and epoch) and keeps its replicas' rows."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(ds.with_options(options))


def split_across_replicas(strategy: tf.distribute.Strategy, array: np.ndarray):
    """A per-replica value: replica r gets the r-th of equal consecutive slices of `array`
    (its rows; any leading size divisible by the number of replicas)."""
    n = replicas(strategy)
    size = len(array) // n

    def piece(context):
        r = context.replica_id_in_sync_group
        return tf.constant(array[r * size:(r + 1) * size])

    return strategy.experimental_distribute_values_from_function(piece)


def cross_replica_sum(*tensors):
    """Sum each tensor over the replicas inside strategy.run; unchanged on one replica."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    return tuple(context.all_reduce(tf.distribute.ReduceOp.SUM, t) for t in tensors)


__all__ = ["make_strategy", "replicas", "is_chief", "check_batch",
           "distribute_dataset", "split_across_replicas", "cross_replica_sum"]
