"""Generate the notebooks in this folder from the cell lists below, byte for byte the same each
time (stable cell ids, no outputs), so they stay thin and reviewable as Python.

    python notebooks/build_notebooks.py            # rewrite notebooks/*.ipynb
    python notebooks/build_notebooks.py --check    # exit 1 if a committed notebook differs

Every notebook has the same frame: a title, the Colab install cell (the first code cell; it does
nothing outside Colab), one cell tagged `parameters` (papermill), the home-folder cell, its own
steps (a markdown cell per step, then the code), and a last cell that lists what it wrote in
home/notebook_outputs/<notebook>.json (the papermill test checks those files).

To add a notebook: write a function returning `Notebook(...)` with `md()` / `code()` cells like
the ones below and add it to NOTEBOOKS. Keep code in cargan_tf; cells only call and show.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


@dataclass
class Notebook:
    stem: str                   # file name without .ipynb, e.g. "02_train_dcgan"
    title: str                  # the first markdown cell (title and what the notebook does)
    parameters: str             # the body of the cell tagged `parameters` (name = value  # help)
    steps: list[tuple[str, str]] = field(default_factory=list)  # (markdown, code) per step
    outputs: list[str] = field(default_factory=list)  # expressions: the files it wrote
    unmount: bool = False       # end with the guarded drive.flush_and_unmount() cell


def md(text: str):
    return new_markdown_cell(text.strip("\n"))


def code(text: str, tags: tuple[str, ...] = ()):
    cell = new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


# ---- the frame shared by every notebook ------------------------------------------------------

INSTALL_MD = """
## 0. Install (Colab only)

In Google Colab, the next cell installs `cargan_tf` with `pip install --no-deps`, adds only the
light dependencies Colab lacks (e.g. papermill), and checks that Colab's own TensorFlow (>= 2.16)
and Keras (>= 3.5) are new enough. It never replaces Colab's TensorFlow, Keras or OpenCV.
Anywhere else it does nothing: install locally with `make venv` (see the README).

Where it installs from:
- **a clone on Drive**: put the repository at `MyDrive/cargan/cargan_tf-repo` (e.g. upload it, or
  `!git clone <url> /content/drive/MyDrive/cargan/cargan_tf-repo` once). The cell mounts Drive
  and uses it when it is there.
- **the repository URL**: otherwise it installs from `REPO_URL`. The URL below is a placeholder
  (the project's public address is not fixed yet): set it to the real repository.

It runs only when `cargan_tf` is not installed yet, so papermill runs started from a Colab session
skip it. Set `REINSTALL = True` after updating the clone, then *Runtime > Restart session*.
"""

INSTALL_CODE = """
# Colab only: install cargan_tf without touching Colab's TensorFlow, Keras or OpenCV.
# Outside Colab this cell does nothing.
import importlib.util
import os
import subprocess
import sys

REPO_URL = "https://github.com/OWNER/cargan_tf"  # placeholder: set the real repository URL
DRIVE_REPO = "/content/drive/MyDrive/cargan/cargan_tf-repo"  # a clone of the repository on Drive
INSTALL_FROM = "auto"  # "auto": DRIVE_REPO if it exists, else REPO_URL; or "drive" / "url"
REINSTALL = False  # True after updating the clone or the repository

if "google.colab" in sys.modules and (REINSTALL or importlib.util.find_spec("cargan_tf") is None):
    if INSTALL_FROM != "url" and not os.path.isdir("/content/drive/MyDrive"):
        from google.colab import drive

        drive.mount("/content/drive")  # asks once per runtime for access to your Drive
    use_drive = INSTALL_FROM == "drive" or (INSTALL_FROM == "auto" and os.path.isdir(DRIVE_REPO))
    source = DRIVE_REPO if use_drive else "git+" + REPO_URL
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                    source], check=True)
    importlib.invalidate_caches()
    from cargan_tf.notebook import colab_install

    colab_install()  # the missing light dependencies, then the TensorFlow/Keras version check
"""

PARAMETERS_MD = """
## 1. Parameters

The next cell is tagged `parameters`: edit it here, or override any value from papermill, e.g.
`papermill {stem}.ipynb out.ipynb -p smoke True -p home /tmp/cargan`.
`home` is the folder everything goes into (`None`: `MyDrive/cargan` in Colab, `~/cargan`
elsewhere, or `$CARGAN_HOME`); `smoke = True` runs the same steps at tiny sizes in seconds.
"""

HOME_MD = """
## 2. Home folder

