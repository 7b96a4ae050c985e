"""GAN versus VAE: train the GAN and both VAEs on the same data for the same epochs, then score
them the same way and put their pictures side by side.

The budget is the same number of epochs over the same images with the same batch size, so the
same number of optimiser steps (a GAN step updates D and G, so it costs more compute; the
training times in the table say how much). Every model is scored with cargan_tf.evaluate's
score_images against the same held-out real set, its samples drawn from
seed_to_latent(EVAL_SEED): a VAE's decoder is scored exactly like a generator.

Writes into `out`: gan/, vae_dense/, vae_conv/ (run folders), comparison.json,
comparison.md, samples.png, reconstructions.png, interpolations.png.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cargan_tf import config as config_mod
from cargan_tf import runs, viz
from cargan_tf.data.sources import load_images_for
from cargan_tf.evaluate import EVAL_SEED, PIXEL_NOTE, choose_extractor, real_images_for, score_images
from cargan_tf.generate import generate_images, interpolation_images, load_generator
from cargan_tf.latents import seed_to_latent
from cargan_tf.models import build_discriminator, parameter_counts
from cargan_tf.runs import RunPaths, read_history
from cargan_tf.train import train
from cargan_tf.vae import VAETrainer, read_vae_history, vae_config_from, vae_parameter_counts

MODELS = ("gan", "vae_dense", "vae_conv")
LABELS = {"gan": "GAN (DCGAN)", "vae_dense": "VAE v1 (dense)", "vae_conv": "VAE v2 (conv)"}
# comparison.json: per model, every key is present (None where it does not apply)
MODEL_FIELDS = ("fid", "kid", "kid_std", "precision", "recall", "diversity", "pixel_diversity",
                "train_seconds", "parameters", "recon_mse", "run_dir")
INTERP_SEEDS = (1, 2)


def comparison_config(data: str = "toycars", image_size: int = 32, epochs: int = 4,
                      data_n: int | None = None, smoke: bool = False):
    """The GAN's RunConfig: the quick32 preset (the VAEs copy its data, sizes and budget)."""
    cfg = config_mod.preset("quick32")
    if smoke:
        cfg = config_mod.smoke(cfg)
    # smoke: at most the smoke preset's 2 epochs (fewer when asked)
    # epochs, not quick32's step budget: the VAEs train the same epochs
    overrides: dict[str, Any] = dict(data=data, epochs=min(epochs, cfg.epochs) if smoke else epochs,
                                     steps=0, progress=not smoke, checkpoint_every_minutes=0.0)
    if not smoke:
        overrides["image_size"] = image_size
    if data_n is not None:
        overrides["data_n"] = data_n
    return cfg.replace(**overrides)


def _row_strip(images: np.ndarray, label: str, cols: int) -> np.ndarray:
    return viz.caption(viz.upscale(viz.image_grid(images, cols), 64 * cols), label)


def _stack(strips: list[np.ndarray]) -> np.ndarray:
    width = max(s.shape[1] for s in strips)
    padded = [np.pad(s, ((0, 6), (0, width - s.shape[1]), (0, 0)), constant_values=255)
              for s in strips]
    return np.concatenate(padded, axis=0)


