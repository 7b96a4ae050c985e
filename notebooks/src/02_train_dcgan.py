"""trains a preset through the design card, cell by cell: G and D from the builders (`summary()`),
the stacked gan with D frozen (checked), the L2-enhanced loss, then a written-out `train_on_batch`
loop that resumes by itself after a recycled runtime (the package's compiled step as an option)"""

# Source of notebooks/02_train_dcgan.ipynb; build_notebooks.py adds the shared cells (_shared.py).
from cargan_tf import notebook as nb  # imported by the shared setup cell

# %% [markdown]
# # 02 · Train a DCGAN on cars
#
# A DCGAN in four pieces, each a cell below you can copy: the **generator** G and the
# **discriminator** D (Keras `Sequential` models), the **stacked gan** `Sequential([G, D])` with D
# frozen inside it, G's **L2-enhanced loss**, and the **training loop**: for every batch, D learns
# on a real and on a fake batch (`D.train_on_batch`), then G learns through the frozen D
# (`gan.train_on_batch`). A grid of generated cars is shown after each epoch. Everything goes into
# one run folder, `home/runs/<run_name>`; when Colab recycles the runtime, run the notebook again
# with the same `run_name` and training continues from the newest checkpoint.

# %% tags=["parameters"]
dataset = "toycars"  # toycars | fashion_mnist | a prepared cache or image folder (relative: under home)
preset = "quick32"  # aim64 | dcgan64 | selu128 | fashion28 | quick32 | small32 (few) | photo64 (GPU)
# | photo64cpu | photo64ada (photos on a CPU: photo64cpu, the lowest FID; photo64ada, most whole cars)
engine = "keras"  # keras: the train_on_batch loop of section 7 | fused: the package's step (small32, photo64)
epochs = None  # total epochs (None: the preset's); raise it to train a finished run further
minutes = None  # or: train for about this many minutes (set after a short measured warm-up)
image_size = None  # None: the preset's (must match a prepared cache's size)
channels = None  # None: the preset's (3: RGB; 1: a grayscale cache from notebook 01)
batch_size = None  # None: the preset's; fixed for the life of a run
precision = None  # None: the preset's (float32; photo64cpu: "auto"); "mixed_float16" on a GPU; fixed
lr_d = None  # discriminator learning rate (None: the preset's)
lr_g = None  # generator learning rate (None: the preset's)
diffaugment = None  # None: the preset's; e.g. "color,translation": the same random shifts and colour
# changes on every image D sees, real or fake (engine "fused")
ada_target = None  # None: the preset's; e.g. 0.6: StyleGAN2-ADA's adaptive strength for diffaugment.
# On photos (photo64cpu) both give cleaner cars (preset photo64ada has them): BENCHMARKS.md, "Counted blind"
run_name = ""  # folder under home/runs ("": <preset>-<dataset name>, plus -smoke in smoke mode)
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # tiny models and data (16x16, 2 epochs): a quick try of every step

# %% [markdown]
# ## 3. The run's configuration and its images
#
# A preset is a named recipe (`cargan_tf.config.PRESETS`); the parameters above override parts of
# it. `smoke` shrinks it to seconds. The run folder keeps the configuration in `config.json`;
# resuming may change the schedule (epochs, learning rates, the engine) but not what the run is.
# The default, `quick32`, is the recipe that draws cars at 32x32 in a few thousand steps: D's fake
# batch from G in training mode, no BatchNorm in D, a minibatch-std channel in D, and an average of
# G's weights (EMA) for the pictures.

# %%
from cargan_tf import config, runs
from cargan_tf.data.sources import load_images_for

data = nb.resolve_data(dataset, home)  # relative paths: under home
run_dir = home / "runs" / (run_name or runs.run_name(preset, data, smoke))
# None means "the preset's"; smoke shrinks the preset first, so the values set here still win;
# epochs clear a preset's step budget; minutes become steps after a short measured warm-up
overrides = dict(engine=engine, image_size=image_size, channels=channels, batch_size=batch_size,
                 lr_d=lr_d, lr_g=lr_g, precision=precision, diffaugment=diffaugment,
                 ada_target=ada_target)
cfg = config.resolve(preset, overrides, data=data, run_dir=run_dir, smoke=smoke, epochs=epochs,
                     minutes=minutes)
