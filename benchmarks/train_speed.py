"""Training speed, side by side in one run: real images consumed per second for each loop.

    python benchmarks/train_speed.py                      # aim64 at 64x64, batch 128
    python benchmarks/train_speed.py --preset quick32 --batch 64 --steps 20
    python benchmarks/train_speed.py --skip bf16 --rounds 3   # interleaved, median of 3

Every configuration runs in its own subprocess (dtype policies and thread pools are global;
peak memory is per process) on the same architecture, batch and random data. images/s is
the batch over the median timed step; with --rounds every configuration is measured that many
times, interleaved, and the median round is reported. Printed: images/s,
GFLOP/s against the machine's measured matmul peak, peak RSS, and ratios.

GFLOP per real image is a hand count from the layer shapes (multiply-adds x 2; backward =
2x forward; a frozen D's backward pass computes input gradients only, counted as 1x):
  classic, noise multiplier m: G_fwd + 2 * 3 D + m * (3 G + 2 D)
  joint (one G pass reused, one D update): 3 G + 3 D + 4 D
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONFIGS = {
    # name: (loop, schedule, noise multiplier, precision)
    "tutorial loop (predict + 3 train_on_batch, 2x noise)": ("tutorial", "classic", 2, "float32"),
    "keras engine, 2x noise": ("keras", "classic", 2, "float32"),
    "keras engine, 1x noise": ("keras", "classic", 1, "float32"),
    "fused classic, 1x noise": ("fused", "classic", 1, "float32"),
    "fused joint": ("fused", "joint", 1, "float32"),
    "TF-tutorial GradientTape step (joint)": ("tf_tutorial", "joint", 1, "float32"),
    "keras engine bf16, 1x noise": ("keras", "classic", 1, "mixed_bfloat16"),
    "fused classic bf16, 1x noise": ("fused", "classic", 1, "mixed_bfloat16"),
    "fused joint bf16": ("fused", "joint", 1, "mixed_bfloat16"),
    "PyTorch DCGAN step fp32 (joint)": ("torch", "joint", 1, "float32"),
    "PyTorch DCGAN step bf16 autocast (joint)": ("torch", "joint", 1, "bfloat16"),
}


def layer_flops(model) -> float:
    """Forward FLOPs per image of Dense / Conv2D / Conv2DTranspose layers (2 x multiply-adds)."""
    import keras

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            h, w = layer.input.shape[1:3]
            kh, kw, cout, cin = layer.kernel.shape
            total += 2 * h * w * kh * kw * cin * cout
        elif isinstance(layer, keras.layers.Conv2D):
            h, w = layer.output.shape[1:3]
            kh, kw, cin, cout = layer.kernel.shape
            total += 2 * h * w * kh * kw * cin * cout
    return total


def gflop_per_image(cfg, schedule: str, multiplier: int) -> float:
    from cargan_tf import models

    g = layer_flops(models.build_generator(cfg)) / 1e9
    d = layer_flops(models.build_discriminator(cfg)) / 1e9
    if schedule == "joint":
        return 3 * g + 3 * d + 4 * d
    return g + 6 * d + multiplier * (3 * g + 2 * d)


def measure_peak() -> dict[str, float]:
    """Matmul GFLOP/s in fp32 and bf16 on this machine (2048^2, best of a few)."""
    import tensorflow as tf

    out = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.random.normal((2048, 2048), dtype=tf.float32)
        a = tf.cast(a, dtype)
        mm = tf.function(lambda x: tf.matmul(x, x))
        mm(a).numpy()
        best = 0.0
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(5):
                r = mm(a)
            r.numpy()
            best = max(best, 5 * 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
        out[dtype.name] = best
    return out


def run_one(name: str, args) -> dict:
    import numpy as np

    loop, schedule, multiplier, precision = CONFIGS[name]
    from cargan_tf import config

    cfg = config.preset(args.preset, g_noise_multiplier=multiplier, batch_size=args.batch,
                        schedule=schedule, precision=precision if precision != "bfloat16"
                        else "float32", engine="keras" if loop in ("keras", "tutorial") else "fused",
                        jit_compile="off")
    rng = np.random.default_rng(0)
    real = rng.uniform(-1, 1, (args.batch, cfg.image_size, cfg.image_size, cfg.channels))
    real = real.astype("float32")
    step = {"tutorial": tutorial_step, "keras": engine_step, "fused": engine_step,
            "tf_tutorial": tf_tutorial_step, "torch": torch_step}[loop](cfg, real, precision)
    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    # the median step: one step slowed by another process does not move it
    return {"images_per_s": args.batch / sorted(times)[len(times) // 2],
            "gflop_per_image": gflop_per_image(cfg, schedule, multiplier),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "precision": precision}


def engine_step(cfg, real, precision):
    from cargan_tf import models
    from cargan_tf.engines import make_engine, step_inputs
    from cargan_tf.gan import StackedGAN

    with models.precision_policy(cfg.precision):
        sg = StackedGAN(models.build_generator(cfg), models.build_discriminator(cfg), cfg)
    engine = make_engine(sg, cfg)
    counter = iter(range(10**9))
    return lambda: engine.step(real, step_inputs(cfg, next(counter), len(real)))


def tutorial_step(cfg, real, precision):
    """The well-known loop: generator.predict, D on real, D on fake, gan on 2x noise."""
    import numpy as np

    from cargan_tf import models
    from cargan_tf.gan import StackedGAN

    sg = StackedGAN(models.build_generator(cfg), models.build_discriminator(cfg), cfg)
    n, m = len(real), cfg.g_noise_multiplier

    def step():
        noise = np.random.normal(0, 1, (n, cfg.latent_dim))
        fake = sg.generator.predict(noise, verbose=0)
        sg.train_discriminator(real, np.random.uniform(0.8, 1.0, (n, 1)))
        sg.train_discriminator(fake, np.random.uniform(0.0, 0.2, (n, 1)))
        sg.train_generator(np.random.normal(0, 1, (m * n, cfg.latent_dim)), np.ones((m * n, 1)))
    return step


def tf_tutorial_step(cfg, real, precision):
    """TensorFlow's DCGAN tutorial train_step (GradientTape, shared G pass), same networks."""
    import keras
    import tensorflow as tf

    from cargan_tf import models

    g, d = models.build_generator(cfg), models.build_discriminator(cfg)
    g_opt, d_opt = keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4)
    bce = keras.losses.BinaryCrossentropy()

    @tf.function
    def train_step(images):
        noise = tf.random.normal([images.shape[0], cfg.latent_dim])
        with tf.GradientTape() as gen_tape, tf.GradientTape() as disc_tape:
            generated = g(noise, training=True)
            real_output = d(images, training=True)
            fake_output = d(generated, training=True)
            gen_loss = bce(tf.ones_like(fake_output), fake_output)
            disc_loss = bce(tf.ones_like(real_output), real_output) + \
                bce(tf.zeros_like(fake_output), fake_output)
        g_opt.apply_gradients(zip(gen_tape.gradient(gen_loss, g.trainable_variables),
                                  g.trainable_variables))
        d_opt.apply_gradients(zip(disc_tape.gradient(disc_loss, d.trainable_variables),
                                  d.trainable_variables))
        return gen_loss
    images = tf.constant(real)
    return lambda: train_step(images).numpy()


