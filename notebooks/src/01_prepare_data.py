"""prepares a folder of car photos (or the toycars demo) into a cache; previews Fashion-MNIST and other
named sources, which need no cache; shows real images, per-channel mean/std and the mean image"""

# Source of notebooks/01_prepare_data.ipynb; build_notebooks.py adds the shared cells (_shared.py).
from cargan_tf import notebook as nb  # imported by the shared setup cell

# %% [markdown]
# # 01 · Prepare a folder of car images
#
# Point this notebook at a folder of car photos (on Drive: `MyDrive/cargan/data/raw/<name>`) and it
# prepares a compact cache of square images in `home/data/prepared/<name>`, which training reads in
# one go. It shows a grid of the real training images and the dataset statistics (count, per-channel
# mean and standard deviation, the mean image). Without photos, use the procedural `toycars` or
# `fashion_mnist`.

# %% tags=["parameters"]
source = "toycars"  # "toycars", "fashion_mnist[:FOLDER]", or a folder of images (relative: under home)
image_size = 64  # side of the square images in the cache
channels = 3  # 3: RGB, 1: grayscale
fit = "center_crop"  # how a non-square photo becomes square: center_crop | pad | stretch
n_images = 1000  # toycars: how many to draw; fashion_mnist: a random subset (None: all)
cache_name = ""  # folder under home/data/prepared ("": <source name>_<image_size>[_gray][_<fit>])
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # tiny sizes for a quick try

# %% [markdown]
# ## 3. Where the images come from
#
# - a **folder**: every image file under it, in any subfolder, is prepared (JPEG, PNG, WebP, ...).
# - **toycars**: the procedural side-view cars are drawn as PNG files into
#   `home/data/raw/toycars`, a stand-in for your own photos, and prepared exactly like them.
# - **fashion_mnist** (or `fashion_mnist:FOLDER` with the idx files, e.g. on Drive): loaded by
#   `cargan_tf.data.sources.load_images`; in Colab Keras downloads it the first time. There is no
#   folder to prepare. Other sources `load_images` knows (e.g. `stanford_cars:DIR`) work the same.

# %%
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

# %% [markdown]
# ## 4. Prepare the cache
#
# `cargan_tf.data.prepare.prepare` decodes every file, converts it to RGB or grayscale, makes it
# square (`fit`), resizes it, drops exact duplicates and reports every file it could not use. Run it
# again after adding photos: only new or changed files are decoded.

# %%
dst = home / "data" / "prepared" / name
if src is not None:
    result = prepare(src, dst, size=image_size, channels=channels, fit=fit)
    print(result.summary())
    # photos smaller than image_size, or wide ones center_crop cut: what to change above
    for warning in result.warnings(size_how="image_size = {}", fit_how="fit = '{}'"):
        print(warning)
    images = load_cache(dst)
    written = [result.manifest_path, result.report_path, *sorted(dst.glob("images_*.npy"))]
else:
    dst = None
    images = sources.load_images(source, image_size, channels, n=n_images, fit=fit)
    written = []
print("images:", images.dtype, images.shape)

# %% [markdown]
# ## 5. Real training images
#
# A grid of the first 64 images, as the discriminator will see them.

# %%
previews = home / "data" / "previews" / name
previews.mkdir(parents=True, exist_ok=True)
grid_png = viz.save_grid(previews / "real_grid.png", images[:64], cols=8, min_side=512)
nb.show_image(grid_png)

# %% [markdown]
# ## 6. Dataset statistics
#
# Count, per-channel mean and standard deviation (pixel values 0-255) and the mean image: a
# blurry car in the middle says the photos are centred and similar in pose; a grey smear says
# they are not, and a GAN will find them harder.

# %%
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

# %% include="outputs"

# %%
listing = nb.record_outputs(home, "01_prepare_data", [*written, grid_png, stats_json, mean_png])