`setup_home` picks the home folder and creates `data/raw`, `data/prepared`, `runs` and `exports`
in it (drive_layout.md in the repository describes them). In Colab it mounts Google Drive first,
but only in an interactive session where `/content/drive/MyDrive` is not there yet: a papermill
kernel has no front end to authorise Drive, and uses the mount of the session that started it.
"""

HOME_CODE = """
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # fewer TensorFlow start-up messages

from cargan_tf import notebook as nb

home = nb.setup_home(home, smoke)
# an image folder given as `data` to training is prepared once, into home/data/prepared
cache_dir = os.environ.setdefault("CARGAN_CACHE_DIR", str(home / "data" / "prepared"))
"""

OUTPUTS_MD = """
## What this notebook wrote

The list is also saved as `home/notebook_outputs/{stem}.json` (the notebook tests read it).
"""

OUTPUTS_CODE = """
listing = nb.record_outputs(home, "{stem}", [
{files}])
"""

UNMOUNT_MD = """
## At the end of a long run: flush Drive

Colab uploads files written to Drive in the background. Before you close the tab or the runtime
is recycled, `drive.flush_and_unmount()` waits until everything (the last checkpoint, the
pictures) is on Drive. The next cell calls it only in an interactive Colab session with Drive
mounted; elsewhere it does nothing. Mount Drive again (rerun the home cell) to keep working.
"""

UNMOUNT_CODE = """
flushed = nb.flush_and_unmount_drive(home)  # interactive Colab with Drive only
"""


def build(spec: Notebook) -> nbformat.NotebookNode:
    """The notebook for `spec`, with stable cell ids (<stem>-<n>) so rebuilds are identical."""
    cells = [md(spec.title), md(INSTALL_MD), code(INSTALL_CODE),
             md(PARAMETERS_MD.format(stem=spec.stem)), code(spec.parameters, tags=("parameters",)),
             md(HOME_MD), code(HOME_CODE)]
    for markdown, source in spec.steps:
        cells += [md(markdown), code(source)] if source else [md(markdown)]
    cells += [md(OUTPUTS_MD.format(stem=spec.stem)),
              code(OUTPUTS_CODE.format(stem=spec.stem, files="".join(
                  f"    {expression},\n" for expression in spec.outputs)))]
    if spec.unmount:
        cells += [md(UNMOUNT_MD), code(UNMOUNT_CODE)]
    for number, cell in enumerate(cells):
        cell.id = f"{spec.stem[:3]}{number:03d}"
    notebook = new_notebook(cells=cells)
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": []},
    }
    return notebook


# ---- 01: prepare data ------------------------------------------------------------------------

def prepare_data() -> Notebook:
    return Notebook(
        stem="01_prepare_data",
        title="""
# 01 · Prepare a folder of car images

Point this notebook at a folder of car photos (on Drive: `MyDrive/cargan/data/raw/<name>`) and it
prepares a compact cache of square images in `home/data/prepared/<name>`, which training reads in
one go. It shows a grid of the real training images and the dataset statistics (count, per-channel
mean and standard deviation, the mean image). Without photos, use the procedural `toycars` or
`fashion_mnist`.
""",
        parameters="""
source = "toycars"  # "toycars", "fashion_mnist[:FOLDER]", or a folder of images (relative: under home)
image_size = 64  # side of the square images in the cache
channels = 3  # 3: RGB, 1: grayscale
fit = "center_crop"  # how a non-square photo becomes square: center_crop | pad | stretch
n_images = 1000  # toycars: how many to draw; fashion_mnist: a random subset (None: all)
cache_name = ""  # folder under home/data/prepared ("": <source name>_<image_size>[_gray][_<fit>])
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # tiny sizes for a quick try
""",
        steps=[
            ("""
## 3. Where the images come from

- a **folder**: every image file under it, in any subfolder, is prepared (JPEG, PNG, WebP, ...).
- **toycars**: the procedural side-view cars are drawn as PNG files into
  `home/data/raw/toycars`, a stand-in for your own photos, and prepared exactly like them.
- **fashion_mnist** (or `fashion_mnist:FOLDER` with the idx files, e.g. on Drive): loaded by
  `cargan_tf.data.sources.load_images`; in Colab Keras downloads it the first time. There is no
  folder to prepare. Other sources `load_images` knows (e.g. `stanford_cars:DIR`) work the same.
""", """
from pathlib import Path

from cargan_tf import viz
from cargan_tf.data import sources, toycars
from cargan_tf.data.cache import load_cache
from cargan_tf.data.prepare import prepare

if smoke:  # tiny: a few dozen small images
    image_size, n_images = min(image_size, 32), 64
name = cache_name or (f"{Path(str(source)).name}_{image_size}" + ("_gray" if channels == 1 else "")
                      + ("" if fit == "center_crop" else f"_{fit}"))