def torch_step(cfg, real, precision):
    """A PyTorch step of the same architecture (aim64 family: 5x5 kernels), joint schedule."""
    import torch
    from torch import nn

    torch.set_num_threads(os.cpu_count() or 2)
    n_up = {16: 2, 32: 3, 64: 4, 128: 5}[cfg.image_size]
    widths = [min(cfg.base_filters * 2 ** (n_up - 1 - i), cfg.max_filters) for i in range(n_up)]
    k = cfg.kernel_size

    class G(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(cfg.latent_dim, 16 * widths[0])
            blocks = [nn.BatchNorm2d(widths[0]), nn.ReLU()]
            for a, b in zip(widths, widths[1:]):
                blocks += [nn.ConvTranspose2d(a, b, k, 2, 2, output_padding=1),
                           nn.BatchNorm2d(b), nn.ReLU()]
            blocks += [nn.ConvTranspose2d(widths[-1], cfg.channels, k, 2, 2, output_padding=1),
                       nn.Tanh()]
            self.net = nn.Sequential(*blocks)

        def forward(self, z):
            return self.net(self.fc(z).view(-1, widths[0], 4, 4))

    d_layers, cin = [], cfg.channels
    for i, w in enumerate(widths[::-1]):
        d_layers += [nn.Conv2d(cin, w, k, 2, 2)] + ([nn.BatchNorm2d(w)] if i else [])
        d_layers += [nn.LeakyReLU(0.2)]
        cin = w
    d_layers += [nn.Flatten(), nn.Linear(16 * cin, 1), nn.Sigmoid()]
    g, d = G(), nn.Sequential(*d_layers)
    g_opt = torch.optim.Adam(g.parameters(), 1.5e-4, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(d.parameters(), 2e-4, betas=(0.5, 0.999))
    loss = nn.BCELoss()
    images = torch.from_numpy(real).permute(0, 3, 1, 2).contiguous()
    n = images.shape[0]
    ones, zeros = torch.ones(n, 1), torch.zeros(n, 1)
    autocast = precision == "bfloat16"

    def step():
        z = torch.randn(n, cfg.latent_dim)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            fake = g(z)
            d_opt.zero_grad()
            d_loss = loss(d(images).float(), ones) + loss(d(fake.detach()).float(), zeros)
        d_loss.backward()
        d_opt.step()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            g_opt.zero_grad()
            g_loss = loss(d(fake).float(), ones)
        g_loss.backward()
        g_opt.step()
    return step


def print_row(name: str, r: dict, peak: dict, suffix: str = "") -> None:
    peak_key = "bfloat16" if "bfloat16" in r["precision"] else "float32"
    pct = 100 * r["images_per_s"] * r["gflop_per_image"] / peak[peak_key]
    print(f"  {name:55s} {r['images_per_s']:7.1f} img/s  {r['gflop_per_image']:.2f} "
          f"GFLOP/img  {pct:4.0f}% of {peak_key} peak  {r['peak_rss_mb']:6.0f} MB{suffix}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="aim64")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps (tracing) first")
    parser.add_argument("--only", default=None, help="comma-separated substrings of names")
    parser.add_argument("--skip", default=None,
                        help="comma-separated substrings of names to leave out, e.g. bf16 on a "
                             "CPU without bf16 instructions (emulated: minutes per step)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="measure every configuration this many times, interleaved (A B C "
                             "A B C ...), and report the median: drift in the machine's speed "
                             "then hits every configuration alike")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child process
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    if args.one:
        print(json.dumps(run_one(args.one, args)))
        return

    try:
        import torch  # noqa: F401
        have_torch = True
    except ImportError:
        have_torch = False
    peak = json.loads(subprocess.run(
        [sys.executable, "-c", "import json,sys; sys.path.insert(0, 'benchmarks'); "
         "import train_speed as t; print(json.dumps(t.measure_peak()))"],
        capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(
            os.path.abspath(__file__)))).stdout.strip().splitlines()[-1])
    print(f"{args.preset}, batch {args.batch}, {args.steps} timed steps after {args.warmup} "
          f"warm-up; matmul peak fp32 {peak['float32']:.0f} GFLOP/s, "
          f"bf16 {peak['bfloat16']:.0f} GFLOP/s; {os.cpu_count()} cores")
    names = []
    for name in CONFIGS:
        if args.only and not any(s in name for s in args.only.split(",")):
            continue
        if args.skip and any(s in name for s in args.skip.split(",")):
            continue
        if CONFIGS[name][0] == "torch" and not have_torch:
            print(f"  {name}: skipped (pip install torch==2.13.0 for the CPU build)")
            continue
        names.append(name)
    rounds: dict[str, list[dict]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        if args.rounds > 1:
            print(f"round {round_ + 1} of {args.rounds}", flush=True)
        for name in names:
            out = subprocess.run([sys.executable, __file__, "--one", name, "--preset",
                                  args.preset, "--batch", str(args.batch), "--steps",
                                  str(args.steps), "--warmup", str(args.warmup)],
                                 capture_output=True, text=True)
            if out.returncode:
                print(f"  {name}: failed\n{out.stderr[-1500:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rounds[name].append(r)
            print_row(name, r, peak)
    results = {}
    for name, runs in rounds.items():
        if not runs:
            continue
        speeds = sorted(r["images_per_s"] for r in runs)
        results[name] = {**runs[0], "images_per_s": speeds[len(speeds) // 2],
                         "spread": (speeds[0], speeds[-1]),
                         "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
    if args.rounds > 1:
        print(f"\nmedian of {args.rounds} rounds (min .. max):")
        for name, r in results.items():
            print_row(name, r, peak, suffix=f"  ({r['spread'][0]:.1f} .. {r['spread'][1]:.1f})")
    base = results.get("tutorial loop (predict + 3 train_on_batch, 2x noise)")
    if base:
        print("\nratios against the tutorial loop (images/s):")
        for name, r in results.items():
            print(f"  {name:55s} {r['images_per_s'] / base['images_per_s']:5.2f}x")
    pairs = [("keras engine, 2x noise", "tutorial loop (predict + 3 train_on_batch, 2x noise)"),
             ("fused classic, 1x noise", "keras engine, 1x noise"),
             ("keras engine bf16, 1x noise", "keras engine, 1x noise"),
             ("fused classic bf16, 1x noise", "fused classic, 1x noise"),
             ("fused joint", "TF-tutorial GradientTape step (joint)"),
             ("fused joint", "PyTorch DCGAN step fp32 (joint)"),
             ("fused joint bf16", "PyTorch DCGAN step bf16 autocast (joint)")]
    print("\ngoal ratios:")
    for a, b in pairs:
        if a in results and b in results:
            print(f"  {a} / {b}: {results[a]['images_per_s'] / results[b]['images_per_s']:.2f}x")


if __name__ == "__main__":
    main()
