"""`python -m cargan_tf compare`: train the GAN and two VAEs on the same data for the same epochs
and write comparison.md / comparison.json with scores and side-by-side pictures."""

from __future__ import annotations

import argparse

from cargan_tf.errors import CarganError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="GAN vs VAE (dense and conv) on the same data and epoch budget",
        description="Train the GAN (quick32 recipe), a dense VAE and a convolutional VAE that "
                    "mirrors the GAN, all on the same images for the same number of epochs, "
                    "then score them the same way (FID, KID, precision/recall, diversity), time "
                    "them, count their parameters and put their samples, reconstructions and "
                    "latent interpolations side by side. Writes OUT/comparison.md, "
                    "OUT/comparison.json and the three run folders; rerunning resumes them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="toycars",
                   help="toycars, fashion_mnist, a prepared cache folder or an image folder")
    p.add_argument("--image-size", type=int, default=32, help="image side (power of two)")
    p.add_argument("--epochs", type=int, default=4, help="epochs for every model (the budget)")
    p.add_argument("--data-n", type=int, default=None,
                   help="training images (default: the quick32 preset's 8192)")
    p.add_argument("--features", default="domain", choices=("domain", "pixels"),
                   help="features for FID/KID: domain (the data's own extractor; pixels when "
                        "there is none) or pixels")
    p.add_argument("--n-eval", type=int, default=None,
                   help="samples and real images scored (default 1000; 64 with --smoke)")
    p.add_argument("--out", required=True, help="folder for the runs and the comparison")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes (16x16, 64 images, 2 epochs) and pixel features")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.epochs < 1:
        raise CarganError("--epochs must be >= 1")
    from cargan_tf.compare import LABELS, MODELS, run_comparison  # here: TensorFlow (--help)

    report = run_comparison(args.out, data=args.data, image_size=args.image_size,
                            epochs=args.epochs, data_n=args.data_n, smoke=args.smoke,
                            features=args.features, n_eval=args.n_eval)
    print(f"budget: {report['budget']}; features: {report['features']}")
    for m in MODELS:
        r = report["models"][m]
        print(f"{LABELS[m]:16s} FID {r['fid']:.3f}  KID {r['kid']:.5f}  "
              f"diversity {r['diversity']:.3f}  {r['train_seconds']:.0f} s")
    print(f"{args.out}/comparison.md")
    return 0
