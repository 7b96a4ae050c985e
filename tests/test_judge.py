"""The photo judge (packaged features for natural photos) and the memorisation check.

The corruption tests are a small version of benchmarks/judge_validation.py: a judge whose FID
does not rise with blur, noise or cutout on real photos is broken, and CI says so.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from cargan_tf import evaluate, features, metrics, viz
from cargan_tf.data.toycars import draw_toycars

from conftest import SHARED_DATA, load_benchmark

STANFORD = SHARED_DATA / "stanford_cars_3k"


def _validation_module():
    return load_benchmark("judge_validation")


@pytest.fixture(scope="module")
def judge():
    return features.get_extractor("photo")


@pytest.fixture(scope="module")
def photos():
    """1,000 real car photos at 64x64 (center crop), in two disjoint halves of 500."""
    if not STANFORD.is_dir():
        pytest.skip("needs ../shared/data/stanford_cars_3k")
    images = []
    for path in sorted(STANFORD.glob("*.jpg"))[:1000]:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        h, w = bgr.shape[:2]
        side = min(h, w)
        crop = bgr[(h - side) // 2:(h + side) // 2, (w - side) // 2:(w + side) // 2]
        small = cv2.resize(crop, (64, 64), interpolation=cv2.INTER_AREA)
        images.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
    images = np.stack(images)
    return images[0::2], images[1::2]


def test_the_photo_judge_ships_with_the_package_and_records_its_provenance(judge):
    assert judge.path.parent == features.PACKAGED_EXTRACTORS and judge.path.is_file()
    meta = json.loads(judge.path.with_suffix(".json").read_text())
    assert meta["sha256"] == judge.hash == features.sha256_file(judge.path)
    assert "vehicles_64" in meta["data"] and "stanford" not in meta["data"].lower()
    assert judge.dim == meta["dim"] and judge.path.stat().st_size < 8e6  # a few MB
    # trained, not random: it tells which way is up on crops it never saw
    assert meta["held_out"]["rotation_accuracy"] > 0.8
    assert (features.PACKAGED_EXTRACTORS / "PROVENANCE.md").is_file()


def test_the_judge_takes_any_size_from_32_to_128_and_gray(judge):
    images = draw_toycars(6, 64, seed=1)[0]
    reference = judge.features(images)
    assert reference.shape == (6, judge.dim) and np.isfinite(reference).all()
    for size in (32, 128):
        resized = np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA
                                       if size < 64 else cv2.INTER_LINEAR) for im in images])
        got = judge.features(resized)
        assert got.shape == reference.shape
        # the same cars at another size are closer to themselves than to the other cars
        d = metrics._pairwise_sq_distances(got.astype(float), reference.astype(float))
        assert (d.argmin(1) == np.arange(6)).mean() >= 5 / 6
    gray = draw_toycars(6, 64, seed=1, channels=1)[0]
    assert judge.features(gray).shape == (6, judge.dim)


# at 500 images a half, FID's own noise (~1) hides the mildest cutout (a 10-pixel grey square;
# +0.5 at 1,500 images in BENCHMARKS), so the small check starts cutout at its second level
@pytest.mark.parametrize("kind,levels", [("blur", 3), ("noise", 3), ("mixing", 3), ("cutout", 2)])
def test_judge_fid_rises_with_every_level_of_corruption_on_real_photos(judge, photos, kind,
                                                                       levels):
    validation = _validation_module()
    half_a, half_b = photos
    other = draw_toycars(500, 64, seed=5)[0]  # another kind of image: drawn cars on flat ground
    ref = judge.features(half_a)
    fids = [metrics.frechet_distance(judge.features(half_b), ref)]
    for i, level in enumerate(validation.LEVELS[kind][-levels:]):
        corrupted = validation.corrupt(kind, level, half_b, other, seed=i)
        fids.append(metrics.frechet_distance(judge.features(corrupted), ref))
    assert all(b > a for a, b in zip(fids, fids[1:])), (kind, fids)


def _a_quarter_corrupted(kind: str):
    """20 drawn cars, the same with `kind` at level 0.25, and which images changed (asserted: 5)."""
    images = draw_toycars(20, 64, seed=2)[0]
    out = _validation_module().corrupt(kind, 0.25, images, None, seed=0)
    changed = (out != images).reshape(20, -1).any(1)
    assert changed.sum() == 5
    return images, out, changed


def test_streaks_corruption_paints_saturated_strokes_on_the_asked_fraction_only():
    # the judge's blind spot (BENCHMARKS, "The photo judge") is measured with this corruption:
    # it must touch exactly that share of the images, with strongly coloured pixels
    images, out, changed = _a_quarter_corrupted("streaks")
    saturation = cv2.cvtColor(out[changed].reshape(-1, 64, 3), cv2.COLOR_RGB2HSV)[..., 1]
    before = cv2.cvtColor(images[changed].reshape(-1, 64, 3), cv2.COLOR_RGB2HSV)[..., 1]
    assert (saturation > 180).sum() > (before > 180).sum() + 5 * 16


def test_tears_corruption_slides_bands_of_the_asked_fraction_and_keeps_every_rows_pixels():
    # the second kind of sample the blind count rejects (BENCHMARKS, "Counted blind"): torn
    # bodies; a tear must move pixels within their rows, never change a colour
    images, out, changed = _a_quarter_corrupted("tears")
    for before, after in zip(images[changed], out[changed]):
        assert np.array_equal(np.sort(before, axis=1), np.sort(after, axis=1))
        moved_rows = (before != after).any(axis=(1, 2))
        assert 64 // 6 <= moved_rows.sum() <= 2 * (64 // 3)


def test_mode_dropping_and_colour_shift_raise_the_judges_fid(judge, photos):
    validation = _validation_module()
    half_a, half_b = photos
    ref = judge.features(half_a)
    floor = metrics.frechet_distance(judge.features(half_b), ref)
    for kind in ("colour", "mode_drop"):
        worst = validation.corrupt(kind, validation.LEVELS[kind][-1], half_b, None, seed=0)
        assert metrics.frechet_distance(judge.features(worst), ref) > 1.5 * floor, kind


def test_nearest_neighbours_match_a_brute_force_search():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 7)), rng.normal(size=(80, 7))
    d, idx = metrics.nearest_neighbours(a, b)
    brute = np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))
    np.testing.assert_array_equal(idx, brute.argmin(1))
    np.testing.assert_allclose(d, brute.min(1))
    d_self, idx_self = metrics.nearest_neighbours(b, b, exclude_self=True)
    assert (idx_self != np.arange(80)).all()
    brute_self = np.sqrt(((b[:, None] - b[None]) ** 2).sum(-1)) + np.diag(np.full(80, np.inf))
    np.testing.assert_allclose(d_self, brute_self.min(1))


def test_memorisation_ratio_is_low_for_copies_and_about_one_for_new_samples():
    rng = np.random.default_rng(1)
    train, held = rng.normal(size=(600, 16)), rng.normal(size=(200, 16))
    copies = train[:200] + rng.normal(scale=0.05, size=(200, 16))
    new = rng.normal(size=(200, 16))
    assert metrics.memorisation(copies, train, held)["ratio"] < 0.1
    honest = metrics.memorisation(new, train, held)
    assert 0.85 < honest["ratio"] < 1.15 and honest["reference"] == "held-out"
    loo = metrics.memorisation(new, train)
    assert loo["reference"] == "leave-one-out" and 0.8 < loo["ratio"] < 1.25


def test_memorisation_check_catches_a_copying_generator_on_real_photos(judge, photos, tmp_path):
    train, held = photos[0][:200], photos[1][:200]
    rng = np.random.default_rng(2)
    copier = np.clip(train[:100] + rng.normal(0, 4, train[:100].shape), 0, 255).astype(np.uint8)
    found = evaluate.memorisation_check(copier, train, judge, held, tmp_path / "pairs.png")
    assert found["ratio"] < 0.5 and found["reference"] == "held-out"
    picture = viz.decode_png((tmp_path / "pairs.png").read_bytes())
    assert picture.shape[0] > 2 * 64  # samples above their nearest training images
    # new photos of the same kind are no copies
    honest = evaluate.memorisation_check(photos[1][200:], train, judge, held)
    assert honest["ratio"] > 0.85 and honest["picture"] is None


def test_evaluate_uses_the_photo_judge_for_user_photos(tiny_run, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "my_cars"
    folder.mkdir()
    for i, image in enumerate(draw_toycars(40, 32, seed=3)[0]):
        cv2.imwrite(str(folder / f"car{i:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    monkeypatch.setenv("CARGAN_CACHE_DIR", str(tmp_path / "prepared"))
    result, path = evaluate.evaluate_run(tiny_run / "generator.keras", data=str(folder), n=30,
                                         out=tmp_path / "metrics.json")
    printed = capsys.readouterr().out
    assert result["features"] == "photo" and result["features_requested"] == "domain"
    assert "photo judge" in result["features_note"]
    assert result["features_hash"] == features.sha256_file(features.PHOTO_MODEL)
    memo = result["memorisation"]  # against the run's own training set (64 toycars)
    assert memo["reference"] == "leave-one-out" and memo["n_train"] == 64
    assert np.isfinite(memo["ratio"]) and "memorisation: ratio" in "\n".join(
        evaluate.summary_lines(result))
    assert viz.decode_png((tmp_path / "memorisation.png").read_bytes()).ndim == 3
    assert json.loads(path.read_text())["features"] == "photo"
    assert "scoring 30 samples" in printed


@pytest.mark.parametrize("name", ["photo", "toycars"])
def test_packaged_extractors_load_where_keras_cannot_read_their_config(name, monkeypatch):
    """Colab's Keras 3.13 refuses the packaged files' configs (saved by 3.15: new initializer and
    BatchNorm arguments); the architecture is rebuilt from the package's code and the weights
    read from the same file, giving the same features."""
    import keras

    images = draw_toycars(8, 64 if name == "photo" else 32, seed=2)[0]
    direct = features.get_extractor(name, 32, 3)

    def older_keras(*args, **kwargs):
        raise TypeError("GlorotUniform.__init__() got an unexpected keyword argument 'input_axes'")

    monkeypatch.setattr(keras.saving, "load_model", older_keras)
    rebuilt = features.PhotoExtractor() if name == "photo" else features.DomainExtractor(
        "toycars", direct.path)
    assert rebuilt.hash == direct.hash
    np.testing.assert_allclose(rebuilt.features(images), direct.features(images), atol=1e-5)
    if name == "toycars":
        for key, value in direct.predict_labels(images).items():
            np.testing.assert_allclose(rebuilt.predict_labels(images)[key], value, atol=1e-5)
