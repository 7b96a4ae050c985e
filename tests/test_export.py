"""Exports (.keras, SavedModel, LiteRT float16 / dynamic range) agree with the original generator,
and a seed names the same image through the CLI, the handler, the server and every export."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import math
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cargan_tf import export as ex
from cargan_tf import serve
from cargan_tf.cli import main
from cargan_tf.generate import images_for_seed, load_generator
from cargan_tf.viz import decode_png

ARTEFACTS = ("keras", "savedmodel", "litert_float16", "litert_dynamic_range")


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory) -> tuple[Path, str]:
    """All formats written by the CLI command itself; (folder, what it printed)."""
    out = tmp_path_factory.mktemp("export")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", str(tiny_run), "--out", str(out)]) == 0
    return out, printed.getvalue()


def artefact(out: Path, name: str) -> Path:
    report = json.loads((out / ex.REPORT_FILE).read_text())
    return out / report["exports"][name]["path"]


def grid_cells(grid: np.ndarray, n: int, side: int = 16, pad: int = 2) -> np.ndarray:
    """The n images of a grid PNG (ceil(sqrt(n)) columns, `pad` pixels around each)."""
    cols = math.ceil(math.sqrt(n))
    cells = []
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = pad + r * (side + pad), pad + k * (side + pad)
        cells.append(grid[y:y + side, x:x + side])
    return np.stack(cells)


def within_tolerance(name: str, images: np.ndarray, reference: np.ndarray) -> None:
    diff = np.abs(images.astype(int) - reference.astype(int))
    tol = ex.TOLERANCES[name]
    assert diff.max() <= tol["max_abs_diff"] and diff.mean() <= tol["mean_abs_diff"], \
        f"{name}: max {diff.max()}, mean {diff.mean():.3f} vs {tol}"


def test_export_writes_every_format_and_a_passing_report(exported):
    out, printed = exported
    report = json.loads((out / ex.REPORT_FILE).read_text())
    assert report["ok"] and set(report["exports"]) == set(ARTEFACTS)
    assert report["image_shape"] == [16, 16, 3] and report["latent_dim"] == 16
    for name in ARTEFACTS:
        entry = report["exports"][name]
        assert entry["ok"] and entry["bytes"] == ex.artefact_bytes(out / entry["path"]) > 0
        assert entry["tolerance"] == ex.TOLERANCES[name]
        assert entry["path"] in printed and "MB" in printed  # sizes are printed
    # the keras and SavedModel exports run the generator's own float32 maths
    assert report["exports"]["keras"]["max_abs_diff"] <= 1
    assert report["exports"]["savedmodel"]["max_abs_diff"] <= 1
    # dynamic range stores int8 weights: the smallest file
    sizes = {name: report["exports"][name]["bytes"] for name in ARTEFACTS}
    assert sizes["litert_dynamic_range"] < sizes["litert_float16"] < sizes["keras"]


@pytest.mark.parametrize("name", ARTEFACTS)
def test_each_export_reproduces_the_generator_for_new_seeds(name, exported, tiny_run):
    out, _ = exported
    model = ex.load_serving_model(artefact(out, name))
    assert (model.latent_dim, model.image_shape) == (16, (16, 16, 3))
    generator = load_generator(tiny_run)
    for seed in (123, 2**32 - 1):  # seeds the export's own check did not use
        within_tolerance(name, model.images_for_seed(seed, 8), images_for_seed(generator, seed, 8))
    images = model.generate(np.zeros((3, 16), np.float32))
    assert images.dtype == np.uint8 and images.shape == (3, 16, 16, 3)
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        model.generate(np.zeros((2, 5), np.float32))


def test_interpolation_ends_on_both_seeds(exported):
    model = ex.load_serving_model(artefact(exported[0], "keras"))
    walk = model.interpolation(4, 9, 5)
    assert walk.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(walk[0], model.images_for_seed(4, 1)[0])
    np.testing.assert_array_equal(walk[-1], model.images_for_seed(9, 1)[0])


def test_a_seed_is_the_same_image_everywhere(exported, tiny_run, tmp_path, monkeypatch):
    """CLI `sample`, the Lambda handler, the local server and every export: seed 5's images."""
    out, _ = exported
    seed, n = 5, 3
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["sample", str(tiny_run), "--seed", str(seed), "--n", str(n),
                     "--out", str(tmp_path / "cli")]) == 0
    cli = np.stack([decode_png(p.read_bytes()) for p in sorted((tmp_path / "cli").glob("*.png"))])
    assert cli.shape == (n, 16, 16, 3)

    for name in ARTEFACTS:
        path = artefact(out, name)
        exported_images = ex.load_serving_model(path).images_for_seed(seed, n)
        within_tolerance(name, exported_images, cli)

        # the Lambda handler serving this export
        monkeypatch.setenv(serve.MODEL_ENV, str(path))
        monkeypatch.setattr(serve, "_MODELS", {})
        reply = serve.lambda_handler({"n": n, "seed": seed, "format": "grid"}, None)
        assert reply["statusCode"] == 200
        grid = decode_png(base64.b64decode(reply["body"]))
        handler_images = grid_cells(grid, n)
        np.testing.assert_array_equal(handler_images, exported_images)
        within_tolerance(name, handler_images, cli)

    # the local server on the run folder itself: exactly the CLI's images
    server = serve.make_server(ex.load_serving_model(tiny_run), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"{server.url}api/generate?seed={seed}&format=grid&n={n}"
        with urllib.request.urlopen(url, timeout=30) as response:
            np.testing.assert_array_equal(grid_cells(decode_png(response.read()), n), cli)
        with urllib.request.urlopen(f"{server.url}api/generate?seed={seed}", timeout=30) as response:
            np.testing.assert_array_equal(decode_png(response.read()), cli[0])
    finally:
        server.shutdown()
        server.server_close()


def test_export_refuses_bad_input(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path), "--format", "onnx"])
    not_a_model = tmp_path / "model.tflite"
    not_a_model.write_bytes(b"\0" * 64)
    with pytest.raises(ex.CarganError, match="LiteRT"):
        ex.load_serving_model(not_a_model)


