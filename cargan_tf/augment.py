"""DiffAugment (Zhao et al., 2020): differentiable augmentations applied to every image D sees.

D is shown T(x) for real images and T(G(z)) for generated ones, in both its own update and
in G's update, so G gets gradients through T and learns the un-augmented distribution while D
cannot memorise a small training set. The policy is a comma list of:

- ``color``: per image, brightness += U(-0.5, 0.5), saturation *= U(0, 2), contrast *= U(0.5, 1.5)
- ``translation``: per image, shift by up to 1/8 of the side in x and y, zero-filled
- ``cutout``: per image, a zero square of half the side at a random place

Images are float (N, H, W, C) in [-1, 1]. Randomness is stateless: a function of an int64
``key`` of shape (2,) (engines.step_inputs derives it from the run's seed and the step), so a
resumed run augments exactly as an uninterrupted one. The empty policy is the identity.

With a probability ``p`` (adaptive augmentation, ADA: Karras et al., 2020) each op is applied
to each image independently with probability p, so p = 0 is the identity and p = 1 applies
every op to every image; engines.FusedEngine moves p to keep D from overfitting.
"""

from __future__ import annotations

import tensorflow as tf

from cargan_tf.config import parse_policy  # 'color,translation' -> ('color', 'translation')

OPS = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def _uniform(key, shape, low=0.0, high=1.0, dtype=tf.float32):
    return tf.random.stateless_uniform(shape, seed=key, minval=low, maxval=high, dtype=dtype)


def color(x: tf.Tensor, key: tf.Tensor) -> tf.Tensor:
    k1, k2, k3 = tf.unstack(tf.random.experimental.stateless_split(key, 3))
    n = tf.shape(x)[0]
    x = x + (_uniform(k1, [n, 1, 1, 1], dtype=x.dtype) - 0.5)                     # brightness
    mean = tf.reduce_mean(x, axis=3, keepdims=True)
    x = (x - mean) * (_uniform(k2, [n, 1, 1, 1], dtype=x.dtype) * 2.0) + mean     # saturation
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    return (x - mean) * (_uniform(k3, [n, 1, 1, 1], dtype=x.dtype) + 0.5) + mean  # contrast


def translation(x: tf.Tensor, key: tf.Tensor, ratio: float = TRANSLATION_RATIO) -> tf.Tensor:
    kx, ky = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = tf.random.stateless_uniform([n, 1], seed=ky, minval=-sh, maxval=sh + 1, dtype=tf.int32)
    dx = tf.random.stateless_uniform([n, 1], seed=kx, minval=-sw, maxval=sw + 1, dtype=tf.int32)
    padded = tf.pad(x, [[0, 0], [sh, sh], [sw, sw], [0, 0]])
    # output row i reads padded row i + sh + dy (i + dy in the original: zero outside it)
    rows = tf.range(h)[None, :] + sh + dy                                        # (N, H)
    cols = tf.range(w)[None, :] + sw + dx                                        # (N, W)
    out = tf.gather(padded, rows, axis=1, batch_dims=1)                          # (N, H, W+2sw, C)
    return tf.gather(out, cols, axis=2, batch_dims=1)                            # (N, H, W, C)


def cutout(x: tf.Tensor, key: tf.Tensor, ratio: float = CUTOUT_RATIO) -> tf.Tensor:
    kx, ky = tf.unstack(tf.random.experimental.stateless_split(key, 2))
    n, h, w = tf.shape(x)[0], x.shape[1], x.shape[2]
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # the square's top-left corner; it may hang over the edge (as in the original)
    top = tf.random.stateless_uniform([n, 1, 1], seed=ky, minval=0, maxval=h + (1 - ch % 2),
                                      dtype=tf.int32) - ch // 2
    left = tf.random.stateless_uniform([n, 1, 1], seed=kx, minval=0, maxval=w + (1 - cw % 2),
                                       dtype=tf.int32) - cw // 2
    yy = tf.range(h)[None, :, None]
    xx = tf.range(w)[None, None, :]
    inside = (yy >= top) & (yy < top + ch) & (xx >= left) & (xx < left + cw)    # (N, H, W)
    return x * tf.cast(~inside, x.dtype)[..., None]


_FUNCTIONS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: tf.Tensor, policy: str | tuple[str, ...], key: tf.Tensor,
                 p: tf.Tensor | float | None = None) -> tf.Tensor:
    """T(x) for `policy` (a comma string or parse_policy's tuple); x when the policy is empty.

    key: int (2,) tensor; equal keys give equal augmentations. Differentiable in x.
    p: None applies every op to every image (DiffAugment); a scalar in [0, 1] applies each op
    to each image with that probability (ADA), drawn from the same key.
    """
    names = parse_policy(policy) if isinstance(policy, str) else tuple(policy)
    if not names:
        return x
    keys = tf.random.experimental.stateless_split(tf.cast(key, tf.int64), len(names))
    for i, name in enumerate(names):
        if p is None:
            x = _FUNCTIONS[name](x, keys[i])
            continue
        op_key, gate_key = tf.unstack(tf.random.experimental.stateless_split(keys[i], 2))
        gate = _uniform(gate_key, [tf.shape(x)[0], 1, 1, 1]) < tf.cast(p, tf.float32)
        x = tf.where(gate, _FUNCTIONS[name](x, op_key), x)
    return x


def ada_adjust(p: float, overfit: float, target: float, images: int, kimg: float) -> float:
    """ADA's update of the augmentation probability after a step of `images` real images.

    overfit: r_t = E[sign(D's real logit)], +1 when D is sure of every real image; p moves up by
    images / (kimg * 1000) when r_t is above `target`, down as much when below (p 0 -> 1 in
    `kimg` thousand images of steady overfitting), clipped to [0, 1].
    """
    step = images / (kimg * 1000.0)
    direction = (overfit > target) - (overfit < target)
    return min(1.0, max(0.0, p + direction * step))


__all__ = ["OPS", "parse_policy", "diff_augment", "ada_adjust", "color", "translation", "cutout"]
