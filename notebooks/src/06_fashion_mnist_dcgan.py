"""the classic Fashion-MNIST DCGAN (`fashion28` preset)"""

# Source of notebooks/06_fashion_mnist_dcgan.ipynb; build_notebooks.py adds the shared cells (_shared.py).
from cargan_tf import notebook as nb  # imported by the shared setup cell

# %% [markdown]
# # 06 · The classic Fashion-MNIST DCGAN
#
# The `fashion28` preset is the DCGAN from *Hands-On Machine Learning*: 28x28 grayscale clothes,
# a generator from a 7x7 feature map, a discriminator with dropout. It trains in minutes and is a
# good first check that everything works before the slower car models.

# %% tags=["parameters"]
fashion_mnist_dir = None  # folder with the idx files (None: Keras' cache, or its download in Colab)
preset = "fashion28"  # the Fashion-MNIST recipe (this notebook trains 28x28 grayscale presets)
epochs = None  # None: the preset's (10)
batch_size = None  # None: the preset's (32)
run_name = ""  # folder under home/runs ("": the preset's name, plus -smoke in smoke mode)
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # tiny run; offline it uses ../shared/data/fashion_mnist_900 or toycars

# %% [markdown]
# ## 3. The images
#
# In Colab, Keras downloads Fashion-MNIST (60,000 training images, 30 MB) the first time. With
# `fashion_mnist_dir` set, the standard idx files are read from that folder instead (e.g. a copy on
# Drive); `$CARGAN_FASHION_MNIST` and Keras' cache (`~/.keras/datasets/fashion-mnist`) are looked
# at too. In smoke mode outside Colab, the project's 900-image sample (`../shared/data`) is used
# when present. When no data can be had, the notebook falls back to toycars in grayscale at 28x28
# and says so: it never stops for lack of data.

# %%
from cargan_tf import config, runs, viz

cfg = config.preset(preset)
if (cfg.image_size, cfg.channels) != (28, 1):
    raise ValueError(f"{preset} makes {cfg.image_size}x{cfg.image_size}x{cfg.channels} images; "
                     "this notebook trains 28x28 grayscale presets (fashion28): use notebook 02")
if smoke:  # tiny first, so the values set above still win
    cfg = config.smoke(cfg)
overrides = dict(epochs=epochs, batch_size=batch_size)
cfg = cfg.replace(**{key: value for key, value in overrides.items() if value is not None})
images, data, note = nb.fashion_mnist_images(fashion_mnist_dir, smoke, n=cfg.data_n)
if note:
    print("NOTE:", note)
run_name = run_name or preset + ("-smoke" if smoke else "")
if data == "toycars":
    run_name = f"{run_name}-toycars"  # a different dataset is a different run
cfg = cfg.replace(data=data)
print("images:", images.dtype, images.shape, "from", data)
nb.show_image(viz.upscale(viz.image_grid(images[:64], 8), 336))

# %% include="gpu"

# %% [markdown]
# ## 4. Train (or resume)
#
# The same loop as notebook 02. Rerun with the same `run_name` after a recycled runtime to resume.

# %%
from cargan_tf.train import train

run_dir = home / "runs" / run_name
paths = runs.RunPaths(run_dir)
# the sample grid after each epoch: one picture, replaced each time
run_dir = train(cfg, run_dir, images=images, on_epoch_end=nb.LiveImage(width=280))

# %% [markdown]
# ## 5. Results
#
# The evolution of the fixed sample grid, and real against generated clothes.

# %%
nb.show_gif(paths.evolution_gif, width=280)
nb.show_image(paths.real_vs_fake, width=520)

# %% include="outputs"

# %%
listing = nb.record_outputs(home, "06_fashion_mnist_dcgan", [
    paths.config, paths.history, paths.generator, paths.evolution_gif, paths.real_vs_fake,
    paths.losses_plot])

# %% include="unmount"
