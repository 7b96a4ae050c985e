"""trains the GAN and two VAEs (dense, convolutional) on the same data and budget; a table of
FID/KID/diversity/time and samples, reconstructions and interpolations side by side"""

# Source of notebooks/04_gan_vs_vae.ipynb; build_notebooks.py adds the shared cells (_shared.py).
from cargan_tf import notebook as nb  # imported by the shared setup cell

# %% [markdown]
# # 04 · GAN versus VAE
#
# A well-known study of car image generation trained a GAN and two VAEs (one with dense layers,
# one convolutional, mirroring the GAN) for the same time: the GAN sampled sharper cars, the VAEs
# reconstructed well but sampled blurry ones. This notebook runs that comparison on your data:
# the GAN (quick32 recipe), VAE v1 (dense) and VAE v2 (conv: D's conv stack as encoder, G as
# decoder) train on the same images for the same number of epochs, then are scored the same way
# (FID, KID, diversity with the data's own features), timed, and shown side by side. Everything
# goes into `home/runs/<out_name>`; running again resumes the three runs.

# %% tags=["parameters"]
dataset = "toycars"  # toycars | fashion_mnist | a prepared cache or image folder (relative: under home)
image_size = 32  # image side (a power of two)
epochs = 4  # the budget: epochs for every model
data_n = None  # training images (None: the quick32 preset's 8192)
features = "domain"  # domain (the data's own extractor; pixels when there is none) | pixels
out_name = ""  # folder under home/runs ("": gan-vs-vae-<dataset name>, plus -smoke)
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # tiny models and data (16x16, 1 epoch, pixel features): a quick try of every step

# %% include="gpu"

# %% [markdown]
# ## 3. Train the three models and score them
#
# `cargan_tf.compare.run_comparison` trains (or resumes) `gan/`, `vae_dense/` and `vae_conv/`
# (each a run folder with history, sample grids, checkpoints and an evolution GIF), then writes
# `comparison.json` and `comparison.md`. Smoke mode uses pixel features (the domain extractor
# trains for minutes the first time); the table says which features were used.

# %%
from pathlib import Path

from IPython.display import Markdown, display

from cargan_tf.compare import run_comparison

data = nb.resolve_data(dataset, home)  # relative paths: under home
out = home / "runs" / (out_name or f"gan-vs-vae-{Path(dataset).name}" + ("-smoke" if smoke else ""))
report = run_comparison(out, data=data, image_size=image_size, epochs=1 if smoke else epochs,
                        data_n=data_n, smoke=smoke, features=features)
display(Markdown(Path(out / "comparison.md").read_text().split("![")[0]))

# %% [markdown]
# ## 4. Samples, reconstructions, interpolations
#
# Samples: 16 draws from each model's prior (the same latents for all). Reconstructions: held-out
# images through each VAE (a GAN has no encoder). Interpolations: the GAN walks the arc (slerp)
# between two seeds' latents; the VAEs walk the line between two held-out images' encodings.

# %%
for name in ("samples", "reconstructions", "interpolations"):
    nb.show_image(out / f"{name}.png", width=720)

# %% include="outputs"

# %%
listing = nb.record_outputs(home, "04_gan_vs_vae", [
    out / "comparison.json", out / "comparison.md", out / "samples.png", out / "reconstructions.png",
    out / "interpolations.png", out / "vae_conv" / "evolution.gif"])
