"""Variational autoencoders: the baseline the GAN is compared with (python -m cargan_tf compare).

Two models, as in the well-known car study: v1 (``kind="dense"``) has dense layers only; v2
(``kind="conv"``) mirrors the GAN: its encoder is the discriminator's conv stack
(models.build_discriminator without its last layer) ending in a Dense layer that gives the
posterior's mean and log-variance, its decoder *is* a generator (models.build_generator):
z (N, latent_dim) -> images in [-1, 1], so every generator tool (evaluate, generate) takes it.

Loss per image: reconstruction (BCE on images rescaled to [0, 1], or MSE; summed over pixels)
+ beta * KL(q(z|x) || N(0, I)), beta ramped linearly from 0 over `beta_warmup_epochs`. Training
uses the GAN's tf.data pipeline (data.pipeline.epoch_dataset) and writes a run folder like the
GAN's: config.json, history.csv (epoch,batch,loss,recon,kl,beta,seconds), samples/epoch_NNNN.png
(a fixed prior latent: latents.seed_to_latent), reconstructions/epoch_NNNN.png (held-out images
above, their reconstructions below), evolution.gif, checkpoints/ (atomic, resumed from the
latest), and encoder.keras / decoder.keras at the end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from cargan_tf import io, latents, runs, viz
from cargan_tf.config import RunConfig, batches_per_epoch
from cargan_tf.data.pipeline import epoch_dataset
from cargan_tf.data.sources import load_images
from cargan_tf.errors import ConfigError, RunFolderError
from cargan_tf.evaluate import real_images_for
from cargan_tf.models import build_discriminator, build_generator, parameter_counts
from cargan_tf.progress import progress_bar as tqdm

VAE_HISTORY_COLUMNS = ("epoch", "batch", "loss", "recon", "kl", "beta", "seconds")
KINDS = ("dense", "conv")
RECON_LOSSES = ("bce", "mse")
_EPS = 1e-6


@dataclass
class VAEConfig:
    kind: str = "conv"                # dense (v1) | conv (v2: mirrors the GAN's D and G)
    data: str = "toycars"
    data_n: int | None = 8192
    image_size: int = 32
    channels: int = 3
    latent_dim: int = 100
    base_filters: int = 32            # conv: as the GAN's (models.filters_per_block)
    max_filters: int = 256
    kernel_size: int = 4
    batchnorm: bool = True            # conv: BatchNorm in encoder and decoder blocks
    hidden: int = 512                 # dense: units of the hidden layers (hidden, hidden // 2)
    recon: str = "bce"                # bce (on [0, 1] pixels) | mse
    beta: float = 1.0                 # weight of the KL term once warmed up
    beta_warmup_epochs: float = 0.0   # linear ramp 0 -> beta over this many epochs (0: none)
    lr: float = 1e-3                  # Adam learning rate
    batch_size: int = 64
    epochs: int = 16
    seed: int = 0
    grid_size: int = 36               # images in each sample grid (a square number)
    n_recon: int = 8                  # held-out images in each reconstruction grid
    keep_checkpoints: int = 2
    progress: bool = True

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"kind={self.kind!r}: use one of {', '.join(KINDS)}")
        if self.recon not in RECON_LOSSES:
            raise ConfigError(f"recon={self.recon!r}: use one of {', '.join(RECON_LOSSES)}")
        if self.image_size < 16 or self.image_size & (self.image_size - 1):
            raise ConfigError(f"image_size={self.image_size}: use a power of two >= 16")
        if self.beta < 0 or self.beta_warmup_epochs < 0:
            raise ConfigError("beta and beta_warmup_epochs must be >= 0")

    def replace(self, **kw) -> VAEConfig:
        return dataclasses.replace(self, **kw)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> VAEConfig:
        return cls(**json.loads(text))

    def run_config(self) -> RunConfig:
        """The GAN config whose D and G the conv VAE mirrors (no GAN-only options)."""
        return RunConfig(preset="vae", architecture="dcgan", data=self.data,
                         data_n=self.data_n, image_size=self.image_size,
                         channels=self.channels, latent_dim=self.latent_dim,
                         base_filters=self.base_filters, max_filters=self.max_filters,
                         kernel_size=self.kernel_size, batchnorm=self.batchnorm,
                         d_batchnorm=self.batchnorm, batch_size=self.batch_size, seed=self.seed)


def vae_config_from(cfg: RunConfig, kind: str, **overrides) -> VAEConfig:
    """A VAEConfig with the GAN run's data, sizes, batch, epochs and conv architecture."""
    return VAEConfig(kind=kind, data=cfg.data, data_n=cfg.data_n, image_size=cfg.image_size,
                     channels=cfg.channels, latent_dim=cfg.latent_dim,
                     base_filters=cfg.base_filters, max_filters=cfg.max_filters,
                     kernel_size=cfg.kernel_size, batchnorm=cfg.batchnorm,
                     batch_size=cfg.batch_size, epochs=cfg.epochs, seed=cfg.seed,
                     grid_size=cfg.grid_size, progress=cfg.progress).replace(**overrides)


