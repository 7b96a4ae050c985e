"""Validate a judge the way FID itself was validated (Heusel et al. 2017, section 4 / appendix).

    python benchmarks/judge_validation.py --photos ../shared/data/stanford_cars_3k \
        --other ../shared/data/vehicles_64/non-vehicles --run /work/runs/q32_64_s0 \
        --train-photos /work/data/cars_train --held-out /work/data/cars_heldout \
        --out benchmarks/results/judge_validation.json

On real photos the judges never trained on (`--photos`, split into two disjoint halves A and B):
1. the real-vs-real floor: FID(A, B);
2. seven corruptions of B at three levels each, FID(A, corrupted B): blur (Gaussian sigma 0.5 / 1
   / 2 px at 64x64), noise (sigma 8 / 16 / 32 grey levels), cutout (a grey square of 15 / 25 /
   40% of the side in each image), colour shift (red x1.05/1.1/1.2, blue x0.95/0.9/0.8), mode
   dropping (B clustered into k = 2 / 4 / 8 groups by k-means on 16x16 thumbnails; the largest
   group kept and resampled to B's size), mixing (10 / 25 / 50% of B replaced by `--other`
   images, e.g. road scenes with no car), streaks (10 / 25 / 50% of B given three short strokes
   of a saturated colour each, the artefact generators draw), tears (10 / 25 / 50% of B with two
   horizontal bands slid sideways: a torn body, its colours and textures intact). A judge
   passes when every curve rises monotonically from the floor; --checks picks some of them;
3. with `--run`: snapshots of one training run on photos (its checkpoints, early to late),
   scored against A: a judge should order them early > late > floor;
4. with `--train-photos` and `--held-out`: the memorisation ratio (cargan_tf.metrics.memorisation)
   for the run's final samples and for a deliberately memorising "generator" that returns
   training photos with slight noise (sigma 4 grey levels).
Both judges (photo, pixels) are scored side by side; Inception too where its weights are present
(`--inception`). Prints a markdown table; --out writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LEVELS = {
    "blur": (0.5, 1.0, 2.0),          # Gaussian sigma in pixels at 64x64 (scaled with size)
    "noise": (8, 16, 32),             # Gaussian sigma in grey levels
    "cutout": (0.15, 0.25, 0.40),     # side of the grey square, fraction of the image side
    "colour": (0.05, 0.10, 0.20),     # red gain 1+d, blue gain 1-d
    "mode_drop": (2, 4, 8),           # k clusters, the largest kept
    "mixing": (0.10, 0.25, 0.50),     # fraction replaced by other images
    "streaks": (0.10, 0.25, 0.50),    # fraction given saturated colour strokes (as GANs draw)
    "tears": (0.10, 0.25, 0.50),      # fraction torn: two bands slid sideways (as GANs draw)
}
STREAKS_PER_IMAGE = 3


def corrupt(kind: str, level, images: np.ndarray, other: np.ndarray | None,
            seed: int = 0) -> np.ndarray:
    """uint8 (N, S, S, C) -> the same images with one corruption at one level."""
    rng = np.random.default_rng(seed)
    x = images.astype(np.float32)
    size = images.shape[1]
    if kind == "blur":
        sigma = level * size / 64
        out = np.stack([cv2.GaussianBlur(im, (0, 0), sigma).reshape(im.shape) for im in images])
        return out
    if kind == "noise":
        x = x + rng.normal(0.0, level, x.shape)
    elif kind == "cutout":
        side = max(1, round(level * size))
        for im in x:
            y0, x0 = rng.integers(0, size - side + 1, 2)
            im[y0:y0 + side, x0:x0 + side] = 127.5
    elif kind == "colour":
        if x.shape[-1] == 3:
            x[..., 0] *= 1 + level
            x[..., 2] *= 1 - level
        else:
            x = x * (1 + level)
    elif kind == "mode_drop":
        labels = kmeans(thumbnails(images), level, seed)
        largest = np.bincount(labels).argmax()
        keep = np.flatnonzero(labels == largest)
        return images[rng.choice(keep, len(images), replace=True)]
    elif kind == "mixing":
        if other is None:
            raise SystemExit("the mixing corruption needs --other images")
        out = images.copy()
        swap = rng.choice(len(images), round(level * len(images)), replace=False)
        out[swap] = other[rng.choice(len(other), len(swap), replace=len(swap) > len(other))]
        return out
    elif kind == "streaks":
        # photo64cpu's weaker samples carry short green/orange/cyan strokes on the body: does
        # the judge see them? Three strokes of a saturated random hue, 80% opaque, on a fraction
        # of the images (1/4 of the side long, 1/32 thick).
        out = images.copy()
        length, thick = max(2, size // 4), max(1, size // 32)
        for i in rng.choice(len(images), round(level * len(images)), replace=False):
            overlay = out[i].copy()
            for _ in range(STREAKS_PER_IMAGE):
                hue = int(rng.integers(0, 180))
                colour = cv2.cvtColor(np.uint8([[[hue, 255, 255]]]), cv2.COLOR_HSV2RGB)[0, 0]
                x0, y0 = (int(v) for v in rng.integers(0, size, 2))
                angle = rng.uniform(0, np.pi)
                x1 = int(x0 + length * np.cos(angle))
                y1 = int(y0 + length * np.sin(angle))
                cv2.line(overlay, (x0, y0), (x1, y1), [int(c) for c in colour], thick)
            out[i] = np.rint(0.8 * overlay + 0.2 * out[i]).astype(np.uint8)
        return out
    elif kind == "tears":
        # photo64cpu's weaker samples are torn: a car's parts slid apart, each part's colour and
        # texture intact. On a fraction of the images, two horizontal bands (each 1/6 to 1/3 of
        # the side high) slide sideways by 1/8 to 1/4 of the side, wrapping round: the pixels
        # of every row are kept, only the body's continuity is broken.
        out = images.copy()
        for i in rng.choice(len(images), round(level * len(images)), replace=False):
            for _ in range(2):
                height = int(rng.integers(size // 6, size // 3 + 1))
                top = int(rng.integers(0, size - height + 1))
                shift = int(rng.integers(size // 8, size // 4 + 1)) * int(rng.choice([-1, 1]))
                out[i, top:top + height] = np.roll(out[i, top:top + height], shift, axis=1)
        return out
    else:
        raise ValueError(kind)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def thumbnails(images: np.ndarray) -> np.ndarray:
    return np.stack([cv2.resize(im, (16, 16), interpolation=cv2.INTER_AREA).reshape(-1)
                     for im in images]).astype(np.float32) / 255.0


def kmeans(x: np.ndarray, k: int, seed: int, iterations: int = 30) -> np.ndarray:
    """Lloyd's k-means (k-means++ start), labels (N,)."""
    rng = np.random.default_rng(seed)
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min([((x - c) ** 2).sum(1) for c in centres], axis=0)
        centres.append(x[rng.choice(len(x), p=d / d.sum())])
    centres = np.stack(centres)
    for _ in range(iterations):
        labels = ((x[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([x[labels == j].mean(0) if (labels == j).any() else centres[j]
                            for j in range(k)])
    return labels


def load_folder(folder: str, size: int, channels: int) -> np.ndarray:
    from cargan_tf.data.sources import load_images

    return load_images(str(folder), size, channels, progress=False)


def snapshot_generators(run_dir: Path, count: int):
    """[(step, generator)] for `count` of the run's checkpoints, early to late."""
    from cargan_tf.generate import generator_from_checkpoint
    from cargan_tf.runs import RunPaths, list_checkpoints, read_json

    checkpoints = list_checkpoints(RunPaths(run_dir))
    if not checkpoints:
        raise SystemExit(f"{run_dir} has no checkpoints: train with keep_checkpoints=0")
    picks = sorted({round(i * (len(checkpoints) - 1) / max(1, count - 1)) for i in range(count)})
    out = []
    for i in picks:
        step = read_json(checkpoints[i] / "state.json")["step"]
        out.append((int(step), generator_from_checkpoint(run_dir, checkpoints[i])))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", required=True, help="real photos the judges never saw")
    parser.add_argument("--other", help="another kind of image, for the mixing corruption")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n", type=int, default=1500, help="images per half")
    parser.add_argument("--run", type=Path, help="a run on photos with several checkpoints")
    parser.add_argument("--snapshots", type=int, default=4)
    parser.add_argument("--train-photos", help="the run's training photos (memorisation)")
    parser.add_argument("--held-out", help="photos of the same kind the run never saw")
    parser.add_argument("--judges", default="photo,pixels")
    parser.add_argument("--inception", help="InceptionV3 notop weights file (adds that judge)")
    parser.add_argument("--photo-model", help="a photo judge .keras file other than the packaged "
                                              "one (e.g. a retrained one, before installing it)")
    parser.add_argument("--checks", default=",".join(LEVELS),
                        help="which corruptions, comma-separated (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    checks = set(args.checks.split(","))  # checked before the slow loading below
    if checks - set(LEVELS):
        raise SystemExit(f"--checks: unknown {sorted(checks - set(LEVELS))}; "
                         f"choose from {', '.join(LEVELS)}")

    from cargan_tf import features, metrics
    from cargan_tf.generate import generate_images, latent_dim_of
    from cargan_tf.latents import seed_to_latent

    start = time.perf_counter()
    photos = load_folder(args.photos, args.size, 3)
    order = np.random.default_rng(args.seed).permutation(len(photos))
    n = min(args.n, len(photos) // 2)
    half_a, half_b = photos[order[:n]], photos[order[n:2 * n]]
    other = load_folder(args.other, args.size, 3) if args.other else None
    judges = {name: (features.PhotoExtractor(args.photo_model)
                     if name == "photo" and args.photo_model
                     else features.get_extractor(name, args.size, 3))
              for name in args.judges.split(",")}
    if args.inception:
        judges["inception"] = features.get_extractor("inception", weights=args.inception)
    ref = {name: j.features(half_a) for name, j in judges.items()}

    def fid(name, images):
        return metrics.frechet_distance(judges[name].features(images), ref[name])

    result = {"photos": str(args.photos), "n": n, "size": args.size,
              "judges": {name: j.describe() for name, j in judges.items()}, "floor": {},
              "corruptions": {}, "monotone": {}}
    for name in judges:
        result["floor"][name] = fid(name, half_b)
    for kind, levels in LEVELS.items():
        if kind not in checks or kind == "mixing" and other is None:
            continue
        result["corruptions"][kind] = {"levels": list(levels)}
        for name in judges:
            curve = [fid(name, corrupt(kind, level, half_b, other, args.seed + i))
                     for i, level in enumerate(levels)]
            result["corruptions"][kind][name] = curve
            values = [result["floor"][name], *curve]
            result["monotone"].setdefault(name, {})[kind] = all(
                b > a for a, b in zip(values, values[1:]))
        print(f"{kind}: " + "  ".join(
            f"{name} {[round(v, 2) for v in result['corruptions'][kind][name]]}"
            for name in judges), flush=True)

    final_fake = None
    if args.run:
        snaps = []
        for step, generator in snapshot_generators(args.run, args.snapshots):
            fake = generate_images(generator, seed_to_latent(20240505, n, latent_dim_of(generator)))
            snaps.append({"step": step, **{name: fid(name, fake) for name in judges}})
            final_fake = fake
            print(f"snapshot step {step}: " + "  ".join(
                f"{name} {snaps[-1][name]:.2f}" for name in judges), flush=True)
        result["snapshots"] = snaps
        result["snapshot_order_correct"] = {
            name: all(a[name] > b[name] for a, b in zip(snaps, snaps[1:]))
            and snaps[-1][name] > result["floor"][name] for name in judges}

    if args.train_photos and args.held_out:
        train = load_folder(args.train_photos, args.size, 3)
        held = load_folder(args.held_out, args.size, 3)
        rng = np.random.default_rng(args.seed)
        copies = train[rng.choice(len(train), min(n, len(train)), replace=False)]
        copier = np.clip(copies + rng.normal(0, 4, copies.shape), 0, 255).astype(np.uint8)
        result["memorisation"] = {}
        for name in judges:
            tf_, hf = judges[name].features(train), judges[name].features(held)
            entry = {"memorising_fake": metrics.memorisation(judges[name].features(copier), tf_, hf)["ratio"]}
            if final_fake is not None:
                entry["final_snapshot"] = metrics.memorisation(
                    judges[name].features(final_fake), tf_, hf)["ratio"]
            entry["held_out_vs_train"] = 1.0
            result["memorisation"][name] = entry
            print(f"memorisation ratio ({name}): {entry}", flush=True)

    result["seconds"] = round(time.perf_counter() - start, 1)
    print(markdown(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")


def markdown(result: dict) -> str:
    names = list(result["floor"])
    lines = ["| check | " + " | ".join(names) + " |", "|---|" + "---|" * len(names),
             "| real-vs-real floor (disjoint halves) | "
             + " | ".join(f"{result['floor'][n]:.2f}" for n in names) + " |"]
    for kind, entry in result["corruptions"].items():
        cells = []
        for name in names:
            mark = "monotone" if result["monotone"][name][kind] else "**not monotone**"
            cells.append(" / ".join(f"{v:.2f}" for v in entry[name]) + f" ({mark})")
        lines.append(f"| {kind} {entry['levels']} | " + " | ".join(cells) + " |")
    for snap in result.get("snapshots", []):
        lines.append(f"| snapshot at step {snap['step']} | "
                     + " | ".join(f"{snap[n]:.2f}" for n in names) + " |")
    if "snapshot_order_correct" in result:
        lines.append("| snapshots ordered early > late > floor | " + " | ".join(
            "yes" if result["snapshot_order_correct"][n] else "**no**" for n in names) + " |")
    for key, label in (("memorising_fake", "memorisation ratio, training photos + noise"),
                       ("final_snapshot", "memorisation ratio, the run's last snapshot")):
        if "memorisation" in result and key in result["memorisation"][names[0]]:
            lines.append(f"| {label} | " + " | ".join(
                f"{result['memorisation'][n][key]:.3f}" for n in names) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
