# Over 450 lines: inpainting and restoration share one latent search and its operators.
"""Inpainting and restoration with a trained generator: search its latent space for the image
that best agrees with what is known, then blend that image into the known pixels.

Semantic inpainting follows Yeh et al. 2017 ("Semantic Image Inpainting with Deep Generative
Models"): minimise a contextual L1 loss on the known pixels, weighted towards the hole, plus a
small prior term lambda * log(1 - D(G(z))) from the discriminator. Restoration follows Bora et
al. 2017 ("Compressed Sensing using Generative Models"): minimise |A(G(z)) - y|^2 for a known
forward operator A (noise: identity, blur: a Gaussian convolution, super-resolution: area
downsampling, missing pixels: a pixel mask).

Conventions:
- images: uint8 (N, S, S, C) with values 0..255, S and C those of the generator.
- holes: bool (N, S, S) (or one (S, S) mask for every image), **True where a pixel is missing**
  (to be filled), False where it is known: cv2.inpaint's convention. cargan_tf.masks makes them.
- Inside, images are float32 in [-1, 1], the generator's tanh range.

The search runs several random restarts per image in one batch (Adam on z, z projected back
into a ball around the prior after every step) inside a tf.function, and keeps the restart
whose final contextual loss is lowest.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from cargan_tf.data.decode import IMAGE_EXTENSIONS, UnusableImage, decode_image, read_image_file
from cargan_tf.data.prepare import scan_folder
from cargan_tf.errors import CarganError
from cargan_tf.progress import progress_bar as tqdm
from cargan_tf.runs import RunPaths
from cargan_tf.viz import image_grid, to_uint8, upscale

# ---- defaults: one place for every knob of the search --------------------------------------

RESTARTS = 8            # random starting latents per image, optimised together in one batch
STEPS = 300             # Adam steps on z
LEARNING_RATE = 0.05    # Adam's step size on z (latents are N(0, 1), so 0.05 is a small move)
PRIOR_WEIGHT = 0.003    # lambda of Yeh et al.: weight of log(1 - D(G(z))) (0: no discriminator)
Z_RADIUS = 1.25         # z is projected into the ball of radius Z_RADIUS * sqrt(latent_dim):
#                         N(0, I) latents have norm ~ sqrt(latent_dim), so farther is off-prior
CONTEXT_FLOOR = 0.0     # weight of known pixels with no hole in their window (Yeh: 0)
BATCH_SIZE = 256        # candidates (images x restarts) per optimisation batch
CHUNK_STEPS = 25        # steps per tf.function call: the progress bar moves once per chunk
BLEND_METHODS = ("poisson", "feather", "none")
DEFAULT_BLEND = "poisson"  # measured better than "feather" in benchmarks/inpaint_quality.py
OPERATORS = ("denoise", "deblur", "sr2", "sr4", "missing")


# ---- checking inputs -----------------------------------------------------------------------

def generator_shape(generator) -> tuple[int, int, int]:
    """(S, S, C) of a generator's images (its output shape without the batch axis)."""
    shape = tuple(int(d) for d in generator.output_shape[1:])
    if len(shape) != 3:
        raise CarganError(f"expected a generator of images (N, S, S, C), its output is {shape}")
    return shape  # type: ignore[return-value]


