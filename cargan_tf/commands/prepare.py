"""`python -m cargan_tf prepare SRC DST`: turn a folder of images into a training cache."""

from __future__ import annotations

from cargan_tf.data.decode import (
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MAX_MEGAPIXELS,
    FITS,
    MAX_FILE_MB_ENV,
    MAX_MEGAPIXELS_ENV,
)
from cargan_tf.data.prepare import prepare
from cargan_tf.errors import CarganError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="decode, clean and resize a folder of images into a fast uint8 cache",
        description=(
            "Walk SRC recursively, decode every image (JPEG, PNG, WebP, BMP, TIFF, PGM, ...; "
            "grayscale, alpha, 16-bit and CMYK are converted), resize it to SIZE x SIZE, drop "
            "exact duplicates and write DST/images_*.npy + manifest.json, which training loads "
            "in one read. Broken and non-image files are skipped and listed with their reason "
            "in DST/prepare_report.json. Running it again only decodes new or changed files; "
            "an interrupted run leaves the previous cache intact."
        ),
    )
    p.add_argument("src", help="folder of images, searched recursively (e.g. a Drive folder)")
    p.add_argument(
        "dst",
        help="cache folder to create or update; it must be new, empty, or an earlier cache "
        "(prepare replaces it as a whole)",
    )
    p.add_argument("--size", type=int, default=64,
                   help="side of the square output images in pixels (default: 64)")
    p.add_argument("--channels", type=int, choices=(1, 3), default=3,
                   help="3 for RGB, 1 for grayscale (default: 3)")
    p.add_argument(
        "--fit", choices=FITS, default="center_crop",
        help="how a non-square photo becomes square: center_crop keeps the centred square "
        "(default), pad keeps the whole photo on black bars, stretch ignores the aspect ratio",
    )
    p.add_argument("--workers", type=int, default=None,
                   help="images decoded at once, in threads (default: 4 per CPU core, at "
                   "most 16; more helps on slow network folders such as Drive)")
    add_limit_options(p)
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run)


def add_limit_options(p, byte_limit: bool = True) -> None:
    """--max-megapixels (and --max-file-mb): the image guard's limits (prepare, download)."""
    p.add_argument("--max-megapixels", type=float, default=None,
                   help="refuse an image whose header declares more pixels than this, before "
                   f"decoding it (default: ${MAX_MEGAPIXELS_ENV}, else {DEFAULT_MAX_MEGAPIXELS:g}; "
                   "a refused file is listed in the report with its size)")
    if byte_limit:
        p.add_argument("--max-file-mb", type=float, default=None,
                       help="refuse an image file larger than this many MiB without reading it "
                       f"(default: ${MAX_FILE_MB_ENV}, else {DEFAULT_MAX_FILE_MB:g})")


def run(args) -> int:
    if args.workers is not None and args.workers < 1:
        raise CarganError(f"--workers {args.workers}: use 1 or more (default: 4 per CPU core)")
    if args.size & (args.size - 1) or args.size < 16:
        print(f"note: --size {args.size} is not a power of two >= 16; training needs one "
              "(16, 32, 64, 128)", flush=True)

    result = prepare(args.src, args.dst, size=args.size, channels=args.channels, fit=args.fit,
                     workers=args.workers, progress=not args.no_progress,
                     max_megapixels=args.max_megapixels, max_file_mb=args.max_file_mb)
    print(result.summary())
    print(f"report: {result.report_path}")
    for warning in result.warnings(size_how="prepare --size {}", fit_how="--fit {}"):
        print(warning)
    return 0
