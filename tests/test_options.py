"""The quality options of issue 5: losses, DiffAugment, spectral norm, minibatch std, and the
config rules that keep fused-only options off the Keras engine."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cargan_tf import config, engines, models
from cargan_tf.augment import ada_adjust, diff_augment
from cargan_tf.errors import ConfigError
from cargan_tf.losses import mode_seeking_penalty, r1_penalty

from conftest import fresh, meaningful_weights, real_batch, tiny_config

NEW_KEYS = ("spectral_norm", "minibatch_std", "diffaugment", "loss", "fake_batch_mode",
            "mode_seeking", "minibatch_std_group", "ada_target", "r1_gamma", "r1_every")
ALL_OPTIONS = dict(engine="fused", loss="hinge", label_noise=False, spectral_norm=True,
                   minibatch_std=True, diffaugment="color,translation,cutout", d_batchnorm=False,
                   kernel_size=4, fake_batch_mode="training")


# ---- config ---------------------------------------------------------------------------------

def test_new_maths_options_are_identity_keys_and_default_off():
    for key in NEW_KEYS:
        assert key in config.IDENTITY_KEYS and key not in config.SCHEDULE_KEYS
    cfg = config.RunConfig()
    assert (cfg.loss, cfg.spectral_norm, cfg.minibatch_std, cfg.diffaugment,
            cfg.fake_batch_mode) == ("bce", False, False, "", "inference")
    for name in ("aim64", "dcgan64", "fashion28", "selu128"):
        cfg = config.preset(name)
        assert (cfg.loss, cfg.spectral_norm, cfg.minibatch_std, cfg.diffaugment) == \
            ("bce", False, False, ""), name


@pytest.mark.parametrize("overrides,message", [
    (dict(loss="hinge", label_noise=False), "engine=fused"),
    (dict(loss="nonsaturating"), "engine=fused"),
    (dict(diffaugment="translation"), "engine=fused"),
    (dict(mode_seeking=1.0), "engine=fused"),
    (dict(engine="fused", mode_seeking=-1.0), "positive weight"),
    (dict(engine="fused", loss="hinge"), "label_noise=false"),
    (dict(engine="fused", loss="wasserstein"), "bce, nonsaturating, hinge"),
    (dict(engine="fused", diffaugment="color,zoom"), "color, translation, cutout"),
    (dict(engine="fused", diffaugment="color,color"), "distinct"),
    (dict(engine="fused", ada_target=0.6), "diffaugment=translation"),
    (dict(engine="fused", r1_gamma=0.5), "loss=nonsaturating"),
    (dict(loss="nonsaturating", r1_gamma=0.5), "engine=fused"),
    (dict(engine="fused", loss="nonsaturating", r1_gamma=-1.0), "positive weight"),
    (dict(engine="fused", loss="nonsaturating", r1_gamma=1.0, r1_every=0), "interval"),
    (dict(engine="fused", diffaugment="translation", ada_target=1.0), r"\(0, 1\)"),
    (dict(engine="fused", diffaugment="translation", ada_target=0.6, ada_kimg=0), "positive"),
])
def test_keras_engine_and_bad_values_are_refused_clearly(overrides, message):
    with pytest.raises(ConfigError, match=message):
        config.preset("aim64").replace(**overrides)


def test_keras_engine_takes_the_layer_options():
    cfg = config.preset("aim64", spectral_norm=True, minibatch_std=True)
    assert cfg.engine == "keras"
    assert config.parse_override("diffaugment=color,cutout") == ("diffaugment", "color,cutout")


# ---- losses ---------------------------------------------------------------------------------

def test_hinge_loss_matches_a_hand_computation():
    real = tf.constant([[2.0], [0.5], [-1.0]])
    fake = tf.constant([[-3.0], [0.0], [0.5]])
    # D: mean(max(0, 1 - real)) = (0 + 0.5 + 2) / 3; mean(max(0, 1 + fake)) = (0 + 1 + 1.5) / 3
    assert float(engines.d_loss("hinge", real, None, True)) == pytest.approx(2.5 / 3)
    assert float(engines.d_loss("hinge", fake, None, False)) == pytest.approx(2.5 / 3)
    assert float(engines.g_loss("hinge", fake)) == pytest.approx(2.5 / 3)  # -mean(fake)


def test_nonsaturating_on_logits_equals_bce_on_probabilities():
    logits = tf.constant([[-2.0], [0.3], [4.0]])
    labels = tf.constant([[0.9], [0.1], [1.0]])
    prob = tf.sigmoid(logits)
    assert float(engines.d_loss("nonsaturating", logits, labels, True)) == \
        pytest.approx(float(engines.d_loss("bce", prob, labels, True)), rel=1e-5)
    expected = float(np.mean(-np.log(1 / (1 + np.exp(-logits.numpy())))))
    assert float(engines.g_loss("nonsaturating", logits)) == pytest.approx(expected, rel=1e-5)
    # where D is certain (sigmoid rounds to 0) BCE on probabilities clips; logits do not
    assert float(engines.g_loss("nonsaturating", tf.constant([[-40.0]]))) == pytest.approx(40.0)
    assert float(engines.d_probability("hinge", tf.constant([[0.0]]))) == 0.5


def test_mode_seeking_term_matches_a_hand_computation_and_punishes_collapse():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 4)).astype("float32")
    varied = rng.uniform(-1, 1, (6, 8, 8, 3)).astype("float32")
    # pairs (0, 3), (1, 4), (2, 5): weight / (mean|x_i - x_i+3| / mean|z_i - z_i+3|)
    ratio = np.abs(varied[:3] - varied[3:]).mean() / np.abs(z[:3] - z[3:]).mean()
    assert float(mode_seeking_penalty(varied, z, 2.0)) == pytest.approx(2.0 / (ratio + 1e-5),
                                                                        rel=1e-5)
    collapsed = np.repeat(varied[:1], 6, axis=0)  # every latent gives the same image
    assert float(mode_seeking_penalty(collapsed, z, 2.0)) > 1000 * float(
        mode_seeking_penalty(varied, z, 2.0))
    assert float(mode_seeking_penalty(varied, z, 0.0)) == 0.0
    assert float(mode_seeking_penalty(varied[:5], z[:5], 1.0)) == pytest.approx(  # odd batch
        float(mode_seeking_penalty(np.concatenate([varied[:2], varied[2:4]]),
                                   np.concatenate([z[:2], z[2:4]]), 1.0)), rel=1e-6)


def test_r1_penalty_matches_a_hand_computation():
    # s(x) = sum(w * x) per image: grad_x s = w for every image, so the penalty is
    # gamma/2 * sum(w^2) whatever the images, and the scores come back unchanged
    w = tf.constant(np.random.default_rng(1).normal(size=(1, 4, 4, 3)).astype("float32"))
    x = images(n=5, size=4)
    scores, penalty = r1_penalty(lambda v: tf.reduce_sum(v * w, axis=[1, 2, 3])[:, None], x, 2.0)
    assert float(penalty) == pytest.approx(float(tf.reduce_sum(w * w)), rel=1e-5)
    np.testing.assert_allclose(scores.numpy()[:, 0], tf.reduce_sum(x * w, axis=[1, 2, 3]).numpy(),
                               rtol=1e-5)
    # a D that ignores its input is already flat: no penalty
    _, flat = r1_penalty(lambda v: tf.zeros((5, 1)), x, 10.0)
    assert float(flat) == 0.0


@pytest.mark.parametrize("schedule", ["classic", "joint"])
def test_r1_changes_only_the_discriminator_update_and_only_when_due(schedule):
    base = tiny_config(engine="fused", schedule=schedule, loss="nonsaturating",
                       fake_batch_mode="training", d_batchnorm=False)
    real = real_batch(base)
    after = {}
    for name, overrides, step in (("off", {}, 0), ("on", dict(r1_gamma=10.0), 0),
                                  ("off, step 1", {}, 1),
                                  ("lazy, not due", dict(r1_gamma=10.0, r1_every=4), 1)):
        cfg = base.replace(**overrides)
        sg = fresh(cfg)
        inputs = engines.step_inputs(cfg, step, 16)
        assert inputs["r1_now"] == (name == "on")
        engines.FusedEngine(sg, cfg, schedule).step(real, inputs)
        after[name] = [v.numpy() for v in sg.discriminator.weights]  # D ends frozen
    assert any(not np.allclose(a, b, rtol=1e-5, atol=1e-6)
               for a, b in zip(after["off"], after["on"]))
    for a, b in zip(after["off, step 1"], after["lazy, not due"]):  # step 1 of every 4: none
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ---- DiffAugment ----------------------------------------------------------------------------

def images(n=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"))


def test_diffaugment_is_identity_when_off_and_keeps_shapes():
    x, key = images(), tf.constant([1, 2], tf.int64)
    assert diff_augment(x, "", key) is x
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        y = diff_augment(x, policy, key)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert not np.allclose(y.numpy(), x.numpy()), policy
        np.testing.assert_array_equal(y.numpy(), diff_augment(x, policy, key).numpy())  # seeded
    other = diff_augment(x, "color,translation,cutout", tf.constant([1, 3], tf.int64))
    assert not np.allclose(other.numpy(), diff_augment(x, "color,translation,cutout", key))


def test_diffaugment_is_differentiable():
    x, key = images(), tf.constant([5, 6], tf.int64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.square(diff_augment(x, "color,translation,cutout", key)))
    grad = tape.gradient(loss, x).numpy()
    assert grad.shape == x.shape and np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_translation_shifts_content_and_cutout_blanks_a_half_side_square():
    key = tf.constant([3, 4], tf.int64)
    ones = tf.ones((8, 16, 16, 1))
    shifted = diff_augment(ones, "translation", key).numpy()[..., 0]
    for img in shifted:  # a shift of at most 2 px (1/8 of 16): whole rows/columns zeroed
        rows, cols = img.any(axis=1), img.any(axis=0)
        assert rows.sum() >= 14 and cols.sum() >= 14
        assert img[rows][:, cols].all()
    holes = 1 - diff_augment(ones, "cutout", key).numpy()[..., 0]
    for hole in holes:  # an 8x8 square, clipped where it hangs over the edge
        rows, cols = hole.any(axis=1), hole.any(axis=0)
        assert 4 <= rows.sum() <= 8 and 4 <= cols.sum() <= 8
        assert hole.sum() == rows.sum() * cols.sum()


def test_ada_probability_gates_each_op_per_image():
    x, key = images(n=400, size=8), tf.constant([7, 8], tf.int64)
    np.testing.assert_array_equal(diff_augment(x, "cutout", key, p=0.0).numpy(), x.numpy())
    changed = {p: (diff_augment(x, "cutout", key, p=p).numpy() != x.numpy()).any(axis=(1, 2, 3))
               for p in (0.5, 1.0)}
    assert changed[1.0].all()  # a cutout square always covers part of the image
    assert 0.4 < changed[0.5].mean() < 0.6  # each image on its own coin: about half of 400
    x = images(n=4)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(diff_augment(x, "color,translation,cutout", key, p=0.5))
    assert np.isfinite(tape.gradient(loss, x).numpy()).all()


def test_ada_adjust_moves_p_by_the_images_seen_towards_the_target():
    step = 64 / 100_000
    assert ada_adjust(0.0, 0.9, 0.6, 64, 100) == pytest.approx(step)    # D overfits: more aug
    assert ada_adjust(0.5, 0.2, 0.6, 64, 100) == pytest.approx(0.5 - step)
    assert ada_adjust(0.5, 0.6, 0.6, 64, 100) == 0.5                    # on target: unchanged
    assert ada_adjust(0.0, -1.0, 0.6, 64, 100) == 0.0                   # clipped to [0, 1]
    assert ada_adjust(1.0, 1.0, 0.6, 64, 100) == 1.0
    assert "ada_kimg" in config.SCHEDULE_KEYS  # its speed may change on resume, like a rate


def test_ada_starts_unaugmented_and_updates_p_from_the_real_batch():
    base = tiny_config(engine="fused", fake_batch_mode="training", diffaugment="translation")
    ada = base.replace(ada_target=0.6, ada_kimg=0.004)  # p moves 16 / 4 = 4 (clipped) per step
    real = real_batch(base)
    plain, adaptive = fresh(base.replace(diffaugment="")), fresh(ada)
    inputs = engines.step_inputs(base, 0, 16)
    engines.FusedEngine(plain, base.replace(diffaugment="")).step(real, inputs)
    engine = engines.FusedEngine(adaptive, ada)
    row = engine.step(real, inputs)
    # p starts at 0: the first step sees no augmentation, so it equals an unaugmented one
    assert row["aug_p"] == 0.0 and -1.0 <= row["ada_r"] <= 1.0
    for model in ("discriminator", "generator"):
        a, b = getattr(plain, model).weights, getattr(adaptive, model).weights
        for i in meaningful_weights(getattr(plain, model)):
            np.testing.assert_allclose(a[i].numpy(), b[i].numpy(), rtol=1e-5, atol=1e-6)
    assert float(engine.ada_p.numpy()) == ada_adjust(0.0, row["ada_r"], 0.6, 16, 0.004)
    engine.ada_p.assign(1.0)
    row = engine.step(real, engines.step_inputs(base, 1, 16))
    assert row["aug_p"] == 1.0


# ---- layers ---------------------------------------------------------------------------------

def test_spectral_norm_bounds_the_top_singular_value_and_spares_a_frozen_layer():
    keras.utils.set_random_seed(0)
    layer = models.SpectralNorm(keras.layers.Dense(8, kernel_initializer="random_normal"))
    x = np.ones((2, 12), "float32")
    layer(x)
    layer.layer.kernel.assign(layer.layer.kernel * 50.0)
    assert np.linalg.svd(layer.layer.kernel.numpy(), compute_uv=False)[0] > 5
    for _ in range(30):  # one power iteration per training call
        layer(x, training=True)
    assert np.linalg.svd(layer.layer.kernel.numpy(), compute_uv=False)[0] == \
        pytest.approx(1.0, abs=0.05)
    layer.layer.kernel.assign(layer.layer.kernel * 3.0)
    before = layer.layer.kernel.numpy().copy()
    layer.trainable = False  # frozen inside the stacked gan: no renormalisation
    layer(x, training=True)
    np.testing.assert_array_equal(layer.layer.kernel.numpy(), before)


def test_minibatch_std_appends_the_batch_std_channel():
    x = images(6, 4).numpy()
    out = np.asarray(models.MinibatchStdDev()(x))
    assert out.shape == (6, 4, 4, 4)
    np.testing.assert_allclose(out[..., :3], x)
    expected = np.sqrt(x.var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(out[..., 3], expected, rtol=1e-5)
    same = np.asarray(models.MinibatchStdDev()(np.repeat(x[:1], 6, axis=0)))
    assert same[..., 3].max() < 1e-3  # a collapsed batch is visible to D


def test_minibatch_std_groups_give_each_image_its_own_groups_std():
    x = images(8, 4).numpy()
    x[[1, 3, 5, 7]] = x[1]  # the groups {1, 3, 5, 7} (i mod 2 == 1) collapse, {0, 2, 4, 6} not
    out = np.asarray(models.MinibatchStdDev(group_size=4)(x))
    assert out.shape == (8, 4, 4, 4)
    np.testing.assert_allclose(out[..., :3], x)
    lively = np.sqrt(x[[0, 2, 4, 6]].var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(out[[0, 2, 4, 6], ..., 3], lively, rtol=1e-5)
    assert out[[1, 3, 5, 7], ..., 3].max() < 1e-3  # whole-batch std would hide this group
    assert np.asarray(models.MinibatchStdDev()(x))[1, 0, 0, 3] > 0.1


def test_minibatch_std_group_must_divide_the_batch():
    with pytest.raises(ConfigError, match="minibatch_std_group=3.*divisor of batch_size=64"):
        config.preset("quick32", minibatch_std_group=3)
    cfg = config.preset("quick32", minibatch_std_group=4, image_size=16, base_filters=4,
                        max_filters=16, latent_dim=8)
    d = models.build_discriminator(cfg)
    layer = next(layer for layer in d.layers if isinstance(layer, models.MinibatchStdDev))
    assert layer.group_size == 4


@pytest.mark.parametrize("architecture,preset", [("dcgan", "aim64"), ("pytorch_dcgan", "dcgan64")])
def test_discriminator_options_build_and_round_trip(tmp_path, architecture, preset):
    cfg = config.preset(preset, image_size=16, base_filters=4, max_filters=16, latent_dim=8,
                        engine="fused", loss="hinge", label_noise=False, spectral_norm=True,
                        minibatch_std=True, minibatch_std_group=2, batch_size=4)
    d = models.build_discriminator(cfg)
    assert any(isinstance(layer, models.MinibatchStdDev) for layer in d.layers)
    assert all(not isinstance(layer, keras.layers.Conv2D) for layer in d.layers)  # all wrapped
    x = images(4, 16).numpy()
    scores = np.asarray(d(x * 50))
    assert scores.shape == (4, 1) and (np.abs(scores) > 1).any() or (scores < 0).any()  # raw
    d.save(tmp_path / "d.keras")
    again = keras.models.load_model(tmp_path / "d.keras")
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(d(x)), rtol=1e-5, atol=1e-6)


def test_default_discriminator_is_unchanged():
    d = models.build_discriminator(config.preset("aim64", base_filters=4, max_filters=16))
    assert not any(isinstance(layer, (models.SpectralNorm, models.MinibatchStdDev))
                   for layer in d.layers)
    assert d.layers[-1].get_config()["activation"] == "sigmoid"


# ---- engines --------------------------------------------------------------------------------

def test_step_inputs_seed_the_augmentation_per_step():
    cfg = tiny_config()
    a, b = engines.step_inputs(cfg, 3, 16), engines.step_inputs(cfg, 3, 16)
    np.testing.assert_array_equal(a["aug_keys"], b["aug_keys"])
    assert a["aug_keys"].shape == (3, 2) and len({tuple(k) for k in a["aug_keys"]}) == 3
    assert not np.array_equal(a["aug_keys"], engines.step_inputs(cfg, 4, 16)["aug_keys"])


@pytest.mark.parametrize("schedule,loss", [("classic", "hinge"), ("joint", "nonsaturating")])
def test_fused_engine_trains_with_every_option(schedule, loss):
    overrides = dict(ALL_OPTIONS, schedule=schedule, loss=loss,
                     label_noise=loss != "hinge")
    cfg = tiny_config(**overrides)
    sg = fresh(cfg)
    d_vars = list(sg.discriminator.trainable_weights)  # the step ends with D frozen again,
    d0 = [v.numpy().copy() for v in d_vars]            # so read these after it, not D's list
    g0 = [v.numpy().copy() for v in sg.generator.trainable_weights]
    engine = engines.FusedEngine(sg, cfg, schedule)
    row = engine.step(real_batch(cfg), engines.step_inputs(cfg, 0, 16))
    assert all(np.isfinite(v) for v in row.values())
    assert 0 <= row["D(x)"] <= 1 and 0 <= row["D(G(z))"] <= 1
    assert all(not np.array_equal(a, b.numpy())
               for a, b in zip(d0, d_vars, strict=True))
    assert all(not np.array_equal(a, b.numpy())
               for a, b in zip(g0, sg.generator.trainable_weights))


@pytest.mark.parametrize("schedule", ["classic", "joint"])
def test_mode_seeking_changes_only_the_generator_update(schedule):
    base = tiny_config(engine="fused", schedule=schedule, fake_batch_mode="training")
    real = real_batch(base)
    after = {}
    for weight in (0.0, 1.0):
        cfg = base.replace(mode_seeking=weight)
        sg = fresh(cfg)
        engines.FusedEngine(sg, cfg, schedule).step(real, engines.step_inputs(cfg, 0, 16))
        after[weight] = ([v.numpy() for v in sg.generator.trainable_weights],
                         [v.numpy() for v in sg.discriminator.weights])  # D ends frozen
    checked = meaningful_weights(sg.discriminator)
    assert 0 < len(checked) < len(sg.discriminator.weights)  # a bias feeding batch norm is left out
    for i in checked:  # D's update never sees G's extra term
        np.testing.assert_allclose(after[0.0][1][i], after[1.0][1][i], rtol=1e-5, atol=1e-6)
    assert any(not np.allclose(a, b, rtol=1e-5, atol=1e-6)
               for a, b in zip(after[0.0][0], after[1.0][0]))


def test_keras_and_fused_engines_agree_with_the_layer_options_and_training_mode_fakes():
    cfg = tiny_config(spectral_norm=True, minibatch_std=True, fake_batch_mode="training")
    a, b = fresh(cfg), fresh(cfg)
    real = real_batch(cfg)
    keras_engine, fused_engine = engines.KerasEngine(a, cfg), engines.FusedEngine(b, cfg)
    for step in range(2):
        inputs = engines.step_inputs(cfg, step, len(real))
        row_k, row_f = keras_engine.step(real, inputs), fused_engine.step(real, inputs)
        for key in row_k:
            assert row_f[key] == pytest.approx(row_k[key], rel=1e-4, abs=1e-5), key
    for x, y in zip(a.generator.weights + a.discriminator.weights,
                    b.generator.weights + b.discriminator.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-4, atol=1e-5, err_msg=x.path)


def test_training_mode_fakes_use_batch_statistics():
    cfg = tiny_config(fake_batch_mode="training")
    sg = fresh(cfg)
    moving = [v.numpy().copy() for v in sg.generator.non_trainable_weights]
    sg.fake_batch(engines.step_inputs(cfg, 0, 16)["z_fake"])  # what the Keras engine does
    # a training-mode pass moves G's BatchNorm statistics; an inference-mode one would not
    assert any(not np.array_equal(a, b.numpy())
               for a, b in zip(moving, sg.generator.non_trainable_weights))
    with pytest.raises(ConfigError, match="inference or training"):
        cfg.replace(fake_batch_mode="eval")


def test_the_quickstart_preset_is_a_valid_fused_recipe():
    cfg = config.preset("quick32")
    assert cfg.engine == "fused" and cfg.image_size == 32
    assert (cfg.fake_batch_mode, cfg.minibatch_std, cfg.d_batchnorm) == ("training", True, False)
    assert config.smoke(cfg).engine == "fused"
    assert config.preset("quick32", engine="keras").engine == "keras"  # nothing fused-only