if source == "toycars":
    src = home / "data" / "raw" / "toycars"
    src.mkdir(parents=True, exist_ok=True)
    cars, _ = toycars.draw_toycars(n_images, 2 * image_size, seed=0, channels=3)
    for i, car in enumerate(cars):  # the files a camera would have given us
        if not (src / f"toycar_{i:05d}.png").exists():
            viz.save_png(src / f"toycar_{i:05d}.png", car)
else:
    folder = Path(source).expanduser()
    folder = folder if folder.is_absolute() else home / folder
    src = folder if folder.is_dir() else None  # None: a named source, e.g. fashion_mnist
print("source:", src or source)
"""),
            ("""
## 4. Prepare the cache

`cargan_tf.data.prepare.prepare` decodes every file, converts it to RGB or grayscale, makes it
square (`fit`), resizes it, drops exact duplicates and reports every file it could not use. Run it
again after adding photos: only new or changed files are decoded.
""", """
dst = home / "data" / "prepared" / name
if src is not None:
    result = prepare(src, dst, size=image_size, channels=channels, fit=fit)
    print(result.summary())
    images = load_cache(dst)
    written = [result.manifest_path, result.report_path, *sorted(dst.glob("images_*.npy"))]
else:
    dst = None
    images = sources.load_images(source, image_size, channels, n=n_images, fit=fit)
    written = []
print("images:", images.dtype, images.shape)
"""),
            ("""
## 5. Real training images

A grid of the first 64 images, as the discriminator will see them.
""", """
previews = home / "data" / "previews" / name
previews.mkdir(parents=True, exist_ok=True)
grid_png = viz.save_grid(previews / "real_grid.png", images[:64], cols=8, min_side=512)
nb.show_image(grid_png)
"""),
            ("""
## 6. Dataset statistics

Count, per-channel mean and standard deviation (pixel values 0-255) and the mean image: a
blurry car in the middle says the photos are centred and similar in pose; a grey smear says
they are not, and a GAN will find them harder.
""", """
from cargan_tf.runs import write_json_atomic

stats, mean_image = nb.dataset_stats(images)
stats_json = previews / "stats.json"
write_json_atomic(stats_json, {"source": str(src or source), "cache": str(dst or ""), **stats})
for key, value in stats.items():
    print(f"{key:>14}: {value}")
mean_png = viz.save_png(previews / "mean_image.png", viz.upscale(mean_image, 256))
nb.show_image(mean_png, caption="mean image")
gray = ", channels = 1" if channels == 1 else ""
print(f"train on it: notebook 02 with dataset = {str(dst or source)!r}, image_size = {image_size}{gray}")
"""),
        ],
        outputs=["*written", "grid_png", "stats_json", "mean_png"],
    )


# ---- 02: train -----------------------------------------------------------------------------

def train_dcgan() -> Notebook:
    return Notebook(
        stem="02_train_dcgan",
        title="""
# 02 · Train a DCGAN on cars

Pick a preset and a dataset and train. The discriminator learns on a real and a fake batch, then
the generator learns through the stacked model with the discriminator frozen (`train_on_batch`).
A grid of generated cars is shown after each epoch. Everything goes into one run folder,
`home/runs/<run_name>`; when Colab recycles the runtime, run the notebook again with the same
`run_name` and training continues from the newest checkpoint.
""",
        parameters="""
dataset = "toycars"  # toycars | fashion_mnist | a prepared cache or image folder (relative: under home)
preset = "quick32"  # aim64 | dcgan64 | selu128 | fashion28 | quick32 | small32 (a few hundred images)
epochs = None  # total epochs (None: the preset's); raise it to train a finished run further
image_size = None  # None: the preset's (must match a prepared cache's size)
channels = None  # None: the preset's (3: RGB; 1: a grayscale cache from notebook 01)
batch_size = None  # None: the preset's; fixed for the life of a run
lr_d = None  # discriminator learning rate (None: the preset's)
lr_g = None  # generator learning rate (None: the preset's)
run_name = ""  # folder under home/runs ("": <preset>-<dataset name>, plus -smoke in smoke mode)
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # tiny models and data (16x16, 2 epochs): a quick try of every step
""",
        steps=[
            ("""
## 3. The run's configuration

A preset is a named recipe (`cargan_tf.config.PRESETS`); the parameters above override parts of
it. `smoke` shrinks it to seconds. The run folder keeps the configuration in `config.json`;
resuming may change the schedule (epochs, learning rates) but not what the run is.
""", """
from pathlib import Path

from cargan_tf import config, runs

overrides = dict(image_size=image_size, channels=channels, batch_size=batch_size, lr_d=lr_d,
                 lr_g=lr_g)
