"""download: a local HTTP server on 127.0.0.1 serves good images, 404s, slow and bad answers."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np
import pytest

from cargan_tf.cli import main
from cargan_tf.data.download import download, read_url_list
from cargan_tf.errors import DataError

from image_bombs import png_header_bomb


def jpeg(seed: int) -> bytes:
    small = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", cv2.resize(small, (48, 32), interpolation=cv2.INTER_CUBIC))
    return buf.tobytes()


PNG = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
SLOW_S = 1.5  # the slow endpoint answers after this long; clients time out at 0.4 s


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.hits: Counter[str] = Counter()
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, *args):  # keep test output clean
        pass

    def send(self, status: int, body: bytes, content_type: str = "image/jpeg") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        server, path = self.server, self.path
        with server.lock:
            server.hits[path] += 1
            hits = server.hits[path]
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            if path.startswith("/good/"):
                self.send(200, jpeg(int(path.split("/")[2].split(".")[0])))
            elif path.startswith("/delay/"):
                time.sleep(0.15)
                self.send(200, jpeg(100 + int(path.split("/")[2])))
            elif path == "/with%20space.jpg":  # the client must have quoted the space
                self.send(200, jpeg(11))
            elif path == "/image.png":
                self.send(200, PNG, "image/png")
            elif path == "/slow.jpg":
                time.sleep(SLOW_S)
                self.send(200, jpeg(0))
            elif path == "/flaky.jpg":  # 503 once, then fine
                self.send(503, b"busy", "text/plain") if hits == 1 else self.send(200, jpeg(7))
            elif path == "/page.jpg":  # an HTML error page served as an image
                self.send(200, b"<!DOCTYPE html><html><body>Listing removed</body></html>")
            elif path == "/cut.jpg":
                self.send(200, jpeg(8)[:300])
            elif path == "/huge.jpg":
                self.send(200, jpeg(9) + b"\0" * 60_000)
            elif path == "/bomb.png":  # 20000x20000 declared in a few hundred bytes
                self.send(200, png_header_bomb(20000, 20000), "image/png")
            else:
                self.send(404, b"not found", "text/plain")
        finally:
            with server.lock:
                server.in_flight -= 1


@pytest.fixture
def server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


FAST = dict(workers=4, retries=1, timeout=0.4, backoff=0.01, max_bytes=50_000, progress=False)


def test_every_kind_of_failure_is_reported(server: Server, tmp_path: Path):
    rows = [
        ("car1", server.url("/good/1.jpg"), "sedan"),
        ("car2", server.url("/good/2.jpg"), "suv"),
        ("car3", server.url("/image.png"), "suv"),
        ("car4", server.url("/with space.jpg"), "suv"),
        ("gone", server.url("/missing.jpg"), "sedan"),
        ("slow", server.url("/slow.jpg"), "sedan"),
        ("flaky", server.url("/flaky.jpg"), "sedan"),
        ("page", server.url("/page.jpg"), "sedan"),
        ("cut", server.url("/cut.jpg"), "sedan"),
        ("huge", server.url("/huge.jpg"), "sedan"),
        ("local", "file:///etc/passwd", "sedan"),
        ("again", server.url("/good/1.jpg"), "sedan"),  # same URL as car1
    ]
    listing = tmp_path / "list.csv"
    listing.write_text("id,url,label\n" + "".join(f"{i},{u},{lab}\n" for i, u, lab in rows))
    start = time.perf_counter()
    result = download(listing, tmp_path / "cars", **FAST)
    assert time.perf_counter() - start < SLOW_S * 2  # the slow answer was not waited for

    assert (result.fetched, result.skipped, result.failed, result.duplicates) == (5, 0, 6, 1)
    for rel in ("sedan/car1.jpg", "suv/car2.jpg", "suv/car3.png", "suv/car4.jpg",
                "sedan/flaky.jpg"):
        assert cv2.imread(str(tmp_path / "cars" / rel)) is not None, rel
    failures = {f["id"]: f for f in result.failures}
    assert failures["gone"]["kind"] == "http_error" and failures["gone"]["http_status"] == 404
    assert failures["slow"]["kind"] == "timeout" and failures["slow"]["attempts"] == 2
    assert failures["page"]["kind"] == "not_an_image" and "HTML" in failures["page"]["reason"]
    assert failures["cut"]["kind"] == "not_an_image" and "truncated" in failures["cut"]["reason"]
    assert failures["huge"]["kind"] == "too_large"
    assert failures["local"]["kind"] == "bad_url" and failures["local"]["attempts"] == 0
    # Retries only where they can help: 404, non-images and too-large files are asked once.
    assert server.hits["/missing.jpg"] == 1 and server.hits["/page.jpg"] == 1
    assert server.hits["/huge.jpg"] == 1 and server.hits["/good/1.jpg"] == 1
    assert server.hits["/flaky.jpg"] == 2 and server.hits["/slow.jpg"] == 2

    report = json.loads((tmp_path / "cars" / "download_report.json").read_text())
    assert report["counts"] == {"rows": 12, "fetched": 5, "skipped": 0, "failed": 6,
                                "duplicates": 1}
    assert {f["id"] for f in report["failures"]} == set(failures)
    assert report["duplicates"] == [{"row": 13, "url": server.url("/good/1.jpg"),
                                     "same_as_row": 2}]
    assert not list((tmp_path / "cars").rglob("*.part"))
    assert "5 images" in result.summary() and "1 http_error" in result.summary()


def test_a_pixel_bomb_is_refused_before_decoding_and_reported(server: Server, tmp_path: Path,
                                                              monkeypatch):
    monkeypatch.delenv("CARGAN_MAX_MEGAPIXELS", raising=False)
    listing = tmp_path / "list.csv"
    listing.write_text(f"id,url\nbomb,{server.url('/bomb.png')}\nok,{server.url('/good/1.jpg')}\n")
    result = download(listing, tmp_path / "cars", **FAST)
    assert (result.fetched, result.failed) == (1, 1)
    (failure,) = json.loads((tmp_path / "cars" / "download_report.json").read_text())["failures"]
    assert failure["kind"] == "too_many_pixels" and failure["attempts"] == 1
    assert failure["reason"].startswith("too many pixels: 20000x20000 PNG is 400 megapixels, "
                                        "over the 25 MP limit")
    assert "--max-megapixels 400" in failure["reason"]
    assert not (tmp_path / "cars" / "bomb.png").exists()
    again = download(listing, tmp_path / "cars", **FAST, max_megapixels=0.0001)  # 100 pixels
    assert again.skipped == 1 and again.failed == 1  # the good one is kept, not re-checked


def test_rerun_skips_what_is_already_there(server: Server, tmp_path: Path):
    listing = tmp_path / "urls.txt"  # no header: one URL per line
    urls = [server.url(f"/good/{i}.jpg") for i in range(3)] + [server.url("/missing.jpg")]
    listing.write_text("\n".join(urls) + "\n")
    first = download(listing, tmp_path / "dl", **FAST)
    assert (first.fetched, first.failed) == (3, 1)
    assert len(list((tmp_path / "dl").glob("*.jpg"))) == 3  # named by a hash of the URL
    second = download(listing, tmp_path / "dl", **FAST)
    assert (second.fetched, second.skipped, second.failed) == (0, 3, 1)
    assert [server.hits[f"/good/{i}.jpg"] for i in range(3)] == [1, 1, 1]


def test_concurrency_is_bounded(server: Server, tmp_path: Path):
    listing = tmp_path / "list.csv"
    listing.write_text("image_url\n" + "".join(server.url(f"/delay/{i}") + "\n"
                                               for i in range(8)))
    result = download(listing, tmp_path / "dl", **{**FAST, "workers": 2})
    assert result.fetched == 8
    assert server.max_in_flight == 2


def test_url_list_errors(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        read_url_list(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("\n\n")
    with pytest.raises(DataError, match="is empty"):
        read_url_list(tmp_path / "empty.csv")
    (tmp_path / "cols.csv").write_text("name,price\ncar,100\n")
    with pytest.raises(DataError, match=r"no URL column .*--url-column"):
        read_url_list(tmp_path / "cols.csv")
    (tmp_path / "named.csv").write_text("name,photo_link\na/b c,http://x/1.jpg\n")
    (item,) = read_url_list(tmp_path / "named.csv", url_column="photo_link")
    assert item.url == "http://x/1.jpg" and item.id == "a_b_c" and item.row == 2


def test_download_command(server: Server, tmp_path: Path, capsys):
    listing = tmp_path / "list.csv"
    listing.write_text(f"url\n{server.url('/good/5.jpg')}\n")
    code = main(["download", str(listing), str(tmp_path / "dl"), "--no-progress",
                 "--timeout", "2", "--retries", "0"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith(f"downloaded 1 images into {tmp_path / 'dl'}")
    assert out[1] == f"report: {tmp_path / 'dl' / 'download_report.json'}"
    listing.write_text(f"url\n{server.url('/missing.jpg')}\n")
    assert main(["download", str(listing), str(tmp_path / "dl2"), "--no-progress",
                 "--retries", "0"]) == 1
