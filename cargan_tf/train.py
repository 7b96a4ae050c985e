# Over 450 lines: the loop and the run folder it keeps (checkpoints, history, grids, scores).
"""The training loop: D on a real batch, D on a fake batch, G through the frozen-D gan.

Writes everything into a run folder (runs.RunPaths) and resumes from its latest complete
checkpoint when run again on the same folder.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import cargan_tf
from cargan_tf import runs, tensorboard, viz
from cargan_tf.conditional import build_models, grid_latents
from cargan_tf.config import (
    RunConfig,
    batches_per_epoch,
    diff_identity,
    diff_schedule,
    finish,
    minutes_pending,
    normalize_data,
)
from cargan_tf.data.classes import ClassLabels, class_labels_for
from cargan_tf.data.pipeline import run_dataset
from cargan_tf.data.sources import load_images_for
from cargan_tf.distribute import check_batch, distribute_dataset, is_chief, make_strategy
from cargan_tf.engines import make_engine, step_inputs
from cargan_tf.env import is_chief_process
from cargan_tf.errors import CarganError, ConfigError, RunFolderError, first_line
from cargan_tf.evaluate import RunEvaluator, read_metrics, truncate_metrics
from cargan_tf.gan import StackedGAN, set_trainable
from cargan_tf.lr_decay import lr_factor
from cargan_tf.models import precision_policy
from cargan_tf.pace import Pace, estimate_line, steps_for_minutes
from cargan_tf.progress import progress_bar as tqdm
from cargan_tf.transfer import init_from

# the loss plots redraw the whole history (~1.4 s at 6,000 rows): at most this often during
# training, so short epochs are not slowed by them; finish() always draws the final ones
PLOTS_EVERY_SECONDS = 30.0
# samples_every_epochs=0 keeps at most this many per-epoch grids: a 400-image set trained for
# 6,144 steps runs 1,024 epochs, and a grid per epoch filled 232 MB of Drive.
AUTO_MAX_EPOCH_GRIDS = 200

EpochCallback = Callable[[int, "Path | None"], None]


def grid_every_epochs(cfg: RunConfig) -> int:
    """Epochs between sample grids: samples_every_epochs, or for 0 every epoch up to
    AUTO_MAX_EPOCH_GRIDS epochs and evenly spaced beyond."""
    if cfg.samples_every_epochs:
        return cfg.samples_every_epochs
    return max(1, math.ceil(cfg.epochs / AUTO_MAX_EPOCH_GRIDS))


class TrainingDivergedError(CarganError):
    """A loss went NaN or infinite; the last good checkpoint is still the latest."""


def reconcile_config(paths: runs.RunPaths, cfg: RunConfig) -> None:
    """Check the final `cfg` against the run folder's saved config and record it there.

    A new folder gets config.json. An existing one may change schedule keys (logged in
    config_history.jsonl); a change of identity keys is refused with the keys that differ.
    `data` is compared as config.resolve stores it (a folder made absolute), so a run saved
    with `c32` resumes with `/abs/c32`.
    """
    if paths.config.exists():
        try:
            old = RunConfig.from_json(paths.config.read_text(encoding="utf-8"))
        except (ValueError, TypeError) as err:
            raise RunFolderError(f"{paths.config} is not a readable run config ({err}); use "
                                 "a new run folder (--run-dir; run_name in the notebooks) or "
                                 "delete it") from err
        changed = diff_identity(old.replace(data=normalize_data(old.data)), cfg)
        if changed:
            lines = "\n".join(f"  {k}: {a!r} (run) -> {b!r} (now)" for k, (a, b) in changed.items())
            raise ConfigError(
                f"{paths.root} was trained with a different setup; resuming would mix two "
                f"runs. Keys that differ:\n{lines}\nUse a new run folder (--run-dir; run_name "
                "in the notebooks), or the run's own values: `train --run-dir "
                f"{paths.root}` with no --preset/--config resumes with them. Schedule keys "
                "(epochs, learning rates, intervals) may change.")
        schedule = diff_schedule(old, cfg)
        schedule.pop("progress", None)  # how the run is shown, not how it trains
        if schedule:
            runs.append_jsonl(paths.config_history, {
                "time": _now(), "changed": {k: {"from": a, "to": b}
                                            for k, (a, b) in schedule.items()}})
    runs.write_text_atomic(paths.config, cfg.to_json())


def reconcile_classes(paths: runs.RunPaths, labels: ClassLabels) -> None:
    """classes.json of a conditional run: its class names in one-hot order (with the counts).
    A resume whose data now has other classes is refused: the models' widths depend on them."""
    if paths.classes.exists():
        old = tuple(runs.read_json(paths.classes)["classes"])
        if old != labels.names:
            raise ConfigError(f"{paths.root} was trained on the classes {', '.join(old)}; the "
                              f"data now has {', '.join(labels.names)}. Use a new run folder.")
    runs.write_json_atomic(paths.classes, {"classes": list(labels.names),
                                           "counts": labels.counts(), "source": labels.source})