overrides = {key: value for key, value in overrides.items() if value is not None}  # None: preset's
overrides.update(config.length_overrides(epochs=epochs))  # epochs clear small32's step budget
cfg = config.preset(preset, data=nb.resolve_data(dataset, home))  # relative paths: under home
if smoke:  # tiny sizes (16x16, 2 epochs, batch 16) first, so the values set above still win
    cfg = config.smoke(cfg)
cfg = cfg.replace(**overrides)
run_name = run_name or f"{preset}-{Path(dataset).name}" + ("-smoke" if smoke else "")
run_dir = home / "runs" / run_name
paths = runs.RunPaths(run_dir)
print(f"run folder: {run_dir}")
print(f"{cfg.preset}: {cfg.image_size}x{cfg.image_size}x{cfg.channels}, data {cfg.data}, "
      f"{config.describe_length(cfg)}, batch {cfg.batch_size}, lr_d {cfg.lr_d}, lr_g {cfg.lr_g}")
"""),
            ("""
## 4. Train (or resume)

`cargan_tf.train.train` trains up to `epochs`, writing a checkpoint at the end of every epoch (and
every 10 minutes inside one), the per-batch losses to `history.csv` and a sample grid per epoch.
Run on the same folder again and it continues from the newest checkpoint, with the optimizer
state, so nothing but the minutes since that checkpoint is lost. The grid below is replaced after
each epoch (the notebook keeps one picture, not hundreds; `evolution.gif` keeps them all) and
always uses the same latent vectors, so you see the same cars take shape.
""", """
from cargan_tf.train import train

latest = runs.latest_checkpoint(paths)
print(f"resuming from {latest.name}" if latest else "starting a new run")


grid = nb.LiveImage(width=320)  # one picture, replaced after each epoch


def show_grid(epoch, grid_png):
    if grid_png is not None:  # long runs keep a grid every few epochs (samples_every_epochs)
        grid.show(grid_png, caption=f"after epoch {epoch}")


run_dir = train(cfg, run_dir, on_epoch_end=show_grid)
"""),
            ("""
## 5. Real versus generated

Training ends by saving `generator.keras`, `discriminator.keras`, the plots, this collage and
`evolution.gif`, the sample grid epoch by epoch (notebook 03 shows them all).
""", """
nb.show_image(paths.real_vs_fake, width=520)
nb.show_gif(paths.evolution_gif, width=320)
nb.show_image(paths.losses_plot, width=520)
"""),
        ],
        outputs=["paths.config", "paths.run_info", "paths.history", "paths.generator",
                 "paths.discriminator", "paths.real_vs_fake", "paths.losses_plot",
                 "paths.d_outputs_plot", "paths.evolution_gif", "paths.list_sample_grids()[-1]",
                 'runs.latest_checkpoint(paths) / "state.json"'],
        unmount=True,
    )


# ---- 03: plots and GIF ---------------------------------------------------------------------

def plots_and_gif() -> Notebook:
    return Notebook(
        stem="03_plots_and_gif",
        title="""
# 03 · Plots, the evolution GIF and a latent walk

Everything here works from a run folder written by notebook 02 (or `python -m cargan_tf train`):
the loss curves, the discriminator's outputs on real and generated batches, the real-versus-fake
collage, the GIF of the sample grid epoch by epoch, and an interpolation between two seeds.
With no `run_dir` and `smoke = True`, it trains a tiny run first.
""",
        parameters="""
run_dir = ""  # a run folder, relative: under home ("": home/runs/<run_name>, or a tiny smoke run)
run_name = ""  # used when run_dir is empty, e.g. the run_name of notebook 02
seed_a = 1  # the interpolation starts at this seed's car ...
seed_b = 2  # ... and ends at this one's
steps = 8  # images in the interpolation strip
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # build a tiny run when no run folder is given
""",
        steps=[
            ("""
## 3. The run folder
""", """
from cargan_tf import generate, runs, viz

run = nb.find_run(run_dir, run_name, home, smoke)  # run_dir relative: under home
paths = runs.RunPaths(run)
print("run folder:", run)
"""),
            ("""
## 4. Losses

Discriminator loss on real and on generated batches, and the generator's loss, per batch with a
moving average. A GAN's losses do not fall to zero: a discriminator loss going to 0 while the
generator's climbs means D has won and G stopped learning.
""", """
nb.show_image(viz.plot_losses(paths.history, paths.losses_plot), width=560)
"""),
            ("""
## 5. D(x) and D(G(z))

The discriminator's mean output on real images, D(x), and on generated ones, D(G(z)). Healthy
training keeps them apart but not at 1 and 0.
""", """
nb.show_image(viz.plot_d_outputs(paths.history, paths.d_outputs_plot), width=560)
"""),
            ("""
