"""The Lambda handler (recorded API Gateway events), the local server, and its page in Chromium."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cargan_tf import serve
from cargan_tf.export import ServingModel, export, load_serving_model
from cargan_tf.viz import decode_png
from cargan_tf.viz import image_grid as viz_image_grid

FIXTURES = Path(__file__).parent / "fixtures"


def load_event(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def tflite_path(tiny_run, tmp_path_factory) -> Path:
    """The tiny run's generator exported as LiteRT (what a Lambda container would ship)."""
    out = tmp_path_factory.mktemp("serve_export")
    export(tiny_run, out, ("litert",), verbose=False)
    return out / "serving_float16.tflite"


@pytest.fixture(scope="module")
def model(tflite_path) -> ServingModel:
    return load_serving_model(tflite_path)


@pytest.fixture
def lambda_env(monkeypatch, tflite_path):
    """CARGAN_MODEL pointing at the export, and a fresh per-container model cache."""
    monkeypatch.setenv(serve.MODEL_ENV, str(tflite_path))
    monkeypatch.setattr(serve, "_MODELS", {})
    return tflite_path


def png_of(response: dict) -> np.ndarray:
    assert response["statusCode"] == 200, response["body"]
    assert response["isBase64Encoded"] is True
    assert response["headers"]["Content-Type"] == "image/png"
    return decode_png(base64.b64decode(response["body"]))  # OpenCV: an independent decoder


def error_of(response: dict, status: int) -> str:
    assert response["statusCode"] == status, response
    assert response["isBase64Encoded"] is False
    assert response["headers"]["Content-Type"] == "application/json"
    assert "Traceback" not in response["body"] and 'File "' not in response["body"]
    return json.loads(response["body"])["error"]


# --- the handler with recorded events ----------------------------------------------------------