def test_export_fails_loudly_outside_tolerance(tiny_run, tmp_path, monkeypatch):
    monkeypatch.setitem(ex.TOLERANCES, "keras", {"max_abs_diff": -1, "mean_abs_diff": 0.0})
    with pytest.raises(ex.CarganError, match="keras disagree"):
        ex.export(tiny_run, tmp_path, ("keras",), verbose=False)
    report = json.loads((tmp_path / ex.REPORT_FILE).read_text())
    assert report["ok"] is False and report["exports"]["keras"]["ok"] is False


def test_an_earlier_export_of_another_generator_is_reported_stale(tiny_run, tmp_path):
    ex.export(tiny_run, tmp_path, ("keras", "savedmodel"), verbose=False)
    # the run trained on: a generator with other weights, exported as .keras only
    retrained = load_generator(tiny_run)
    retrained.set_weights([w * 1.5 for w in retrained.get_weights()])
    newer = tmp_path / "retrained.keras"
    retrained.save(newer)
    report = ex.export(newer, tmp_path, ("keras",), verbose=False)
    assert report["exports"]["keras"]["ok"] is True
    stale = report["exports"]["savedmodel"]
    assert stale["ok"] is False and "export it again (--format savedmodel)" in stale["stale"]
    assert report["ok"] is False
    assert "STALE" in ex.format_report(report, tmp_path)
    # the stale file replaced: everything agrees again; a deleted export leaves the report
    ex.export(newer, tmp_path, ("savedmodel",), verbose=False)
    (tmp_path / ex.KERAS_FILE).unlink()
    report = ex.export(newer, tmp_path, ("savedmodel",), verbose=False)
    assert report["ok"] is True and set(report["exports"]) == {"savedmodel"}


def test_formats_are_read_as_a_user_types_them(tiny_run, tmp_path):
    report = ex.export(tiny_run, tmp_path, (" Keras", "keras ", ""), verbose=False)
    assert set(report["exports"]) == {"keras"}
    with pytest.raises(ex.CarganError, match=r"unknown export format\(s\) \['onnx'\]"):
        ex.export(tiny_run, tmp_path, ("keras", " onnx"), verbose=False)
    assert ex.FORMAT_ALIASES["tflite"] == "litert"


def test_a_discriminator_or_an_export_given_as_the_generator_is_a_clear_error(
        exported, tiny_run, capsys):
    out, _ = exported
    assert main(["sample", str(tiny_run / "discriminator.keras"), "--n", "1"]) == 2
    assert "is not a generator" in capsys.readouterr().err
    assert main(["sample", str(out / ex.KERAS_FILE), "--n", "1"]) == 2
    err = capsys.readouterr().err
    assert "serving export" in err or "could not load" in err
    assert "pass the run folder or its generator.keras" in err
    # the export itself still serves
    assert ex.load_serving_model(out / ex.KERAS_FILE).images_for_seed(3, 1).dtype == np.uint8


def test_an_earlier_export_of_another_shape_is_reported_stale_not_a_crash(tiny_run, tmp_path):
    from cargan_tf import models

    from conftest import tiny_config

    ex.export(tiny_run, tmp_path, ("keras",), verbose=False)
    other = models.build_generator(tiny_config(latent_dim=8))  # another z and, here, image size
    other.save(tmp_path / "other.keras")
    report = ex.export(tmp_path / "other.keras", tmp_path, ("savedmodel",), verbose=False)
    assert report["exports"]["savedmodel"]["ok"] is True
    stale = report["exports"]["keras"]
    assert stale["ok"] is False and "problem" in stale and "export it again" in stale["stale"]
    assert report["ok"] is False and report["latent_dim"] == 8
    assert "STALE" in ex.format_report(report, tmp_path)