def _fmt(value, digits=3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1e-2 else f"{value:.{digits}f}"
    return str(value)


def run_comparison(out: str | os.PathLike, *, data: str = "toycars", image_size: int = 32,
                   epochs: int = 4, data_n: int | None = None, smoke: bool = False,
                   features: str = "domain", n_eval: int | None = None,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train (or resume) the three models into `out` and write the comparison; returns its dict.

    features: domain (toycars / fashion_mnist extractor) or pixels; smoke mode always uses
    pixels (the domain extractor takes minutes to train the first time).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = comparison_config(data, image_size, epochs, data_n, smoke)
    images = load_images_for(cfg)
    n_eval = n_eval or (64 if smoke else 1000)
    requested = "pixels" if smoke else features
    extractor, note = choose_extractor(requested, cfg.data, cfg.image_size, cfg.channels, log=log)
    if smoke and features != "pixels":
        note = f"smoke mode: {PIXEL_NOTE}"
    real, real_set = real_images_for(cfg.data, cfg.image_size, cfg.channels, n_eval,
                                     seed=cfg.seed)
    held = real[:8]
    # toycars has images never trained on; user data has no held-out split (evaluate.py)
    unseen = "held-out" if cfg.data == "toycars" else "training-set"
    results: dict[str, dict[str, Any]] = {}
    samples, recons, interps = {}, {}, {}

    # ---- the GAN
    log(f"training the GAN ({config_mod.plural(cfg.epochs, 'epoch')}, {len(images)} images)")
    gan_dir = train(cfg, out / "gan", images=images)
    # the training steps' own seconds (history.csv): honest for a resumed or reused run too
    gan_seconds = sum(row["seconds"] for row in read_history(RunPaths(gan_dir).history))
    generator = load_generator(gan_dir)
    results["gan"] = {"train_seconds": gan_seconds,
                      "parameters": {"generator": parameter_counts(generator)["total"],
                                     "discriminator": parameter_counts(build_discriminator(cfg))["total"]},
                      "run_dir": str(gan_dir), "recon_mse": None}
    fake = generate_images(generator, seed_to_latent(EVAL_SEED, n_eval, cfg.latent_dim))
    results["gan"].update(score_images(fake, real, extractor))
    samples["gan"] = fake[:16]
    interps["gan"] = interpolation_images(generator, *INTERP_SEEDS, 8)

    # ---- the VAEs
    for kind in ("dense", "conv"):
        name = f"vae_{kind}"
        vcfg = vae_config_from(cfg, kind, hidden=64 if smoke else 512)
        log(f"training {LABELS[name]} ({config_mod.plural(vcfg.epochs, 'epoch')})")
        trainer = VAETrainer(vcfg, out / name, images=images)
        trainer.run()
        seconds = sum(row["seconds"] for row in read_vae_history(trainer.paths.history))
        decoder = trainer.vae.decoder
        fake = generate_images(decoder, seed_to_latent(EVAL_SEED, n_eval, cfg.latent_dim))
        recon = viz.to_uint8(trainer.reconstruct(real))
        mse = float(np.mean(((recon.astype(np.float32) - real) / 255.0) ** 2))
        results[name] = {"train_seconds": seconds, "parameters": vae_parameter_counts(trainer.vae),
                         "run_dir": str(out / name), "recon_mse": mse,
                         **score_images(fake, real, extractor)}
        samples[name] = fake[:16]
        recons[name] = recon[:len(held)]
        # VAE walk: a straight line between the posterior means of two of those real images
        mu, _ = trainer.vae.encode(held[:2].astype(np.float32) / 127.5 - 1.0)
        mu = np.asarray(mu)
        t = np.linspace(0.0, 1.0, 8, dtype=np.float32)[:, None]
        interps[name] = generate_images(decoder, (1 - t) * mu[0] + t * mu[1])

    # ---- pictures
    pictures = {"samples": out / "samples.png", "reconstructions": out / "reconstructions.png",
                "interpolations": out / "interpolations.png"}
    viz.save_png(pictures["samples"],
                 _stack([_row_strip(samples[m], LABELS[m], 16) for m in MODELS]))
    viz.save_png(pictures["reconstructions"],
                 _stack([_row_strip(held, f"{unseen} real images", len(held))]
                        + [_row_strip(recons[m], LABELS[m], len(held)) for m in MODELS[1:]]))
    viz.save_png(pictures["interpolations"],
                 _stack([_row_strip(interps["gan"], f"{LABELS['gan']}: slerp seed "
                                    f"{INTERP_SEEDS[0]} -> {INTERP_SEEDS[1]}", 8)]
                        + [_row_strip(interps[m], f"{LABELS[m]}: {unseen} image 1 -> 2", 8)
                           for m in MODELS[1:]]))

    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": cfg.data, "image_size": cfg.image_size, "channels": cfg.channels,
        "n_train": len(images), "smoke": smoke, "real_images": unseen,
        "budget": (f"{config_mod.plural(cfg.epochs, 'epoch')} of {len(images)} images at batch "
                   f"{cfg.batch_size} "
                   f"({cfg.epochs * (len(images) // cfg.batch_size)} optimiser steps) for every "
                   "model; a GAN step updates D and G"),
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "latent_dim": cfg.latent_dim,
        "gan_preset": cfg.preset, "features": extractor.name, "features_note": note,
        "features_requested": requested, "n_eval": n_eval, "real_set": real_set,
        "models": {m: {k: results[m].get(k) for k in MODEL_FIELDS} for m in MODELS},
        "pictures": {k: str(v) for k, v in pictures.items()},
    }
    runs.write_json_atomic(out / "comparison.json", report)
    runs.write_text_atomic(out / "comparison.md", comparison_markdown(report))
    return report


def comparison_markdown(report: dict[str, Any]) -> str:
    lines = [f"# GAN vs VAE on {report['data']} {report['image_size']}x{report['image_size']}",
             "", f"Budget: {report['budget']}.", "",
             f"Scores: {report['n_eval']} samples (latents seed_to_latent({EVAL_SEED})) against "
             f"{report['real_set']}; features: **{report['features']}**"
             + (f" ({report['features_note']})" if report["features_note"] else "") + ".", "",
             "| model | FID | KID | precision | recall | diversity | pixel diversity | "
             f"{report.get('real_images', 'held-out')} recon MSE | train s | parameters |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for m in MODELS:
        r = report["models"][m]
        params = ", ".join(f"{k} {v:,}" for k, v in r["parameters"].items())
        lines.append(f"| {LABELS[m]} | {_fmt(r['fid'])} | {_fmt(r['kid'])} | "
                     f"{_fmt(r['precision'])} | {_fmt(r['recall'])} | {_fmt(r['diversity'])} | "
                     f"{_fmt(r['pixel_diversity'])} | {_fmt(r['recon_mse'], 4)} | "
                     f"{r['train_seconds']:.0f} | {params} |")
    lines += ["", "Lower FID/KID is better; diversity is the samples' mean pairwise feature "
              "distance over the real set's (1 = as varied as the data). Recon MSE is on [0, 1] "
              f"pixels of {report.get('real_images', 'held-out')} images (VAEs only)"
              + ("" if report.get("real_images", "held-out") == "held-out" else
                 ": this data has no held-out split, so the VAEs have seen them") + ".", "",
              "![samples](samples.png)", "", "![reconstructions](reconstructions.png)", "",
              "![interpolations](interpolations.png)", ""]
    return "\n".join(lines)


__all__ = ["run_comparison", "comparison_config", "comparison_markdown", "MODELS",
           "MODEL_FIELDS"]
