"""Train the photo judge: the feature extractor behind `evaluate --features photo`.

    python scripts/train_photo_judge.py                      # ~40 min on 2 idle CPU cores
    python scripts/train_photo_judge.py --epochs 1 --limit 2000 --out /tmp/judge   # a try-out

Why a judge of our own: Keras' InceptionV3 weights are a download (Colab has them, tests and
offline users do not), and the 16x16 pixel features cannot tell a smeared car from a real one.
This one ships in the package (cargan_tf/assets/extractors/photo-64-v1.keras, ~2 MB).

Data (provenance; also in cargan_tf/assets/extractors/PROVENANCE.md): ../shared/data/vehicles_64,
17,767 64x64 RGB crops, vehicles/ (GTI_Far, GTI_Left, GTI_MiddleClose, GTI_Right: rear views by
position; KITTI_extracted) and non-vehicles/ (GTI, Extras: road, verges, signs, trees), from
udacity/CarND-Vehicle-Detection @ 8bdecbc89a7004d6628e829793f3ecd764fd7320, data/ (the GTI
vehicle image database and the KITTI vision benchmark; research use). It never sees Stanford
Cars, which is what it scores in BENCHMARKS.md (`benchmarks/judge_validation.py`).

Objective, on one small CNN trunk (64x64 input, a strided stem and three stages of 3x3
convolutions, BatchNorm, ReLU):
- SimCLR's contrastive loss (NT-Xent, Chen et al. 2020) between two augmented views of each
  crop (random resized crop, flip, moderate brightness/contrast/saturation jitter, grayscale):
  features that describe what is in the picture, not where;
- rotation prediction (RotNet, Gidaris et al. 2018) on a third view turned by 0/90/180/270
  degrees: to tell which way is up the trunk has to see wheels, roofs and road, i.e. shape;
- the crop's source folder (7 classes: four GTI vehicle positions, KITTI vehicles, two kinds of
  non-vehicle), a weak label that separates vehicles from road scenes.
Blur and noise are deliberately not augmentations, so the features are not taught to ignore
them. The judge's features are the global average of each of its three stages,
concatenated (48 + 96 + 192 = 336 numbers): the early stage keeps colour and texture
statistics the deep one is taught to discount (multi-level features, as in FID variants).

Deterministic given --seed up to TensorFlow's CPU kernels (not bit-exact across machines); the
.json beside the model records its sha256, held-out rotation and source accuracies, settings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cargan_tf import photo_judge  # noqa: E402  the architecture the package loads

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "vehicles_64"
DEFAULT_OUT = REPO / "cargan_tf" / "assets" / "extractors"
NAME = "photo-64-v1"
SIZE = photo_judge.SIZE
SOURCES = ("vehicles/GTI_Far", "vehicles/GTI_Left", "vehicles/GTI_MiddleClose",
           "vehicles/GTI_Right", "vehicles/KITTI_extracted", "non-vehicles/GTI",
           "non-vehicles/Extras")
TEMPERATURE = 0.2                  # NT-Xent temperature (SimCLR's small-batch choice)
PROVENANCE = ("udacity/CarND-Vehicle-Detection @ 8bdecbc89a7004d6628e829793f3ecd764fd7320, "
              "data/ (GTI vehicle image database, KITTI vision benchmark; research use), as "
              "../shared/data/vehicles_64")


def load_crops(root: Path, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, 64, 64, 3) RGB crops and int32 (N,) source ids, in a seeded shuffled order."""
    images, labels = [], []
    for label, source in enumerate(SOURCES):
        folder = root / source
        files = sorted(folder.glob("*.png"))
        if not files:
            sys.exit(f"no PNG files in {folder}: is {root} the vehicles_64 folder?")
        for path in files:
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != (SIZE, SIZE):
                continue
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            labels.append(label)
    order = np.random.default_rng(seed).permutation(len(images))
    if limit:
        order = order[:limit]
    return np.stack(images)[order], np.asarray(labels, np.int32)[order]


