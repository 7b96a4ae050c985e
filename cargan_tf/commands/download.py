"""`python -m cargan_tf download LIST.csv DST`: fetch the images a CSV of URLs lists."""

from __future__ import annotations

from cargan_tf.commands.prepare import add_limit_options
from cargan_tf.data.download import download


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "download",
        help="fetch images from a CSV of URLs (resumable, with retries and a failure report)",
        description=(
            "Fetch every URL in LIST.csv into DST as DST/ID.ext, or DST/LABEL/ID.ext when the "
            "list has a label column (the layout `prepare` and Keras' folder loaders read). "
            "Re-running skips files already fetched. Every failure (HTTP error, timeout, not "
            "an image, too large) is listed in DST/download_report.json."
        ),
    )
    p.add_argument(
        "list_csv",
        help="CSV with a url column (also image_url, link, ...) and optional id and label "
        "columns; a header-less file with one URL per line works too",
    )
    p.add_argument("dst", help="folder to download into (created if missing)")
    p.add_argument("--url-column", default=None,
                   help="name of the URL column when it is not called url/image_url/link/...")
    p.add_argument("--workers", type=int, default=8,
                   help="downloads in flight at once (default: 8; be gentle with small sites)")
    p.add_argument("--retries", type=int, default=3,
                   help="extra tries after a timeout, network error or HTTP 408/429/5xx; "
                   "404 and other 4xx are not retried (default: 3)")
    p.add_argument("--timeout", type=float, default=20.0,
                   help="seconds to wait for the server at each step; a whole file gets at "
                   "most 4x this (default: 20)")
    p.add_argument("--backoff", type=float, default=1.0,
                   help="first wait before a retry in seconds, doubled each time (default: 1)")
    p.add_argument("--max-mb", type=float, default=20.0,
                   help="refuse files larger than this many MiB (default: 20)")
    add_limit_options(p, byte_limit=False)
    p.add_argument("--no-progress", action="store_true", help="do not show a progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    result = download(
        args.list_csv, args.dst, url_column=args.url_column, workers=args.workers,
        retries=args.retries, timeout=args.timeout, backoff=args.backoff,
        max_bytes=int(args.max_mb * 2**20), progress=not args.no_progress,
        max_megapixels=args.max_megapixels,
    )
    print(result.summary())
    print(f"report: {result.report_path}")
    # Some failures are normal for scraped lists; nothing at all usable is an error.
    return 0 if result.fetched + result.skipped > 0 else 1