# ---- models ------------------------------------------------------------------------------------

def build_encoder(vcfg: VAEConfig) -> keras.Sequential:
    """images (N, S, S, C) in [-1, 1] -> (N, 2 * latent_dim): [mu, logvar]."""
    shape = (vcfg.image_size, vcfg.image_size, vcfg.channels)
    if vcfg.kind == "conv":
        trunk = build_discriminator(vcfg.run_config()).layers[:-1]   # D without its score layer
    else:
        trunk = [layers.Flatten(), layers.Dense(vcfg.hidden, activation="relu"),
                 layers.Dense(vcfg.hidden // 2, activation="relu")]
    return keras.Sequential([keras.Input(shape=shape, name="image"), *trunk,
                             layers.Dense(2 * vcfg.latent_dim, dtype="float32",
                                          name="posterior")], name=f"{vcfg.kind}_encoder")


def build_decoder(vcfg: VAEConfig) -> keras.Sequential:
    """z (N, latent_dim) -> images (N, S, S, C) in [-1, 1] (tanh), like a GAN generator."""
    if vcfg.kind == "conv":
        decoder = build_generator(vcfg.run_config())
        decoder.name = "conv_decoder"
        return decoder
    s, c = vcfg.image_size, vcfg.channels
    return keras.Sequential([
        keras.Input(shape=(vcfg.latent_dim,), name="z"),
        layers.Dense(vcfg.hidden // 2, activation="relu"),
        layers.Dense(vcfg.hidden, activation="relu"),
        layers.Dense(s * s * c, activation="tanh", dtype="float32"),
        layers.Reshape((s, s, c)),
    ], name="dense_decoder")


def kl_divergence(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, I)) per row: float (N,)."""
    return -0.5 * tf.reduce_sum(1.0 + logvar - tf.square(mu) - tf.exp(logvar), axis=-1)


def reconstruction_loss(x, x_hat, kind: str = "bce"):
    """Per image, summed over pixels: x, x_hat in [-1, 1], compared as [0, 1] pixels."""
    target = (x + 1.0) / 2.0
    pred = tf.clip_by_value((x_hat + 1.0) / 2.0, _EPS, 1.0 - _EPS)
    if kind == "bce":
        per_pixel = -(target * tf.math.log(pred) + (1.0 - target) * tf.math.log(1.0 - pred))
    else:
        per_pixel = tf.square(target - pred)
    return tf.reduce_sum(tf.reshape(per_pixel, [tf.shape(x)[0], -1]), axis=-1)


class VAE(keras.Model):
    """Encoder + decoder with the reparameterisation trick and a compiled training step."""

    def __init__(self, encoder: keras.Model, decoder: keras.Model, recon: str = "bce",
                 lr: float = 1e-3, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder, self.recon = encoder, decoder, recon
        self.latent_dim = int(decoder.input_shape[-1])
        self.optimizer_ = keras.optimizers.Adam(lr)
        self.optimizer_.build(encoder.trainable_variables + decoder.trainable_variables)
        self.train_step_fn = tf.function(self._train_step)

    def encode(self, x, training=False):
        h = self.encoder(x, training=training)
        return h[:, :self.latent_dim], h[:, self.latent_dim:]

    @staticmethod
    def reparameterise(mu, logvar, eps):
        return mu + tf.exp(0.5 * logvar) * eps

    def call(self, x, training=False):
        """Reconstruction from the posterior mean (deterministic)."""
        mu, _ = self.encode(x, training=training)
        return self.decoder(mu, training=training)

    def losses_for(self, x, eps, beta, training=True):
        mu, logvar = self.encode(x, training=training)
        x_hat = self.decoder(self.reparameterise(mu, logvar, eps), training=training)
        recon = tf.reduce_mean(reconstruction_loss(x, x_hat, self.recon))
        kl = tf.reduce_mean(kl_divergence(mu, logvar))
        return recon + beta * kl, recon, kl

    def _train_step(self, x, beta, seed):
        """One Adam step; eps = stateless_normal(seed) so a resumed run draws the same noise."""
        eps = tf.random.stateless_normal([tf.shape(x)[0], self.latent_dim], seed=seed)
        variables = self.encoder.trainable_variables + self.decoder.trainable_variables
        with tf.GradientTape() as tape:
            loss, recon, kl = self.losses_for(x, eps, beta)
        self.optimizer_.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss, recon, kl


def build_vae(vcfg: VAEConfig) -> VAE:
    return VAE(build_encoder(vcfg), build_decoder(vcfg), recon=vcfg.recon, lr=vcfg.lr)


def vae_parameter_counts(vae: VAE) -> dict[str, int]:
    enc, dec = parameter_counts(vae.encoder), parameter_counts(vae.decoder)
    return {"encoder": enc["total"], "decoder": dec["total"],
            "total": enc["total"] + dec["total"]}


def beta_at(vcfg: VAEConfig, step: int, steps_per_epoch: int) -> float:
    """beta for global step `step` (0-based): linear warm-up, then vcfg.beta."""
    if vcfg.beta_warmup_epochs <= 0:
        return vcfg.beta
    return vcfg.beta * min(1.0, (step + 1) / (vcfg.beta_warmup_epochs * steps_per_epoch))


# ---- the run folder -----------------------------------------------------------------------------

class VAEPaths(runs.RunPaths):
    reconstructions = property(lambda self: self.root / "reconstructions")
    encoder = property(lambda self: self.root / "encoder.keras")
    decoder = property(lambda self: self.root / "decoder.keras")

    def reconstruction_grid(self, epoch: int) -> Path:
        return self.reconstructions / f"epoch_{epoch:04d}.png"

    def create(self) -> None:
        super().create()
        self.reconstructions.mkdir(exist_ok=True)


def _vae_history_row(raw: dict[str, str]) -> dict[str, float]:
    row = {k: float(raw[k]) for k in VAE_HISTORY_COLUMNS}
    row["epoch"], row["batch"] = int(row["epoch"]), int(row["batch"])
    return row


def read_vae_history(path) -> list[dict[str, float]]:
    """Rows of a VAE run's history.csv as dicts of floats; a torn last row is dropped."""
    return io.read_csv_rows(path, _vae_history_row)


def held_out_images(vcfg: VAEConfig, n: int) -> np.ndarray:
    """uint8 images the VAE never trains on (toycars) for reconstruction grids and scores."""
    return real_images_for(vcfg.data, vcfg.image_size, vcfg.channels, n, seed=vcfg.seed)[0]


class VAETrainer:
    """One VAE run in a run folder: train, checkpoint each epoch, resume, write artefacts."""

    def __init__(self, vcfg: VAEConfig, run_dir, images: np.ndarray | None = None):
        self.paths = VAEPaths(run_dir)
        self.paths.create()
        if self.paths.config.exists():
            old = VAEConfig.from_json(self.paths.config.read_text(encoding="utf-8"))
            changed = {k for k, v in dataclasses.asdict(old).items()
                       if k not in ("epochs", "progress", "keep_checkpoints")
                       and getattr(vcfg, k) != v}
            if changed:
                raise ConfigError(f"{self.paths.root} holds a VAE run with different "
                                  f"{', '.join(sorted(changed))}; use a new folder")
        runs.write_text_atomic(self.paths.config, vcfg.to_json())
        self.cfg = vcfg
        if images is None:
            images = load_images(vcfg.data, vcfg.image_size, vcfg.channels, n=vcfg.data_n,
                                 seed=vcfg.seed)
        self.images = images
        if len(images) < vcfg.batch_size:
            raise ConfigError(f"{len(images)} images is fewer than one batch ({vcfg.batch_size})")
        keras.utils.set_random_seed(vcfg.seed)
        self.vae = build_vae(vcfg)
        self.checkpoint = tf.train.Checkpoint(encoder=self.vae.encoder, decoder=self.vae.decoder,
                                              optimizer=self.vae.optimizer_)
        self.grid_latent = latents.seed_to_latent(vcfg.seed, vcfg.grid_size, vcfg.latent_dim)
        self.held_out = held_out_images(vcfg, vcfg.n_recon)
        self.steps_per_epoch = batches_per_epoch(len(images), vcfg.batch_size)
        self.epoch, self.step = 1, 0  # the next epoch to train, global steps done

    def restore_latest(self) -> bool:
        runs.remove_stale_checkpoints(self.paths, keep=0)
        runs.remove_stale_temp_files(self.paths)
        latest = runs.latest_checkpoint(self.paths)
        keep_before = 1
        if latest is not None:
            state = runs.read_json(latest / "state.json")
            self.checkpoint.read(str(latest / "weights")).assert_existing_objects_matched()
            self.epoch, self.step = state["epoch"], state["step"]
            keep_before = self.epoch
        if self.paths.history.exists():  # rows after the checkpoint were lost work
            rows = [r for r in read_vae_history(self.paths.history) if r["epoch"] < keep_before]
            runs.write_text_atomic(self.paths.history,
                                  io.csv_text(rows, VAE_HISTORY_COLUMNS, header=True))
        return latest is not None

    def save_checkpoint(self) -> Path:
        with runs.staged_checkpoint(self.paths, self.step) as staging:
            self.checkpoint.write(str(staging / "weights"))
            runs.write_json_atomic(staging / "state.json", {
                "epoch": self.epoch, "step": self.step, "steps_per_epoch": self.steps_per_epoch,
                "rng": "eps = stateless_normal(seed=(seed, step)); "
                       "shuffle = pipeline.epoch_order(n, seed, epoch)"})
        runs.remove_stale_checkpoints(self.paths, keep=self.cfg.keep_checkpoints)
        return self.paths.checkpoint(self.step)

    def samples(self, z: np.ndarray | None = None) -> np.ndarray:
        """float32 images in [-1, 1] decoded from z (default: the fixed grid latent)."""
        z = self.grid_latent if z is None else z
        return self.vae.decoder(z, training=False).numpy()

    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """uint8 images -> their reconstructions (posterior mean), float32 in [-1, 1]."""
        x = images.astype(np.float32) / 127.5 - 1.0
        return self.vae(x, training=False).numpy()

    def save_grids(self, epoch: int) -> None:
        viz.save_grid(self.paths.sample_grid(epoch), self.samples())
        both = np.concatenate([viz.to_uint8(self.held_out),
                               viz.to_uint8(self.reconstruct(self.held_out))])
        viz.save_grid(self.paths.reconstruction_grid(epoch), both, cols=len(self.held_out))

    def run(self) -> Path:
        cfg = self.cfg
        if not self.restore_latest():
            self.save_grids(0)
        while self.epoch <= cfg.epochs:
            rows = []
            # the GAN trainer's bar: batches of this epoch, the running losses as its postfix
            bar = tqdm(total=self.steps_per_epoch, disable=not cfg.progress, leave=False,
                       desc=f"vae-{cfg.kind} epoch {self.epoch}/{cfg.epochs}", file=sys.stdout)
            for x in epoch_dataset(self.images, cfg.batch_size, cfg.seed, self.epoch):
                start = time.perf_counter()
                beta = beta_at(cfg, self.step, self.steps_per_epoch)
                loss, recon, kl = self.vae.train_step_fn(
                    x, tf.constant(beta, tf.float32),
                    tf.constant([cfg.seed, self.step], tf.int64))
                row = dict(epoch=self.epoch, batch=len(rows), loss=float(loss),
                           recon=float(recon), kl=float(kl), beta=float(beta),
                           seconds=time.perf_counter() - start)
                if not all(math.isfinite(row[k]) for k in ("loss", "recon", "kl")):
                    raise RunFolderError(f"VAE loss became non-finite at epoch {self.epoch}, "
                                         f"batch {len(rows)}: lower lr (now {cfg.lr})")
                rows.append(row)
                self.step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{row['loss']:.2f}", kl=f"{row['kl']:.2f}", refresh=False)
            bar.close()
            with open(self.paths.history, "a", encoding="utf-8") as handle:
                handle.write(io.csv_text(rows, VAE_HISTORY_COLUMNS, header=handle.tell() == 0))
            self.save_grids(self.epoch)
            if cfg.progress:
                mean = {k: float(np.mean([r[k] for r in rows])) for k in ("loss", "recon", "kl")}
                print(f"vae-{cfg.kind} epoch {self.epoch}/{cfg.epochs}: loss {mean['loss']:.2f} "
                      f"recon {mean['recon']:.2f} kl {mean['kl']:.2f}", flush=True)
            self.epoch += 1
            self.save_checkpoint()
        self.finish()
        return self.paths.root

    def finish(self) -> None:
        runs.save_model_atomic(self.vae.encoder, self.paths.encoder)
        runs.save_model_atomic(self.vae.decoder, self.paths.decoder)
        frames = self.paths.list_sample_grids()
        if frames:
            viz.make_gif(frames, self.paths.evolution_gif,
                         labels=[f"epoch {int(p.stem.split('_')[1])}" for p in frames])


def train_vae(vcfg: VAEConfig, run_dir: str | os.PathLike,
              images: np.ndarray | None = None) -> Path:
    """Train (or resume) a VAE run in `run_dir`; returns the run folder."""
    return VAETrainer(vcfg, run_dir, images).run()


__all__ = ["VAEConfig", "VAE", "VAETrainer", "VAEPaths", "build_encoder", "build_decoder",
           "build_vae", "kl_divergence", "reconstruction_loss", "beta_at", "train_vae",
           "vae_config_from", "vae_parameter_counts", "read_vae_history", "VAE_HISTORY_COLUMNS"]