def halve_learning_rates(cfg: RunConfig, paths: runs.RunPaths, restart: int,
                         err: Exception) -> RunConfig:
    """The schedule change of a divergence restart (on_divergence=restart), made explicitly:
    lr_d and lr_g halved, logged in config_history.jsonl as a "divergence_restart" event with
    the error, and written to config.json; returns the new config for the next Trainer."""
    new = cfg.replace(lr_d=cfg.lr_d / 2, lr_g=cfg.lr_g / 2)
    if is_chief_process(cfg.strategy):
        runs.append_jsonl(paths.config_history, {
            "time": _now(), "event": "divergence_restart", "restart": restart,
            "error": first_line(err),
            "changed": {k: {"from": getattr(cfg, k), "to": getattr(new, k)}
                        for k in ("lr_d", "lr_g")}})
        runs.write_text_atomic(paths.config, new.to_json())
    print(f"{err}\nrestart {restart}/{MAX_DIVERGENCE_RESTARTS}: continuing from the last good "
          f"checkpoint with lr_d={new.lr_d:.3g}, lr_g={new.lr_g:.3g}", flush=True)
    return new


def run_info(cfg: RunConfig, replicas: int = 1) -> dict:
    """Versions, device and the maths choices a reader of the run needs to know."""
    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    return {
        "cargan_tf": cargan_tf.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "device": ", ".join(gpus) if gpus else f"CPU ({os.cpu_count()} cores)",
        "onednn_cpu_kernels": _onednn_enabled(),
        "precision": cfg.precision,
        "frozen_d_batchnorm": cfg.frozen_d_batchnorm,
        "engine": cfg.engine,
        "jit_compile": cfg.jit_compile,
        "strategy": cfg.strategy,
        "replicas": replicas,
        "generator_keras_holds": "EMA of G's weights" if cfg.ema_decay else "G's weights",
    }