## 6. Real versus generated
""", """
nb.show_image(paths.real_vs_fake, width=560)
"""),
            ("""
## 7. The evolution GIF

One frame per epoch (at most 100, evenly spaced, for long runs): the same latent vectors
through the generator as it learned.
""", """
frames = viz.thin_frames(paths.list_sample_grids())  # at most 100, evenly spaced
viz.make_gif(frames, paths.evolution_gif,
             labels=[f"epoch {int(p.stem.split('_')[1])}" for p in frames])
nb.show_gif(paths.evolution_gif, width=360)
"""),
            ("""
## 8. A walk through latent space

A seed names a latent vector (`cargan_tf.latents.seed_to_latent`, the same in the CLI, the server
and exports). The strip walks the arc between the vectors of `seed_a` and `seed_b`: if the cars
change smoothly, the generator has learned a continuous space, not a lookup table.
""", """
generator = generate.load_generator(run)
strip = generate.interpolation_images(generator, seed_a, seed_b, steps)
interp_png = paths.plots / f"interp_{seed_a}_{seed_b}.png"
viz.save_png(interp_png, viz.upscale(viz.image_grid(strip, cols=len(strip)), 96 * len(strip)))
nb.show_image(interp_png)
"""),
        ],
        outputs=["paths.losses_plot", "paths.d_outputs_plot", "paths.real_vs_fake",
                 "paths.evolution_gif", "interp_png"],
    )


# ---- 06: Fashion-MNIST ---------------------------------------------------------------------

def fashion_mnist_dcgan() -> Notebook:
    return Notebook(
        stem="06_fashion_mnist_dcgan",
        title="""
# 06 · The classic Fashion-MNIST DCGAN

The `fashion28` preset is the DCGAN from *Hands-On Machine Learning*: 28x28 grayscale clothes,
a generator from a 7x7 feature map, a discriminator with dropout. It trains in minutes and is a
good first check that everything works before the slower car models.
""",
        parameters="""
fashion_mnist_dir = None  # folder with the idx files (None: Keras' cache, or its download in Colab)
preset = "fashion28"  # the Fashion-MNIST recipe (this notebook trains 28x28 grayscale presets)
epochs = None  # None: the preset's (10)
batch_size = None  # None: the preset's (32)
run_name = ""  # folder under home/runs ("": the preset's name, plus -smoke in smoke mode)
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # tiny run; offline it uses ../shared/data/fashion_mnist_900 or toycars
""",
        steps=[
            ("""
## 3. The images

In Colab, Keras downloads Fashion-MNIST (60,000 training images, 30 MB) the first time. With
`fashion_mnist_dir` set, the standard idx files are read from that folder instead (e.g. a copy on
Drive); `$CARGAN_FASHION_MNIST` and Keras' cache (`~/.keras/datasets/fashion-mnist`) are looked
at too. In smoke mode outside Colab, the project's 900-image sample (`../shared/data`) is used
when present. When no data can be had, the notebook falls back to toycars in grayscale at 28x28
and says so: it never stops for lack of data.
""", """
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
"""),
            ("""
## 4. Train (or resume)

The same loop as notebook 02. Rerun with the same `run_name` after a recycled runtime to resume.
""", """
from cargan_tf.train import train

run_dir = home / "runs" / run_name
paths = runs.RunPaths(run_dir)


grid = nb.LiveImage(width=280)  # one picture, replaced after each epoch


def show_grid(epoch, grid_png):
    if grid_png is not None:  # long runs keep a grid every few epochs (samples_every_epochs)
        grid.show(grid_png, caption=f"after epoch {epoch}")


run_dir = train(cfg, run_dir, images=images, on_epoch_end=show_grid)
"""),
            ("""
## 5. Results

The evolution of the fixed sample grid, and real against generated clothes.
""", """
nb.show_gif(paths.evolution_gif, width=280)
nb.show_image(paths.real_vs_fake, width=520)
"""),
        ],
        outputs=["paths.config", "paths.history", "paths.generator", "paths.evolution_gif",
                 "paths.real_vs_fake", "paths.losses_plot"],
        unmount=True,
    )


# ---- 05: inpainting and restoration --------------------------------------------------------

def inpainting_restoration() -> Notebook:
    return Notebook(
        stem="05_inpainting_restoration",
        title="""
# 05 · Inpainting and restoration with a trained generator

