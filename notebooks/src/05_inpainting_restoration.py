"""fills holes in car images and restores noisy, blurred or low-resolution ones by searching the
generator's latent space; original / masked / ours / OpenCV side by side; then starts from a
photo: its projection and edits along a latent direction"""

# Source of notebooks/05_inpainting_restoration.ipynb; build_notebooks.py adds the shared cells (_shared.py).
from cargan_tf import notebook as nb  # imported by the shared setup cell

# %% [markdown]
# # 05 · Inpainting and restoration with a trained generator
#
# A generator that has learned what cars look like can fill in a missing part of one: search its
# latent space for the car that best matches the pixels we *do* know, then blend that car's pixels
# into the hole (semantic inpainting, Yeh et al. 2017). The same search with a known degradation
# recovers noisy, blurred, low-resolution or incomplete images (Bora et al. 2017). Each result is
# shown beside OpenCV's classical answer. The last section starts from a photo: it projects the
# photo into the latent space and edits it there. With no `run_dir` and `smoke = True`, a tiny run is
# trained first (its fills are blobs: point `run_dir` at a real run to see cars).

# %% tags=["parameters"]
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

# %% [markdown]
# ## 3. The generator and the images
#
# The generator (and its discriminator, whose realism score nudges the search) come from the run
# folder. The images are toycars the generator never saw in training (indices from 10,000,000 on;
# training draws 0 .. data_n - 1), or your own from `image_folder`, centre-cropped and resized to
# the generator's size.

# %%
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

# %% [markdown]
# ## 4. Masks
#
# A mask is True where a pixel is missing. `cargan_tf.masks` makes a centre box of a given area,
# random boxes, free-form strokes, the left or right half, or reads a mask image (any nonzero
# pixel is hole). The search below uses `mask`; here are all the kinds side by side.

# %%
kinds = ["center:0.25", "boxes", "strokes", "left", "right"]
examples = np.stack([masks.parse_mask(kind, size, seed=1) for kind in kinds])
nb.show_image(viz.upscale(viz.image_grid(examples[..., None].astype(np.uint8) * 255,
                                         cols=len(kinds)), 96 * len(kinds)), caption=", ".join(kinds))
hole = masks.parse_mask(mask, size, seed=0)
print(f"mask {mask!r}: {hole.mean():.0%} of the image is missing")

# %% [markdown]
# ## 5. Inpainting: search the latent space
#
# For every image, `restarts` random latents are optimised together with Adam for `steps` steps.
# The loss is an L1 distance on the known pixels, weighted towards the hole's neighbourhood (the
# fraction of hole pixels in a small window around each known pixel), plus
# `0.003 * log(1 - D(G(z)))`, which prefers fills the discriminator finds realistic. The latents
# are kept inside a ball around the prior. The restart with the lowest loss wins, and its pixels
# are blended into the hole (Poisson blending keeps every known pixel and matches colours at the
# edge). The comparison: original / masked / ours / `cv2.inpaint` (Telea).

# %%
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

# %% [markdown]
# ## 6. How good is the fill?
#
# PSNR (dB, higher is better) and SSIM (1 is a perfect match) inside the hole only, against the
# true pixels, for ours, both OpenCV methods and the plainest fill, the mean known colour.
# `benchmarks/inpaint_quality.py` measures the same on more images and hole sizes.

# %%
candidates = {"ours": fit.images, "cv2 Telea": telea,
              "cv2 Navier-Stokes": inpaint.opencv_inpaint(images, holes, "ns"),
              "mean colour": inpaint.mean_fill(images, holes)}
for name, filled in candidates.items():
    print(f"{name:>18}: PSNR {inpaint.psnr(filled, images, holes).mean():6.2f} dB   "
          f"SSIM {inpaint.ssim(filled, images, holes).mean():.3f}")

# %% [markdown]
# ## 7. Restoration
#
# The same search with a forward operator A: the loss is |A(G(z)) - y|^2 for the observation y.
# `denoise`: A is the identity and y is noisy; `deblur`: A is a known Gaussian blur (a convolution
# TensorFlow differentiates through); `sr2` / `sr4`: A averages 2x2 / 4x4 blocks (so y is 2 or 4
# times smaller); `missing`: half the pixels are dropped at random. The baseline is OpenCV's usual
# answer: non-local means, Richardson-Lucy deconvolution, bicubic upsampling or Telea inpainting.

# %%
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

# %% [markdown]
# ## 8. Start from a photo: projection, then edits
#
# With every pixel known, the same search *projects* a photo: it finds the latent whose car
# looks most like it (an L2 pixel loss, plus the photo judge's features as a perceptual loss
# where the judge is installed). From there the car can be edited: along a latent direction
# found in the generator's first layer without any labels (SeFa, `python -m cargan_tf
# directions`), or, for a run trained with `conditional=true`, toward another kind of car.
# The strip: photo | projection | the projection moved along `direction` by each amount.
# The command line does the same: `python -m cargan_tf project RUN --image car.png
# --direction 0 --amounts=-4,0,4 --out out/`.

# %%
from cargan_tf import controls, directions

direction = 0  # which latent direction (0: the one the first layer responds to most)
amounts = (-4.0, -2.0, 0.0, 2.0, 4.0)  # distances along it (z has norm ~ sqrt(latent_dim))
found = directions.sefa_directions(generator)
projection = controls.project(generator, images[0], restarts=restarts, steps=steps, progress=True)
edits = controls.edit(generator, projection, direction=direction, directions=found.vectors,
                      amounts=amounts)
project_png = viz.save_png(out_dir / "projection_edits.png", controls.edit_strip(
    projection, edits, controls.edit_labels(generator, direction, None, amounts)))
nb.show_image(project_png, width=560)
print(f"projection: pixel loss {projection.pixel_loss:.4f}, photo judge "
      f"{'used' if projection.judge else 'not installed: pixels only'}; direction {direction} "
      f"has eigenvalue {found.eigenvalues[direction]:.3g} (the strongest: "
      f"{found.eigenvalues[0]:.3g})")

# %% include="outputs"

# %%
listing = nb.record_outputs(home, "05_inpainting_restoration",
                            [inpaint_png, restore_png, project_png])