def _onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its oneDNN CPU kernels (they change speed and round-off)."""
    try:
        # here: a private module, absent in some TensorFlow builds
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # a private module: absent in some builds
        return None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Trainer:
    """One run: models, the stacked gan, its checkpoint object and the run folder."""

    def __init__(self, cfg: RunConfig, run_dir: str | os.PathLike,
                 images: np.ndarray | None = None, force_unlock: bool | None = None):
        """cfg: the run's final config (config.resolve, or train()), kept as it is: the same
        object the stacked gan and the engine hold. images: uint8 (N, S, S, C), the training
        set (default: cfg.data loaded); a step budget must already be epochs of this set.

        The chief takes the run folder's lock (runs.RunLock: another live trainer on the same
        folder is a RunLockedError; force_unlock takes it over) and keeps it until run() ends
        or close() is called (at the latest, when the process exits)."""
        self.lock: runs.RunLock | None = None
        # first: MultiWorkerMirroredStrategy must set up its collectives before any other op
        self.strategy = make_strategy(cfg) if cfg.strategy != "default" else None
        self.is_chief = self.strategy is None or is_chief(self.strategy)
        # the run folder checkpoints are restored from; a non-chief worker writes elsewhere
        self.source = runs.RunPaths(run_dir)
        # the data first: bad images fail before a run folder exists
        self.images = images if images is not None else load_images_for(cfg)
        expected = (cfg.image_size, cfg.image_size, cfg.channels)
        if self.images.dtype != np.uint8 or self.images.shape[1:] != expected:
            raise ConfigError(f"training images are {self.images.dtype} {self.images.shape[1:]}, "
                              f"the config wants uint8 {expected}")
        # a conditional run's class of every image, and the class names (one-hot order)
        self.labels = class_labels_for(cfg) if cfg.conditional else None
        self.class_names = self.labels.names if self.labels is not None else ()
        if self.labels is not None and len(self.labels.ids) != len(self.images):
            raise ConfigError(f"{len(self.images)} training images but {len(self.labels.ids)} "
                              f"class labels for {cfg.data}: pass no images (cfg.data is read)")
        if len(self.images) < cfg.batch_size:
            raise ConfigError(f"{len(self.images)} training images is fewer than one batch "
                              f"({cfg.batch_size}); lower batch_size or add images")
        self.steps_per_epoch = batches_per_epoch(len(self.images), cfg.batch_size,
                                                 cfg.drop_remainder)
        if cfg != finish(cfg, len(self.images)):
            raise ConfigError("Trainer takes a run's final config: make it with config.resolve("
                              "..., n_images=len(images)) or config.finish(cfg, len(images)), "
                              "or call train(), which does")
        self.cfg = cfg
        # the run's lines print without a progress bar too (a log file wants them): only the
        # bar follows cfg.progress; a non-chief worker prints nothing
        if cfg.steps and self.is_chief and cfg.epochs * self.steps_per_epoch != cfg.steps:
            print(f"a budget of {cfg.steps} steps is {cfg.epochs} whole epochs of "
                  f"{self.steps_per_epoch} batches: {cfg.epochs * self.steps_per_epoch} steps",
                  flush=True)
        if self.is_chief:
            self.paths = self.source
            self.paths.create()
            self.lock = runs.RunLock(self.paths.root, force=force_unlock).acquire()
        else:
            self.paths = runs.RunPaths(tempfile.mkdtemp(prefix="cargan_worker_"))
            self.paths.create()
        try:  # from here on a failure must not leave the lock held
            if self.is_chief:
                reconcile_config(self.paths, cfg)
                if self.labels is not None:
                    reconcile_classes(self.paths, self.labels)
            keras.utils.set_random_seed(cfg.seed)  # weight initialisation follows the run's seed
            if cfg.deterministic:
                # process-wide and irreversible: deterministic kernels for the rest of the process
                tf.config.experimental.enable_op_determinism()
            if self.strategy is not None:
                check_batch(cfg, self.strategy)
            # models, optimizers and the EMA copy are made in the strategy's scope (mirrored
            # variables); with no strategy this is TensorFlow's default, a no-op
            scope = self.strategy.scope() if self.strategy is not None else contextlib.nullcontext()
            with scope:
                with precision_policy(cfg.precision):
                    self.generator, self.discriminator = build_models(cfg, self.class_names)
                    self.gan = StackedGAN(self.generator, self.discriminator, cfg)
                self.engine = make_engine(self.gan, cfg, self.strategy)
                tracked = dict(generator=self.generator, discriminator=self.discriminator,
                               d_optimizer=self.gan.d_optimizer, g_optimizer=self.gan.g_optimizer)
                if getattr(self.engine, "ada_p", None) is not None:  # ADA's probability resumes too
                    tracked["ada_p"] = self.engine.ada_p
                self.ema_generator = None
                if cfg.ema_decay:
                    with precision_policy(cfg.precision):
                        self.ema_generator = keras.models.clone_model(self.generator)
                    self.ema_generator.set_weights(self.generator.get_weights())
                    tracked["ema_generator"] = self.ema_generator
                    self._ema_update = tf.function(self._ema_step)
                self.checkpoint = tf.train.Checkpoint(**tracked)
            # what grids and generator.keras show: the EMA of G when enabled, else G itself
            self.output_generator = self.ema_generator or self.generator
            # conditional runs: a grid row per class (grid_cols images each)
            self.grid_latent, self.grid_cols = grid_latents(cfg, self.class_names)
            self._generate = tf.function(lambda z: self.output_generator(z, training=False),
                                         reduce_retracing=True)
            # position of the next batch to train: epoch (1-based), batch (0-based), global step
            self.epoch, self.batch, self.step = 1, 0, 0
            self.resumed_from: Path | None = None
            self._pending_rows: list[dict] = []
            self._lr_factor = 1.0  # lr_decay_from: the factor the optimizers' rates hold now
            self.evaluator = None
            self.best_fid = float("inf")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the run folder's lock (run() does this when it ends); idempotent."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    # ---- checkpoints -----------------------------------------------------------------------
    def restore_latest(self) -> bool:
        """Continue from the newest checkpoint that reads back, if any; True if one was restored.

        A damaged one (a file cut short by a full disk, say) is renamed damaged-<name> and the
        one before it is used, so a run never stops on it or loses more than that interval.
        """
        if self.is_chief:  # under the lock: only what dead writers left, or older than the lock
            before = self.lock.acquired_at if self.lock is not None else None
            runs.remove_stale_checkpoints(self.paths, keep=0, before=before)
            runs.remove_stale_temp_files(self.paths, before=before)
        found = runs.list_checkpoints(self.source)  # a non-chief worker reads the chief's
        for latest in reversed(found):
            try:
                state = runs.read_json(latest / "state.json")
                self.checkpoint.read(str(latest / "weights")).assert_existing_objects_matched()
                self.epoch, self.batch, self.step = state["epoch"], state["batch"], state["step"]
            except (OSError, ValueError, KeyError, IndexError, AssertionError,
                    tf.errors.OpError) as err:
                reason = first_line(err, 200)
                if not self.is_chief:
                    raise RunFolderError(f"checkpoint {latest} cannot be read: {reason}") from err
                aside = latest.with_name(f"damaged-{latest.name}")
                shutil.rmtree(aside, ignore_errors=True)
                latest.rename(aside)
                print(f"checkpoint {latest.name} cannot be read ({reason}); moved it to "
                      f"{aside.name} and trying the one before it", flush=True)
                continue
            self.gan.set_learning_rates(self.cfg.lr_d, self.cfg.lr_g)  # schedule may change
            self._lr_factor = 1.0
            if self.paths.history.exists():
                runs.truncate_history(self.paths.history, self.epoch, self.batch)
            self.resumed_from = latest
            if self.is_chief:  # one line, even without a progress bar
                print(f"resuming from {latest.name}: epoch {self.epoch}, batch {self.batch}, "
                      f"step {self.step}", flush=True)
            return True
        if found:
            raise RunFolderError(f"no checkpoint in {self.paths.checkpoints} can be read (each "
                                 "was renamed damaged-*): rerun to start this run over, or use "
                                 "a new run folder")
        if self.paths.history.exists():  # a run killed before its first checkpoint
            runs.truncate_history(self.paths.history, 1, 0)
        return False

    # ---- evaluation ------------------------------------------------------------------------
    def start_evaluation(self) -> None:
        """Extractor and real set, made once; metrics.csv rows after the checkpoint dropped."""
        if not self.cfg.eval_every_epochs:
            return
        self.evaluator = RunEvaluator(self.cfg, self.paths, n=self.cfg.eval_n,
                                      features=self.cfg.eval_features)
        if self.paths.metrics.exists():
            truncate_metrics(self.paths.metrics, self.step)
        self.best_fid = min((r["fid"] for r in read_metrics(self.paths.metrics)),
                            default=float("inf"))

    def evaluate(self) -> dict:
        """Score the output generator (metrics.csv row); keep best_generator.keras by FID."""
        row = self.evaluator(self.output_generator, epoch=self.epoch - 1, step=self.step)
        if row["fid"] < self.best_fid:
            self.best_fid = row["fid"]
            runs.save_model_atomic(self.output_generator, self.paths.best_generator)
        if self.is_chief:
            print(f"  evaluation after epoch {self.epoch - 1}: FID {row['fid']:.2f} "
                  f"(best {self.best_fid:.2f}), diversity {row['diversity']:.2f}", flush=True)
        return row

    def save_checkpoint(self) -> Path:
        self.flush_history()
        if self.lock is not None:
            self.lock.check()  # taken over by a --force-unlock elsewhere: stop, write nothing
        try:
            with runs.staged_checkpoint(self.paths, self.step) as staging:
                self.checkpoint.write(str(staging / "weights"))
                runs.fault_point("checkpoint_after_weights")
                runs.write_json_atomic(staging / "state.json", {
                    "epoch": self.epoch, "batch": self.batch, "step": self.step,
                    "time": _now(), "steps_per_epoch": self.steps_per_epoch,
                    # noise, labels and shuffling are pure functions of these, nothing else
                    "rng": {"seed": self.cfg.seed, "noise": "latents.step_noise(seed, step)",
                            "shuffle": "pipeline.epoch_order(n, seed, epoch)"},
                })
        except tf.errors.OpError as err:  # SaveV2 on a full disk: ResourceExhaustedError
            raise RunFolderError(checkpoint_failure(self.paths, self.step, err)) from err
        runs.remove_stale_checkpoints(self.paths, keep=self.cfg.keep_checkpoints)
        runs.fault_point("after_checkpoint")
        return self.paths.checkpoint(self.step)

    def flush_history(self) -> None:
        runs.append_history(self.paths.history, self._pending_rows)
        self._pending_rows = []

    # ---- one step ------------------------------------------------------------------------
    def train_step(self, real: tf.Tensor) -> dict[str, float]:
        """One step of the configured engine; returns the history fields of this batch."""
        n = self.cfg.batch_size if self.strategy is not None else \
            int((real[0] if self.labels is not None else real).shape[0])
        self._follow_lr_decay()
        return self.engine.step(real, step_inputs(self.cfg, self.step, n, len(self.class_names)))

    def _follow_lr_decay(self) -> None:
        # lr_decay_from: the optimizers' rate variables follow the step (the compiled step reads
        # them each call); assigned only when the factor changes, so never on a constant run
        cfg = self.cfg
        if not cfg.lr_decay_from or minutes_pending(cfg):
            return
        factor = lr_factor(self.step, cfg.epochs * self.steps_per_epoch, cfg.lr_decay_from)
        if factor != self._lr_factor:
            self.gan.set_learning_rates(cfg.lr_d * factor, cfg.lr_g * factor)
            self._lr_factor = factor

    def _ema_step(self, step):
        # Warm-up (as tf.train.ExponentialMovingAverage's num_updates): early averages would
        # otherwise be dominated by the random initial weights.
        step = tf.cast(step, tf.float32)
        decay = tf.minimum(self.cfg.ema_decay, (1.0 + step) / (10.0 + step))
        for ema, live in zip(self.ema_generator.weights, self.generator.weights):
            ema.assign(decay * ema + (1.0 - decay) * live)

    def _check_finite(self, row: dict[str, float]) -> None:
        bad = [k for k in ("d_loss_real", "d_loss_fake", "g_loss", "g_loss_l2")
               if not np.isfinite(row[k])]
        if not bad:
            return
        diagnostic = self.paths.root / "divergence.json"
        runs.write_json_atomic(diagnostic, {"epoch": self.epoch, "batch": self.batch,
                                            "step": self.step, "row": row, "time": _now()})
        latest = runs.latest_checkpoint(self.paths)
        raise TrainingDivergedError(
            f"{', '.join(bad)} became non-finite at epoch {self.epoch}, batch {self.batch}. "
            "Likely causes: a learning rate too high for this batch size, or images not in "
            f"[-1, 1]. Details in {diagnostic}. The last good checkpoint is "
            f"{latest or 'none (no checkpoint yet)'}; rerun with lower learning rates, e.g. "
            "--set lr_d=1e-4 --set lr_g=7.5e-5, to continue from it.")

    # ---- artefacts -----------------------------------------------------------------------
    def samples(self, z: np.ndarray | None = None) -> np.ndarray:
        """Generated images float32 (N, S, S, C) in [-1, 1] for z (default: the grid latent)."""
        return self._generate(self.grid_latent if z is None else z).numpy()

    def save_grid(self, batch: int | None = None) -> Path:
        epoch = self.epoch - 1 if batch is None else self.epoch  # after epoch E: epoch_000E
        path = self.paths.sample_grid(epoch, batch)
        viz.save_grid(path, self.samples(), cols=self.grid_cols)
        return path

    def write_plots(self) -> None:
        viz.plot_losses(self.paths.history, self.paths.losses_plot)
        viz.plot_d_outputs(self.paths.history, self.paths.d_outputs_plot)

    def finish(self) -> None:
        """generator.keras, discriminator.keras, plots, real_vs_fake.png, evolution.gif; then
        the run folder's lock is released."""
        self.flush_history()
        runs.save_model_atomic(self.output_generator, self.paths.generator)
        set_trainable(self.discriminator, True)  # saved unfrozen, so it reloads trainable
        runs.save_model_atomic(self.discriminator, self.paths.discriminator)
        set_trainable(self.discriminator, False)
        self.write_plots()
        viz.real_vs_fake(self.images[:16], self.samples()[:16], self.paths.real_vs_fake)
        kept = runs.list_checkpoints(self.paths)
        sizes = {"checkpoints_kept": len(kept),
                 "checkpoint_mb": round(runs.folder_size(kept[-1]) / 2**20, 2) if kept else 0,
                 "run_folder_mb": round(runs.folder_size(self.paths.root) / 2**20, 2)}
        info = runs.read_json(self.paths.run_info) if self.paths.run_info.exists() else {}
        runs.write_json_atomic(self.paths.run_info, {**info, "sizes": sizes})
        if self.is_chief:
            print(f"checkpoints: {sizes['checkpoints_kept']} kept (keep_checkpoints="
                  f"{self.cfg.keep_checkpoints}), {sizes['checkpoint_mb']} MB each; run folder "
                  f"{sizes['run_folder_mb']} MB", flush=True)
        frames = viz.thin_frames(self.paths.list_sample_grids())  # long runs: 100 frames
        runs.fault_point("gif_before_write")
        if frames:
            labels = [f"epoch {int(p.stem.split('_')[1])}" for p in frames]
            viz.make_gif(frames, self.paths.evolution_gif, labels=labels)
        self.close()  # the run is written: the folder is free (a notebook's loop ends here)

    # ---- the loop ------------------------------------------------------------------------
    def after_warmup(self, pace: Pace) -> None:
        """Once the warm-up is measured: a minutes budget becomes steps, and the time left is
        printed (both from the same pace, grids and checkpoints included)."""
        seconds_per_step = pace.seconds_per_step(self.step)
        if minutes_pending(self.cfg):
            steps = steps_for_minutes(self.cfg.minutes, seconds_per_step, self.step)
            _set_length(self, steps, seconds_per_step)
            if self.is_chief:
                print(f"a budget of {self.cfg.minutes:g} minutes at this pace: "
                      f"{self.cfg.steps:,} steps ({self.cfg.epochs} epochs of "
                      f"{self.steps_per_epoch} batches)", flush=True)
        if self.is_chief:
            left = self.cfg.epochs * self.steps_per_epoch - self.step
            print(estimate_line(seconds_per_step, pace.measured_steps(self.step), left),
                  flush=True)

    def run(self, on_epoch_end: EpochCallback | None = None) -> Path:
        """The whole run: begin(); per batch train_step, update_ema, end_batch; per epoch
        end_epoch; finish(). Notebook 02 writes the same loop out with the three
        train_on_batch calls in place of train_step (the Keras engine's step). Releases the
        run folder's lock at the end, whatever happens (finish() releases it too)."""
        try:
            self._run(on_epoch_end)
        finally:
            self.close()
        return self.source.root

    def epochs_shown(self) -> int | str:
        """The run's epochs as the bar and the epoch lines show them: "?" until a minutes
        budget's warm-up has set them (not the provisional 1,000,000)."""
        return "?" if minutes_pending(self.cfg) else self.cfg.epochs

    def _run(self, on_epoch_end: EpochCallback | None) -> None:
        self.begin()
        batches = self.batches()
        while self.epoch <= self.cfg.epochs:  # a minutes budget sets epochs after the warm-up
            bar = tqdm(total=self.steps_per_epoch, initial=self.batch,
                       disable=not self.cfg.progress,
                       desc=f"epoch {self.epoch}/{self.epochs_shown()}",
                       leave=False, file=sys.stdout)
            while self.batch < self.steps_per_epoch:
                row = self.train_step(next(batches))
                self.update_ema()
                self.end_batch(row)
                bar.update(1)
                bar.set_postfix(d=f"{row['d_loss_real'] + row['d_loss_fake']:.3f}",
                                g=f"{row['g_loss']:.3f}", refresh=False)
            bar.close()
            self.end_epoch(on_epoch_end)
        self.finish()
        if not self.is_chief:  # the scratch folder only existed for the collective saves
            shutil.rmtree(self.paths.root, ignore_errors=True)

    # ---- the loop's parts: run() calls them, and so does notebook 02's written-out loop -----
    def begin(self) -> None:
        """Before the first batch: resume from the newest checkpoint, or start a new run
        (init_from, the epoch-0 grid); set up evaluation; write run_info.json."""
        cfg = self.cfg
        initialised = None
        if not self.restore_latest():
            if cfg.init_from:
                initialised = init_from(cfg.init_from, self.generator, self.discriminator,
                                        self.ema_generator)
                if self.is_chief:
                    print(f"initialised from {initialised['generator']}"
                          + (f" and {initialised['discriminator']}"
                             if initialised["discriminator"] else " (D from scratch)"),
                          flush=True)
            self.save_grid()  # epoch_0000: the starting generator, first frame of the GIF
        self.start_evaluation()
        previous = runs.read_json(self.paths.run_info) if self.paths.run_info.exists() else {}
        initialised = initialised or previous.get("initialised_from")  # kept across resumes
        if self.resumed_from and previous.get("n_images") not in (None, len(self.images)):
            # e.g. photos added to the data folder: allowed, but the epochs change meaning
            print(f"note: the data now has {len(self.images)} images ({previous['n_images']} "
                  f"when this run last trained); epochs from here go over the new set",
                  flush=True)
        runs.write_json_atomic(self.paths.run_info, {
            **run_info(cfg, self.strategy.num_replicas_in_sync if self.strategy else 1),
            "updated": _now(),
            "resumed_from": self.resumed_from.name if self.resumed_from else None,
            **({"initialised_from": initialised} if initialised else {}),
            "n_images": len(self.images), "steps_per_epoch": self.steps_per_epoch})
        self._writer = tf.summary.create_file_writer(str(self.paths.tensorboard)) \
            if cfg.tensorboard else None
        self._last_save, self._last_plots = time.monotonic(), -math.inf
        self._pace, self._paced = Pace(r1_every=cfg.r1_every if cfg.r1_gamma else 0), False
        self._batch_start, self._data_wait = time.perf_counter(), 0.0

    def batches(self) -> Iterator[tf.Tensor]:
        """The real batches still to train, float32 (B, S, S, C) in [-1, 1], from where the run
        stands (epoch, batch) to its last epoch, as one prefetched pipeline across epochs.
        Each epoch's order depends only on (seed, epoch), so a resumed run sees the same
        batches as an uninterrupted one. Call after begin(); it times each wait for data."""
        cfg = self.cfg
        dataset = run_dataset(self.images, cfg.batch_size, cfg.seed, self.epoch, cfg.epochs,
                              skip_batches=self.batch, drop_remainder=cfg.drop_remainder,
                              flip=cfg.flip,
                              labels=self.labels.ids if self.labels is not None else None,
                              n_classes=len(self.class_names))
        if self.strategy is not None:
            dataset = distribute_dataset(self.strategy, dataset)
        data = iter(dataset)
        while True:
            start = time.perf_counter()
            try:
                real = next(data)
            except StopIteration:
                return
            self._batch_start, self._data_wait = start, time.perf_counter() - start
            yield real

    def update_ema(self) -> None:
        """After each step: move the EMA of G's weights towards G's (ema_decay; with a warm-up,
        see _ema_step). Grids and generator.keras show the EMA. Nothing when ema_decay is 0."""
        if self.ema_generator is not None:
            self._ema_update(tf.constant(self.step))

    def end_batch(self, row: dict[str, float]) -> None:
        """After each step: `row` (the step's d_loss_real, d_loss_fake, g_loss, g_loss_l2, D(x),
        D(G(z))) is checked (a NaN stops the run) and goes to history.csv with its position
        and timing; the position advances; a grid every samples_every_batches and a checkpoint
        every checkpoint_every_minutes."""
        cfg = self.cfg
        row.update(epoch=self.epoch, batch=self.batch, data_wait_seconds=self._data_wait,
                   seconds=time.perf_counter() - self._batch_start)
        self._check_finite(row)
        self._pending_rows.append(row)
        if self._writer is not None:
            tensorboard.write_scalars(self._writer, row, self.step)
        self.batch += 1
        self.step += 1
        self._pace.step_done(self.step)
        if cfg.samples_every_batches and self.batch % cfg.samples_every_batches == 0:
            self.save_grid(batch=self.batch)
        if len(self._pending_rows) >= 200:
            self.flush_history()
        runs.fault_point("after_batch")
        minutes = cfg.checkpoint_every_minutes
        if minutes and time.monotonic() - self._last_save > minutes * 60:
            self.save_checkpoint()
            self._last_save = time.monotonic()

    def end_epoch(self, on_epoch_end: EpochCallback | None = None) -> Path | None:
        """After an epoch's last batch: its sample grid (when due), history.csv, the loss plots
        (at most every PLOTS_EVERY_SECONDS), an evaluation (eval_every_epochs), a checkpoint;
        after the warm-up, the pace (a minutes budget becomes steps: self.cfg.epochs is set);
        the epoch's summary line; then on_epoch_end(epoch, grid_png). Returns the grid's path,
        or None after an epoch without a grid (samples_every_epochs)."""
        self.epoch, self.batch = self.epoch + 1, 0
        done, cfg = self.epoch - 1, self.cfg
        grid = self.save_grid() \
            if done % grid_every_epochs(cfg) == 0 or done == cfg.epochs else None
        self.flush_history()
        if time.monotonic() - self._last_plots >= PLOTS_EVERY_SECONDS:  # finish() always plots
            self.write_plots()
            self._last_plots = time.monotonic()
        if self._writer is not None:
            tensorboard.write_images(self._writer, "samples", viz.to_uint8(self.samples())[:16],
                                     self.step)
        if cfg.eval_every_epochs and done % cfg.eval_every_epochs == 0:
            self.evaluate()  # before the checkpoint, so a resume never scores an epoch twice
        due = done % max(1, cfg.checkpoint_every_epochs) == 0 and \
            time.monotonic() - self._last_save >= cfg.checkpoint_min_seconds
        if due or self.epoch > cfg.epochs:
            self.save_checkpoint()
            self._last_save = time.monotonic()
        if not self._paced and self._pace.ready(self.step):  # the warm-up is over: how long
            self._paced = True
            self.after_warmup(self._pace)  # a minutes budget becomes steps: a new self.cfg
        if self.is_chief:
            recent = runs.read_history(self.paths.history)[-self.steps_per_epoch:]
            print(_epoch_summary(done, self.epochs_shown(), recent), flush=True)
        if on_epoch_end is not None:
            on_epoch_end(done, grid)
        return grid