# fixture -> (expected images, how to draw the same with the model, grid columns)
RECORDED = {
    "apigw_rest_v1_get.json": (4, lambda m: m.images_for_seed(7, 4), None),
    "apigw_rest_v1_post.json": (1, lambda m: m.images_for_seed(42, 1), "png"),
    "apigw_http_v2_get.json": (1, lambda m: m.images_for_seed(42, 1), "png"),
    "apigw_http_v2_post.json": (5, lambda m: m.interpolation(3, 9, 5), 5),
    "direct_invocation.json": (9, lambda m: m.images_for_seed(11, 9), None),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_recorded_event_returns_the_seeds_images(name, lambda_env, model):
    count, draw, layout = RECORDED[name]
    response = serve.lambda_handler(load_event(name), None)
    image = png_of(response)
    assert response["headers"]["X-Cargan-Images"] == str(count)
    expected = draw(model)
    assert len(expected) == count
    if layout == "png":
        assert image.shape == model.image_shape
        np.testing.assert_array_equal(image, expected[0])
    else:  # the grid as cargan_tf.viz draws it (OpenCV-free copy in serve.py)
        np.testing.assert_array_equal(image, viz_image_grid(expected, cols=layout))


def test_rest_and_http_api_events_name_the_same_car(lambda_env):
    rest = png_of(serve.lambda_handler(load_event("apigw_rest_v1_post.json"), None))
    http = png_of(serve.lambda_handler(load_event("apigw_http_v2_get.json"), None))
    np.testing.assert_array_equal(rest, http)  # both ask for seed 42


def test_model_is_loaded_once_per_container(lambda_env, monkeypatch):
    calls = []
    monkeypatch.setattr(serve, "load_serving_model",
                        lambda path: calls.append(path) or load_serving_model(path))
    for _ in range(3):
        png_of(serve.lambda_handler({"seed": 1}, None))
    assert calls == [str(lambda_env)]


def test_random_seed_is_reported_and_reproducible(lambda_env):
    first = serve.lambda_handler({}, None)
    seed = int(first["headers"]["X-Cargan-Seed"])
    assert first["headers"]["Cache-Control"] == "no-store"
    again = serve.lambda_handler({"seed": seed}, None)
    np.testing.assert_array_equal(png_of(first), png_of(again))


# Each invalid input of the issue (and a few more), as query fields / JSON values, with a phrase
# the 400 message must contain (what is allowed).
INVALID = {
    "n=0": ({"n": "0"}, {"n": 0}, "n must be an integer 1..64"),
    "n=10^6": ({"n": "1000000"}, {"n": 10**6}, "n must be an integer 1..64"),
    "seed not an integer": ({"seed": "abc"}, {"seed": "abc"}, "seed must be an integer 0..4294967295"),
    "seed a fraction": ({"seed": "1.5"}, {"seed": 1.5}, "seed must be an integer 0..4294967295"),
    "seed negative": ({"seed": "-3"}, {"seed": -3}, "seed must be an integer 0..4294967295"),
    "seed a boolean": ({"seed": "true"}, {"seed": True}, "seed must be an integer"),
    "unknown format": ({"format": "jpeg"}, {"format": "jpeg"}, "use png (exactly one image) or grid"),
    "png with n>1": ({"n": "3", "format": "png"}, {"n": 3, "format": "png"}, "for n=3 use format=grid"),
    "unknown field": ({"sede": "1"}, {"sede": 1}, "allowed fields are n, seed, format, seed_b, steps"),
    "steps without seed_b": ({"steps": "4"}, {"steps": 4}, "give seed_b"),
    "steps too many": ({"seed_b": "2", "steps": "65"}, {"seed_b": 2, "steps": 65}, "2..64"),
    "png interpolation": ({"seed_b": "2", "format": "png"}, {"seed_b": 2, "format": "png"},
                          "use format=grid"),
    "a file path": ({"model": "/etc/passwd"}, {"model": "/etc/passwd"}, "allowed fields"),
}


def _as_event(version: str, query: dict, direct: dict):
    if version == "direct":
        return direct
    if version == "rest_v1":
        event = load_event("apigw_rest_v1_get.json")
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
        return event
    event = load_event("apigw_http_v2_get.json")
    event["queryStringParameters"] = query
    event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
    return event


@pytest.mark.parametrize("version", ["rest_v1", "http_v2", "direct"])
@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_input_gets_400_saying_what_is_allowed(case, version, lambda_env):
    query, direct, phrase = INVALID[case]
    response = serve.lambda_handler(_as_event(version, query, direct), None)
    assert phrase in error_of(response, 400)
    assert set(json.loads(response["body"])["fields"]) == set(serve.FIELDS)


MALFORMED_BODIES = {
    "not JSON": ("{n: 4", False),
    "a JSON list": ("[1, 2]", False),
    "not base64": ("%%%not-base64%%%", True),
}


@pytest.mark.parametrize("fixture", ["apigw_rest_v1_post.json", "apigw_http_v2_post.json"])
@pytest.mark.parametrize("case", sorted(MALFORMED_BODIES))
def test_malformed_body_gets_400(case, fixture, lambda_env):
    event = load_event(fixture)
    event["body"], event["isBase64Encoded"] = MALFORMED_BODIES[case]
    assert "malformed body" in error_of(serve.lambda_handler(event, None), 400)


def test_other_bad_events(lambda_env):
    assert "JSON object" in error_of(serve.lambda_handler(["n", 4], None), 400)
    event = load_event("apigw_rest_v1_post.json")
    event["body"] = json.dumps({"seed": 1, "pad": "x" * serve.MAX_BODY_BYTES})
    assert "at most 16384" in error_of(serve.lambda_handler(event, None), 413)
    event = load_event("apigw_http_v2_get.json")
    event["requestContext"]["http"]["method"] = "DELETE"
    assert "use GET" in error_of(serve.lambda_handler(event, None), 405)


def test_missing_or_unreadable_model_gets_500_without_traceback(monkeypatch, tmp_path):
    monkeypatch.setattr(serve, "_MODELS", {})
    monkeypatch.delenv(serve.MODEL_ENV, raising=False)
    assert "set the environment variable CARGAN_MODEL" in error_of(
        serve.lambda_handler({"seed": 1}, None), 500)

    monkeypatch.setenv(serve.MODEL_ENV, str(tmp_path / "gone.tflite"))
    assert "model file is missing" in error_of(serve.lambda_handler({"seed": 1}, None), 500)

    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"this is not a flatbuffer" * 10)
    monkeypatch.setenv(serve.MODEL_ENV, str(broken))
    message = error_of(serve.lambda_handler({"seed": 1}, None), 500)
    assert "could not be read" in message and "re-export" in message

    # invalid input is still a 400, whatever the model's state
    assert "1..64" in error_of(serve.lambda_handler({"n": 0}, None), 400)


