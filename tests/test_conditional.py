"""Class-conditional GANs (conditional=true): the models, the labels from toycars and from class
sub-folders, the training grid, sampling by class, and the unconditional default untouched."""

import json

import numpy as np
import pytest

from cargan_tf import cli, conditional, config, models, viz
from cargan_tf.data.classes import class_labels_for, toycars_body_types
from cargan_tf.errors import ConfigError, DataError

from conftest import tiny_config

CLASSES = ("sedan", "hatchback", "suv", "pickup", "sports", "van")


def cond_config(**overrides):
    return tiny_config(conditional=True, engine="fused", **overrides)


def test_unconditional_is_the_default_and_builds_the_same_sequential_models():
    import keras

    assert config.RunConfig().conditional is False and "conditional" in config.IDENTITY_KEYS
    cfg = tiny_config()
    keras.utils.set_random_seed(0)
    g, d = conditional.build_models(cfg)
    keras.utils.set_random_seed(0)
    g0, d0 = models.build_generator(cfg), models.build_discriminator(cfg)
    assert isinstance(g, keras.Sequential) and isinstance(d, keras.Sequential)
    for a, b in zip(g.get_weights() + d.get_weights(), g0.get_weights() + d0.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert conditional.class_names_of(g) == ()


@pytest.mark.parametrize("overrides, phrase", [
    (dict(engine="keras"), "engine=fused"),
    (dict(strategy="mirrored"), "one device"),
])
def test_conditional_needs_the_fused_engine_on_one_device(overrides, phrase):
    with pytest.raises(ConfigError, match=phrase):
        tiny_config(conditional=True, engine="fused").replace(**overrides)


@pytest.mark.parametrize("architecture", ["dcgan", "pytorch_dcgan"])
def test_the_conditional_generator_reads_z_and_a_one_hot(architecture, tmp_path):
    import keras

    cfg = cond_config(architecture=architecture, kernel_size=4)
    g = conditional.conditional_generator(cfg, CLASSES)
    body = models.build_generator(cfg.replace(latent_dim=cfg.latent_dim + 6))
    assert g.input_shape == (None, 22) and g.count_params() == body.count_params()
    g.save(tmp_path / "g.keras")
    again = keras.saving.load_model(tmp_path / "g.keras")
    assert conditional.class_names_of(again) == CLASSES
    assert conditional.conditioning_of(again).latent_dim == cfg.latent_dim
    zc = conditional.with_class_rows(np.random.default_rng(0).standard_normal((3, 16)), 6)
    np.testing.assert_allclose(np.asarray(again(zc)), np.asarray(g(zc)), atol=1e-6)


def test_the_discriminator_is_a_projection_discriminator():
    """D(x, y) = psi(phi(x)) + <E y, phi(x)>, checked by hand from its own weights."""
    import keras

    cfg = cond_config(loss="nonsaturating", label_noise=True)  # raw scores: no sigmoid
    d = conditional.conditional_discriminator(cfg, 6)
    phi_model = keras.Model(d.inputs[0], d.get_layer("projection").input[1])
    x = np.random.default_rng(1).uniform(-1, 1, (4, 16, 16, 3)).astype("float32")
    y = np.eye(6, dtype="float32")[[0, 2, 5, 2]]
    phi = np.asarray(phi_model(x, training=False))
    w, b = d.get_layer("score").get_weights()
    (embedding,) = d.get_layer("class_embedding").get_weights()
    expected = phi @ w + b + np.sum((y @ embedding) * phi, axis=1, keepdims=True)
    np.testing.assert_allclose(np.asarray(d([x, y], training=False)), expected, rtol=1e-4,
                               atol=1e-4)
    bce = conditional.conditional_discriminator(cond_config(), 6)
    assert bce.layers[-1].get_config()["activation"] == "sigmoid"


def test_toycars_classes_are_the_body_types_of_the_images():
    from cargan_tf.data.toycars import draw_toycars

    labels = class_labels_for(cond_config(data_n=40))
    assert labels.names == CLASSES and labels.ids.shape == (40,)
    np.testing.assert_array_equal(labels.ids, draw_toycars(40, 16, seed=0)[1]["body_type"])
    np.testing.assert_array_equal(toycars_body_types(5, 3, start=7),
                                  draw_toycars(5, 16, seed=3, start=7)[1]["body_type"])


def _class_folder(root, counts, size=24):
    """root/<class>/<i>.png, each class its own flat colour (so an image tells its class)."""
    colours = {"sedan": (200, 30, 30), "suv": (30, 30, 200), "van": (30, 200, 30)}
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            image = np.full((size, size, 3), colours[name], np.uint8)
            image[i % size, :, :] = 255 - i  # distinct files (prepare drops duplicates)
            viz.save_png(root / name / f"{i:03d}.png", image)
    return root


def test_sub_folders_are_classes_aligned_with_the_images(tmp_path, monkeypatch):
    from cargan_tf.data.pipeline import run_dataset
    from cargan_tf.data.sources import load_images_for
    from cargan_tf.latents import one_hot

    monkeypatch.setenv("CARGAN_CACHE_DIR", str(tmp_path / "cache"))
    folder = _class_folder(tmp_path / "cars", {"suv": 7, "sedan": 9, "van": 4})
    for data_n in (None, 11):  # a subset keeps images and labels together
        cfg = cond_config(data=str(folder), data_n=data_n, progress=False)
        images = load_images_for(cfg)
        labels = class_labels_for(cfg)
        assert labels.names == ("sedan", "suv", "van") and len(labels.ids) == len(images)
        dominant = np.argmax(images.reshape(len(images), -1, 3)[:, -1], axis=1)  # last pixel
        np.testing.assert_array_equal(dominant, [{"sedan": 0, "suv": 2, "van": 1}[labels.names[k]]
                                                 for k in labels.ids])
    assert labels.counts() == {n: int((labels.ids == k).sum()) for k, n in enumerate(labels.names)}
    # the pipeline hands D each batch's own classes, one-hot
    batch, classes = next(iter(run_dataset(images, 4, 0, 1, 1, labels=labels.ids, n_classes=3)))
    order = np.argmax(np.asarray(classes), axis=1)
    shown = np.argmax(((np.asarray(batch) + 1) * 127.5).reshape(4, -1, 3)[:, -1], axis=1)
    np.testing.assert_array_equal(shown, [{0: 0, 1: 2, 2: 1}[k] for k in order])
    np.testing.assert_array_equal(np.asarray(classes), one_hot(order, 3))


def test_a_folder_without_class_sub_folders_is_refused(tmp_path, monkeypatch):
    from cargan_tf.data.sources import load_images_for

    monkeypatch.setenv("CARGAN_CACHE_DIR", str(tmp_path / "cache"))
    folder = _class_folder(tmp_path / "one", {"suv": 4})
    viz.save_png(folder / "loose.png", np.zeros((24, 24, 3), np.uint8))
    cfg = cond_config(data=str(folder), data_n=None, progress=False)
    load_images_for(cfg)
    with pytest.raises(DataError, match="outside any class sub-folder"):
        class_labels_for(cfg)
    (folder / "loose.png").unlink()
    load_images_for(cfg)
    with pytest.raises(DataError, match="needs two or more"):
        class_labels_for(cfg)
    with pytest.raises(DataError, match="has none"):
        class_labels_for(cond_config(data="fashion_mnist"))


def test_a_conditional_run_folder(tiny_conditional_run, tmp_path):
    from cargan_tf.generate import class_index, images_for_seed, load_generator

    saved = json.loads((tiny_conditional_run / "classes.json").read_text())
    assert tuple(saved["classes"]) == CLASSES and sum(saved["counts"].values()) == 64
    cfg = config.read_config_file(tiny_conditional_run / "config.json")
    assert cfg.conditional is True
    # the training grid: a row per class (grid_size 16: 4 columns), in class order
    grid = viz.decode_png((tiny_conditional_run / "samples" / "epoch_0002.png").read_bytes())
    rows = round(grid.shape[0] / (grid.shape[1] / 4))  # 4 columns
    assert rows == 6, grid.shape
    generator = load_generator(tiny_conditional_run)
    assert class_index(generator, "suv") == 2 and class_index(generator, "5") == 5
    suv = images_for_seed(generator, 3, 4, classes=2)
    van = images_for_seed(generator, 3, 4, classes=5)
    assert not np.array_equal(suv, van)  # the class reaches the picture
    # `sample --class suv` and a grid with a row per class
    assert cli.main(["sample", str(tiny_conditional_run), "--seed", "3", "--n", "4",
                     "--class", "suv", "--out", str(tmp_path / "suv")]) == 0
    first = viz.decode_png((tmp_path / "suv" / "seed3_0000.png").read_bytes())
    np.testing.assert_array_equal(first, suv[0])
    assert cli.main(["sample", str(tiny_conditional_run), "--seed", "3", "--n", "5", "--grid",
                     "--out", str(tmp_path / "g.png")]) == 0
    sheet = viz.decode_png((tmp_path / "g.png").read_bytes())
    assert abs(sheet.shape[0] / sheet.shape[1] - 6 / 5) < 0.1  # 6 rows of 5
    assert cli.main(["sample", str(tiny_conditional_run), "--class", "truck",
                     "--out", str(tmp_path / "x")]) == 2


def test_resuming_with_other_classes_is_refused(tiny_conditional_run, tmp_path):
    import shutil

    from cargan_tf.train import train

    copy = tmp_path / "run"
    shutil.copytree(tiny_conditional_run, copy)
    saved = json.loads((copy / "classes.json").read_text())
    saved["classes"] = saved["classes"][::-1]
    (copy / "classes.json").write_text(json.dumps(saved))
    with pytest.raises(ConfigError, match="trained on the classes"):
        train(cond_config(epochs=3), copy)


def test_a_fused_step_trains_the_class_embedding():
    """The real batch's classes reach D: the projection's embedding moves in D's update."""
    import keras

    from cargan_tf.engines import make_engine, step_inputs
    from cargan_tf.gan import build_gan

    cfg = cond_config()
    keras.utils.set_random_seed(0)
    g, d = conditional.build_models(cfg, CLASSES)
    sg = build_gan(g, d, cfg)
    engine = make_engine(sg, cfg)
    before = d.get_layer("class_embedding").get_weights()[0].copy()
    real = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 3)).astype("float32")
    classes = np.eye(6, dtype="float32")[np.arange(16) % 6]
    inputs = step_inputs(cfg, 0, 16, 6)
    assert inputs["z_fake"].shape == (16, 22) and inputs["z_gen"].shape == (32, 22)
    np.testing.assert_array_equal(inputs["z_fake"][:, 16:].sum(axis=1), 1.0)
    row = engine.step((real, classes), inputs)
    assert np.isfinite(row["d_loss_real"]) and np.isfinite(row["g_loss"])
    assert not np.array_equal(d.get_layer("class_embedding").get_weights()[0], before)
    unconditional = step_inputs(tiny_config(), 0, 16)
    np.testing.assert_array_equal(unconditional["z_fake"], inputs["z_fake"][:, :16])


def test_a_folder_of_classes_trains_conditionally(tmp_path, monkeypatch):
    from cargan_tf.train import train

    monkeypatch.setenv("CARGAN_CACHE_DIR", str(tmp_path / "cache"))
    folder = _class_folder(tmp_path / "cars", {"suv": 16, "sedan": 16}, size=16)
    run = train(cond_config(data=str(folder), data_n=None, epochs=1, grid_size=4), tmp_path / "run")
    assert json.loads((run / "classes.json").read_text())["classes"] == ["sedan", "suv"]
    grid = viz.decode_png((run / "samples" / "epoch_0001.png").read_bytes())
    assert abs(grid.shape[0] / grid.shape[1] - 1.0) < 0.1  # 2 rows of 2