A generator that has learned what cars look like can fill in a missing part of one: search its
latent space for the car that best matches the pixels we *do* know, then blend that car's pixels
into the hole (semantic inpainting, Yeh et al. 2017). The same search with a known degradation
recovers noisy, blurred, low-resolution or incomplete images (Bora et al. 2017). Each result is
shown beside OpenCV's classical answer. With no `run_dir` and `smoke = True`, a tiny run is
trained first (its fills are blobs: point `run_dir` at a real run to see cars).
""",
        parameters="""
run_dir = ""  # a run folder, relative: under home ("": home/runs/<run_name>, or a tiny smoke run)
run_name = ""  # used when run_dir is empty, e.g. the run_name of notebook 02
image_folder = ""  # your own car images, any subfolder (relative: under home); "": held-out toycars
n_images = 6  # images to inpaint and restore
mask = "center:0.25"  # center[:FRACTION] | boxes | strokes | left | right | a mask image path
operator = "sr4"  # restoration: denoise | deblur | sr2 | sr4 | missing
restarts = 8  # random starting latents per image, searched together
steps = 300  # Adam steps on the latents
blend = "poisson"  # how the fill joins the known pixels: poisson | feather | none
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # tiny run, few images and steps: a quick try of every step
""",
        steps=[
            ("""
## 3. The generator and the images

The generator (and its discriminator, whose realism score nudges the search) come from the run
folder. The images are toycars the generator never saw in training (indices from 10,000,000 on;
training draws 0 .. data_n - 1), or your own from `image_folder`, centre-cropped and resized to
the generator's size.
""", """
from pathlib import Path

import numpy as np

from cargan_tf import generate, inpaint, masks, viz
from cargan_tf.data.toycars import draw_toycars

if smoke:
    n_images, restarts, steps = min(n_images, 3), min(restarts, 2), min(steps, 25)
run = nb.find_run(run_dir, run_name, home, smoke)  # run_dir relative: under home
generator = generate.load_generator(run)
discriminator = inpaint.load_discriminator(run)
size, _, channels = inpaint.generator_shape(generator)
if image_folder:  # searched recursively, like notebook 01 and `prepare`
    images = inpaint.read_folder(nb.under_home(home, image_folder), size, channels, n_images)
else:
    images = draw_toycars(n_images, size, seed=0, channels=channels, start=10_000_000)[0]
out_dir = home / "inpainting" / Path(run).name
out_dir.mkdir(parents=True, exist_ok=True)
print(f"generator {size}x{size}x{channels} from {run}; {len(images)} images")
nb.show_image(viz.upscale(viz.image_grid(images, cols=len(images)), 96 * len(images)))
"""),
            ("""
## 4. Masks

A mask is True where a pixel is missing. `cargan_tf.masks` makes a centre box of a given area,
random boxes, free-form strokes, the left or right half, or reads a mask image (any nonzero
pixel is hole). The search below uses `mask`; here are all the kinds side by side.
""", """
kinds = ["center:0.25", "boxes", "strokes", "left", "right"]
examples = np.stack([masks.parse_mask(kind, size, seed=1) for kind in kinds])
nb.show_image(viz.upscale(viz.image_grid(examples[..., None].astype(np.uint8) * 255,
                                         cols=len(kinds)), 96 * len(kinds)), caption=", ".join(kinds))
hole = masks.parse_mask(mask, size, seed=0)
print(f"mask {mask!r}: {hole.mean():.0%} of the image is missing")
"""),
            ("""
## 5. Inpainting: search the latent space

For every image, `restarts` random latents are optimised together with Adam for `steps` steps.
The loss is an L1 distance on the known pixels, weighted towards the hole's neighbourhood (the
fraction of hole pixels in a small window around each known pixel), plus
`0.003 * log(1 - D(G(z)))`, which prefers fills the discriminator finds realistic. The latents
are kept inside a ball around the prior. The restart with the lowest loss wins, and its pixels
are blended into the hole (Poisson blending keeps every known pixel and matches colours at the
edge). The comparison: original / masked / ours / `cv2.inpaint` (Telea).
""", """
holes = np.broadcast_to(hole, images.shape[:3])
fit = inpaint.inpaint(generator, images, holes, discriminator=discriminator, restarts=restarts,
                      steps=steps, blend_method=blend, progress=True)
telea = inpaint.opencv_inpaint(images, holes, "telea")
inpaint_png = viz.save_png(out_dir / "inpainting.png", inpaint.comparison_strip(
    [images, inpaint.masked_view(images, holes), fit.images, telea],
    ["original", "masked", "ours", "cv2 Telea"]))
nb.show_image(inpaint_png, width=560)
print(f"contextual loss: {fit.history[0].mean():.4f} at the start, {fit.context_loss.mean():.4f} "
      f"at the end (mean over images)")
"""),
            ("""
## 6. How good is the fill?

