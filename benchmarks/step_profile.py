"""Where a training step's time goes: TensorFlow's profiler, summed by kernel type.

    python benchmarks/step_profile.py                               # aim64, batch 128, fused joint
    python benchmarks/step_profile.py --engine keras --schedule classic --noise 2
    python benchmarks/step_profile.py --fused-batchnorm             # the experiment below
    python benchmarks/step_profile.py --inter-op 1                  # one op at a time

Times a few steps, then profiles a few more and prints each kernel type's share of the time
the executor's threads spent in kernels (convolutions, their gradients, element-wise ops...).
Kernels on TensorFlow's two inter-op threads overlap, so shares, not seconds, are the point.

--fused-batchnorm: an experiment, not a cargan_tf option. Swaps Keras 3's BatchNormalization
(moments plus element-wise ops) for TensorFlow's single FusedBatchNormV3 kernel, same maths
(the moving variance still gets the biased batch variance), to see whether the element-wise
share is worth fusing.
"""

from __future__ import annotations

import argparse
import collections
import glob
import importlib
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONV_KERNELS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")


def use_fused_batchnorm() -> None:
    """Route 4-D float32 BatchNormalization calls through tf.raw_ops.FusedBatchNormV3."""
    import tensorflow as tf
    from keras.src.layers.normalization.batch_normalization import BatchNormalization

    keras_call = BatchNormalization.call

    def call(self, inputs, training=None, mask=None):
        if (len(inputs.shape) != 4 or mask is not None or self.axis not in (-1, 3)
                or inputs.dtype != tf.float32 or not (self.center and self.scale)):
            return keras_call(self, inputs, training=training, mask=mask)
        if training and self.trainable:
            y, mean, unbiased, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=self.gamma, offset=self.beta,
                mean=tf.zeros_like(self.moving_mean), variance=tf.zeros_like(self.moving_mean),
                epsilon=self.epsilon, data_format="NHWC", is_training=True)
            n = tf.cast(tf.reduce_prod(tf.shape(inputs)[:3]), tf.float32)
            variance = unbiased * (n - 1.0) / n  # Keras keeps the biased one
            self.moving_mean.assign(self.moving_mean * self.momentum
                                    + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum
                                        + variance * (1.0 - self.momentum))
            return y
        y, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=self.gamma, offset=self.beta, mean=self.moving_mean,
            variance=self.moving_variance, epsilon=self.epsilon, data_format="NHWC",
            is_training=False)
        return y

    BatchNormalization.call = call


def kernel_times(logdir: str) -> collections.Counter:
    """{kernel type: ms} summed over the executor threads of the profile in `logdir`."""
    try:
        from tsl.profiler.protobuf import xplane_pb2
    except ImportError:
        from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals: collections.Counter = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" in name and "::" not in name:  # "op:Kernel"; not the executor's spans
                    totals[name.rsplit(":", 1)[1]] += event.duration_ps / 1e9
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="aim64")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--engine", default="fused", choices=("fused", "keras"))
    parser.add_argument("--schedule", default="joint", choices=("joint", "classic"))
    parser.add_argument("--noise", type=int, default=1, help="g_noise_multiplier")
    parser.add_argument("--steps", type=int, default=5, help="timed steps (after 2 warm-up)")
    parser.add_argument("--profiled", type=int, default=2, help="profiled steps")
    parser.add_argument("--fused-batchnorm", action="store_true")
    parser.add_argument("--inter-op", type=int, default=0,
                        help="TensorFlow inter-op threads (0: its default)")
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

    importlib.import_module("cargan_tf")  # before TensorFlow: it turns oneDNN CPU kernels on
    import numpy as np
    import tensorflow as tf

    from cargan_tf import config, models
    from cargan_tf.engines import make_engine, step_inputs
    from cargan_tf.gan import StackedGAN

    if args.inter_op:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    if args.fused_batchnorm:
        use_fused_batchnorm()
    cfg = config.preset(args.preset, batch_size=args.batch, engine=args.engine,
                        schedule=args.schedule, g_noise_multiplier=args.noise,
                        jit_compile="off")
    sg = StackedGAN(models.build_generator(cfg), models.build_discriminator(cfg), cfg)
    engine = make_engine(sg, cfg)
    real = np.random.default_rng(0).uniform(
        -1, 1, (args.batch, cfg.image_size, cfg.image_size, cfg.channels)).astype("float32")
    step = iter(range(10**9))
    for _ in range(2):
        engine.step(real, step_inputs(cfg, next(step), args.batch))
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        engine.step(real, step_inputs(cfg, next(step), args.batch))
        times.append(time.perf_counter() - start)
    median = sorted(times)[len(times) // 2]
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.profiled):
            engine.step(real, step_inputs(cfg, next(step), args.batch))
        tf.profiler.experimental.stop()
        totals = kernel_times(logdir)
    total = sum(totals.values())
    conv = sum(v for k, v in totals.items() if any(c in k for c in CONV_KERNELS))
    matmul = sum(v for k, v in totals.items() if "MatMul" in k)
    label = f"{args.engine} {args.schedule}, {args.noise}x noise" + \
        (", fused BatchNorm" if args.fused_batchnorm else "") + \
        (f", {args.inter_op} inter-op thread(s)" if args.inter_op else "")
    print(f"{args.preset}, batch {args.batch}, {label}: {median:.3f} s/step "
          f"({args.batch / median:.1f} img/s, median of {args.steps})")
    print(f"kernel time over {args.profiled} profiled steps: {total:.0f} ms; convolutions "
          f"{100 * conv / total:.1f}%, matmul {100 * matmul / total:.1f}%, everything else "
          f"{100 * (total - conv - matmul) / total:.1f}%")
    for kernel, ms in totals.most_common(12):
        print(f"  {100 * ms / total:5.1f}%  {kernel}")


if __name__ == "__main__":
    main()
