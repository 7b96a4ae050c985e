"""Start from a photo (controls.py, `project`): the projection, the optional photo judge, edits."""

import numpy as np
import pytest

from cargan_tf import cli, controls, viz
from cargan_tf.errors import CarganError
from cargan_tf.latents import seed_to_latent


@pytest.fixture(scope="module")
def generator(tiny_run):
    from cargan_tf.generate import load_generator

    return load_generator(tiny_run)


def _photo(generator, seed=11):
    """A picture the generator can draw exactly: G(z) of a seed, as a photo would arrive."""
    from cargan_tf.generate import generate_images

    return generate_images(generator, seed_to_latent(seed, 1, 16))[0]


def test_projection_finds_a_latent_that_redraws_the_photo(generator):
    from cargan_tf.generate import generate_images

    photo = _photo(generator)
    projection = controls.project(generator, photo, steps=60, restarts=3, judge=False)
    assert projection.z.shape == (16,) and projection.class_weights is None
    assert not projection.judge
    np.testing.assert_array_equal(projection.image, generate_images(generator, projection.z[None])[0])
    # much closer than where the search started (random latents), and close in pixels
    start = generate_images(generator, np.random.default_rng(0).standard_normal((8, 16)))
    start_loss = np.mean(((start.astype(np.float32) - photo) / 127.5) ** 2, axis=(1, 2, 3))
    assert projection.pixel_loss < 0.5 * start_loss.mean(), (projection.pixel_loss, start_loss)
    assert np.abs(projection.image.astype(int) - photo).mean() < np.abs(start.astype(int) - photo).mean()


class FakeJudge:
    """Stands in for features.PhotoExtractor: a small frozen Keras CNN on 64x64 RGB."""

    calls = 0

    def __init__(self):
        import keras

        keras.utils.set_random_seed(3)
        self.model = keras.Sequential([keras.Input((64, 64, 3)),
                                       keras.layers.Conv2D(4, 3, strides=4, activation="relu"),
                                       keras.layers.GlobalAveragePooling2D()])
        FakeJudge.calls += 1


def test_the_photo_judge_is_used_when_installed_and_stays_frozen(generator, monkeypatch):
    from cargan_tf import features

    photo = _photo(generator, 5)
    monkeypatch.delattr(features, "PhotoExtractor", raising=False)
    assert controls.photo_judge(16, 3) is None  # not on this branch: pixels only
    with pytest.raises(CarganError, match="not installed"):
        controls.project(generator, photo, steps=2, restarts=1, judge=True)
    pixels = controls.project(generator, photo, steps=20, restarts=2)
    assert not pixels.judge

    monkeypatch.setattr(features, "PhotoExtractor", FakeJudge, raising=False)
    monkeypatch.setattr(features, "PHOTO_SIZE", 64, raising=False)
    judged = controls.project(generator, photo, steps=20, restarts=2)
    assert judged.judge and FakeJudge.calls >= 1
    assert not np.array_equal(judged.z, pixels.z)  # the features changed the search
    judge = FakeJudge()
    before = [w.copy() for w in judge.model.get_weights()]
    monkeypatch.setattr(features, "PhotoExtractor", lambda: judge, raising=False)
    controls.project(generator, photo, steps=5, restarts=1)
    for old, new in zip(before, judge.model.get_weights()):
        np.testing.assert_array_equal(old, new)  # frozen: the search moves z only
    assert not controls.project(generator, photo, steps=2, restarts=1, judge=False).judge


def test_edits_along_a_direction(generator):
    from cargan_tf.directions import sefa_directions

    projection = controls.project(generator, _photo(generator), steps=5, restarts=1, judge=False)
    edits = controls.edit(generator, projection, direction=0, amounts=(-5.0, 0.0, 5.0))
    assert edits.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(edits[1], projection.image)  # amount 0: the projection
    assert np.abs(edits[0].astype(int) - edits[2]).mean() > 1
    other = controls.edit(generator, projection, direction=1, amounts=(5.0,),
                          directions=sefa_directions(generator).vectors)
    assert not np.array_equal(other[0], edits[2])
    with pytest.raises(CarganError, match="not class-conditional"):
        controls.edit(generator, projection, target_class=0)
    with pytest.raises(CarganError, match="does not exist"):
        controls.edit(generator, projection, direction=99)


def test_a_conditional_projection_has_a_class_and_edits_toward_another(tiny_conditional_run):
    from cargan_tf.generate import generate_images, load_generator

    generator = load_generator(tiny_conditional_run)
    photo = generate_images(generator, seed_to_latent(4, 1, 16), classes=2)[0]
    projection = controls.project(generator, photo, steps=30, restarts=2, judge=False)
    assert projection.class_weights.shape == (6,)
    assert projection.class_weights.sum() == pytest.approx(1.0, abs=1e-5)
    edits = controls.edit(generator, projection, target_class=5, amounts=(0.0, 1.0))
    np.testing.assert_array_equal(edits[1], generate_images(generator, projection.z[None],
                                                            classes=5)[0])
    np.testing.assert_allclose(edits[0].astype(int), projection.image, atol=1)


def test_project_command_writes_photo_projection_and_edits(generator, tiny_run, tmp_path, capsys):
    photo = tmp_path / "car.png"
    viz.save_png(photo, viz.upscale(_photo(generator)[None].repeat(1, 0)[0], 48))  # 48x48: resized
    out = tmp_path / "out"
    assert cli.main(["project", str(tiny_run), "--image", str(photo), "--direction", "1",
                     "--amounts=-3,0,3", "--steps", "10", "--restarts", "2", "--no-progress",
                     "--out", str(out)]) == 0
    strip = viz.decode_png((out / "comparison.png").read_bytes())
    assert strip.shape[1] >= 5 * 128  # photo | projection | three edits
    assert viz.decode_png((out / "projection.png").read_bytes()).shape == (16, 16, 3)
    assert np.load(out / "latent.npy").shape == (16,)
    assert "(photo judge used)" in capsys.readouterr().out  # the judge ships in the package
    assert cli.main(["project", str(tiny_run), "--image", str(photo), "--class", "suv",
                     "--steps", "1", "--out", str(out)]) == 2
    assert "not class-conditional" in capsys.readouterr().err
