"""The guard every image read goes through: regular files only, a byte limit checked on the
stat, a pixel limit read from the header before decoding. A folder of bombs (20000x20000 PNGs,
a 3 GB file, a FIFO, header-only JPEG/GIF/WebP/BMP bombs) is prepared in a subprocess whose
peak memory is measured: it finishes, refuses every one with its reason, and stays small."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from cargan_tf.data import decode
from cargan_tf.data.decode import ImageLimits, ImageRefused, UnusableImage
from cargan_tf.data.prepare import prepare
from cargan_tf.errors import CarganError, DataError

from conftest import REPO
from image_bombs import (
    bmp_header_bomb,
    gif_header_bomb,
    jpeg_header_bomb,
    png_bomb,
    sparse_file,
    webp_header_bomb,
)

PEAK_RSS_LIMIT_MB = 300


@pytest.fixture(scope="module")
def bomb_bytes() -> bytes:
    return png_bomb(20000, 20000)


def photo(h: int = 37, w: int = 53) -> np.ndarray:
    small = np.random.default_rng(h * w).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


@pytest.mark.parametrize("ext", [".jpg", ".png", ".bmp", ".webp", ".tif", ".pgm", ".ppm",
                                 ".pbm", ".jp2", ".avif", ".gif", ".jpg-progressive",
                                 ".webp-lossy", ".ppm-ascii"])
def test_header_sizes_match_what_opencv_decodes(ext):
    params = {".jpg-progressive": [cv2.IMWRITE_JPEG_PROGRESSIVE, 1],
              ".webp-lossy": [cv2.IMWRITE_WEBP_QUALITY, 80],
              ".ppm-ascii": [cv2.IMWRITE_PXM_BINARY, 0]}.get(ext, [])
    img = photo()
    if ext in (".pgm", ".pbm"):
        img = img[..., 0]
    ok, buf = cv2.imencode(ext.split("-")[0], img, params)
    if not ok:
        pytest.skip(f"this OpenCV cannot write {ext}")
    header = decode.image_header(buf.tobytes())
    assert header is not None and (header.width, header.height) == (53, 37), header
    assert header.progressive == (ext == ".jpg-progressive")
    assert decode.decode_image(buf)[1] == (37, 53)


def test_bombs_are_refused_from_their_headers(bomb_bytes):
    assert 1_000_000 < len(bomb_bytes) < 1_400_000  # the 1.17 MB file
    limits = ImageLimits()
    for data, what in [(bomb_bytes, "20000x20000 PNG"),
                       (jpeg_header_bomb(), "60000x60000 JPEG"),
                       (gif_header_bomb(), "65535x65535 GIF"),
                       (webp_header_bomb(), "16383x16383 WebP"),
                       (bmp_header_bomb(), "30000x30000 BMP")]:
        with pytest.raises(ImageRefused, match=f"too many pixels: {what}") as refused:
            decode.decode_image(np.frombuffer(data, np.uint8), size=64, limits=limits)
        assert refused.value.limit == "pixels" and refused.value.maximum == 25_000_000
        assert "--max-megapixels" in str(refused.value)
        assert "CARGAN_MAX_MEGAPIXELS=" in str(refused.value)
    # a baseline JPEG decoded at 1/8 scale holds 1/64 of its pixels; a progressive one all
    big = np.frombuffer(jpeg_header_bomb(12000, 8000), np.uint8)  # 96 MP, 1.5 MP at 1/8
    header = decode.image_header(big.tobytes())
    decode.check_pixels(header, limits, reduction=8)
    with pytest.raises(ImageRefused):
        decode.check_pixels(header, limits, reduction=1)
    progressive = decode.image_header(jpeg_header_bomb(12000, 8000, progressive=True))
    with pytest.raises(ImageRefused, match="too many pixels"):
        decode.check_pixels(progressive, limits, reduction=8)


def test_limits_come_from_arguments_then_the_environment(monkeypatch):
    monkeypatch.delenv(decode.MAX_MEGAPIXELS_ENV, raising=False)
    monkeypatch.delenv(decode.MAX_FILE_MB_ENV, raising=False)
    assert ImageLimits.resolve() == ImageLimits(25_000_000, 64 * 2**20)
    monkeypatch.setenv(decode.MAX_MEGAPIXELS_ENV, "0.5")
    monkeypatch.setenv(decode.MAX_FILE_MB_ENV, "2")
    assert ImageLimits.resolve() == ImageLimits(500_000, 2 * 2**20)
    assert ImageLimits.resolve(3, 1).max_pixels == 3_000_000
    monkeypatch.setenv(decode.MAX_MEGAPIXELS_ENV, "lots")
    with pytest.raises(DataError, match="CARGAN_MAX_MEGAPIXELS='lots': give a positive number"):
        ImageLimits.resolve()
    with pytest.raises(DataError, match="max_file_mb=-1"):
        ImageLimits.resolve(1, -1)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_file_type_and_byte_limit_are_checked_before_reading(tmp_path):
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageRefused, match="not a regular file: it is a named pipe"):
        decode.read_image_file(fifo)  # would block forever if it were opened for reading
    huge = sparse_file(tmp_path / "huge.jpg", 3 * 2**30)
    with pytest.raises(ImageRefused, match=r"file too large: 3.00 GB, over the 64.0 MB limit") as r:
        decode.read_image_file(huge)
    assert (r.value.limit, r.value.value) == ("bytes", 3 * 2**30)
    assert "--max-file-mb 3073" in str(r.value) and "CARGAN_MAX_IMAGE_MB=3073" in str(r.value)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), photo())
    link = tmp_path / "link.png"
    link.symlink_to(good)
    assert decode.read_image_file(link).tobytes() == good.read_bytes()  # a symlink to a file
    with pytest.raises(ImageRefused, match="a folder"):
        decode.read_image_file(tmp_path)
    with pytest.raises(UnusableImage, match="could not read the file"):
        decode.read_image_file(tmp_path / "missing.png")


def test_every_image_reader_goes_through_the_guard(tmp_path, bomb_bytes, monkeypatch):
    """inpaint/restore's read_image, mask files, the notebooks' picture display and
    download's check all refuse a bomb from its header."""
    from cargan_tf import inpaint, masks
    from cargan_tf import notebook as nb

    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_bytes)
    with pytest.raises(CarganError, match="too many pixels: 20000x20000 PNG"):
        inpaint.read_image(bomb, 16, 3, resize=True)
    with pytest.raises(CarganError, match="too many pixels"):
        masks.from_file(bomb, 16)
    with pytest.raises(CarganError, match="too many pixels"):
        nb._display_png(bomb, width=100)
    assert decode.image_bytes_problem(bomb_bytes)[0] == "too_many_pixels"
    monkeypatch.setenv(decode.MAX_MEGAPIXELS_ENV, "0.001")  # 1,000 pixels
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), photo(40, 40))
    with pytest.raises(CarganError, match="too many pixels: 40x40 PNG is 0.0016 megapixels"):
        inpaint.read_image(small, 16, 3, resize=True)