class NoiseModel(ServingModel):
    """Incompressible images of any size: the worst case for the response-size cap."""

    kind = "noise"

    def __init__(self, image_shape):
        super().__init__(Path("noise"), 4, image_shape)

    def _run(self, z):
        rng = np.random.default_rng(int(abs(z[0, 0]) * 1e6))
        return rng.integers(0, 256, (len(z), *self.image_shape), dtype=np.uint8)


def test_n_times_image_size_is_capped_under_lambdas_6mb():
    model = NoiseModel((256, 256, 3))
    cap = serve.max_images(model.image_shape)
    assert 1 < cap < serve.MAX_N
    largest = serve.api_response({"n": cap, "seed": 1}, lambda: model).to_lambda()
    assert len(json.dumps(largest)) < 6_000_000
    with pytest.raises(serve.ApiError, match=f"at most {cap}") as err:
        serve.api_response({"n": cap + 1, "seed": 1}, lambda: model)
    assert err.value.status == 400 and "6 MB" in str(err.value)
    assert serve.max_images((64, 64, 3)) == serve.MAX_N  # aim64 cars are never capped


@pytest.mark.parametrize("shape", [(19, 23, 3), (16, 16, 1)])
def test_png_encoder_agrees_with_opencv(shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    png = serve.encode_png(image)
    np.testing.assert_array_equal(decode_png(png), image)
    assert len(png) <= serve.png_bound(*shape)
    np.testing.assert_array_equal(serve.image_grid(image[None].repeat(5, 0)),
                                  viz_image_grid(image[None].repeat(5, 0)))


def test_litert_handler_imports_neither_tensorflow_nor_opencv(tflite_path):
    code = ("import sys; from cargan_tf.serve import lambda_handler; "
            "r = lambda_handler({'n': 2, 'seed': 5}, None); assert r['statusCode'] == 200, r; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'cv2'}))")
    env = {**os.environ, serve.MODEL_ENV: str(tflite_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_serve_says_which_export_it_loads_and_that_a_model_is_code(tflite_path):
    """`serve`'s start-up lines: the kind of model, whether an export report vouches for it,
    and the trust note (a SavedModel or .keras file runs the ops it holds)."""
    proc = subprocess.Popen([sys.executable, "-m", "cargan_tf", "serve", str(tflite_path),
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("serving"):
                break
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    text = "\n".join(lines)
    assert lines[0].startswith("loading a LiteRT model (.tflite)"), text
    assert "listed as litert_float16 in" in text and "it agrees with the generator" in text
    assert "trust: a SavedModel is code: loading it runs the TensorFlow ops it holds" in text
    assert "source you trust" in text
    assert lines[-1].startswith("serving the litert model (z of 16 -> 16x16x3 images) at http://")


def test_serving_kind_and_provenance(tflite_path, tmp_path):
    from cargan_tf.export import provenance, serving_kind

    assert serving_kind(tflite_path) == "litert"
    (tmp_path / "saved_model.pb").write_bytes(b"")
    assert serving_kind(tmp_path) == "savedmodel" and serving_kind(tmp_path / "g.keras") == "keras"
    stranger = tmp_path / "downloaded.tflite"
    stranger.write_bytes(tflite_path.read_bytes())
    assert "not listed in an export_report.json" in provenance(stranger)


# --- the local server -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(model):
    srv = serve.make_server(model, "127.0.0.1", 0)  # a free loopback port
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def fetch(server, path: str, body: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(server.url.rstrip("/") + path, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def test_server_answers_the_api_like_the_handler(server, lambda_env):
    status, headers, body = fetch(server, "/api/generate?n=4&seed=7&format=grid")
    assert status == 200 and headers["Content-Type"] == "image/png"
    lambda_png = png_of(serve.lambda_handler(load_event("apigw_rest_v1_get.json"), None))
    np.testing.assert_array_equal(decode_png(body), lambda_png)
    status, _, posted = fetch(server, "/api/generate", json.dumps({"n": 4, "seed": 7}).encode(),
                              {"Content-Type": "application/json"})
    assert status == 200 and posted == body


def test_server_serves_the_gallery_page(server):
    status, headers, page = fetch(server, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'sha256-" in headers["Content-Security-Policy"]
    for element in ('id="grid"', 'id="new-seed"', 'id="walk"', 'type="range"'):
        assert element.encode() in page
    assert b"://" not in page  # no external assets: everything comes from this server


@pytest.mark.parametrize("path, body, status, phrase", [
    ("/api/generate?n=0", None, 400, "1..64"),
    ("/api/generate?format=gif", None, 400, "use png"),
    ("/api/generate?n=2&n=3", None, 400, "more than once"),
    ("/api/generate?path=/etc/passwd", None, 400, "allowed fields"),
    ("/api/generate", b"{oops", 400, "malformed body"),
    ("/api/generate", b"{}" + b" " * (serve.MAX_BODY_BYTES + 1), 413, "at most 16384"),
    ("/../../etc/passwd", None, 404, "no such page"),
    ("/generator.keras", None, 404, "no such page"),
])
def test_server_refuses_bad_requests(server, path, body, status, phrase):
    code, headers, reply = fetch(server, path, body)
    assert code == status and headers["Content-Type"] == "application/json"
    assert phrase in json.loads(reply)["error"]


# --- the page in a real headless Chromium -------------------------------------------------------------

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--no-first-run", "--window-size=1100,1500")


@pytest.fixture
def chromium(tmp_path):
    """Selenium driving the Debian chromium + chromium-driver packages (skips without them)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (browser and driver_path):
        pytest.skip("chromium and chromedriver are not installed "
                    "(apt-get install -y chromium chromium-driver; .ci/run does it)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="the selenium package is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    # explicit driver path: Selenium Manager never tries to download a driver (no network here)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(driver_path))
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait_for_grid(driver, old_src: str | None = None) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    script = ("const g = document.getElementById('grid'); "
              "return g.complete && g.naturalWidth > 0 && g.src !== arguments[0] ? g.src : null;")
    return WebDriverWait(driver, 30).until(lambda d: d.execute_script(script, old_src or ""))


def _element_pixels(driver, element_id: str) -> np.ndarray:
    from selenium.webdriver.common.by import By

    return decode_png(driver.find_element(By.ID, element_id).screenshot_as_png)[..., :3]


def test_chromium_new_seed_changes_the_grid(chromium, server):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chromium.get(server.url)
    first_src = _wait_for_grid(chromium)
    before = _element_pixels(chromium, "grid")
    assert before.std() > 5, "the grid shows no cars"
    np.testing.assert_array_equal(_element_pixels(chromium, "grid"), before)  # a still page is still

    chromium.find_element(By.ID, "new-seed").click()
    second_src = _wait_for_grid(chromium, first_src)
    after = _element_pixels(chromium, "grid")
    assert before.shape == after.shape and "seed=" in second_src
    # the tiny test model draws low-contrast cars: count every pixel that moved at all
    changed = np.abs(before.astype(int) - after.astype(int)).max(axis=-1) > 0
    assert changed.mean() > 0.3, f"only {changed.mean():.1%} of the grid's pixels changed"

    # the slider walks between the two seeds: its last step draws a different car than its first
    WebDriverWait(chromium, 30).until(lambda d: d.execute_script(
        "return document.getElementById('walk-label').textContent !== ''"))
    start = _element_pixels(chromium, "frame")
    chromium.execute_script("const w = document.getElementById('walk'); w.value = w.max; "
                            "w.dispatchEvent(new Event('input'));")
    end = _element_pixels(chromium, "frame")
    assert np.abs(start.astype(int) - end.astype(int)).mean() > 2
    assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]


# --- the design controls: directions and classes in the API and on the page --------------------------

def test_export_writes_the_controls_beside_the_model(tflite_path, model, tiny_run):
    from cargan_tf.directions import sefa_directions
    from cargan_tf.export import CONTROLS_FILE, EXPORT_DIRECTIONS
    from cargan_tf.generate import load_generator

    saved = json.loads((tflite_path.parent / CONTROLS_FILE).read_text())
    assert saved["classes"] == [] and saved["latent_dim"] == model.latent_dim == 16
    report = json.loads((tflite_path.parent / "export_report.json").read_text())
    assert report["controls"] == {"file": CONTROLS_FILE, "latent_dim": 16, "classes": [],
                                  "directions": min(EXPORT_DIRECTIONS, 16)}
    expected = sefa_directions(load_generator(tiny_run)).vectors[:EXPORT_DIRECTIONS]
    np.testing.assert_allclose(model.controls.directions, expected, atol=1e-6)
    # without the file beside it a LiteRT model has seeds only (and still no TensorFlow)
    alone = tflite_path.parent.parent / "alone"
    alone.mkdir(exist_ok=True)
    shutil.copy(tflite_path, alone / tflite_path.name)
    bare = load_serving_model(alone / tflite_path.name)
    assert len(bare.controls.directions) == 0 and bare.latent_dim == 16


STEERED = {  # fields -> the amounts they ask for
    "direction=0&amount=6": ({"direction": "0", "amount": "6"}, {0: 6.0}),
    "directions=0:6,2:-3.5": ({"directions": "0:6,2:-3.5"}, {0: 6.0, 2: -3.5}),
}


@pytest.mark.parametrize("case", sorted(STEERED))
def test_api_moves_the_cars_along_directions(case, lambda_env, model, server):
    fields, amounts = STEERED[case]
    steered = png_of(serve.lambda_handler({"n": 4, "seed": 7, **fields}, None))
    expected = viz_image_grid(model.images_for_seed(7, 4, amounts=amounts))
    np.testing.assert_array_equal(steered, expected)
    plain = png_of(serve.lambda_handler({"n": 4, "seed": 7}, None))
    assert np.abs(steered.astype(int) - plain).mean() > 0.5
    query = "&".join(f"{k}={v}" for k, v in fields.items())
    status, _, body = fetch(server, f"/api/generate?n=4&seed=7&{query}")
    assert status == 200 and np.array_equal(decode_png(body), steered)
    event = load_event("apigw_http_v2_get.json")  # the proxy events carry them as well
    event["queryStringParameters"] = {"n": "4", "seed": "7", **fields}
    np.testing.assert_array_equal(png_of(serve.lambda_handler(event, None)), steered)


STEERING_INVALID = {
    "direction without amount": ({"direction": "0"}, "go together"),
    "amount without direction": ({"amount": "2"}, "go together"),
    "amount not a number": ({"direction": "0", "amount": "left"}, "not a number"),
    "amount too far": ({"direction": "0", "amount": "1e9"}, "amount="),
    "amount out of range": ({"direction": "0", "amount": "25"}, "out of range"),
    "a direction the model lacks": ({"direction": "99", "amount": "1"}, "does not exist"),
    "both forms": ({"direction": "0", "amount": "1", "directions": "1:1"}, "not both"),
    "directions not pairs": ({"directions": "0,1"}, "K:A pairs"),
    "directions twice": ({"directions": "0:1,0:2"}, "twice"),
    "directions too many": ({"directions": ",".join(f"{k}:1" for k in range(9))}, "K:A pairs"),
    "directions amount": ({"directions": "0:nan"}, "not a number"),
    "class of an unconditional model": ({"class": "suv"}, "no classes"),
    "class odd": ({"class": "x" * 100}, "not a class"),
}


@pytest.mark.parametrize("case", sorted(STEERING_INVALID))
def test_bad_steering_gets_400_with_a_json_body(case, lambda_env, server):
    fields, phrase = STEERING_INVALID[case]
    assert phrase in error_of(serve.lambda_handler(fields, None), 400)
    json_fields = {k: (float(v) if k == "amount" and v[0].isdigit() else v) for k, v in fields.items()}
    assert phrase in error_of(serve.lambda_handler(json_fields, None), 400)
    status, headers, body = fetch(server, "/api/generate", json.dumps(fields).encode(),
                                  {"Content-Type": "application/json"})
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert phrase in json.loads(body)["error"]


def test_json_numbers_steer_like_strings(lambda_env):
    as_text = png_of(serve.lambda_handler({"n": 2, "seed": 3, "direction": "1", "amount": "-2.5"}, None))
    as_json = png_of(serve.lambda_handler({"n": 2, "seed": 3, "direction": 1, "amount": -2.5}, None))
    np.testing.assert_array_equal(as_text, as_json)
    assert "not a number" in error_of(serve.lambda_handler(
        {"direction": 1, "amount": True}, None), 400)


def test_the_page_has_a_slider_per_direction(server):
    _, _, page = fetch(server, "/")
    for k in range(serve.PAGE_DIRECTIONS):
        assert f'id="dir-{k}"'.encode() in page
    assert b'id="class"' not in page  # no classes: no selector


@pytest.fixture(scope="module")
def conditional_model(tiny_conditional_run, tmp_path_factory) -> ServingModel:
    out = tmp_path_factory.mktemp("conditional_export")
    export(tiny_conditional_run, out, ("litert",), verbose=False)
    return load_serving_model(out / "serving_float16.tflite")


def test_a_conditional_export_serves_its_classes(conditional_model, tiny_conditional_run):
    from cargan_tf.generate import images_for_seed, load_generator

    model = conditional_model
    assert model.classes == ("sedan", "hatchback", "suv", "pickup", "sports", "van")
    assert model.latent_dim == 16 and model.input_dim == 22
    reply = serve.api_response({"n": 3, "seed": 5, "class": "suv"}, lambda: model)
    assert reply.headers["X-Cargan-Class"] == "suv"
    by_index = serve.api_response({"n": 3, "seed": 5, "class": 2}, lambda: model)
    assert by_index.body == reply.body
    suv = decode_png(reply.body)
    # the LiteRT export draws the class the Keras generator draws (within the export's tolerance)
    keras_suv = images_for_seed(load_generator(tiny_conditional_run), 5, 3, classes=2)
    assert np.abs(model.images_for_seed(5, 3, classes=2).astype(int) - keras_suv).max() <= 4
    np.testing.assert_array_equal(suv, viz_image_grid(model.images_for_seed(5, 3, classes=2)))
    van = decode_png(serve.api_response({"n": 3, "seed": 5, "class": "van"}, lambda: model).body)
    assert not np.array_equal(suv, van)
    for bad, phrase in [("truck", "is unknown"), (6, "out of range")]:
        with pytest.raises(serve.ApiError, match=phrase):
            serve.api_response({"class": bad}, lambda: model)
    page = serve.gallery_page(model, seed=1).body
    assert b'<select id="class">' in page and page.count(b"<option") == 7


def test_chromium_sliders_steer_the_grid(chromium, server):
    from selenium.webdriver.common.by import By

    chromium.get(server.url)
    first_src = _wait_for_grid(chromium)
    before = _element_pixels(chromium, "grid")
    slider = chromium.find_element(By.ID, "dir-0")
    assert slider.get_attribute("type") == "range"
    chromium.execute_script("const s = document.getElementById('dir-0'); s.value = s.max; "
                            "s.dispatchEvent(new Event('input')); s.dispatchEvent(new Event('change'));")
    src = _wait_for_grid(chromium, first_src)
    assert "directions=0:6" in src and f"seed={first_src.split('seed=')[1].split('&')[0]}" in src
    assert chromium.find_element(By.ID, "dir-0-value").text == "6"
    after = _element_pixels(chromium, "grid")
    assert after.shape == before.shape
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 0.5, "the grid did not move"
    assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]


def test_chromium_class_selector_redraws_the_grid(chromium, conditional_model):
    srv = serve.make_server(conditional_model, "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        chromium.get(srv.url)
        first_src = _wait_for_grid(chromium)
        before = _element_pixels(chromium, "grid")
        chromium.execute_script("const c = document.getElementById('class'); c.value = '5'; "
                                "c.dispatchEvent(new Event('change'));")
        src = _wait_for_grid(chromium, first_src)
        assert "class=5" in src
        after = _element_pixels(chromium, "grid")
        assert np.abs(before.astype(int) - after.astype(int)).max(axis=-1).mean() > 0
        assert not [e for e in chromium.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        srv.shutdown()
        srv.server_close()
