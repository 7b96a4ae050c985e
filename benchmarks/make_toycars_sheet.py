"""Regenerate the README's toycars contact sheet: docs/images/toycars_contact_sheet.png.

Usage: python benchmarks/make_toycars_sheet.py [--n 48] [--size 64] [--seed 0] [--out PATH]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
try:
    from cargan_tf.data.toycars import contact_sheet, draw_toycars
except ImportError:  # a plain checkout, not pip-installed: use the package next to this script
    sys.path.insert(0, str(ROOT))
    from cargan_tf.data.toycars import contact_sheet, draw_toycars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="number of cars")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/images/toycars_contact_sheet.png")
    args = parser.parse_args()

    images, _ = draw_toycars(args.n, size=args.size, seed=args.seed)
    sheet = contact_sheet(images, cols=args.cols, pad=2)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))  # OpenCV wants BGR
    if not ok:
        raise SystemExit("could not encode the PNG")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(png.tobytes())
    print(f"wrote {args.out} ({sheet.shape[1]}x{sheet.shape[0]}, {args.n} cars)")


if __name__ == "__main__":
    main()
