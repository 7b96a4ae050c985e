"""trains a preset with the `train_on_batch` loop, shows the sample grid (one picture, replaced after
each epoch), resumes by itself after a recycled runtime"""

# Source of notebooks/02_train_dcgan.ipynb; build_notebooks.py adds the shared cells (_shared.py).
from cargan_tf import notebook as nb  # imported by the shared setup cell

# %% [markdown]
# # 02 · Train a DCGAN on cars
#
# Pick a preset and a dataset and train. The discriminator learns on a real and a fake batch, then
# the generator learns through the stacked model with the discriminator frozen (`train_on_batch`).
# A grid of generated cars is shown after each epoch. Everything goes into one run folder,
# `home/runs/<run_name>`; when Colab recycles the runtime, run the notebook again with the same
# `run_name` and training continues from the newest checkpoint.

# %% tags=["parameters"]
dataset = "toycars"  # toycars | fashion_mnist | a prepared cache or image folder (relative: under home)
preset = "quick32"  # aim64 | dcgan64 | selu128 | fashion28 | quick32 | small32 (a few hundred images)
epochs = None  # total epochs (None: the preset's); raise it to train a finished run further
minutes = None  # or: train for about this many minutes (set after a short measured warm-up)
image_size = None  # None: the preset's (must match a prepared cache's size)
channels = None  # None: the preset's (3: RGB; 1: a grayscale cache from notebook 01)
batch_size = None  # None: the preset's; fixed for the life of a run
precision = None  # None: the preset's (float32); "mixed_float16" on a GPU; fixed for the life of a run
lr_d = None  # discriminator learning rate (None: the preset's)
lr_g = None  # generator learning rate (None: the preset's)
run_name = ""  # folder under home/runs ("": <preset>-<dataset name>, plus -smoke in smoke mode)
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # tiny models and data (16x16, 2 epochs): a quick try of every step

# %% [markdown]
# ## 3. The run's configuration
#
# A preset is a named recipe (`cargan_tf.config.PRESETS`); the parameters above override parts of
# it. `smoke` shrinks it to seconds. The run folder keeps the configuration in `config.json`;
# resuming may change the schedule (epochs, learning rates) but not what the run is.

# %%
from cargan_tf import config, runs

data = nb.resolve_data(dataset, home)  # relative paths: under home
run_dir = home / "runs" / (run_name or runs.run_name(preset, data, smoke))
# None means "the preset's"; smoke shrinks the preset first, so the values set here still win;
# epochs clear a preset's step budget; minutes become steps after a short measured warm-up
overrides = dict(image_size=image_size, channels=channels, batch_size=batch_size, lr_d=lr_d,
                 lr_g=lr_g, precision=precision)
cfg = config.resolve(preset, overrides, data=data, run_dir=run_dir, smoke=smoke, epochs=epochs,
                     minutes=minutes)
paths = runs.RunPaths(run_dir)
print(f"run folder: {run_dir}")
print(f"{cfg.preset}: {cfg.image_size}x{cfg.image_size}x{cfg.channels}, data {cfg.data}, "
      f"{config.describe_length(cfg)}, batch {cfg.batch_size}, lr_d {cfg.lr_d}, lr_g {cfg.lr_g}, "
      f"{cfg.precision}")

# %% include="gpu"

# %% [markdown]
# ## 4. Train (or resume)
#
# `cargan_tf.train.train` trains up to `epochs`, writing a checkpoint at the end of every epoch (and
# every 10 minutes inside one), the per-batch losses to `history.csv` and a sample grid per epoch.
# Run on the same folder again and it continues from the newest checkpoint, with the optimizer
# state, so nothing but the minutes since that checkpoint is lost. The grid below is replaced after
# each epoch (the notebook keeps one picture, not hundreds; `evolution.gif` keeps them all) and
# always uses the same latent vectors, so you see the same cars take shape.

# %%
from cargan_tf.train import train

latest = runs.latest_checkpoint(paths)
print(f"resuming from {latest.name}" if latest else "starting a new run")


grid = nb.LiveImage(width=320)  # one picture, replaced after each epoch


def show_grid(epoch, grid_png):
    if grid_png is not None:  # long runs keep a grid every few epochs (samples_every_epochs)
        grid.show(grid_png, caption=f"after epoch {epoch}")


run_dir = train(cfg, run_dir, on_epoch_end=show_grid)

# %% [markdown]
# ## 5. Real versus generated
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