PSNR (dB, higher is better) and SSIM (1 is a perfect match) inside the hole only, against the
true pixels, for ours, both OpenCV methods and the plainest fill, the mean known colour.
`benchmarks/inpaint_quality.py` measures the same on more images and hole sizes.
""", """
candidates = {"ours": fit.images, "cv2 Telea": telea,
              "cv2 Navier-Stokes": inpaint.opencv_inpaint(images, holes, "ns"),
              "mean colour": inpaint.mean_fill(images, holes)}
for name, filled in candidates.items():
    print(f"{name:>18}: PSNR {inpaint.psnr(filled, images, holes).mean():6.2f} dB   "
          f"SSIM {inpaint.ssim(filled, images, holes).mean():.3f}")
"""),
            ("""
## 7. Restoration

The same search with a forward operator A: the loss is |A(G(z)) - y|^2 for the observation y.
`denoise`: A is the identity and y is noisy; `deblur`: A is a known Gaussian blur (a convolution
TensorFlow differentiates through); `sr2` / `sr4`: A averages 2x2 / 4x4 blocks (so y is 2 or 4
times smaller); `missing`: half the pixels are dropped at random. The baseline is OpenCV's usual
answer: non-local means, Richardson-Lucy deconvolution, bicubic upsampling or Telea inpainting.
""", """
degradation = inpaint.Degradation(operator)
observed, known = degradation.degrade(images, seed=0)
restored = inpaint.restore(generator, observed, degradation, known, restarts=restarts,
                           steps=steps, progress=True)
baseline = inpaint.opencv_restore(observed, degradation, known)
f = degradation.factor
shown = np.repeat(np.repeat(observed, f, axis=1), f, axis=2)
restore_png = viz.save_png(out_dir / f"restore_{operator}.png", inpaint.comparison_strip(
    [images, shown, restored.images, baseline], ["original", "degraded", "ours", "OpenCV"]))
nb.show_image(restore_png, width=560)
print(f"PSNR: ours {inpaint.psnr(restored.images, images).mean():.2f} dB, "
      f"OpenCV {inpaint.psnr(baseline, images).mean():.2f} dB")
"""),
        ],
        outputs=["inpaint_png", "restore_png"],
    )


# ---- 07: export and serve ------------------------------------------------------------------

def export_and_serve() -> Notebook:
    return Notebook(
        stem="07_export_and_serve",
        title="""
# 07 · Export the generator and serve it

A trained generator becomes a small serving model (latents in, uint8 images out) in three
formats: `.keras`, a TensorFlow SavedModel and LiteRT (`.tflite`, float16 and dynamic-range).
Every export is checked against the original generator. Then the same API the AWS Lambda handler
answers is called directly, and a local gallery server is started and queried. A seed names the
same car in every path. With no `run_dir` and `smoke = True`, it trains a tiny run first.
""",
        parameters="""
run_dir = ""  # a run folder, relative: under home ("": home/runs/<run_name>, or a tiny smoke run)
run_name = ""  # used when run_dir is empty, e.g. the run_name of notebook 02
formats = "keras, savedmodel, litert"  # which exports to write (tflite = litert)
seed = 7  # the seed whose car every path must agree on
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # build a tiny run when no run folder is given
""",
        steps=[
            ("""
## 3. The run folder
""", """
from cargan_tf import export, generate, serve

run = nb.find_run(run_dir, run_name, home, smoke)  # run_dir relative: under home
out_dir = home / "exports" / run.name
print("run folder:", run, "-> exports in", out_dir)
"""),
            ("""
## 4. Export and check

Each format is reloaded and its images compared with the original generator's; the sizes and
the differences (in uint8 levels) go to `export_report.json`.
""", """
report = export.export(run, out_dir, tuple(formats.split(",")))
report_json = out_dir / "export_report.json"
"""),
            ("""
## 5. One seed, every path

The original generator, each export and the Lambda handler must draw the same car for a seed.
""", """
import base64
import json

reference = generate.images_for_seed(generate.load_generator(run), seed, 1)[0]
for model_path in sorted(p for p in out_dir.iterdir() if p.name.startswith("serving")):
    image = export.load_serving_model(model_path).images_for_seed(seed, 1)[0]
    diff = int(abs(image.astype(int) - reference.astype(int)).max())
    print(f"{model_path.name:32s} max difference {diff} levels")

os.environ["CARGAN_MODEL"] = str(out_dir / "serving.keras")
event = {"httpMethod": "GET", "queryStringParameters": {"n": "4", "seed": str(seed),
                                                         "format": "grid"}}