def check_images(images: np.ndarray, shape: tuple[int, int, int], what: str = "images"
                 ) -> np.ndarray:
    """uint8 (N, H, W, C) matching `shape` (H, W, C); one (H, W, C) image gets a batch axis.

    Raises CarganError saying what is wrong: dtype, rank, size or channel count.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise CarganError(f"{what} must be uint8 with values 0..255, got {images.dtype} (float "
                          "images in [-1, 1] convert with cargan_tf.viz.to_uint8)")
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or len(images) == 0:
        raise CarganError(f"{what} must be (N, H, W, C) with N >= 1, got shape {images.shape}")
    h, w, c = shape
    if images.shape[1:3] != (h, w):
        raise CarganError(f"{what} are {images.shape[1]}x{images.shape[2]} but the generator "
                          f"works at {h}x{w}: resize them first (the CLI's --resize does)")
    if images.shape[3] != c:
        raise CarganError(f"{what} have {images.shape[3]} channel(s) but the generator makes "
                          f"{c} ({'RGB' if c == 3 else 'grayscale'}): convert them first")
    return images


def check_holes(holes: np.ndarray, n: int, size: int) -> np.ndarray:
    """bool (n, size, size) hole masks from bool/integer masks (n, S, S), (n, S, S, 1) or (S, S).

    Nonzero = hole. Raises CarganError for a wrong size, an empty mask (nothing to fill) or a
    mask covering the whole image (nothing known to match).
    """
    holes = np.asarray(holes)
    if holes.dtype != bool and not np.issubdtype(holes.dtype, np.integer):
        raise CarganError(f"masks must be bool or integer (nonzero = hole), got {holes.dtype}")
    if holes.ndim == 4 and holes.shape[-1] == 1:
        holes = holes[..., 0]
    if holes.ndim == 2:
        holes = np.broadcast_to(holes, (n, *holes.shape))
    if holes.ndim != 3 or holes.shape[1:] != (size, size):
        raise CarganError(f"masks must be {size}x{size} like the images (one (S, S) mask or "
                          f"(N, S, S)), got shape {holes.shape}")
    if len(holes) != n:
        raise CarganError(f"{len(holes)} masks for {n} images: give one mask, or one per image")
    holes = holes != 0
    counts = holes.reshape(n, -1).sum(axis=1)
    if (counts == 0).any():
        raise CarganError(f"mask {int(np.argmin(counts))} has no hole pixels: nothing to fill "
                          "(holes are the nonzero / True pixels)")
    if (counts == size * size).any():
        raise CarganError(f"mask {int(np.argmax(counts))} covers the whole image: nothing is "
                          "known to match (use `sample` to generate from scratch)")
    return holes


def context_weights(holes: np.ndarray, window: int | None = None,
                    floor: float = CONTEXT_FLOOR) -> np.ndarray:
    """Yeh et al.'s contextual weights: float32 (N, S, S), for each known pixel the fraction of
    hole pixels in the window x window square around it (plus `floor`); 0 on hole pixels.

    Known pixels next to the hole matter most for what goes into it; far ones matter little
    (Yeh: not at all, floor 0). window None: an odd size about S / 9, at least 3 (7 at 64x64).
    Pixels beyond the image edge count as known.
    """
    holes = np.asarray(holes, bool)
    size = holes.shape[-1]
    window = max(3, (size // 9) | 1) if window is None else int(window)
    weights = np.empty(holes.shape, np.float32)
    for i, hole in enumerate(holes):
        fraction = cv2.boxFilter(hole.astype(np.float32), -1, (window, window),
                                 normalize=True, borderType=cv2.BORDER_CONSTANT)
        weights[i] = np.where(hole, 0.0, floor + fraction)
    return weights


# ---- the latent search ---------------------------------------------------------------------

@dataclass
class LatentFit:
    """What a search found, one row per input image."""

    images: np.ndarray        # uint8 (N, S, S, C): the answer (blended / composited)
    generated: np.ndarray     # uint8 (N, S, S, C): G(z) of the best restart, before blending
    z: np.ndarray             # float32 (N, latent_dim): the best restart's latent
    context_loss: np.ndarray  # float32 (N,): its final contextual (data) loss
    history: np.ndarray       # float32 (steps, N): the contextual loss of that restart per step
    restart: np.ndarray       # int64 (N,): which restart won


def _initial_latents(n: int, restarts: int, latent_dim: int, seed: int) -> np.ndarray:
    """float32 (n * restarts, latent_dim); row i * restarts + r depends only on (seed, i, r)."""
    rows = [np.random.default_rng([int(seed), 303, i, r]).standard_normal(latent_dim,
                                                                          dtype=np.float32)
            for i in range(n) for r in range(restarts)]
    return np.stack(rows)


def _to_float(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 127.5 - 1.0


def search_latents(generator, target: np.ndarray, weights: np.ndarray, forward=None, *,
                   discriminator=None, prior_weight: float = PRIOR_WEIGHT, norm: str = "l1",
                   restarts: int = RESTARTS, steps: int = STEPS,
                   learning_rate: float = LEARNING_RATE, z_radius: float = Z_RADIUS,
                   batch_size: int = BATCH_SIZE, seed: int = 0, progress: bool = False,
                   description: str = "latent search", features=None,
                   feature_weight: float = 0.0) -> LatentFit:
    """The engine under inpaint(), restore() and controls.project(): for each image, the z
    minimising

        sum(w * |A(G(z)) - y|^p) / sum(w) * C  +  prior_weight * log(1 - D(G(z)))
            +  feature_weight * |F(G(z)) - F(y)|^2 / |F(y)|^2

    target y: float32 (N, h, w, C) in [-1, 1]; weights w: float32 (N, h, w) >= 0; forward A: a
    TensorFlow function from (B, S, S, C) to (B, h, w, C) (None: identity); norm: "l1" (p=1)
    or "l2" (p=2). features F (optional, A must be the identity): a differentiable function
    from images float32 (B, S, S, C) in [-1, 1] to features (B, F), a perceptual loss (a
    frozen network: the photo judge, controls.py); its mean squared difference is taken
    relative to the target's mean squared feature. Each image gets `restarts` random starts;
    the one with the lowest final contextual loss wins.

    Returns a LatentFit whose `images` are the winners' G(z) (the callers blend them).
    """
    import keras  # here: --help reads this module's defaults without TensorFlow
    import tensorflow as tf

    if norm not in ("l1", "l2"):
        raise CarganError(f"norm must be 'l1' or 'l2', got {norm!r}")
    if restarts < 1 or steps < 0 or learning_rate <= 0 or z_radius <= 0:
        raise CarganError(f"need restarts >= 1, steps >= 0, learning_rate > 0 and z_radius > 0; "
                          f"got {restarts}, {steps}, {learning_rate}, {z_radius}")
    n = len(target)
    latent_dim = int(generator.input_shape[-1])
    radius = float(z_radius * math.sqrt(latent_dim))
    use_prior = discriminator is not None and prior_weight > 0
    use_features = features is not None and feature_weight > 0
    if use_features and forward is not None:
        raise CarganError("a feature loss compares whole images: it needs forward=None")
    forward = forward or (lambda x: x)
    per_batch = max(1, batch_size // restarts)  # images per optimisation batch
    z_all = _initial_latents(n, restarts, latent_dim, seed)
    z_all *= np.minimum(1.0, radius / np.linalg.norm(z_all, axis=1, keepdims=True))

    best_z = np.empty((n, latent_dim), np.float32)
    best_x = np.empty((n, *generator_shape(generator)), np.float32)
    best_loss = np.empty(n, np.float32)
    best_restart = np.empty(n, np.int64)
    history = np.empty((steps, n), np.float32)
    bar = tqdm(total=steps * math.ceil(n / per_batch), desc=description, disable=not progress,
               unit="step", leave=False)
    for start in range(0, n, per_batch):
        stop = min(n, start + per_batch)
        count = (stop - start) * restarts
        y = tf.constant(np.repeat(target[start:stop], restarts, axis=0), tf.float32)
        w = tf.constant(np.repeat(weights[start:stop], restarts, axis=0)[..., None], tf.float32)
        w_sum = tf.reduce_sum(w, axis=[1, 2, 3]) * float(target.shape[-1])
        fy = tf.cast(features(y), tf.float32) if use_features else None
        fy_scale = tf.reduce_mean(tf.square(fy), axis=-1) + 1e-6 if use_features else None
        z = tf.Variable(z_all[start * restarts:stop * restarts], name="z")
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate)
        optimizer.build([z])

        def losses(z=z, y=y, w=w, w_sum=w_sum, fy=fy, fy_scale=fy_scale):
            """Contextual loss (count,) and total loss (count,) of the current latents."""
            x = tf.cast(generator(z, training=False), tf.float32)
            diff = forward(x) - y
            err = tf.abs(diff) if norm == "l1" else tf.square(diff)
            context = tf.reduce_sum(w * err, axis=[1, 2, 3]) / w_sum
            total = context
            if use_prior:
                d = tf.cast(tf.reshape(discriminator(x, training=False), [-1]), tf.float32)
                total += prior_weight * tf.math.log(1.0 - tf.clip_by_value(d, 0.0, 1.0 - 1e-6))
            if use_features:
                fx = tf.cast(features(x), tf.float32)
                total += feature_weight * tf.reduce_mean(tf.square(fx - fy), axis=-1) / fy_scale
            return x, context, total

        @tf.function
        def run_steps(n_steps, z=z, optimizer=optimizer, losses=losses, count=count):
            record = tf.TensorArray(tf.float32, size=n_steps)
            for i in tf.range(n_steps):
                with tf.GradientTape() as tape:
                    _, context, total = losses()
                    # a sum, so each latent's gradient is that of its own loss alone
                    objective = tf.reduce_sum(total)
                gradient = tape.gradient(objective, z)
                optimizer.apply_gradients([(gradient, z)])
                # projection onto the ball around the prior keeps z a plausible latent
                z.assign(z * tf.minimum(1.0, radius / (tf.norm(z, axis=1, keepdims=True) + 1e-12)))
                record = record.write(i, context)
            return tf.reshape(record.stack(), [n_steps, count])

        done, chunks = 0, []
        while done < steps:
            todo = min(CHUNK_STEPS, steps - done)
            chunks.append(run_steps(tf.constant(todo)).numpy())
            done += todo
            bar.update(todo)
        x, context, _ = losses()  # where the last step left the latents
        context = context.numpy().reshape(stop - start, restarts)
        x = x.numpy().reshape(stop - start, restarts, *best_x.shape[1:])
        winner = np.argmin(context, axis=1)
        rows = np.arange(stop - start)
        best_restart[start:stop] = winner
        best_loss[start:stop] = context[rows, winner]
        best_x[start:stop] = x[rows, winner]
        best_z[start:stop] = z.numpy().reshape(stop - start, restarts, latent_dim)[rows, winner]
        if steps:
            trace = np.concatenate(chunks).reshape(steps, stop - start, restarts)
            history[:, start:stop] = trace[:, rows, winner]
    bar.close()
    generated = to_uint8(best_x)
    return LatentFit(generated, generated, best_z, best_loss, history, best_restart)


# ---- blending ------------------------------------------------------------------------------

# seamlessClone's own erosion of the mask (3 pixels) + the ring of known boundary pixels
POISSON_GROW = 4


def _feather_alpha(hole: np.ndarray, feather: int) -> np.ndarray:
    """float32 (S, S): 1 on the hole, falling linearly to 0 over `feather` known pixels."""
    if feather <= 0:
        return hole.astype(np.float32)
    distance = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)
    return np.clip(1.0 - distance / (feather + 1.0), 0.0, 1.0).astype(np.float32)


def _poisson(image: np.ndarray, fill: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """cv2.seamlessClone of `fill` into `image` over the hole; known pixels kept exactly.

    seamlessClone erodes its mask by 3 pixels and, in the eroded-away band, follows the
    *destination's* gradients: given the image with its true pixels still in the hole, the
    truth would leak into the result. So the hole is first filled with `fill` (the result then
    depends only on the known pixels and the fill) and the mask grown by 1 + 3 pixels, so the
    eroded mask is the hole plus one ring, whose known pixels are the Poisson boundary. The
    images are padded (reflected) first, as the mask must stay clear of the image border.
    """
    pad = POISSON_GROW + 2
    gray = image.shape[2] == 1
    dst = np.where(hole[..., None], fill, image)
    src, dst = (np.repeat(a, 3, axis=2) if gray else a for a in (fill, dst))
    src = cv2.copyMakeBorder(src, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    dst = cv2.copyMakeBorder(dst, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    mask = cv2.copyMakeBorder(hole.astype(np.uint8) * 255, pad, pad, pad, pad,
                              cv2.BORDER_CONSTANT, value=0)
    mask = cv2.dilate(mask, np.ones((3, 3), np.uint8), iterations=POISSON_GROW)
    x, y, w, h = cv2.boundingRect(mask)
    cloned = cv2.seamlessClone(src, dst, mask, (x + w // 2, y + h // 2), cv2.NORMAL_CLONE)
    cloned = cloned[pad:-pad, pad:-pad]
    if gray:
        cloned = cloned.mean(axis=2, keepdims=True).round().astype(np.uint8)
    return np.where(hole[..., None], cloned, image)


def blend(images: np.ndarray, fills: np.ndarray, holes: np.ndarray, method: str = DEFAULT_BLEND,
          feather: int | None = None) -> np.ndarray:
    """Put the generated `fills` into the holes of `images`. All uint8 (N, S, S, C); holes bool
    (N, S, S). Returns uint8 (N, S, S, C).

    method: "poisson" (cv2.seamlessClone: the fill's gradients, the known pixels' colours at the
    hole's edge; known pixels unchanged), "feather" (alpha 1 on the hole fading to 0 over
    `feather` known pixels around it, None: about S / 16; known pixels farther than that
    unchanged), "none" (hole from the fill, the rest from the image).
    """
    if method not in BLEND_METHODS:
        raise CarganError(f"blend must be one of {', '.join(BLEND_METHODS)}, got {method!r}")
    images, fills = np.asarray(images), np.asarray(fills)
    holes = np.broadcast_to(np.asarray(holes, bool), images.shape[:3])
    out = np.empty_like(images)
    feather = max(1, images.shape[1] // 16) if feather is None else int(feather)
    for i, (image, fill, hole) in enumerate(zip(images, fills, holes)):
        if method == "poisson":
            out[i] = _poisson(image, fill, hole)
        elif method == "feather":
            alpha = _feather_alpha(hole, feather)[..., None]
            mixed = alpha * fill.astype(np.float32) + (1.0 - alpha) * image.astype(np.float32)
            out[i] = np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        else:
            out[i] = np.where(hole[..., None], fill, image)
    return out


# ---- inpainting ----------------------------------------------------------------------------

def inpaint(generator, images: np.ndarray, holes: np.ndarray, *, discriminator=None,
            prior_weight: float = PRIOR_WEIGHT, restarts: int = RESTARTS, steps: int = STEPS,
            learning_rate: float = LEARNING_RATE, z_radius: float = Z_RADIUS,
            window: int | None = None, context_floor: float = CONTEXT_FLOOR,
            blend_method: str = DEFAULT_BLEND, feather: int | None = None,
            batch_size: int = BATCH_SIZE, seed: int = 0, progress: bool = False) -> LatentFit:
    """Fill the holes of `images` with the generator (semantic inpainting, Yeh et al. 2017).

    images: uint8 (N, S, S, C) (or one (S, S, C)), the generator's size and channels;
    holes: (N, S, S) or one (S, S), bool or integer, True / nonzero = missing pixel.
    discriminator: the run's D (optional): adds prior_weight * log(1 - D(G(z))), which favours
    fills D finds realistic. Contextual loss: L1 on known pixels weighted by context_weights
    (window, context_floor). blend_method: see blend(). Returns a LatentFit whose `images` are
    the inpainted images (known pixels preserved; see blend()).
    """
    shape = generator_shape(generator)
    images = check_images(images, shape)
    holes = check_holes(holes, len(images), shape[0])
    weights = context_weights(holes, window, context_floor)
    fit = search_latents(
        generator, _to_float(images), weights, discriminator=discriminator,
        prior_weight=prior_weight, norm="l1", restarts=restarts, steps=steps,
        learning_rate=learning_rate, z_radius=z_radius, batch_size=batch_size, seed=seed,
        progress=progress, description="inpainting")
    return replace(fit, images=blend(images, fit.generated, holes, blend_method, feather))


def opencv_inpaint(images: np.ndarray, holes: np.ndarray, method: str = "telea",
                   radius: int = 3) -> np.ndarray:
    """The classical baseline: cv2.inpaint with Telea's method or Navier-Stokes ("ns").

    images uint8 (N, S, S, C), holes bool (N, S, S) -> uint8 (N, S, S, C).
    """
    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
    if method not in flags:
        raise CarganError(f"OpenCV inpainting method must be 'telea' or 'ns', got {method!r}")
    images = np.asarray(images)
    holes = np.broadcast_to(np.asarray(holes, bool), images.shape[:3])
    out = np.empty_like(images)
    for i, (image, hole) in enumerate(zip(images, holes)):
        filled = cv2.inpaint(image, hole.astype(np.uint8), radius, flags[method])
        out[i] = filled.reshape(image.shape)
    return out


def mean_fill(images: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """The simplest fill: each hole painted with its image's mean known colour. uint8."""
    images = np.asarray(images)
    holes = np.broadcast_to(np.asarray(holes, bool), images.shape[:3])
    out = images.copy()
    for i, (image, hole) in enumerate(zip(images, holes)):
        out[i][hole] = np.rint(image[~hole].mean(axis=0)).astype(np.uint8)
    return out


