"""from a run folder: loss and D(x)/D(G(z)) plots, real-vs-fake collage, the evolution GIF, a latent
walk between two seeds"""

# Source of notebooks/03_plots_and_gif.ipynb; build_notebooks.py adds the shared cells (_shared.py).
from cargan_tf import notebook as nb  # imported by the shared setup cell

# %% [markdown]
# # 03 · Plots, the evolution GIF and a latent walk
#
# Everything here works from a run folder written by notebook 02 (or `python -m cargan_tf train`):
# the loss curves, the discriminator's outputs on real and generated batches, the real-versus-fake
# collage, the GIF of the sample grid epoch by epoch, and an interpolation between two seeds.
# With no `run_dir` and `smoke = True`, it trains a tiny run first.

# %% tags=["parameters"]
run_dir = ""  # a run folder, relative: under home ("": home/runs/<run_name>, or a tiny smoke run)
run_name = ""  # used when run_dir is empty, e.g. the run_name of notebook 02
seed_a = 1  # the interpolation starts at this seed's car ...
seed_b = 2  # ... and ends at this one's
steps = 8  # images in the interpolation strip
home = None  # home folder (None: MyDrive/cargan in Colab, ~/cargan elsewhere)
smoke = False  # build a tiny run when no run folder is given

# %% [markdown]
# ## 3. The run folder

# %%
from cargan_tf import generate, runs, viz

run = nb.find_run(run_dir, run_name, home, smoke)  # run_dir relative: under home
paths = runs.RunPaths(run)
print("run folder:", run)

# %% [markdown]
# ## 4. Losses
#
# Discriminator loss on real and on generated batches, and the generator's loss, per batch with a
# moving average. A GAN's losses do not fall to zero: a discriminator loss going to 0 while the
# generator's climbs means D has won and G stopped learning.

# %%
nb.show_image(viz.plot_losses(paths.history, paths.losses_plot), width=560)

# %% [markdown]
# ## 5. D(x) and D(G(z))
#
# The discriminator's mean output on real images, D(x), and on generated ones, D(G(z)). Healthy
# training keeps them apart but not at 1 and 0.

# %%
nb.show_image(viz.plot_d_outputs(paths.history, paths.d_outputs_plot), width=560)

# %% [markdown]
# ## 6. Real versus generated

# %%
nb.show_image(paths.real_vs_fake, width=560)

# %% [markdown]
# ## 7. The evolution GIF
#
# One frame per epoch (at most 100, evenly spaced, for long runs): the same latent vectors
# through the generator as it learned.

# %%
frames = viz.thin_frames(paths.list_sample_grids())  # at most 100, evenly spaced
viz.make_gif(frames, paths.evolution_gif,
             labels=[f"epoch {int(p.stem.split('_')[1])}" for p in frames])
nb.show_gif(paths.evolution_gif, width=360)

# %% [markdown]
# ## 8. A walk through latent space
#
# A seed names a latent vector (`cargan_tf.latents.seed_to_latent`, the same in the CLI, the server
# and exports). The strip walks the arc between the vectors of `seed_a` and `seed_b`: if the cars
# change smoothly, the generator has learned a continuous space, not a lookup table.

# %%
generator = generate.load_generator(run)
strip = generate.interpolation_images(generator, seed_a, seed_b, steps)
interp_png = paths.plots / f"interp_{seed_a}_{seed_b}.png"
viz.save_png(interp_png, viz.upscale(viz.image_grid(strip, cols=len(strip)), 96 * len(strip)))
nb.show_image(interp_png)

# %% include="outputs"

# %%
listing = nb.record_outputs(home, "03_plots_and_gif", [
    paths.losses_plot, paths.d_outputs_plot, paths.real_vs_fake, paths.evolution_gif, interp_png])
