"""The tf.data input pipeline: uint8 images -> shuffled float32 batches in [-1, 1].

Each epoch's order is a pure function of (seed, epoch), so a resumed run sees the same batches
as an uninterrupted one; `skip_batches` resumes inside an epoch.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The permutation of range(n) used in `epoch` (1-based) of a run seeded with `seed`."""
    return np.random.default_rng([int(seed), 3, int(epoch)]).permutation(n)


def epoch_dataset(images: np.ndarray, batch_size: int, seed: int, epoch: int, *,
                  skip_batches: int = 0, drop_remainder: bool = True,
                  flip: bool = False) -> tf.data.Dataset:
    """Batches of float32 (B, H, W, C) in [-1, 1] for one epoch, prefetched (see run_dataset)."""
    return run_dataset(images, batch_size, seed, epoch, epoch, skip_batches=skip_batches,
                       drop_remainder=drop_remainder, flip=flip)


def run_dataset(images: np.ndarray, batch_size: int, seed: int, first_epoch: int,
                last_epoch: int, *, skip_batches: int = 0, drop_remainder: bool = True,
                flip: bool = False, labels: np.ndarray | None = None,
                n_classes: int = 0) -> tf.data.Dataset:
    """Batches of float32 (B, H, W, C) in [-1, 1] for epochs first_epoch..last_epoch, in order,
    as one prefetched pipeline: the same batches as one epoch_dataset per epoch, without
    building a pipeline (and waiting for its first batch) at every epoch start, which a small
    set of a few batches per epoch would feel.

    images: uint8 (N, H, W, C). Batches are gathered in a background thread from the array in
    memory (no copy of the whole set into the TensorFlow graph, so large sets are fine).
    skip_batches: batches of first_epoch already trained (a resume inside an epoch).
    drop_remainder keeps every batch the same shape: no retrace, and the frozen-D train
    functions are never traced anew mid-run.
    labels: int64 (N,) class ids in 0..n_classes-1 (a conditional run): each element is then
    (images, one-hot float32 (B, n_classes)), the classes of the same images.
    """
    if images.dtype != np.uint8 or images.ndim != 4:
        raise ValueError(f"images must be uint8 (N, H, W, C), got {images.dtype} {images.shape}")

    def batches():
        for epoch in range(first_epoch, last_epoch + 1):
            order = epoch_order(len(images), seed, epoch)
            skip = skip_batches if epoch == first_epoch else 0
            for i, start in enumerate(range(skip * batch_size, len(images), batch_size), skip):
                index = order[start:start + batch_size]
                if drop_remainder and len(index) < batch_size:
                    break
                if labels is not None:
                    yield (np.take(images, index, axis=0), np.take(labels, index)), epoch, i
                else:
                    yield np.take(images, index, axis=0), epoch, i

    shape = (batch_size if drop_remainder else None,) + images.shape[1:]
    spec = tf.TensorSpec(shape, tf.uint8)
    if labels is not None:
        spec = (spec, tf.TensorSpec(shape[:1], tf.int64))
    signature = (spec, tf.TensorSpec((), tf.int64), tf.TensorSpec((), tf.int64))
    ds = tf.data.Dataset.from_generator(batches, output_signature=signature)
    if labels is not None:  # (images, classes): the pixels as below, the classes one-hot
        ds = ds.map(lambda x, epoch, i: ((tf.cast(x[0], tf.float32) / 127.5 - 1.0,
                                          tf.one_hot(x[1], n_classes)), epoch, i),
                    num_parallel_calls=tf.data.AUTOTUNE)
        if flip:
            ds = ds.map(lambda x, epoch, i: ((_random_flip(x[0], seed, epoch, i), x[1]),
                                             epoch, i), num_parallel_calls=tf.data.AUTOTUNE)
        return ds.map(lambda x, epoch, i: x).prefetch(2)
    ds = ds.map(lambda x, epoch, i: (tf.cast(x, tf.float32) / 127.5 - 1.0, epoch, i),
                num_parallel_calls=tf.data.AUTOTUNE)
    if flip:
        ds = ds.map(lambda x, epoch, i: (_random_flip(x, seed, epoch, i), epoch, i),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(lambda x, epoch, i: x).prefetch(2)


def _random_flip(batch: tf.Tensor, seed: int, epoch: int, index: tf.Tensor) -> tf.Tensor:
    """Flip each image left-right with probability 1/2, reproducibly per (seed, epoch, batch)."""
    key = tf.stack([seed * 100003 + tf.cast(epoch, tf.int64), tf.cast(index, tf.int64)])
    coin = tf.random.stateless_uniform([tf.shape(batch)[0], 1, 1, 1], seed=key)
    return tf.where(coin < 0.5, tf.reverse(batch, axis=[2]), batch)
