"""Data: the procedural toycars set, image folders, prepared caches, Fashion-MNIST, tf.data input."""