def _set_length(trainer: Trainer, steps: int, seconds_per_step: float) -> None:
    """A minutes budget becomes `steps` (whole epochs of them): config.json and every holder
    of the config get the new one, and config_history.jsonl logs it as a "minutes_budget"
    event with the pace it came from."""
    old = trainer.cfg
    new = old.replace(steps=steps, epochs=max(trainer.epoch - 1, math.ceil(
        steps / trainer.steps_per_epoch)))
    trainer.cfg = trainer.gan.cfg = trainer.engine.cfg = new
    if trainer.is_chief:
        runs.append_jsonl(trainer.paths.config_history, {
            "time": _now(), "event": "minutes_budget", "minutes": old.minutes,
            "seconds_per_step": round(seconds_per_step, 4),
            "changed": {k: {"from": getattr(old, k), "to": getattr(new, k)}
                        for k in ("steps", "epochs")}})
        runs.write_text_atomic(trainer.paths.config, new.to_json())


def _epoch_summary(epoch: int, epochs: int | str, rows: list[dict]) -> str:
    if not rows:
        return f"epoch {epoch}/{epochs}"
    mean = {k: float(np.mean([r[k] for r in rows]))
            for k in ("d_loss_real", "d_loss_fake", "g_loss", "D(x)", "D(G(z))", "seconds")}
    rate = len(rows) / max(1e-9, sum(r["seconds"] for r in rows))
    augment = f"  aug_p {rows[-1]['aug_p']:.2f}" if "aug_p" in rows[-1] else ""
    return (f"epoch {epoch}/{epochs}: d_loss {mean['d_loss_real'] + mean['d_loss_fake']:.3f}  "
            f"g_loss {mean['g_loss']:.3f}  D(x) {mean['D(x)']:.2f}  "
            f"D(G(z)) {mean['D(G(z))']:.2f}{augment}  {rate:.1f} batches/s")


