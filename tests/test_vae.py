"""The VAE baseline (cargan_tf.vae) and the GAN-vs-VAE comparison (cargan_tf.compare)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cargan_tf import viz
from cargan_tf.vae import VAEConfig


def tiny_vae_config(**overrides) -> VAEConfig:
    cfg = VAEConfig(image_size=16, latent_dim=8, base_filters=8, max_filters=32, hidden=64,
                    data_n=64, batch_size=16, epochs=2, grid_size=16, n_recon=4, progress=False)
    return cfg.replace(**overrides)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_shapes(kind):
    from cargan_tf.vae import build_vae

    vae = build_vae(tiny_vae_config(kind=kind))
    x = np.zeros((3, 16, 16, 3), np.float32)
    assert tuple(vae.encoder(x).shape) == (3, 16)
    mu, logvar = vae.encode(x)
    assert tuple(mu.shape) == tuple(logvar.shape) == (3, 8)
    assert tuple(vae.decoder(np.zeros((3, 8), np.float32)).shape) == (3, 16, 16, 3)
    out = np.asarray(vae(x))
    assert out.shape == (3, 16, 16, 3) and np.all(np.abs(out) <= 1.0)


def test_conv_vae_mirrors_the_gan():
    from cargan_tf.models import build_discriminator, build_generator, parameter_counts
    from cargan_tf.vae import build_vae

    vcfg = tiny_vae_config(kind="conv")
    vae = build_vae(vcfg)
    g, d = build_generator(vcfg.run_config()), build_discriminator(vcfg.run_config())
    assert parameter_counts(vae.decoder) == parameter_counts(g)
    # the encoder is D's trunk with a (features -> 2 * latent) head instead of D's 1-unit score
    feat = d.layers[-1].input.shape[-1]
    assert parameter_counts(vae.encoder)["total"] == (
        parameter_counts(d)["total"] - (feat + 1) + (feat + 1) * 2 * vcfg.latent_dim)


def test_kl_terms():
    from cargan_tf.vae import kl_divergence

    zeros = np.zeros((4, 8), np.float32)
    assert np.all(np.asarray(kl_divergence(zeros, zeros)) == 0.0)
    mu = np.array([[0.5, -1.0, 2.0]], np.float32)
    logvar = np.array([[0.0, math.log(2.0), -1.0]], np.float32)
    by_hand = 0.5 * sum(math.exp(lv) + m * m - 1.0 - lv for m, lv in zip(mu[0], logvar[0]))
    assert float(kl_divergence(mu, logvar)[0]) == pytest.approx(by_hand, rel=1e-6)


def test_beta_warm_up():
    from cargan_tf.vae import beta_at

    assert beta_at(tiny_vae_config(beta=0.5), 0, 4) == 0.5
    warm = tiny_vae_config(beta=2.0, beta_warmup_epochs=2)
    assert [beta_at(warm, s, 4) for s in (0, 3, 7, 20)] == [0.25, 1.0, 2.0, 2.0]


def test_reconstruction_loss_terms():
    from cargan_tf.vae import reconstruction_loss

    x = np.random.default_rng(0).uniform(-1, 1, (2, 4, 4, 1)).astype(np.float32)
    assert np.allclose(reconstruction_loss(x, x, "mse"), 0.0)
    # BCE is smallest at x_hat = x
    assert np.all(np.asarray(reconstruction_loss(x, x, "bce"))
                  < np.asarray(reconstruction_loss(x, 0.5 * x, "bce")))


def test_reconstruction_improves_over_a_few_dozen_steps():
    import keras
    import tensorflow as tf

    from cargan_tf.data.pipeline import epoch_dataset
    from cargan_tf.data.toycars import draw_toycars
    from cargan_tf.vae import build_vae

    keras.utils.set_random_seed(0)
    images = draw_toycars(64, 16, 0, 3)[0]
    x_all = images.astype(np.float32) / 127.5 - 1.0
    vae = build_vae(tiny_vae_config(kind="conv", lr=3e-3, recon="mse", batchnorm=False))
    zero = np.zeros((64, 8), np.float32)

    def recon():
        return float(vae.losses_for(x_all, zero, 0.0, training=False)[1])

    before, step = recon(), 0
    for epoch in range(1, 9):  # 8 epochs x 4 batches = 32 steps
        for x in epoch_dataset(images, 16, 0, epoch):
            # beta 0: the start of a KL warm-up (with beta 1 it also falls, less: ~49 -> 41-45)
            vae.train_step_fn(x, tf.constant(0.0), tf.constant([0, step], tf.int64))
            step += 1
    after = recon()
    assert after < 0.85 * before, (before, after)  # about 49 -> 30


def test_vae_run_folder_and_resume(tmp_path):
    from cargan_tf import runs
    from cargan_tf.vae import VAEPaths, VAETrainer, read_vae_history, train_vae

    cfg = tiny_vae_config(kind="dense")
    straight = train_vae(cfg, tmp_path / "straight")
    paths = VAEPaths(straight)
    rows = read_vae_history(paths.history)
    assert [(r["epoch"], r["batch"]) for r in rows] == [(e, b) for e in (1, 2) for b in range(4)]
    assert all(math.isfinite(r["loss"]) for r in rows)
    assert [p.name for p in paths.list_sample_grids()] == [f"epoch_000{i}.png" for i in range(3)]
    for png in [*paths.list_sample_grids(), paths.reconstruction_grid(2)]:
        viz.decode_png(png.read_bytes())
    assert viz.gif_frame_count(paths.evolution_gif) == 3
    assert paths.decoder.exists() and paths.encoder.exists()

    # the same run in two sittings: 1 epoch, then resumed to 2
    split = tmp_path / "split"
    train_vae(cfg.replace(epochs=1), split)
    assert runs.latest_checkpoint(VAEPaths(split)).name == "ckpt-00000004"
    trainer = VAETrainer(cfg, split)
    assert trainer.restore_latest() and (trainer.epoch, trainer.step) == (2, 4)
    trainer = VAETrainer(cfg, split)
    trainer.run()
    assert (trainer.epoch, trainer.step) == (3, 8)
    assert len(read_vae_history(VAEPaths(split).history)) == 8
    straight_trainer = VAETrainer(cfg, straight)
    assert straight_trainer.restore_latest()
    for a, b in zip(straight_trainer.vae.decoder.get_weights(), trainer.vae.decoder.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_vae_training_shows_a_bar_per_epoch_only_with_progress(tmp_path, capsys):
    from cargan_tf.vae import train_vae

    train_vae(tiny_vae_config(kind="dense", epochs=1, progress=True), tmp_path / "bar")
    out = capsys.readouterr().out
    # tqdm's bar: this epoch's 4 batches, counted from 0 (the epoch line alone has no "/4 [")
    assert "vae-dense epoch 1/1:" in out and "0/4 [" in out, out
    train_vae(tiny_vae_config(kind="dense", epochs=1), tmp_path / "quiet")
    assert capsys.readouterr().out == ""


def test_compare_smoke_writes_every_artefact(tmp_path, capsys):
    from cargan_tf.cli import main
    from cargan_tf.compare import MODEL_FIELDS, MODELS

    out = tmp_path / "cmp"
    assert main(["compare", "--smoke", "--out", str(out)]) == 0
    assert "VAE v2 (conv)" in capsys.readouterr().out
    report = json.loads((out / "comparison.json").read_text())
    assert report["features"] == "pixels" and report["features_note"]
    assert "epochs" in report["budget"] and report["epochs"] == 2
    for model in MODELS:
        row = report["models"][model]
        assert set(MODEL_FIELDS) <= set(row)
        for key in ("fid", "kid", "diversity", "pixel_diversity", "train_seconds"):
            assert math.isfinite(row[key]), (model, key)
        assert all(v > 0 for v in row["parameters"].values())
        assert (row["recon_mse"] is None) == (model == "gan")
    for name in ("samples", "reconstructions", "interpolations"):
        image = viz.decode_png((out / f"{name}.png").read_bytes())
        assert image.ndim == 3 and image.shape[0] > 16
    text = (out / "comparison.md").read_text()
    assert "| VAE v1 (dense) |" in text and "pixels" in text
    assert (out / "gan" / "generator.keras").exists()
    assert (out / "vae_conv" / "decoder.keras").exists()
    # toycars has held-out images; user data does not, and the table says so
    from cargan_tf.compare import comparison_markdown

    assert report["real_images"] == "held-out" and "held-out recon MSE" in text
    user = comparison_markdown({**report, "real_images": "training-set",
                                "real_set": "cars: 64 of 64 images (training images)"})
    assert "training-set recon MSE" in user and "held-out recon" not in user
    assert "no held-out split, so the VAEs have seen them" in user