def augment(tf, x, rng):
    """SimCLR-style view of a float batch in [0, 1]: crop, flip, jitter, sometimes gray."""
    n = tf.shape(x)[0]
    scale = rng.uniform([n], 0.3, 1.0)
    ratio = tf.exp(rng.uniform([n], math.log(3 / 4), math.log(4 / 3)))
    h = tf.minimum(tf.sqrt(scale / ratio), 1.0)
    w = tf.minimum(tf.sqrt(scale * ratio), 1.0)
    y0 = rng.uniform([n]) * (1.0 - h)
    x0 = rng.uniform([n]) * (1.0 - w)
    boxes = tf.stack([y0, x0, y0 + h, x0 + w], axis=1)
    x = tf.image.crop_and_resize(x, boxes, tf.range(n), (SIZE, SIZE))
    flip = rng.uniform([n, 1, 1, 1]) < 0.5
    x = tf.where(flip, x[:, :, ::-1, :], x)
    jitter = rng.uniform([n, 1, 1, 1]) < 0.8
    gray = tf.reduce_mean(x, axis=-1, keepdims=True)
    mean = tf.reduce_mean(x, axis=(1, 2, 3), keepdims=True)
    y = x + rng.uniform([n, 1, 1, 1], -0.25, 0.25)                       # brightness
    y = (y - mean) * rng.uniform([n, 1, 1, 1], 0.65, 1.35) + mean        # contrast
    y = gray + (y - gray) * rng.uniform([n, 1, 1, 1], 0.6, 1.4)          # saturation
    x = tf.where(jitter, y, x)
    to_gray = rng.uniform([n, 1, 1, 1]) < 0.2
    x = tf.where(to_gray, tf.repeat(tf.reduce_mean(x, -1, keepdims=True), 3, -1), x)
    return tf.clip_by_value(x, 0.0, 1.0)


def rotated_quarters(tf, x, rng):
    """Each quarter of the batch turned by 0, 90, 180, 270 degrees (after a random flip);
    returns the images and their rotation labels."""
    n = tf.shape(x)[0]
    flip = rng.uniform([n, 1, 1, 1]) < 0.5
    x = tf.where(flip, x[:, :, ::-1, :], x)
    q = n // 4
    parts = [tf.image.rot90(x[k * q:(k + 1) * q], k) for k in range(4)]
    labels = tf.repeat(tf.range(4), q)
    return tf.concat(parts, 0), labels


def nt_xent(tf, z1, z2, temperature):
    """SimCLR's loss: each view must pick its partner among the 2N-1 others."""
    z = tf.math.l2_normalize(tf.concat([z1, z2], 0), axis=1)
    n = tf.shape(z1)[0]
    logits = tf.matmul(z, z, transpose_b=True) / temperature
    logits -= 1e9 * tf.eye(2 * n)
    targets = tf.concat([tf.range(n, 2 * n), tf.range(n)], 0)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--limit", type=int, default=0, help="use only this many crops (try-outs)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--finish", type=Path, metavar="KERAS",
                        help="only add the standardisation to an extractor saved without it "
                             "(the packaged v1 was trained before that step was in this script)")
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    images, labels = load_crops(args.data, args.limit or None, args.seed)
    if args.finish:
        finish_saved(keras, args.finish, images, args)
        return
    n_held = max(args.batch_size, len(images) // 20)
    train_x, train_y = images[n_held:], labels[n_held:]
    held_x, held_y = images[:n_held], labels[:n_held]
    print(f"{len(train_x)} training crops, {len(held_x)} held out, {len(SOURCES)} sources")

    trunk = photo_judge.build_trunk()
    layers = keras.layers
    projector = keras.Sequential([layers.Dense(256, activation="relu"), layers.Dense(128)],
                                 name="projector")
    rotation_head = layers.Dense(4, name="rotation")
    source_head = layers.Dense(len(SOURCES), name="source")
    deep_dim = photo_judge.WIDTHS[-1]
    for head, dim in ((projector, deep_dim), (rotation_head, deep_dim), (source_head, deep_dim)):
        head.build((None, dim))
    steps_per_epoch = len(train_x) // args.batch_size
    total = steps_per_epoch * args.epochs
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, total, warmup_target=None)
    optimizer = keras.optimizers.AdamW(schedule, weight_decay=1e-4)
    variables = (trunk.trainable_variables + projector.trainable_variables
                 + rotation_head.trainable_variables + source_head.trainable_variables)
    optimizer.build(variables)
    rng = tf.random.Generator.from_seed(args.seed)

    @tf.function
    def step(batch, source):
        x = tf.cast(batch, tf.float32) / 255.0
        v1, v2 = augment(tf, x, rng), augment(tf, x, rng)
        v3, rot = rotated_quarters(tf, x[: tf.shape(x)[0] // 2], rng)
        with tf.GradientTape() as tape:
            _, deep = trunk(tf.concat([v1, v2, v3], 0) * 2.0 - 1.0, training=True)
            n = tf.shape(x)[0]
            d1, d2, d3 = deep[:n], deep[n:2 * n], deep[2 * n:]
            contrast = nt_xent(tf, projector(d1), projector(d2), TEMPERATURE)
            rot_loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(rot, rotation_head(d3)))
            src_loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(source, source_head(d1)))
            loss = contrast + rot_loss + 0.5 * src_loss
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return contrast, rot_loss, src_loss

    start = time.perf_counter()
    order_rng = np.random.default_rng(args.seed)
    for epoch in range(args.epochs):
        order = order_rng.permutation(len(train_x))
        sums = np.zeros(3)
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size:(i + 1) * args.batch_size]
            sums += [float(v) for v in step(train_x[idx], train_y[idx])]
            if (i + 1) % 20 == 0:
                print(f"  step {i + 1}/{steps_per_epoch} ({time.perf_counter() - start:.0f} s)",
                      flush=True)
        c, r, s = sums / steps_per_epoch
        print(f"epoch {epoch + 1}/{args.epochs}: contrastive {c:.3f}  rotation {r:.3f}  "
              f"source {s:.3f}  ({time.perf_counter() - start:.0f} s)", flush=True)

    # held-out accuracies: rotation on all four turns, source on the plain crop
    def deep_of(batch):
        return trunk.predict(batch.astype(np.float32) / 127.5 - 1.0, batch_size=256, verbose=0)[1]

    rot_correct = sum(
        int((np.asarray(rotation_head(deep_of(np.rot90(held_x, k, axes=(1, 2))))).argmax(1)
             == k).sum()) for k in range(4))
    src_pred = np.asarray(source_head(deep_of(held_x))).argmax(1)
    held_out = {"rotation_accuracy": round(rot_correct / (4 * len(held_x)), 4),
                "source_accuracy": round(float((src_pred == held_y).mean()), 4),
                "n": int(len(held_x))}
    print(f"held out: {held_out}")

    extractor = standardised(keras, trunk, train_x)
    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / f"{NAME}.keras"
    extractor.save(model_path)
    write_meta(model_path, extractor, held_out, {
        "data": PROVENANCE, "n_train": int(len(train_x)), "epochs": args.epochs,
        "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
        "seconds": round(time.perf_counter() - start, 1)})