def masked_view(images: np.ndarray, holes: np.ndarray, value: int = 255) -> np.ndarray:
    """What the search sees: images with the holes painted `value` (white), for pictures."""
    out = np.array(images, copy=True)
    out[np.broadcast_to(np.asarray(holes, bool), out.shape[:3])] = value
    return out


# ---- restoration ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Degradation:
    """A forward operator A and how to apply it: y = A(x) (+ noise for denoise).

    name: denoise (A = identity, y = x + Gaussian noise of std noise_std * 255),
    deblur (A = convolution with a Gaussian kernel of std blur_sigma pixels, reflected edges),
    sr2 / sr4 (A = area downsampling by 2 / 4), missing (A = keep a random missing_fraction
    of pixels out).
    """

    name: str
    noise_std: float = 0.1
    blur_sigma: float = 1.0
    missing_fraction: float = 0.5

    def __post_init__(self):
        if self.name not in OPERATORS:
            raise CarganError(f"unknown operator {self.name!r}: use one of {', '.join(OPERATORS)}")
        if not (self.noise_std >= 0 and self.blur_sigma > 0 and 0 < self.missing_fraction < 1):
            raise CarganError("need noise_std >= 0, blur_sigma > 0 and 0 < missing_fraction < 1")

    @property
    def factor(self) -> int:
        """How much smaller the observation is than the image (sr2: 2, sr4: 4, else 1)."""
        return {"sr2": 2, "sr4": 4}.get(self.name, 1)

    def kernel(self) -> np.ndarray:
        """deblur's Gaussian kernel, float32 (k, k) summing to 1, k = 2 * ceil(3 sigma) + 1."""
        half = int(math.ceil(3 * self.blur_sigma))
        g = cv2.getGaussianKernel(2 * half + 1, self.blur_sigma, cv2.CV_64F)
        return (g @ g.T).astype(np.float32)

    def degrade(self, images: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(observations uint8 (N, S/f, S/f, C), known bool (N, S/f, S/f)) for uint8 images.

        known is all True except for `missing`, whose dropped pixels read 0 in the observation.
        """
        images = np.asarray(images)
        n, size, _, channels = images.shape
        if size % self.factor:
            raise CarganError(f"{self.name}: image size {size} is not divisible by {self.factor}")
        rng = np.random.default_rng([int(seed), 404])
        known = np.ones((n, size // self.factor, size // self.factor), bool)
        x = images.astype(np.float32)
        if self.name == "denoise":
            y = x + rng.standard_normal(x.shape).astype(np.float32) * (self.noise_std * 255.0)
        elif self.name == "deblur":
            k = self.kernel()
            y = np.stack([cv2.filter2D(im, -1, k, borderType=cv2.BORDER_REFLECT_101)
                          .reshape(im.shape) for im in x])
        elif self.factor > 1:
            small = size // self.factor
            y = np.stack([cv2.resize(im, (small, small), interpolation=cv2.INTER_AREA)
                          .reshape(small, small, channels) for im in x])
        else:  # missing
            known = rng.random(known.shape) >= self.missing_fraction
            y = x * known[..., None]
        return np.clip(np.rint(y), 0, 255).astype(np.uint8), known

    def forward(self, x):
        """A in TensorFlow (differentiable): float (B, S, S, C) -> (B, S/f, S/f, C).

        Noise is not part of A; `missing` is applied through the loss weights instead.
        """
        import tensorflow as tf  # here: --help reads this module's defaults without TensorFlow

        if self.name == "deblur":
            k = self.kernel()
            half = k.shape[0] // 2
            channels = int(x.shape[-1])
            kernel = tf.constant(np.repeat(k[:, :, None, None], channels, axis=2))
            # REFLECT here is OpenCV's BORDER_REFLECT_101 (the edge pixel is not repeated)
            padded = tf.pad(x, [[0, 0], [half, half], [half, half], [0, 0]], mode="REFLECT")
            return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")
        if self.factor > 1:
            return tf.nn.avg_pool2d(x, self.factor, self.factor, "VALID")
        return x


def restore(generator, observed: np.ndarray, degradation: Degradation | str,
            known: np.ndarray | None = None, *, restarts: int = RESTARTS, steps: int = STEPS,
            learning_rate: float = LEARNING_RATE, z_radius: float = Z_RADIUS,
            batch_size: int = BATCH_SIZE, seed: int = 0, progress: bool = False) -> LatentFit:
    """Recover images from degraded observations y = A(x) (+ noise) through the generator.

    observed: uint8 (N, S/f, S/f, C) (f: 4 for sr4, 2 for sr2, else 1), e.g. from
    degradation.degrade(); known: bool (N, S/f, S/f) for `missing` (None: pixels that read 0 in
    every channel are taken as missing). Minimises the mean squared error |A(G(z)) - y|^2
    (Bora et al. 2017). Returns a LatentFit whose images are G(z), uint8 (N, S, S, C), with the
    observed pixels put back exactly for `missing`.
    """
    if isinstance(degradation, str):
        degradation = Degradation(degradation)
    s, _, c = generator_shape(generator)
    f = degradation.factor
    if s % f:
        raise CarganError(f"{degradation.name} needs an image size divisible by {f}, not {s}")
    observed = check_images(observed, (s // f, s // f, c), what="observations")
    if degradation.name == "missing":
        known = (observed.max(axis=3) > 0) if known is None else np.asarray(known, bool)
        if known.shape != observed.shape[:3]:
            raise CarganError(f"known mask shape {known.shape} does not match the observations' "
                              f"{observed.shape[:3]}")
        if not known.reshape(len(known), -1).any(axis=1).all():
            raise CarganError("an observation has no known pixels: nothing to restore from")
        weights = known.astype(np.float32)
    else:
        weights = np.ones(observed.shape[:3], np.float32)
    fit = search_latents(
        generator, _to_float(observed), weights, degradation.forward, norm="l2",
        restarts=restarts, steps=steps, learning_rate=learning_rate, z_radius=z_radius,
        batch_size=batch_size, seed=seed, progress=progress,
        description=f"restoring ({degradation.name})")
    if degradation.name != "missing":
        return fit
    images = fit.generated.copy()
    images[known] = observed[known]  # the observed pixels are the truth: keep them
    return replace(fit, images=images)


def opencv_restore(observed: np.ndarray, degradation: Degradation | str,
                   known: np.ndarray | None = None) -> np.ndarray:
    """The classical baseline for each operator, uint8 (N, S, S, C):
    denoise: non-local means (cv2.fastNlMeansDenoising[Colored], h from the noise level);
    deblur: 20 Richardson-Lucy iterations with the known kernel (cv2.filter2D);
    sr2 / sr4: bicubic upsampling (cv2.resize INTER_CUBIC); missing: cv2.inpaint (Telea).
    """
    if isinstance(degradation, str):
        degradation = Degradation(degradation)
    observed = np.asarray(observed)
    n, small, _, channels = observed.shape
    out = []
    for i, y in enumerate(observed):
        if degradation.name == "denoise":
            h = max(3.0, degradation.noise_std * 255.0)
            if channels == 3:
                fixed = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(y), None, h, h, 3, 7)
            else:
                fixed = cv2.fastNlMeansDenoising(np.ascontiguousarray(y[..., 0]), None, h, 3, 7)
        elif degradation.name == "deblur":
            fixed = _richardson_lucy(y, degradation.kernel())
        elif degradation.factor > 1:
            size = small * degradation.factor
            fixed = cv2.resize(y, (size, size), interpolation=cv2.INTER_CUBIC)
        else:
            hole = ~(known[i] if known is not None else y.max(axis=2) > 0)
            fixed = cv2.inpaint(y, hole.astype(np.uint8), 3, cv2.INPAINT_TELEA)
        out.append(np.asarray(fixed).reshape(fixed.shape[0], fixed.shape[1], channels))
    return np.stack(out)


def _richardson_lucy(image: np.ndarray, kernel: np.ndarray, iterations: int = 20) -> np.ndarray:
    """Richardson-Lucy deconvolution of a uint8 (H, W, C) image by a known kernel."""
    observed = image.astype(np.float32) + 1.0  # positive, so the ratios stay finite
    estimate = observed.copy()
    flipped = kernel[::-1, ::-1]
    for _ in range(iterations):
        blurred = cv2.filter2D(estimate, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
        ratio = observed / np.maximum(blurred.reshape(observed.shape), 1e-3)
        estimate *= cv2.filter2D(ratio, -1, flipped,
                                 borderType=cv2.BORDER_REFLECT_101).reshape(observed.shape)
    return np.clip(np.rint(estimate - 1.0), 0, 255).astype(np.uint8)


# ---- measuring -----------------------------------------------------------------------------

def _region(region: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if region is None:
        return np.ones(shape[:3], bool)
    return np.broadcast_to(np.asarray(region, bool), shape[:3])


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per image, over the pixels of `region` (all channels).

    a, b: uint8 (N, H, W, C); region: bool (N, H, W) or (H, W), None: whole images.
    10 log10(255^2 / MSE); inf for identical regions. float64 (N,).
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    region = _region(region, a.shape)
    out = np.empty(len(a))
    for i in range(len(a)):
        mse = np.mean((a[i][region[i]] - b[i][region[i]]) ** 2)
        out[i] = np.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)
    return out


def ssim_map(a: np.ndarray, b: np.ndarray, sigma: float = 1.5, window: int = 11) -> np.ndarray:
    """SSIM (Wang et al. 2004) at every pixel of two uint8 images (H, W, C): float64 (H, W, C).

    The standard Gaussian-window form: local means, variances and covariance under a Gaussian
    window (std 1.5, 11 x 11), C1 = (0.01 * 255)^2, C2 = (0.03 * 255)^2, and
    SSIM = (2 mu_a mu_b + C1)(2 cov + C2) / ((mu_a^2 + mu_b^2 + C1)(var_a + var_b + C2)).
    Edges are reflected (the map has the image's size, so a region near the edge is scored).
    """
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)

    def smooth(x):
        return cv2.GaussianBlur(x, (window, window), sigma,
                                borderType=cv2.BORDER_REFLECT_101).reshape(x.shape)

    mu_a, mu_b = smooth(a), smooth(b)
    var_a = smooth(a * a) - mu_a ** 2
    var_b = smooth(b * b) - mu_b ** 2
    cov = smooth(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1)
                                                        * (var_a + var_b + c2))


def ssim(a: np.ndarray, b: np.ndarray, region: np.ndarray | None = None) -> np.ndarray:
    """Mean SSIM per image over the pixels of `region` (and all channels); float64 (N,).

    a, b: uint8 (N, H, W, C); region: bool (N, H, W) or (H, W), None: whole images.
    """
    a, b = np.asarray(a), np.asarray(b)
    region = _region(region, a.shape)
    return np.array([ssim_map(a[i], b[i])[region[i]].mean() for i in range(len(a))])


# ---- loading -------------------------------------------------------------------------------

def load_discriminator(run_or_file: str | os.PathLike | None):
    """The discriminator of a run folder (None if it has none) or from a .keras file."""
    if run_or_file is None:
        return None
    import keras  # here: --help reads this module's defaults without TensorFlow

    import cargan_tf.layers  # noqa: F401  registers the custom layers for deserialisation

    path = Path(run_or_file)
    if path.is_dir():
        path = RunPaths(path).discriminator
        if not path.exists():
            return None
    elif not path.exists():
        raise CarganError(f"{path} does not exist: pass a run folder or a discriminator .keras file")
    try:
        return keras.saving.load_model(path, compile=False)
    except (ValueError, OSError) as err:
        raise CarganError(f"could not load {path} as a Keras model: {err}") from err


def read_image(path: str | os.PathLike, size: int, channels: int, resize: bool = False,
               wanted: str | None = None) -> np.ndarray:
    """An image file as uint8 (size, size, channels) RGB or gray.

    resize: centre-crop to a square and resize (area) to size; otherwise a different size is a
    CarganError, which says what needs the size (`wanted`, default: the generator).
    """

    path = Path(path)
    if not path.exists():
        raise CarganError(f"{path} does not exist")
    if path.is_dir():
        raise CarganError(f"{path} does not exist (it is a folder)")
    try:  # the guard: a regular file, under the byte limit, under the pixel limit
        data = read_image_file(path)
        image, _, _ = decode_image(data)
    except UnusableImage as reason:
        raise CarganError(f"could not read {path} as an image: {reason}") from None
    if image.ndim == 2 and channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if image.shape[:2] != (size, size):
        if not resize:
            raise CarganError(f"{path} is {image.shape[1]}x{image.shape[0]} but "
                              f"{wanted or 'the generator works at'} {size}x{size}: pass "
                              "--resize, or resize it first")
        h, w = image.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        image = cv2.resize(image[top:top + side, left:left + side], (size, size),
                           interpolation=cv2.INTER_AREA)
    return image.reshape(size, size, channels)


def read_folder(folder: str | os.PathLike, size: int, channels: int, n: int) -> np.ndarray:
    """Up to n images from `folder` (searched recursively, sorted; the file types `prepare`
    reads), centre-cropped and resized to uint8 (N, size, size, channels). Unreadable files are
    skipped; a folder without a readable image is a CarganError."""

    folder = Path(folder)
    if not folder.is_dir():
        raise CarganError(f"image folder {folder} does not exist or is not a folder")
    images = []
    for file in scan_folder(folder)[0]:
        if len(images) == n:
            break
        try:
            images.append(read_image(file.path, size, channels, resize=True))
        except CarganError:
            continue  # a corrupt file: take the next one
    if not images:
        raise CarganError(f"no readable image in {folder} (searched recursively for "
                          f"{', '.join(sorted(IMAGE_EXTENSIONS))})")
    return np.stack(images)


def comparison_strip(columns: list[np.ndarray], labels: list[str], min_width: int = 512
                     ) -> np.ndarray:
    """One uint8 picture: a row per image, a captioned column per method (original, masked,
    ours, baseline ...). columns: each uint8 (N, S, S, C), all the same shape."""

    rows = np.stack(columns, axis=1).reshape(-1, *columns[0].shape[1:])
    grid = upscale(image_grid(rows, cols=len(columns)), min_width)
    if grid.shape[2] == 1:
        grid = np.repeat(grid, 3, axis=2)
    header = np.full((22, grid.shape[1], 3), 255, np.uint8)
    step = grid.shape[1] / len(columns)
    for k, label in enumerate(labels):
        cv2.putText(header, label, (int(k * step) + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([header, grid], axis=0)