response = serve.lambda_handler(event, None)
print(response["statusCode"], response["headers"]["Content-Type"])
grid_png = out_dir / f"lambda_grid_seed{seed}.png"
grid_png.write_bytes(base64.b64decode(response["body"]))
nb.show_image(grid_png, width=320)
"""),
            ("""
## 6. A local gallery server

`python -m cargan_tf serve RUN --port 8000` runs the same API plus a gallery page (a grid of new
cars, a new-seed button, a slider between two seeds) on 127.0.0.1. Here it runs in a thread for
one request; in Colab, use the CLI from a terminal or `google.colab.output.serve_kernel_port_as_window`.
""", """
import threading
import urllib.request

server = serve.make_server(export.load_serving_model(run), port=0)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_address[1]}/api/generate?n=1&seed={seed}"
with urllib.request.urlopen(url, timeout=60) as reply:
    served_png = out_dir / f"served_seed{seed}.png"
    served_png.write_bytes(reply.read())
server.shutdown()
print("served", served_png, json.dumps(report.get("ok")))
"""),
        ],
        outputs=["report_json", "grid_png", "served_png"],
    )


# ---- 04: GAN vs VAE ------------------------------------------------------------------------

def gan_vs_vae() -> Notebook:
    return Notebook(
        stem="04_gan_vs_vae",
        title="""
# 04 · GAN versus VAE

A well-known study of car image generation trained a GAN and two VAEs (one with dense layers,
one convolutional, mirroring the GAN) for the same time: the GAN sampled sharper cars, the VAEs
reconstructed well but sampled blurry ones. This notebook runs that comparison on your data:
the GAN (quick32 recipe), VAE v1 (dense) and VAE v2 (conv: D's conv stack as encoder, G as
decoder) train on the same images for the same number of epochs, then are scored the same way
(FID, KID, diversity with the data's own features), timed, and shown side by side. Everything
goes into `home/runs/<out_name>`; running again resumes the three runs.
""",
        parameters="""
dataset = "toycars"  # toycars | fashion_mnist | a prepared cache or image folder (relative: under home)
image_size = 32  # image side (a power of two)
epochs = 4  # the budget: epochs for every model
data_n = None  # training images (None: the quick32 preset's 8192)
features = "domain"  # domain (the data's own extractor; pixels when there is none) | pixels
out_name = ""  # folder under home/runs ("": gan-vs-vae-<dataset name>, plus -smoke)
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # tiny models and data (16x16, 1 epoch, pixel features): a quick try of every step
""",
        steps=[
            ("""
## 3. Train the three models and score them

`cargan_tf.compare.run_comparison` trains (or resumes) `gan/`, `vae_dense/` and `vae_conv/`
(each a run folder with history, sample grids, checkpoints and an evolution GIF), then writes
`comparison.json` and `comparison.md`. Smoke mode uses pixel features (the domain extractor
trains for minutes the first time); the table says which features were used.
""", """
from pathlib import Path

from IPython.display import Markdown, display

from cargan_tf.compare import run_comparison

data = nb.resolve_data(dataset, home)  # relative paths: under home
out = home / "runs" / (out_name or f"gan-vs-vae-{Path(dataset).name}" + ("-smoke" if smoke else ""))
report = run_comparison(out, data=data, image_size=image_size, epochs=1 if smoke else epochs,
                        data_n=data_n, smoke=smoke, features=features)
display(Markdown(Path(out / "comparison.md").read_text().split("![")[0]))
"""),
            ("""
## 4. Samples, reconstructions, interpolations

Samples: 16 draws from each model's prior (the same latents for all). Reconstructions: held-out
images through each VAE (a GAN has no encoder). Interpolations: the GAN walks the arc (slerp)
between two seeds' latents; the VAEs walk the line between two held-out images' encodings.
""", """
for name in ("samples", "reconstructions", "interpolations"):
    nb.show_image(out / f"{name}.png", width=720)
"""),
        ],
        outputs=['out / "comparison.json"', 'out / "comparison.md"', 'out / "samples.png"',
                 'out / "reconstructions.png"', 'out / "interpolations.png"',
                 'out / "vae_conv" / "evolution.gif"'],
    )


NOTEBOOKS: list[Callable[[], Notebook]] = [prepare_data, train_dcgan, plots_and_gif, gan_vs_vae,
                                           fashion_mnist_dcgan, inpainting_restoration,
                                           export_and_serve]


def render(spec: Notebook) -> str:
    return nbformat.writes(build(spec)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the notebooks to")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a notebook in --out differs")
    args = parser.parse_args(argv)
    stale = []
    for make in NOTEBOOKS:
        spec = make()
        text = render(spec)
        path = args.out / f"{spec.stem}.ipynb"
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {path}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python notebooks/build_notebooks.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