images = load_images_for(cfg)  # the training set: uint8 (N, S, S, C)
cfg = config.finish(cfg, len(images))  # a step budget becomes whole epochs of this set
paths = runs.RunPaths(run_dir)
print(f"run folder: {run_dir}")
print(f"{cfg.preset}: {cfg.image_size}x{cfg.image_size}x{cfg.channels}, {len(images)} images from "
      f"{cfg.data}, {config.describe_length(cfg)}, batch {cfg.batch_size}, lr_d {cfg.lr_d}, "
      f"lr_g {cfg.lr_g}, {cfg.precision}, engine {cfg.engine}")

# %% include="gpu"

# %% [markdown]
# ## 4. The generator and the discriminator
#
# `build_generator(cfg)` and `build_discriminator(cfg)` return plain `keras.Sequential` models,
# one named function per architecture in `cargan_tf/models.py` (e.g. `models.dcgan_generator`),
# with a shape comment per block. G turns a noise vector z into an image in [-1, 1] (tanh); D turns
# an image into D(x), the probability that it is real (sigmoid).

# %%
import keras

from cargan_tf import models

keras.utils.set_random_seed(cfg.seed)  # the run's seed: the Trainer below builds the same weights
G = models.build_generator(cfg)  # z (N, latent_dim) -> images (N, S, S, C) in [-1, 1]
D = models.build_discriminator(cfg)  # images (N, S, S, C) -> D(x) (N, 1) in [0, 1]
G.summary()
D.summary()

# %% [markdown]
# ## 5. The stacked gan, with D frozen inside it
#
# G learns through D: the gan is `Sequential([G, D])`, compiled with D frozen, so its
# `train_on_batch` moves G's weights only. D itself is compiled on its own and trained with its
# own `train_on_batch`. One trap in Keras 3: `trainable` is read when a train function is first
# *traced* (its first `train_on_batch`), not at `compile()`, so the classic recipe (compile D,
# freeze it, compile the gan) leaves D untrained forever. `build_gan` returns a `StackedGAN` that
# sets D's flag right before every `train_on_batch`; the cell checks that D stays bit-identical
# through a gan step, and that it does learn in its own step.

# %%
import numpy as np

from cargan_tf.gan import build_gan

sg = build_gan(G, D, cfg)  # D compiled alone; sg.gan = Sequential([G, D]) compiled with D frozen
gan = sg.gan
print("the gan's discriminator is D itself:", gan.layers[1] is D)
print(f"trainable weight tensors in the gan: {len(gan.trainable_weights)}, all of them G's "
      f"({len(G.trainable_weights)}); none of D's {len(D.weights)}")
z = np.random.default_rng(cfg.seed).normal(size=(cfg.batch_size, cfg.latent_dim)).astype("float32")
ones, zeros = np.ones((len(z), 1), "float32"), np.zeros((len(z), 1), "float32")
d_before, g_before = [w.numpy() for w in D.weights], [w.numpy() for w in G.weights]
gan.train_on_batch(z, ones)  # one G step through the frozen D: G is paid when D says "real"
d_same = all(np.array_equal(a, w.numpy()) for a, w in zip(d_before, D.weights))
g_moved = any(not np.array_equal(a, w.numpy()) for a, w in zip(g_before, G.weights))
print(f"frozen D: after gan.train_on_batch, D bit-identical: {d_same}; G changed: {g_moved}")
sg.train_discriminator(G.predict(z, verbose=0), zeros)  # D.train_on_batch, D unfrozen for it
d_moved = any(not np.array_equal(a, w.numpy()) for a, w in zip(d_before, D.weights))
print(f"after D's own train_on_batch (on fakes, target 0): D changed: {d_moved}")

# %% [markdown]
# ## 6. The generator's loss: binary crossentropy plus an L2 term
#
# The gan is compiled with `losses.L2EnhancedGeneratorLoss`: BCE(1, D(G(z))), small when D calls
# G's fakes real, plus `l2_alpha` x the sum of 0.5 ||W||² over G's transposed-convolution kernels
# (all but the output layer's), which keeps G's weights small. `quick32` turns the term off
# (`l2_alpha = 0`); `aim64` uses 5e-4. The cell computes both parts by hand on one batch.

# %%
from cargan_tf import losses

out = gan(z, training=True)  # D(G(z)) as the gan's step computes it (D frozen)
bce = float(losses.g_bce(out))  # BCE(1, D(G(z))) = -mean(log D(G(z)))
kernels = losses.penalised_kernels(G)  # G's Conv2DTranspose kernels, not the output layer's
half_sq = sum(0.5 * float(np.sum(np.square(k.numpy()))) for k in kernels)  # sum 0.5 ||W||^2
for alpha in sorted({cfg.l2_alpha, 5e-4}):  # this run's, and aim64's
    loss = float(losses.L2EnhancedGeneratorLoss(G, alpha)(ones, out))
    print(f"l2_alpha {alpha:g}: BCE {bce:.4f} + {alpha:g} x {half_sq:.1f} = {loss:.4f}"
          + ("  (this run's loss)" if alpha == cfg.l2_alpha else ""))