def checkpoint_failure(paths: runs.RunPaths, step: int, err: Exception) -> str:
    """The message for a checkpoint TensorFlow could not write (err: a tf.errors.OpError)."""
    latest = runs.latest_checkpoint(paths)
    kept = f"the previous checkpoint {latest.name} is intact" if latest else \
        "no checkpoint was written yet"
    text = first_line(err, 200)
    full = isinstance(err, tf.errors.ResourceExhaustedError) or "No space left" in text
    what = ("the disk (or the Drive quota) is full: free space" if full else
            "check that the run folder is still there and writable")
    return (f"could not write checkpoint {paths.checkpoint(step).name} in {paths.checkpoints} "
            f"({type(err).__name__}: {text}); {kept}. {what[0].upper()}{what[1:]}, then rerun "
            "the same command to resume")


def train(cfg: RunConfig, run_dir: str | os.PathLike, images: np.ndarray | None = None,
          on_epoch_end: EpochCallback | None = None, force_unlock: bool | None = None) -> Path:
    """Train (or resume) a run in `run_dir`; returns the run folder.

    cfg: from config.resolve (or a preset); its last step, config.finish with the training
    set's size, is taken here once the images are loaded. images: optional uint8
    (N, S, S, C) training set; by default cfg.data is loaded.
    on_epoch_end(epoch, grid_png): called after each epoch (notebooks show the grid); grid_png
    is None after epochs without a grid (see samples_every_epochs).
    force_unlock: take over the run folder's lock even if its holder may be alive (default:
    $CARGAN_FORCE_UNLOCK); see runs.RunLock. The lock is held across divergence restarts.
    """
    images = images if images is not None else load_images_for(cfg)
    cfg = finish(cfg, len(images))
    lock = None
    if is_chief_process(cfg.strategy):
        runs.RunPaths(run_dir).create()
        lock = runs.RunLock(run_dir, force=force_unlock).acquire()
    try:
        restarts = 0
        while True:
            try:
                return Trainer(cfg, run_dir, images).run(on_epoch_end)
            except TrainingDivergedError as err:
                if cfg.on_divergence != "restart" or restarts >= MAX_DIVERGENCE_RESTARTS:
                    raise
                restarts += 1
                cfg = halve_learning_rates(cfg, runs.RunPaths(run_dir), restarts, err)
    finally:
        if lock is not None:
            lock.release()


MAX_DIVERGENCE_RESTARTS = 3