def test_a_limit_raised_later_retries_the_files_it_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    cv2.imwrite(str(src / "big.png"), photo(60, 60))  # 3,600 pixels
    cv2.imwrite(str(src / "small.png"), photo(30, 30))  # 900 pixels
    dst = tmp_path / "cache"
    first = prepare(src, dst, size=16, workers=1, progress=False, max_megapixels=0.002)
    report = json.loads(first.report_path.read_text())
    assert first.count == 1 and first.refused == 1 and "refused" in first.summary()
    (entry,) = report["skipped"]
    assert entry["path"] == "big.png"
    assert entry["refused"] == {"limit": "pixels", "value": 3600, "max": 2000}
    assert "60x60 PNG" in entry["reason"] and "--max-megapixels 1" in entry["reason"]
    assert report["limits"] == {"max_megapixels": 0.002, "max_file_mb": 64.0}
    same = prepare(src, dst, size=16, workers=1, progress=False, max_megapixels=0.002)
    assert same.up_to_date  # nothing changed, the same limit: nothing to do
    raised = prepare(src, dst, size=16, workers=1, progress=False, max_megapixels=0.004)
    assert raised.count == 2 and raised.refused == 0 and raised.decoded == 1


def _prepare_with_peak_rss(src: Path, dst: Path, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run `python -m cargan_tf prepare` in a child of a small wrapper process, so that
    RUSAGE_CHILDREN's peak is prepare's alone; returns (result, peak RSS in MB)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "r = subprocess.run([sys.executable, '-m', 'cargan_tf', 'prepare', *sys.argv[1:]])\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
        "print('PEAK_KB', peak, file=sys.stderr)\n"
        "sys.exit(r.returncode)\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in (decode.MAX_MEGAPIXELS_ENV, decode.MAX_FILE_MB_ENV)}
    result = subprocess.run([sys.executable, "-c", wrapper, str(src), str(dst), "--size", "32",
                             "--no-progress", *extra], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=300)
    peak_kb = int(result.stderr.rsplit("PEAK_KB", 1)[1].split()[0])
    return result, peak_kb / 1024


@pytest.mark.skipif(sys.platform != "linux", reason="FIFOs, sparse files and ru_maxrss in KB")
def test_prepare_on_a_folder_of_bombs_stays_small_and_refuses_each(tmp_path, bomb_bytes):
    src = tmp_path / "bombs"
    src.mkdir()
    for i in range(3):  # each 1.2 GB decoded: 3.6 GB, and 4.65 GB RSS before the guard
        (src / f"bomb_{i}.png").write_bytes(bomb_bytes)
    sparse_file(src / "huge.jpg", 3 * 2**30)  # read whole before the guard (6.4 GB RSS)
    os.mkfifo(src / "pipe.png")  # hung prepare forever before the guard
    (src / "sub").mkdir()
    (src / "sub" / "jpeg_bomb.jpg").write_bytes(jpeg_header_bomb())
    (src / "sub" / "gif_bomb.gif").write_bytes(gif_header_bomb())
    (src / "sub" / "webp_bomb.webp").write_bytes(webp_header_bomb())
    (src / "sub" / "bmp_bomb.bmp").write_bytes(bmp_header_bomb())
    (src / "sub" / "dev_zero.png").symlink_to("/dev/zero")
    for i in range(2):
        cv2.imwrite(str(src / f"car_{i}.png"), photo(40 + i, 50))
    (src / "link_to_car.png").symlink_to(src / "car_0.png")  # kept: same pixels, a duplicate

    result, peak_mb = _prepare_with_peak_rss(src, tmp_path / "cache", "--workers", "4")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    print(f"prepare on the bomb folder: peak RSS {peak_mb:.0f} MB")
    assert peak_mb < PEAK_RSS_LIMIT_MB, peak_mb
    report = json.loads((tmp_path / "cache" / "prepare_report.json").read_text())
    skipped = {e["path"]: e for e in report["skipped"]}
    assert set(skipped) == {"bomb_0.png", "bomb_1.png", "bomb_2.png", "huge.jpg", "pipe.png",
                            "sub/jpeg_bomb.jpg", "sub/gif_bomb.gif", "sub/webp_bomb.webp",
                            "sub/bmp_bomb.bmp", "sub/dev_zero.png"}
    for name in ("bomb_0.png", "bomb_1.png", "bomb_2.png"):
        assert skipped[name]["refused"] == {"limit": "pixels", "value": 400_000_000,
                                            "max": 25_000_000}
        assert skipped[name]["reason"].startswith(
            "too many pixels: 20000x20000 PNG is 400 megapixels, over the 25 MP limit")
        assert "--max-megapixels 400" in skipped[name]["reason"]
    assert skipped["huge.jpg"]["refused"]["limit"] == "bytes"
    assert "file too large: 3.00 GB" in skipped["huge.jpg"]["reason"]
    assert "named pipe (FIFO)" in skipped["pipe.png"]["reason"]
    assert "character device" in skipped["sub/dev_zero.png"]["reason"]
    for name in ("sub/jpeg_bomb.jpg", "sub/gif_bomb.gif", "sub/webp_bomb.webp",
                 "sub/bmp_bomb.bmp"):
        assert skipped[name]["refused"]["limit"] == "pixels", skipped[name]
    assert report["counts"]["images"] == 2 and report["counts"]["refused"] == 10
    assert report["duplicates"] == [{"path": "link_to_car.png", "duplicate_of": "car_0.png"}]
    assert "10 refused by the size limits" in result.stdout
