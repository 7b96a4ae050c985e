"""Inpainting and x4 super-resolution quality on held-out toycars: ours vs OpenCV.

For centre holes of 10%, 25% and 40% of the image area: PSNR and SSIM inside the hole for our
latent-search fill (each blending) against cv2.inpaint (Telea, Navier-Stokes) and a mean-colour
fill. Then PSNR / SSIM of x4 super-resolution (area downsampling) against bicubic upsampling.
The held-out images are toycars of the run's seed drawn from index 10,000,000 on: training
draws indices 0 .. data_n - 1, so none of them was ever seen by the generator.

Usage:
    python benchmarks/inpaint_quality.py --generator RUN_OR_KERAS [--n 32] [--steps 300]
    python benchmarks/inpaint_quality.py   # no generator: trains quick32 for --train-epochs
                                           # epochs first (3: about 8 minutes on 2 CPU cores)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

try:
    from cargan_tf import inpaint, masks
except ImportError:  # a plain checkout, not pip-installed: use the package next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from cargan_tf import inpaint, masks

HOLE_FRACTIONS = (0.10, 0.25, 0.40)
HELD_OUT_START = 10_000_000  # toycars index of the first held-out image (training starts at 0)


def train_generator(run_dir: Path, epochs: int, minutes: float) -> Path:
    """Train quick32 on toycars for `epochs` epochs into run_dir (resumes if interrupted)."""
    command = [sys.executable, "-m", "cargan_tf", "train", "--preset", "quick32", "--epochs",
               str(epochs), "--run-dir", str(run_dir), "--no-progress"]
    print(f"no --generator: training one ({' '.join(command[1:])}), at most {minutes:g} minutes")
    start = time.monotonic()
    try:
        subprocess.run(command, check=True, timeout=minutes * 60)
    except subprocess.TimeoutExpired:
        sys.exit(f"training took longer than {minutes:g} minutes: rerun (it resumes from its last "
                 "checkpoint), raise --train-minutes, or pass --generator")
    print(f"trained in {(time.monotonic() - start) / 60:.1f} minutes")
    return run_dir


def held_out_images(run: Path | None, size: int, channels: int, n: int) -> tuple[np.ndarray, str]:
    """n toycars never used for training, and a note on where they come from."""
    from cargan_tf.data.toycars import draw_toycars

    seed, data = 0, "toycars"
    config = (run / "config.json") if run is not None else None
    if config is not None and config.exists():
        cfg = json.loads(config.read_text())
        seed, data = int(cfg.get("seed", 0)), cfg.get("data", "toycars")
    images, _ = draw_toycars(n, size, seed=seed, channels=channels, start=HELD_OUT_START)
    note = f"toycars seed {seed}, images {HELD_OUT_START}..{HELD_OUT_START + n - 1}"
    if data != "toycars":
        note += f" (NOTE: the generator was trained on {data}, not toycars)"
    return images, note


def row(name: str, psnr: np.ndarray, ssim: np.ndarray) -> str:
    """A markdown table row: mean ± standard deviation over the images."""
    p, s = f"{psnr.mean():6.2f} ± {psnr.std():4.2f}", f"{ssim.mean():.3f} ± {ssim.std():.3f}"
    return f"| {name:<22} | {p:<17} | {s:<15} |"


def compare_fills(truth: np.ndarray, hole: np.ndarray, fit) -> dict[str, np.ndarray]:
    """Every blend of our fill, a generator-free Poisson control, both cv2.inpaint methods and
    the mean colour: uint8 images."""
    methods = {f"ours ({blend})": inpaint.blend(truth, fit.generated, hole, blend)
               for blend in inpaint.BLEND_METHODS}
    # the control for Poisson blending: a flat fill has no gradients, so this is the smooth
    # (harmonic) interpolation of the hole's edge, with no generator at all
    methods["poisson of a flat fill"] = inpaint.blend(truth, inpaint.mean_fill(truth, hole),
                                                      hole, "poisson")
    methods["cv2.inpaint Telea"] = inpaint.opencv_inpaint(truth, hole, "telea")
    methods["cv2.inpaint NS"] = inpaint.opencv_inpaint(truth, hole, "ns")
    methods["mean colour"] = inpaint.mean_fill(truth, hole)
    return methods


def print_table(title: str, truth: np.ndarray, methods: dict[str, np.ndarray],
                region: np.ndarray | None) -> dict:
    """Print PSNR / SSIM (inside `region`) per method as markdown; return the means."""
    where = " in hole" if region is not None else ""
    print(f"### {title}\n")
    print(f"| {'method':<22} | {'PSNR' + where + ' (dB)':<17} | {'SSIM' + where:<15} |")
    print(f"|{'-' * 24}|{'-' * 19}|{'-' * 17}|")
    numbers = {}
    for name, out in methods.items():
        p, s = inpaint.psnr(out, truth, region), inpaint.ssim(out, truth, region)
        print(row(name, p, s))
        numbers[name] = {"psnr": round(float(p.mean()), 3), "ssim": round(float(s.mean()), 4)}
    print()
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default=None,
                        help="a run folder or generator .keras file (none: train quick32 first)")
    parser.add_argument("--train-dir", default="/tmp/inpaint_gen",
                        help="where to train when no --generator is given")
    parser.add_argument("--train-epochs", type=int, default=3, help="epochs of that training")
    parser.add_argument("--train-minutes", type=float, default=20.0,
                        help="give up training after this long")
    parser.add_argument("--n", type=int, default=32, help="held-out images")
    parser.add_argument("--restarts", type=int, default=inpaint.RESTARTS, help="restarts per image")
    parser.add_argument("--steps", type=int, default=inpaint.STEPS, help="Adam steps")
    parser.add_argument("--prior-weight", type=float, default=inpaint.PRIOR_WEIGHT,
                        help="weight of log(1 - D(G(z))) (0: no discriminator)")
    parser.add_argument("--context-floor", type=float, default=inpaint.CONTEXT_FLOOR,
                        help="contextual weight of known pixels far from the hole")
    parser.add_argument("--no-in-range", dest="in_range", action="store_false",
                        help="skip the ceiling check on truths the generator can make, G(z*)")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--save-examples", default=None,
                        help="write comparison PNGs (original/masked/ours/Telea/NS) here")
    args = parser.parse_args()

    from cargan_tf.generate import load_generator

    source = args.generator or train_generator(Path(args.train_dir), args.train_epochs,
                                               args.train_minutes)
    run = Path(source) if Path(source).is_dir() else None
    generator = load_generator(source)
    discriminator = inpaint.load_discriminator(run) if args.prior_weight > 0 else None
    size, _, channels = inpaint.generator_shape(generator)
    truth, note = held_out_images(run, size, channels, args.n)
    print(f"generator {source} ({size}x{size}x{channels}); D: "
          f"{'yes' if discriminator is not None else 'no'}; {args.n} held-out images: {note}")
    print(f"search: {args.restarts} restarts x {args.steps} Adam steps, lr {inpaint.LEARNING_RATE}, "
          f"prior weight {args.prior_weight}, context floor {args.context_floor}\n")

    results: dict = {"generator": str(source), "images": note, "n": args.n,
                     "restarts": args.restarts, "steps": args.steps,
                     "prior_weight": args.prior_weight, "context_floor": args.context_floor,
                     "inpainting": {}}
    search = dict(restarts=args.restarts, steps=args.steps, progress=True)
    for fraction in HOLE_FRACTIONS:
        hole = np.broadcast_to(masks.center_box(size, fraction), truth.shape[:3])
        start = time.monotonic()
        fit = inpaint.inpaint(generator, truth, hole, discriminator=discriminator,
                              prior_weight=args.prior_weight, context_floor=args.context_floor,
                              blend_method="none", **search)
        seconds = time.monotonic() - start
        methods = compare_fills(truth, hole, fit)
        title = (f"centre hole {fraction:.0%} of the area ({int(hole[0].sum())} pixels); "
                 f"search {seconds:.0f} s")
        results["inpainting"][f"{fraction:.2f}"] = {
            "search_seconds": round(seconds, 1), **print_table(title, truth, methods, hole)}
        if args.save_examples:
            from cargan_tf import viz

            folder = Path(args.save_examples)
            folder.mkdir(parents=True, exist_ok=True)
            k = min(8, args.n)
            strip = inpaint.comparison_strip(
                [truth[:k], inpaint.masked_view(truth[:k], hole[:k]),
                 methods[f"ours ({inpaint.DEFAULT_BLEND})"][:k],
                 methods["cv2.inpaint Telea"][:k], methods["cv2.inpaint NS"][:k]],
                ["original", "masked", "ours", "Telea", "NS"])
            viz.save_png(folder / f"center_{int(fraction * 100)}.png", strip)

    degradation = inpaint.Degradation("sr4")
    observed, known = degradation.degrade(truth)
    start = time.monotonic()
    fit = inpaint.restore(generator, observed, degradation, known, **search)
    seconds = time.monotonic() - start
    title = f"x4 super-resolution ({size // 4}x{size // 4} -> {size}x{size}); search {seconds:.0f} s"
    results["sr4"] = {"search_seconds": round(seconds, 1), **print_table(
        title, truth, {"ours": fit.images,
                       "bicubic": inpaint.opencv_restore(observed, degradation)}, None)}

    if args.in_range:
        # The method's ceiling: truths the generator can make exactly, G(z*) for latents no
        # search starts from. A gap between this and the held-out rows is the generator's.
        from cargan_tf.generate import generate_images, latent_dim_of
        from cargan_tf.latents import seed_to_latent

        made = generate_images(generator, seed_to_latent(424242, args.n, latent_dim_of(generator)))
        hole = np.broadcast_to(masks.center_box(size, 0.25), made.shape[:3])
        fit = inpaint.inpaint(generator, made, hole, discriminator=discriminator,
                              prior_weight=args.prior_weight, context_floor=args.context_floor,
                              blend_method="none", **search)
        results["in_range_25"] = print_table(
            "ceiling: centre hole 25%, truth = G(z*) (in the generator's range)", made,
            compare_fills(made, hole, fit), hole)

    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nnumbers in {args.json}")


if __name__ == "__main__":
    main()
