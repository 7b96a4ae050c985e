"""prepare / load_cache: bad files reported, exact round trip, incremental re-runs, atomicity."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

import cargan_tf.data.prepare as preparing
from cargan_tf.cli import main
from cargan_tf.data import cache, decode
from cargan_tf.data.cache import load_cache, read_manifest
from cargan_tf.data.prepare import prepare
from cargan_tf.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def write_image(path: Path, img: np.ndarray, ext: str | None = None) -> bytes:
    """Encode img (BGR/BGRA/gray, uint8 or uint16) with OpenCV and write it; returns the bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(ext or path.suffix, img)
    assert ok
    path.write_bytes(buf.tobytes())
    return buf.tobytes()


def noise(h: int, w: int, seed: int, channels: int = 3) -> np.ndarray:
    shape = (h, w, channels) if channels > 1 else (h, w)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def smooth(h: int, w: int, seed: int) -> np.ndarray:
    """A photo-like smooth BGR image (JPEG keeps it well)."""
    small = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def row_of(manifest: dict, rel: str) -> int:
    entry = next(s for s in manifest["sources"] if s["path"] == rel)
    assert entry["status"] == "kept", entry
    return entry["index"]


def by_path(entries: list[dict]) -> dict[str, dict]:
    return {e["path"]: e for e in entries}


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """A folder with every kind of bad and awkward input the issue lists."""
    src = tmp_path / "messy"
    jpeg = write_image(src / "root/inner/images/car_a.jpg", smooth(60, 80, 1))
    write_image(src / "root/inner/images/car_b.jpg", smooth(90, 70, 2))
    (src / "root/inner/images/car_a_copy.jpg").write_bytes(jpeg)  # exact duplicate
    (src / "nested/deeper/truncated.jpg").parent.mkdir(parents=True)
    (src / "nested/deeper/truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (src / "nested/zero.jpg").write_bytes(b"")
    (src / "nested/car.jpg").write_text("this is not a car, just text\n")
    (src / "nested/page.jpg").write_text("<!DOCTYPE html><html><body>404</body></html>")
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[:, :20] = (0, 0, 255, 255)  # opaque red on the left (BGRA)
    write_image(src / "alpha/rgba.png", rgba)  # right half fully transparent black
    write_image(src / "deep/deep16.png", np.full((40, 40, 3), 200 * 257, np.uint16))
    write_image(src / "gray.png", noise(40, 40, 3, channels=1))
    write_image(src / "blue.png", np.full((40, 40, 3), (255, 0, 0), np.uint8))  # BGR blue
    write_image(src / "tiny.png", noise(10, 10, 4))
    write_image(src / "voiture_é_車.jpg", smooth(50, 50, 5))
    ok, trailing = cv2.imencode(".jpg", smooth(44, 44, 6))
    (src / "trailing.jpg").write_bytes(trailing.tobytes() + b"\0" * 20 + b"camera junk")
    (src / "readme.txt").write_text("not an image")
    (src / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    return src


def test_messy_folder_is_prepared_and_every_problem_reported(messy: Path, tmp_path: Path):
    result = prepare(messy, tmp_path / "cache", size=32, workers=1, progress=False)
    report = json.loads(result.report_path.read_text())
    skipped = {e["path"]: e["reason"] for e in report["skipped"]}
    assert set(skipped) == {"nested/deeper/truncated.jpg", "nested/zero.jpg", "nested/car.jpg",
                            "nested/page.jpg"}
    assert "truncated JPEG" in skipped["nested/deeper/truncated.jpg"]
    assert "empty file (0 bytes)" in skipped["nested/zero.jpg"]
    assert "text file" in skipped["nested/car.jpg"]
    assert "HTML" in skipped["nested/page.jpg"]
    assert report["duplicates"] == [{"path": "root/inner/images/car_a_copy.jpg",
                                     "duplicate_of": "root/inner/images/car_a.jpg"}]
    flagged = {e["path"]: " ".join(e["notes"]) for e in report["flagged"]}
    assert "transparency" in flagged["alpha/rgba.png"]
    assert "16-bit" in flagged["deep/deep16.png"]
    assert "grayscale" in flagged["gray.png"]
    assert "upscaled from 10x10" in flagged["tiny.png"]
    ignored = {e["path"]: e["reason"] for e in report["ignored"]}
    assert set(ignored) == {"readme.txt", ".DS_Store"}
    assert result.count == 9 and result.skipped == 4 and result.duplicates == 1
    assert result.upscaled == 1 and result.ignored == 2
    assert "prepared 9 images 32x32x3" in result.summary()

    images = load_cache(result.dst)
    manifest = read_manifest(result.dst)
    assert images.shape == (9, 32, 32, 3) and images.dtype == np.uint8
    row_of(manifest, "trailing.jpg")  # bytes after the end marker: complete, kept
    assert "voiture_é_車.jpg" in by_path(manifest["sources"])  # unicode path decoded
    rgba = images[row_of(manifest, "alpha/rgba.png")]
    assert (rgba[16, 2] == (255, 0, 0)).all()  # red stays red: RGB order, not BGR
    assert (rgba[16, 29] == 255).all()  # transparent -> white
    assert (images[row_of(manifest, "deep/deep16.png")] == 200).all()  # 16-bit v*257 -> v
    gray = images[row_of(manifest, "gray.png")]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()
    assert (images[row_of(manifest, "blue.png")] == (0, 0, 255)).all()
    assert manifest["changes"]["full_reprepare"] == "no previous cache"
    entry = by_path(manifest["sources"])["root/inner/images/car_b.jpg"]
    assert (entry["width"], entry["height"]) == (70, 90)


def test_cache_round_trips_exactly_across_shards(tmp_path: Path, monkeypatch):
    src = tmp_path / "pngs"
    originals = [noise(64, 64, seed) for seed in range(10)]
    for i, img in enumerate(originals):
        write_image(src / f"img_{i:02d}.png", img)
    monkeypatch.setattr(cache, "SHARD_BYTES", 3 * 64 * 64 * 3)  # 3 images per shard
    result = prepare(src, tmp_path / "cache", size=64, workers=1, progress=False)
    manifest = read_manifest(result.dst)
    assert [s["count"] for s in manifest["shards"]] == [3, 3, 3, 1]
    expected = np.stack([cv2.cvtColor(img, cv2.COLOR_BGR2RGB) for img in originals])
    np.testing.assert_array_equal(load_cache(result.dst), expected)

    gray = prepare(src, tmp_path / "gray", size=64, channels=1, workers=1, progress=False)
    expected_gray = np.stack([cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) for img in originals])
    np.testing.assert_array_equal(load_cache(gray.dst)[..., 0], expected_gray)


def test_fit_modes(tmp_path: Path):
    """A 40x80 (h x w) photo of three vertical colour bands, squared three ways."""
    img = np.zeros((40, 80, 3), np.uint8)
    img[:, :20], img[:, 20:60], img[:, 60:] = (255, 0, 0), (0, 255, 0), (0, 0, 255)  # BGR
    write_image(tmp_path / "src/bands.png", img)
    out = {}
    for fit in decode.FITS:
        result = prepare(tmp_path / "src", tmp_path / fit, size=20, fit=fit, progress=False)
        out[fit] = load_cache(result.dst)[0].astype(int)
    assert (out["center_crop"] == (0, 255, 0)).all()  # only the green middle survives
    assert (out["pad"][:5] == 0).all() and (out["pad"][-5:] == 0).all()  # black bars
    assert (out["pad"][10, 1] == (0, 0, 255)).all() and (out["pad"][10, -2] == (255, 0, 0)).all()
    assert (out["stretch"][:, 1] == (0, 0, 255)).all() and (out["stretch"][:, -1] == (255, 0, 0)).all()


def exif_rotated_jpeg(img: np.ndarray, orientation: int) -> bytes:
    """JPEG bytes of img with an EXIF APP1 segment holding only the orientation tag."""
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    tiff = (b"II*\x00" + (8).to_bytes(4, "little") + (1).to_bytes(2, "little")
            + (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little")
            + (1).to_bytes(4, "little") + orientation.to_bytes(2, "little") + b"\x00\x00"
            + (0).to_bytes(4, "little"))
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    raw = buf.tobytes()
    return raw[:2] + app1 + raw[2:]


@pytest.mark.parametrize("height", [40, 320])  # full-size decode, and the 1/4-scale fast path
def test_exif_orientation_is_applied(tmp_path: Path, height: int):
    img = np.zeros((height, 2 * height, 3), np.uint8)
    img[:, :height] = (0, 0, 255)  # left half red, right half blue (BGR)
    img[:, height:] = (255, 0, 0)
    (tmp_path / "src").mkdir()
    (tmp_path / "src/phone.jpg").write_bytes(exif_rotated_jpeg(img, 6))  # 6: turn 90 deg cw
    result = prepare(tmp_path / "src", tmp_path / "cache", size=40, progress=False)
    out = load_cache(result.dst)[0].astype(int)
    # Turned clockwise, the left (red) half is on top; unturned, it would be on the left.
    assert np.abs(out[4, 20] - (255, 0, 0)).max() < 30
    assert np.abs(out[35, 20] - (0, 0, 255)).max() < 30
    entry = read_manifest(result.dst)["sources"][0]
    assert (entry["width"], entry["height"]) == (height, 2 * height)


def test_large_jpeg_fast_path_matches_full_decode(tmp_path: Path):
    """Decoding at 1/4 scale then area-resizing ~= full decode then area-resizing."""
    img = smooth(480, 640, 7)
    write_image(tmp_path / "src/big.jpg", img)
    result = prepare(tmp_path / "src", tmp_path / "cache", size=64, progress=False)
    full = cv2.imread(str(tmp_path / "src/big.jpg"))[:, 80:560]
    reference = cv2.cvtColor(cv2.resize(full, (64, 64), interpolation=cv2.INTER_AREA),
                             cv2.COLOR_BGR2RGB)
    diff = np.abs(load_cache(result.dst)[0].astype(int) - reference.astype(int))
    assert diff.mean() < 2.0 and diff.max() < 20


def test_incremental_rerun_decodes_only_new_and_changed(tmp_path: Path, monkeypatch):
    src = tmp_path / "src"
    for i in range(6):
        write_image(src / f"sub/img_{i}.png", noise(24, 24, i))
    dst = tmp_path / "cache"
    prepare(src, dst, size=16, workers=1, progress=False)
    manifest_mtime = (dst / "manifest.json").stat().st_mtime_ns

    again = prepare(src, dst, size=16, workers=1, progress=False)
    assert again.up_to_date and again.decoded == 0
    assert (dst / "manifest.json").stat().st_mtime_ns == manifest_mtime  # nothing rewritten
    assert "up to date" in again.summary()

    write_image(src / "sub/img_new.png", noise(24, 24, 99))
    (src / "sub/img_2.png").unlink()
    touched = src / "sub/img_4.png"
    stat = touched.stat()
    os.utime(touched, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    decoded = []
    original = preparing.process_file
    monkeypatch.setattr(preparing, "process_file",
                        lambda path, *a: decoded.append(Path(path).name) or original(path, *a))
    result = prepare(src, dst, size=16, workers=1, progress=False)
    changes = read_manifest(dst)["changes"]
    assert changes["added"] == ["sub/img_new.png"]
    assert changes["deleted"] == ["sub/img_2.png"]
    assert changes["changed"] == ["sub/img_4.png"]
    assert changes["decoded"] == ["sub/img_4.png", "sub/img_new.png"]
    assert changes["full_reprepare"] is None and changes["reused"] == 4
    assert sorted(decoded) == ["img_4.png", "img_new.png"]
    assert (result.added, result.changed, result.deleted, result.reused) == (1, 1, 1, 4)

    fresh = prepare(src, tmp_path / "fresh", size=16, workers=1, progress=False)
    np.testing.assert_array_equal(load_cache(dst), load_cache(fresh.dst))

    resized = prepare(src, dst, size=8, workers=1, progress=False)
    assert resized.full_reprepare == "options changed: size 16 -> 8"
    assert read_manifest(dst)["changes"]["full_reprepare"] == "options changed: size 16 -> 8"
    assert load_cache(dst).shape == (6, 8, 8, 3)


def test_duplicate_takes_over_when_its_original_is_deleted(tmp_path: Path):
    src = tmp_path / "src"
    data = write_image(src / "a.png", noise(16, 16, 1))
    (src / "b.png").write_bytes(data)
    write_image(src / "c.png", noise(16, 16, 2))
    dst = tmp_path / "cache"
    assert prepare(src, dst, size=16, progress=False).duplicates == 1
    (src / "a.png").unlink()
    result = prepare(src, dst, size=16, progress=False)
    manifest = read_manifest(dst)
    assert result.count == 2 and result.duplicates == 0
    assert manifest["changes"]["decoded"] == ["b.png"]  # its pixels were not in the cache
    np.testing.assert_array_equal(load_cache(dst)[row_of(manifest, "b.png")],
                                  cv2.cvtColor(noise(16, 16, 1), cv2.COLOR_BGR2RGB))


def test_worker_threads_give_the_same_cache_and_report(messy: Path, tmp_path: Path):
    for i in range(40):  # more files than the read-ahead window of 2 workers
        write_image(messy / "many" / f"{i:03d}.jpg", smooth(40, 56, i))
    one = prepare(messy, tmp_path / "one", size=16, workers=1, progress=False)
    for workers in (2, 16):  # reading threads ahead of one decoding thread per core
        many = prepare(messy, tmp_path / f"w{workers}", size=16, workers=workers,
                       progress=False)
        np.testing.assert_array_equal(load_cache(one.dst), load_cache(many.dst))
        reports = [json.loads(r.report_path.read_text()) for r in (one, many)]
        for key in ("skipped", "duplicates", "flagged"):
            assert reports[0][key] == reports[1][key], key


def _two_versions(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    src = tmp_path / "src"
    for i in range(4):
        write_image(src / f"{i}.png", noise(16, 16, i))
    dst = tmp_path / "cache"
    prepare(src, dst, size=16, progress=False)
    old = load_cache(dst)
    for i in range(4, 9):
        write_image(src / f"{i}.png", noise(16, 16, i))
    return src, dst, old


def test_failed_prepare_leaves_the_old_cache_intact(tmp_path: Path, monkeypatch):
    src, dst, old = _two_versions(tmp_path)
    old_manifest = (dst / "manifest.json").read_bytes()
    monkeypatch.setattr(cache, "SHARD_BYTES", 2 * 16 * 16 * 3)
    real_write = cache._write_shard
    calls = []

    def crash_on_second_shard(path, images):
        calls.append(path.name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_write(path, images)

    monkeypatch.setattr(cache, "_write_shard", crash_on_second_shard)
    with pytest.raises(DataError, match="could not write the cache into .*No space left"):
        prepare(src, dst, size=16, progress=False)
    assert calls == ["images_000.npy", "images_001.npy"]
    np.testing.assert_array_equal(load_cache(dst), old)
    assert (dst / "manifest.json").read_bytes() == old_manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "src"]  # no temp folder left

    monkeypatch.setattr(cache, "_write_shard", real_write)
    assert prepare(src, dst, size=16, progress=False).count == 9


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_killed_prepare_leaves_the_old_cache_intact(tmp_path: Path):
    src, dst, old = _two_versions(tmp_path)
    child = textwrap.dedent(f"""
        import sys, time
        from cargan_tf.data import cache
        from cargan_tf.data.prepare import prepare
        def stall(path, images):
            print("writing", flush=True)
            time.sleep(60)
        cache._write_shard = stall
        prepare({str(src)!r}, {str(dst)!r}, size=16, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=REPO, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".cache.tmp-")]
    assert leftovers == [f".cache.tmp-{proc.pid}"]  # the killed run's unfinished cache
    np.testing.assert_array_equal(load_cache(dst), old)
    assert prepare(src, dst, size=16, progress=False).count == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "src"]  # cleaned up


def test_swap_cut_between_its_two_renames_is_recovered(tmp_path: Path):
    src, dst, old = _two_versions(tmp_path)
    dead_pid = 2**22 + 12345  # above Linux's pid_max: no such process
    # Killed after moving the old cache aside, before the new one moved in: old comes back.
    os.replace(dst, tmp_path / f".cache.old-{dead_pid}")
    np.testing.assert_array_equal(load_cache(dst), old)
    # Killed after the new manifest was written (the commit point): the new one moves in.
    new = prepare(src, tmp_path / "elsewhere", size=16, progress=False)
    os.replace(new.dst, tmp_path / f".cache.tmp-{dead_pid}")
    assert load_cache(dst).shape == (9, 16, 16, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "src"]


def _prepare_in_another_process(src: Path, dst: Path) -> None:
    """A second prepare (another notebook on the same Drive folder) run to its end."""
    subprocess.run([sys.executable, "-c", "import sys; from cargan_tf.data.prepare import "
                    "prepare; prepare(sys.argv[1], sys.argv[2], size=16, progress=False)",
                    str(src), str(dst)], cwd=REPO, check=True, timeout=120)


def _twin_commits_first(monkeypatch, src: Path, dst: Path, then=None) -> None:
    """While this process writes its manifest, another prepare of `src` commits into `dst`;
    `then` (if given) runs after that, inside the same write."""
    real_write = cache._write_json

    def write(path, obj):
        real_write(path, obj)
        if path.name == "manifest.json" and path.parent.name.startswith(f".{dst.name}.tmp-"):
            monkeypatch.setattr(cache, "_write_json", real_write)
            _prepare_in_another_process(src, dst)
            if then:
                then()

    monkeypatch.setattr(cache, "_write_json", write)


def test_two_prepares_of_one_folder_at_once_both_succeed_and_keep_the_first(
        tmp_path: Path, monkeypatch):
    src = tmp_path / "src"
    for i in range(5):
        write_image(src / f"{i}.png", noise(16, 16, i))
    dst = tmp_path / "cache"
    theirs = []
    _twin_commits_first(monkeypatch, src, dst,
                        then=lambda: theirs.append((dst / "images_000.npy").stat().st_ino))
    result = prepare(src, dst, size=16, progress=False)  # once failed: "Directory not empty"
    assert result.count == 5
    # the other process's cache stays in place (it may be reading it), not swapped for ours
    assert (dst / "images_000.npy").stat().st_ino == theirs[0]
    assert load_cache(dst).shape == (5, 16, 16, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "src"]  # no temp folder left


def test_the_other_prepare_landing_inside_the_swap_is_kept_too(tmp_path: Path, monkeypatch):
    src, dst, _ = _two_versions(tmp_path)
    first = load_cache(dst)
    real_swap = cache._swap_in

    def swap_loses_the_race(new, dst_):
        # the other process's rename lands between _swap_in's look at dst and its own rename
        monkeypatch.setattr(cache, "_swap_in", real_swap)
        _prepare_in_another_process(src, dst)
        raise OSError(39, "Directory not empty")

    monkeypatch.setattr(cache, "_swap_in", swap_loses_the_race)
    assert prepare(src, dst, size=16, progress=False).count == 9
    assert load_cache(dst).shape == (9, 16, 16, 3)
    np.testing.assert_array_equal(load_cache(dst)[:4], first)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "src"]


def test_a_different_cache_landing_inside_the_swap_is_a_clear_error(tmp_path: Path, monkeypatch):
    src, dst, _ = _two_versions(tmp_path)
    other = tmp_path / "other"
    for i in range(3):
        write_image(other / f"{i}.png", noise(16, 16, 50 + i))
    real_swap = cache._swap_in

    def swap_loses_the_race(new, dst_):
        monkeypatch.setattr(cache, "_swap_in", real_swap)
        shutil.rmtree(dst)
        _prepare_in_another_process(other, dst)
        raise OSError(39, "Directory not empty")

    monkeypatch.setattr(cache, "_swap_in", swap_loses_the_race)
    with pytest.raises(DataError, match=r"another prepare wrote .*cache while this one ran "
                                        r"\(from .*other.*run this again"):
        prepare(src, dst, size=16, progress=False)
    assert load_cache(dst).shape == (3, 16, 16, 3)   # the other one's, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "other", "src"]


def test_clear_errors_for_unusable_sources(tmp_path: Path):
    with pytest.raises(DataError, match=r"does not exist"):
        prepare(tmp_path / "missing", tmp_path / "cache", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no image files in .*empty: it is empty"):
        prepare(tmp_path / "empty", tmp_path / "cache", progress=False)
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "a.txt").write_text("a")
    (texts / "b.csv").write_text("b")
    with pytest.raises(DataError, match=r"no image files .* 2 other entries"):
        prepare(texts, tmp_path / "cache", progress=False)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"")
    (broken / "b.png").write_text("<html></html>")
    with pytest.raises(DataError, match=r"no decodable image in .*broken: all 2 image files"):
        prepare(broken, tmp_path / "cache", progress=False)
    with pytest.raises(DataError, match="is a file"):
        prepare(broken / "a.jpg", tmp_path / "cache", progress=False)
    with pytest.raises(DataError, match="channels must be 1"):
        prepare(broken, tmp_path / "cache", channels=2, progress=False)
    with pytest.raises(DataError, match="fit must be one of"):
        prepare(broken, tmp_path / "cache", fit="zoom", progress=False)
    assert not (tmp_path / "cache").exists()


def test_destination_that_is_not_a_cache_is_left_alone(tmp_path: Path):
    src = tmp_path / "src"
    write_image(src / "a.png", noise(16, 16, 0))
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "holiday.jpg").write_bytes(b"precious")
    with pytest.raises(DataError, match="not a prepared cache .*holiday.jpg"):
        prepare(src, photos, size=16, progress=False)
    assert (photos / "holiday.jpg").read_bytes() == b"precious"
    with pytest.raises(DataError, match="is the source folder"):
        prepare(src, src, size=16, progress=False)
    with pytest.raises(DataError, match="contains the source folder"):
        prepare(src, tmp_path, size=16, progress=False)


def test_cache_inside_the_source_folder_is_not_scanned(tmp_path: Path):
    src = tmp_path / "src"
    write_image(src / "a.png", noise(16, 16, 0))
    first = prepare(src, src / "prepared", size=16, progress=False)
    assert first.ignored == 0
    assert prepare(src, src / "prepared", size=16, progress=False).up_to_date


def test_load_cache_errors_name_the_problem(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        load_cache(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="no manifest.json"):
        load_cache(tmp_path / "plain")
    write_image(tmp_path / "src/a.png", noise(16, 16, 0))
    dst = prepare(tmp_path / "src", tmp_path / "cache", size=16, progress=False).dst
    np.save(dst / "images_000.npy", np.zeros((2, 16, 16, 3), np.uint8))
    with pytest.raises(DataError, match="modified by hand"):
        load_cache(dst)
    # A damaged previous cache means a full re-prepare, not a crash.
    result = prepare(tmp_path / "src", dst, size=16, progress=False)
    assert result.full_reprepare.startswith("previous cache unreadable")
    assert load_cache(dst).shape == (1, 16, 16, 3)


def test_prepare_command_prints_summary_and_report(tmp_path: Path, capsys):
    write_image(tmp_path / "src/a.png", noise(20, 20, 0))
    code = main(["prepare", str(tmp_path / "src"), str(tmp_path / "cache"), "--size", "16",
                 "--no-progress"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith("prepared 1 images 16x16x3 (center_crop)")
    assert out[1] == f"report: {tmp_path / 'cache' / 'prepare_report.json'}"
    assert main(["prepare", str(tmp_path / "nope"), str(tmp_path / "c2")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_real_stanford_cars_photos(shared_data: Path, tmp_path: Path):
    photos = sorted((shared_data / "stanford_cars_3k").glob("*.jpg"))[:200]
    src = tmp_path / "cars"
    src.mkdir()
    for photo in photos:
        (src / photo.name).symlink_to(photo)
    result = prepare(src, tmp_path / "cache", size=64, workers=2, progress=False)
    assert result.count + result.duplicates == 200 and result.skipped == 0
    images = load_cache(result.dst)
    assert images.shape == (result.count, 64, 64, 3)
    # Independent reference for one photo: imread, centre square, area resize, RGB.
    bgr = cv2.imread(str(photos[0]))
    side = min(bgr.shape[:2])
    top, left = (bgr.shape[0] - side) // 2, (bgr.shape[1] - side) // 2
    square = bgr[top : top + side, left : left + side]
    reference = cv2.cvtColor(cv2.resize(square, (64, 64), interpolation=cv2.INTER_AREA),
                             cv2.COLOR_BGR2RGB)
    row = row_of(read_manifest(result.dst), photos[0].name)
    np.testing.assert_array_equal(images[row], reference)


def test_a_folder_of_small_photos_gets_a_warning_that_names_their_size(tmp_path: Path, capsys):
    # 32x32 thumbnails (like CIFAR's or Tiny ImageNet's cars) prepared at 64: every image is
    # upscaled, which one count in the summary line hides; the user must be told what to do.
    for i in range(9):
        write_image(tmp_path / f"small/{i}.png", noise(32, 32, i))
    write_image(tmp_path / "small/big.png", noise(80, 80, 99))
    code = main(["prepare", str(tmp_path / "small"), str(tmp_path / "c"), "--size", "64",
                 "--no-progress"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[2].startswith("warning: 9 of 10 images (90%) are smaller than 64x64 "
                             "(most often 32x32) and were upscaled")
    assert "use 32x32 instead (prepare --size 32) or larger photos" in out[2]
    assert str(tmp_path / "c" / "prepare_report.json") in out[2]
    # An up-to-date rerun (nothing decoded) still says it; a training run names its own flag.
    again = prepare(tmp_path / "small", tmp_path / "c", size=64, progress=False)
    assert again.up_to_date
    assert "use 32x32 instead (train --image-size 32)" in \
        again.upscale_warning("train --image-size {}")
    # Too small for any training size: only larger photos help.
    for i in range(3):
        write_image(tmp_path / f"tiny/{i}.png", noise(12, 10, i))
    tiny = prepare(tmp_path / "tiny", tmp_path / "c3", size=32, progress=False)
    assert "(most often 10x12)" in tiny.upscale_warning() and "use larger photos" in \
        tiny.upscale_warning()


def test_wide_photos_cut_by_center_crop_get_a_warning_that_names_the_fit(tmp_path: Path, capsys):
    # Side views 100x40 (like UIUC's cars): center_crop keeps their middle 40x40, no bumpers or
    # wheels; one count nowhere, so the user must be told, with the fit that keeps them whole.
    for i in range(9):
        write_image(tmp_path / f"wide/{i}.png", noise(40, 100, i))
    write_image(tmp_path / "wide/tall.png", noise(90, 40, 98))  # 40x90 counts too
    write_image(tmp_path / "wide/photo.png", noise(60, 80, 99))  # 4:3 is not cut much
    code = main(["prepare", str(tmp_path / "wide"), str(tmp_path / "c"), "--size", "32",
                 "--no-progress"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and len(out) == 3, out
    assert out[2].startswith("warning: 10 of 11 images (91%) have one side at least twice the "
                             "other (most often 100x40), and center_crop kept only their middle "
                             "square"), out[2]
    assert "use --fit pad (bands fill" in out[2]
    flagged = {f["path"]: f["notes"] for f in
               json.loads((tmp_path / "c" / "prepare_report.json").read_text())["flagged"]}
    assert "wide: 40x90, center_crop kept its middle square" in flagged["tall.png"]
    assert "photo.png" not in flagged
    # an up-to-date rerun still says it; pad keeps whole pictures and says nothing
    again = prepare(tmp_path / "wide", tmp_path / "c", size=32, progress=False)
    assert again.up_to_date and "fit = 'pad'" in again.crop_warning("fit = '{}'")
    padded = prepare(tmp_path / "wide", tmp_path / "p", size=32, fit="pad", progress=False)
    assert padded.wide == 0 and padded.crop_warning() is None
    # a crop box is what gets squared: a wide box in a square photo is wide
    box = decode.decode_file(np.frombuffer(write_image(tmp_path / "sq.png", noise(90, 90, 7)),
                                           np.uint8), 32, 3, "center_crop", (0, 0, 90, 30))
    assert [n for n in box["notes"] if n.startswith("wide")] == \
        ["wide: 90x30, center_crop kept its middle square"]


def test_a_few_small_photos_in_a_large_folder_stay_a_count(tmp_path: Path):
    # One upscaled image of eleven is under a tenth: the summary's count is enough.
    for i in range(10):
        write_image(tmp_path / f"src/{i}.png", noise(40, 40, i))
    write_image(tmp_path / "src/small.png", noise(20, 20, 50))
    result = prepare(tmp_path / "src", tmp_path / "c", size=32, progress=False)
    assert result.upscaled == 1
    assert result.upscale_warning() is None
    write_image(tmp_path / "src/wide.png", noise(40, 100, 51))  # one wide photo of twelve
    result = prepare(tmp_path / "src", tmp_path / "c", size=32, progress=False)
    assert result.wide == 1 and result.crop_warning() is None
