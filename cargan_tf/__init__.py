"""cargan_tf: DCGANs that design cars, for Keras 3 / TensorFlow.

Importing the package is light (no TensorFlow); the heavy modules load on first use, e.g.
``from cargan_tf import models`` or ``cargan_tf.train.train(config)``.
"""

__version__ = "0.1.0"
