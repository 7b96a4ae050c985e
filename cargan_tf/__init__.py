"""cargan_tf: DCGANs that design cars, for Keras 3 / TensorFlow.

Importing the package is light (no TensorFlow); the heavy modules load on first use, e.g.
``from cargan_tf import models`` or ``cargan_tf.train.train(config)``.
"""

import os as _os

# TensorFlow's Linux wheels turn their oneDNN CPU kernels on by default only on some CPUs: on
# this project's AMD EPYC (no AVX-512) they were off, and turning them on trained aim64 1.8x
# faster (BENCHMARKS.md, "Training speed"). It only works before TensorFlow is imported, so
# import cargan_tf first; TF_ENABLE_ONEDNN_OPTS=0 in the environment still turns them off.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