def finish_saved(keras, path: Path, images: np.ndarray, args) -> None:
    """Standardise a saved, unstandardised extractor over the same training crops (the same
    held-out split) and write it and its .json to --out, keeping the old .json's record."""
    old_meta = json.loads(path.with_suffix(".json").read_text())
    n_held = max(args.batch_size, len(images) // 20)
    extractor = standardised(keras, keras.saving.load_model(path, compile=False),
                             images[n_held:])
    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / f"{NAME}.keras"
    extractor.save(model_path)
    keep = ("data", "n_train", "epochs", "batch_size", "lr", "seed", "seconds")
    write_meta(model_path, extractor, old_meta["held_out"],
               {k: old_meta[k] for k in keep if k in old_meta}
               | {"finished_with": f"--finish {path.name} (standardisation added afterwards)"})


def standardised(keras, extractor, crops: np.ndarray):
    """`extractor` followed by a fixed per-feature standardisation (mean 0, std 1 over the
    training crops): every stage counts alike in FID, whatever its activations' scale, and
    FIDs come out in a readable range. A feature that barely varies keeps a floor on its std."""
    feats = extractor.predict(crops.astype(np.float32) / 127.5 - 1.0, batch_size=256, verbose=0)
    feats = feats[0] if isinstance(feats, list) else feats
    mean, std = feats.mean(0), feats.std(0)
    std = np.maximum(std, 0.01 * float(std.mean()))
    return photo_judge.build_judge(extractor, mean, std ** 2)


def write_meta(model_path: Path, extractor, held_out: dict, training: dict) -> None:
    import keras
    import tensorflow as tf

    digest = hashlib.sha256(model_path.read_bytes()).hexdigest()
    meta = {"name": "photo", "file": model_path.name, "image_size": SIZE, "channels": 3,
            "dim": int(extractor.output_shape[-1]), "sha256": digest, "held_out": held_out,
            **training,
            "objective": "NT-Xent (T=0.2) + rotation + 0.5 * source; features: mean of each "
                         "of the three stages, concatenated, standardised over the training crops",
            "tensorflow": tf.__version__, "keras": keras.__version__}
    model_path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"wrote {model_path} ({model_path.stat().st_size / 1e6:.1f} MB) and its .json")


if __name__ == "__main__":
    main()