print("the gan's loss:", type(gan.loss).__name__, "with l2_alpha", gan.loss.alpha)

# %% [markdown]
# ## 7. Train (or resume): the loop
#
# `Trainer` builds the same G, D and stacked gan from the run's seed, plus the optimizers' state,
# the EMA copy of G and a checkpoint of all of them; `begin()` resumes from the newest checkpoint
# (or starts). Each step takes its noise and noisy labels from `(seed, step)` and its batch from
# `(seed, epoch)`, so a resumed run trains exactly as an uninterrupted one. The three
# `train_on_batch` calls are the recipe; `end_batch` writes the losses to `history.csv` (and a
# checkpoint every 10 minutes), `end_epoch` saves the epoch's sample grid, the plots and a
# checkpoint, and measures the pace (a `minutes` budget becomes steps there). The grid below is
# replaced after each epoch and always uses the same latent vectors, so you see the same cars take
# shape. A test checks that this loop ends with exactly the weights of `cargan_tf.train.train`.
#
# `engine = "fused"` runs the package's own loop instead (`train`), whose step is one compiled
# `tf.GradientTape` function with the same maths: faster, and needed by the fused-only options
# (DiffAugment/ADA, hinge loss, several devices).

# %%
from cargan_tf.engines import step_inputs
from cargan_tf.train import Trainer, train

show = nb.LiveImage(width=320)  # the latest sample grid, one picture replaced after each epoch
if cfg.engine == "keras":
    trainer = Trainer(cfg, run_dir, images)  # G, D, the gan, optimizers, EMA of G, checkpoints
    trainer.begin()  # resume from the newest checkpoint, or start (the epoch-0 grid)
    sg = trainer.gan
    batches = trainer.batches()  # real images in [-1, 1] from where the run stands, epoch by epoch
    while trainer.epoch <= trainer.cfg.epochs:  # (a minutes budget sets epochs after a warm-up)
        while trainer.batch < trainer.steps_per_epoch:
            real = next(batches)
            s = step_inputs(cfg, trainer.step, len(real))  # this step's z and noisy labels
            fake = sg.fake_batch(s["z_fake"])  # G(z): D's fake batch
            d_real = sg.train_discriminator(real, s["y_real"])  # 1. D.train_on_batch, targets ~1
            d_fake = sg.train_discriminator(fake, s["y_fake"])  # 2. D.train_on_batch, targets ~0
            ones = np.ones((len(s["z_gen"]), 1), "float32")  # 3. gan.train_on_batch with D
            g = sg.train_generator(s["z_gen"], ones)  # frozen: G is paid when D says "real"
            trainer.update_ema()  # the moving average of G's weights (quick32: ema_decay 0.999)
            trainer.end_batch({"d_loss_real": d_real["loss"], "d_loss_fake": d_fake["loss"],
                               "g_loss": g["bce"], "g_loss_l2": g["loss"] - g["bce"],
                               "D(x)": d_real["d_out"], "D(G(z))": d_fake["d_out"]})
        trainer.end_epoch(on_epoch_end=show)  # grid, history.csv, plots, checkpoint
    trainer.finish()  # generator.keras, discriminator.keras, plots, evolution.gif
    print(f"trained to epoch {trainer.epoch - 1}, step {trainer.step}: {run_dir}")
else:  # engine="fused": the package's loop and its compiled GradientTape step (engines.py)
    train(cfg, run_dir, images, on_epoch_end=show)

# %% [markdown]
# ## 8. Real versus generated
#
# Training ends by saving `generator.keras`, `discriminator.keras`, the plots, this collage and
# `evolution.gif`, the sample grid epoch by epoch (notebook 03 shows them all).

# %%
nb.show_image(paths.real_vs_fake, width=520)
nb.show_gif(paths.evolution_gif, width=320)
nb.show_image(paths.losses_plot, width=520)

# %% include="outputs"

# %%
listing = nb.record_outputs(home, "02_train_dcgan", [
    paths.config, paths.run_info, paths.history, paths.generator, paths.discriminator,
    paths.real_vs_fake, paths.losses_plot, paths.d_outputs_plot, paths.evolution_gif,
    paths.list_sample_grids()[-1], runs.latest_checkpoint(paths) / "state.json"])

# %% include="unmount"
