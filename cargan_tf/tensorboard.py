"""TensorBoard logs written with TensorFlow alone (tensorboard=True in a run's config).

tf.summary.scalar and tf.summary.image live in the tensorboard package, which TensorFlow does
not install; tf.summary.write is TensorFlow's own. Each summary here is what those two would
write: the value and its plugin's name (scalars; images: width, height, then PNG bytes), so
TensorBoard (in Colab: %load_ext tensorboard) shows them as usual.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from cargan_tf.viz import encode_png

SCALAR_KEYS = ("d_loss_real", "d_loss_fake", "g_loss", "g_loss_l2", "D(x)", "D(G(z))", "aug_p")


def _metadata(plugin: str) -> bytes:
    return summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(
        plugin_name=plugin)).SerializeToString()


def write_scalars(writer, row: dict, step: int) -> None:
    """A history row's losses and D outputs; D(x) is tagged D_x (TensorBoard's tag rules)."""
    with writer.as_default():
        for key in SCALAR_KEYS:
            if key in row:
                tag = key.replace("(", "_").replace(")", "")
                tf.summary.write(tag, tf.constant(row[key], tf.float32), step=step,
                                 metadata=_metadata("scalars"))


def write_images(writer, tag: str, images: np.ndarray, step: int) -> None:
    """uint8 images (N, H, W, C) as one image summary with N samples."""

    height, width = images.shape[1:3]
    tensor = tf.constant([str(width).encode(), str(height).encode(),
                          *(encode_png(image) for image in images)])
    with writer.as_default():
        tf.summary.write(tag, tensor, step=step, metadata=_metadata("images"))
