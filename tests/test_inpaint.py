"""Inpainting and restoration through the generator: masks, input checks, the latent search
(its loss falls, it recovers an image the generator can make better than OpenCV does), blending
that keeps the known pixels, the forward operators, PSNR/SSIM, and the two commands.

The truth in the recovery tests is G(z*) for a latent z* never used as a starting point, so the
answer is in the generator's range: that works with the barely trained 16x16 tiny_run.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from cargan_tf import cli, inpaint, masks, viz
from cargan_tf.errors import CarganError

# the search settings of the recovery tests: 8 restarts x 100 steps recover G(z*) to > 40 dB
# in the hole on the tiny run, far above the margins asserted (measured: ~55 dB vs ~32 dB)
RESTARTS, STEPS = 8, 100
MARGIN_OVER_MEAN_FILL_DB = 3.0


@pytest.fixture(scope="module")
def models(tiny_run):
    from cargan_tf.generate import load_generator

    return load_generator(tiny_run), inpaint.load_discriminator(tiny_run)


@pytest.fixture(scope="module")
def truth(models):
    """Images the generator can make exactly: G(z*) for a seed no search starts from."""
    from cargan_tf.generate import generate_images, latent_dim_of
    from cargan_tf.latents import seed_to_latent

    generator, _ = models
    return generate_images(generator, seed_to_latent(4242, 4, latent_dim_of(generator)))


@pytest.fixture(scope="module")
def centre_fit(models, truth):
    generator, discriminator = models
    hole = masks.center_box(16, 0.25)
    fit = inpaint.inpaint(generator, truth, hole, discriminator=discriminator,
                          restarts=RESTARTS, steps=STEPS, blend_method="none", seed=1)
    return np.broadcast_to(hole, truth.shape[:3]), fit


# ---- masks -------------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [16, 32, 64])
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.4])
def test_centre_box_has_the_asked_area_and_is_centred(size, fraction):
    hole = masks.center_box(size, fraction)
    assert hole.shape == (size, size) and hole.dtype == bool
    side = round(size * math.sqrt(fraction))
    assert hole.sum() == side * side  # a square
    assert abs(hole.mean() - fraction) <= (2 * side + 1) / size**2  # within one pixel's rounding
    ys, xs = np.nonzero(hole)
    assert ys.min() + ys.max() in (size - 1, size - 2) and xs.min() + xs.max() in (size - 1, size - 2)


def test_random_masks_are_seeded_and_sized():
    for make in (masks.random_boxes, masks.strokes):
        a, b, c = make(32, seed=3), make(32, seed=3), make(32, seed=4)
        assert a.shape == (32, 32) and a.dtype == bool
        assert (a == b).all() and (a != c).any()
        for seed in range(10):
            assert 0.05 < make(32, seed=seed).mean() < 0.6
    thick, thin = masks.strokes(64, thickness=6, seed=1), masks.strokes(64, thickness=1, seed=1)
    assert thick.sum() > 2 * thin.sum()


def test_halves_and_mask_strings():
    left, right = masks.half(16, "left"), masks.half(16, "right")
    assert left.sum() == right.sum() == 128 and not (left & right).any() and left[:, 0].all()
    assert (masks.parse_mask("left", 16) == left).all()
    assert (masks.parse_mask("right", 16) == right).all()
    assert masks.parse_mask("center", 32).sum() == 256
    assert masks.parse_mask("center:0.4", 32).sum() == 20 * 20
    assert (masks.parse_mask("boxes", 32, seed=2) == masks.random_boxes(32, seed=2)).all()
    assert (masks.parse_mask("strokes", 32, seed=2) == masks.strokes(32, seed=2)).all()
    for bad in ("circle", "center:big", "center:1.5", "left:2"):
        with pytest.raises(CarganError, match="mask|fraction"):
            masks.parse_mask(bad, 16)


def test_mask_from_file_any_nonzero_is_hole_and_resized_with_nearest(tmp_path):
    big = np.zeros((64, 64, 3), np.uint8)
    big[16:48, 8:40, 2] = 1  # a faint blue box is still hole
    cv2.imwrite(str(tmp_path / "m.png"), big)
    hole = masks.from_file(tmp_path / "m.png", 16)
    assert hole.shape == (16, 16) and hole.sum() == 8 * 8 and hole[4:12, 2:10].all()
    masks.save_mask(tmp_path / "again.png", hole)
    assert (masks.parse_mask(str(tmp_path / "again.png"), 16) == hole).all()
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(CarganError, match="could not read"):
        masks.from_file(tmp_path / "junk.png", 16)
    with pytest.raises(CarganError, match="neither a mask kind"):
        masks.parse_mask(str(tmp_path / "absent.png"), 16)


# ---- bad inputs ----------------------------------------------------------------------------

def test_bad_inputs_give_clear_errors(models, truth):
    generator, _ = models
    hole = masks.center_box(16)
    cases = [
        (truth, masks.center_box(32), "masks must be 16x16"),
        (truth, np.zeros((16, 16), bool), "no hole pixels: nothing to fill"),
        (truth, np.ones((16, 16), np.uint8), "covers the whole image"),
        (truth, np.stack([hole] * 3), "3 masks for 4 images"),
        (truth, hole.astype(np.float32), "bool or integer"),
        (np.zeros((2, 32, 32, 3), np.uint8), hole, "32x32 but the generator works at 16x16"),
        (np.zeros((2, 16, 16, 1), np.uint8), hole, "1 channel\\(s\\) but the generator makes 3"),
        (truth.astype(np.float32) / 127.5 - 1, hole, "must be uint8"),
        (np.zeros((16, 3), np.uint8), hole, "must be \\(N, H, W, C\\)"),
    ]
    for images, holes, message in cases:
        with pytest.raises(CarganError, match=message):
            inpaint.inpaint(generator, images, holes, steps=1)
    with pytest.raises(CarganError, match="observations are 16x16 but the generator works at 4x4"):
        inpaint.restore(generator, truth, "sr4", steps=1)
    with pytest.raises(CarganError, match="unknown operator"):
        inpaint.Degradation("sharpen")
    with pytest.raises(CarganError, match="blend must be one of"):
        inpaint.blend(truth, truth, np.broadcast_to(hole, truth.shape[:3]), "alpha")


# ---- the latent search ---------------------------------------------------------------------

def test_contextual_loss_falls_during_the_search(centre_fit):
    _, fit = centre_fit
    assert fit.history.shape == (STEPS, 4)
    assert (fit.history[-1] < 0.2 * fit.history[0]).all()
    assert np.allclose(fit.history[-1], fit.context_loss, rtol=0.2, atol=1e-3)
    assert fit.z.shape == (4, 16) and fit.restart.shape == (4,)
    # z stayed in the ball around the prior
    assert (np.linalg.norm(fit.z, axis=1) <= inpaint.Z_RADIUS * 4 + 1e-4).all()


def test_hole_in_the_generators_range_is_recovered_better_than_baselines(centre_fit, truth):
    hole, fit = centre_fit
    ours = inpaint.psnr(fit.images, truth, hole).mean()
    mean = inpaint.psnr(inpaint.mean_fill(truth, hole), truth, hole).mean()
    telea = inpaint.psnr(inpaint.opencv_inpaint(truth, hole, "telea"), truth, hole).mean()
    ns = inpaint.psnr(inpaint.opencv_inpaint(truth, hole, "ns"), truth, hole).mean()
    print(f"PSNR in hole: ours {ours:.1f}, mean fill {mean:.1f}, Telea {telea:.1f}, NS {ns:.1f}")
    assert ours >= mean + MARGIN_OVER_MEAN_FILL_DB
    assert ours > telea and ours > ns
    assert inpaint.ssim(fit.images, truth, hole).mean() > inpaint.ssim(
        inpaint.opencv_inpaint(truth, hole, "telea"), truth, hole).mean()


def test_known_pixels_are_kept_by_every_blend(centre_fit, truth):
    hole, fit = centre_fit
    for method in ("poisson", "none"):
        out = inpaint.blend(truth, fit.generated, hole, method)
        assert (out[~hole] == truth[~hole]).all(), method
    feather = 2
    out = inpaint.blend(truth, fit.generated, hole, "feather", feather=feather)
    band = cv2.dilate(hole[0].astype(np.uint8), np.ones((2 * feather + 1,) * 2, np.uint8)) > 0
    far = np.broadcast_to(~band, hole.shape)
    assert (out[far] == truth[far]).all()  # beyond the feather: untouched
    near = ~hole & ~far  # inside the feather: a mix of the image and a fill that matches it
    assert np.abs(out[near].astype(int) - truth[near]).max() <= 12
    # a fill equal to the image changes nothing, whatever the method (Poisson: rounding)
    for method in inpaint.BLEND_METHODS:
        same = inpaint.blend(truth, truth, hole, method)
        assert np.abs(same.astype(int) - truth).max() <= 1, method


@pytest.mark.parametrize("method", ["poisson", "feather", "none"])
def test_blend_never_reads_the_pixels_hidden_by_the_hole(truth, method):
    # seamlessClone follows the destination's gradients near the mask's edge: given the true
    # pixels there, a flat grey "fill" once scored ~29 dB on strokes (Telea ~19 dB)
    hole = np.broadcast_to(masks.strokes(16, seed=2), truth.shape[:3])
    grey = np.full_like(truth, 128)
    wiped = np.where(hole[..., None], 0, truth).astype(np.uint8)
    scribbled = np.where(hole[..., None], 255 - truth, truth).astype(np.uint8)
    out = inpaint.blend(truth, grey, hole, method)
    for hidden_changed in (wiped, scribbled):
        assert (inpaint.blend(hidden_changed, grey, hole, method) == out).all()


def test_inpainting_never_reads_the_pixels_hidden_by_the_hole(models, truth):
    generator, discriminator = models
    hole = masks.center_box(16, 0.25)
    wiped = np.where(hole[None, ..., None], 0, truth).astype(np.uint8)
    kwargs = dict(discriminator=discriminator, restarts=2, steps=10, seed=3)
    assert (inpaint.inpaint(generator, truth, hole, **kwargs).images
            == inpaint.inpaint(generator, wiped, hole, **kwargs).images).all()


def test_search_results_do_not_depend_on_how_images_are_batched(models, truth):
    generator, _ = models
    hole = masks.center_box(16, 0.1)
    together = inpaint.inpaint(generator, truth[:2], hole, restarts=2, steps=10, seed=5)
    apart = inpaint.inpaint(generator, truth[:2], hole, restarts=2, steps=10, seed=5,
                            batch_size=2)  # one image per batch
    # each latent's gradient is its own loss's, and restarts are seeded per (seed, image, restart)
    assert np.allclose(together.z, apart.z, atol=1e-4)
    assert (together.restart == apart.restart).all()


# ---- restoration ---------------------------------------------------------------------------

def test_forward_operators_in_tensorflow_match_the_numpy_degradation(truth):
    x = truth.astype(np.float32)
    for name in ("deblur", "sr2", "sr4", "denoise"):
        degradation = inpaint.Degradation(name, noise_std=0.0)
        observed, known = degradation.degrade(truth)
        assert known.all() and observed.shape[1] == 16 // degradation.factor
        via_tf = np.asarray(degradation.forward(x))
        assert np.abs(via_tf - observed).max() <= 0.5 + 1e-3, name  # up to uint8 rounding
    # and area downsampling is the block mean, by hand
    block = x[0, :4, :4].mean(axis=(0, 1))
    assert np.allclose(np.asarray(inpaint.Degradation("sr4").forward(x))[0, 0, 0], block, atol=1e-4)
    missing = inpaint.Degradation("missing", missing_fraction=0.3)
    observed, known = missing.degrade(truth, seed=2)
    assert abs(1 - known.mean() - 0.3) < 0.06 and (observed[~known] == 0).all()
    assert (observed[known] == truth[known]).all()


def test_sr4_through_the_generator_beats_bicubic(models, truth):
    generator, _ = models
    degradation = inpaint.Degradation("sr4")
    observed, known = degradation.degrade(truth)
    fit = inpaint.restore(generator, observed, degradation, known, restarts=RESTARTS, steps=STEPS)
    ours = inpaint.psnr(fit.images, truth).mean()
    bicubic = inpaint.psnr(inpaint.opencv_restore(observed, degradation), truth).mean()
    print(f"sr4 PSNR: ours {ours:.1f} dB, bicubic {bicubic:.1f} dB")
    assert ours > bicubic + 3.0
    assert (fit.history[-1] < fit.history[0]).all()


def test_missing_pixels_keep_the_observed_ones(models, truth):
    generator, _ = models
    degradation = inpaint.Degradation("missing")
    observed, known = degradation.degrade(truth[:2], seed=1)
    fit = inpaint.restore(generator, observed, degradation, known, restarts=2, steps=20)
    assert (fit.images[known] == truth[:2][known]).all()
    baseline = inpaint.opencv_restore(observed, degradation, known)
    assert baseline.shape == (2, 16, 16, 3)


# ---- PSNR and SSIM against hand computations ---------------------------------------------------

def test_psnr_and_ssim_match_closed_forms():
    a = np.full((1, 16, 16, 3), 100, np.uint8)
    b = a + 10
    assert inpaint.psnr(a, b)[0] == pytest.approx(10 * math.log10(255**2 / 100))
    assert inpaint.psnr(a, a)[0] == np.inf
    region = np.zeros((16, 16), bool)
    region[:4] = True
    c = b.copy()
    c[0, 4:] = 0  # outside the region: ignored
    assert inpaint.psnr(a, c, region)[0] == pytest.approx(inpaint.psnr(a, b)[0])
    # constant images: no variance, so SSIM is the luminance term alone
    c1 = (0.01 * 255) ** 2
    expected = (2 * 100 * 110 + c1) / (100**2 + 110**2 + c1)
    assert inpaint.ssim(a, b)[0] == pytest.approx(expected, rel=1e-9)
    noise = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    assert np.allclose(inpaint.ssim(noise, noise), 1.0)
    assert (inpaint.ssim(noise, noise[::-1]) < 0.2).all()
    # the contrast term: halving the contrast around the same mean lowers SSIM
    x = noise[:1].astype(np.float64)
    low = np.rint(128 + (x - 128) * 0.5).astype(np.uint8)
    assert inpaint.ssim(noise[:1], low)[0] < 0.9


# ---- commands ------------------------------------------------------------------------------

def test_inpaint_and_restore_commands_write_results_and_comparisons(tiny_run, tmp_path, capsys):
    from cargan_tf.data.toycars import draw_toycars

    car = draw_toycars(1, 48, seed=0, start=123_456)[0][0]
    viz.save_png(tmp_path / "car.png", car)
    common = ["--generator", str(tiny_run), "--image", str(tmp_path / "car.png"), "--steps", "3",
              "--restarts", "2", "--no-progress"]
    assert cli.main(["inpaint", *common, "--mask", "center", "--out", str(tmp_path / "no")]) == 2
    assert "48x48 but the generator works at 16x16" in capsys.readouterr().err
    assert cli.main(["inpaint", *common, "--resize", "--mask", "strokes",
                     "--out", str(tmp_path / "inp")]) == 0
    result = viz.decode_png((tmp_path / "inp" / "result.png").read_bytes())
    strip = viz.decode_png((tmp_path / "inp" / "comparison.png").read_bytes())
    assert result.shape == (16, 16, 3) and strip.shape[1] >= 512
    assert (tmp_path / "inp" / "result_mask.png").exists()
    assert cli.main(["restore", *common, "--resize", "--operator", "sr4",
                     "--out", str(tmp_path / "res" / "up.png")]) == 0
    assert "PSNR vs the original" in capsys.readouterr().out
    assert viz.decode_png((tmp_path / "res" / "up_degraded.png").read_bytes()).shape == (4, 4, 3)
    assert (tmp_path / "res" / "up_comparison.png").exists()
    assert cli.main(["inpaint", *common, "--resize", "--mask", "hexagon", "--out",
                     str(tmp_path / "x")]) == 2
    assert "neither a mask kind" in capsys.readouterr().err


def test_read_folder_searches_subfolders_and_skips_what_it_cannot_read(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "side" / "more").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "side" / "a.png"), rng.integers(0, 256, (40, 60, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "side" / "more" / "b.pgm"), rng.integers(0, 256, (30, 30), np.uint8))
    (tmp_path / "side" / "broken.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "side" / "notes.txt").write_text("hello")
    images = inpaint.read_folder(tmp_path / "side", 16, 3, n=5)
    assert images.shape == (2, 16, 16, 3) and images.dtype == np.uint8
    assert inpaint.read_folder(tmp_path / "side", 16, 1, n=1).shape == (1, 16, 16, 1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CarganError, match="no readable image in .*empty"):
        inpaint.read_folder(tmp_path / "empty", 16, 3, n=5)
    with pytest.raises(CarganError, match="does not exist"):
        inpaint.read_folder(tmp_path / "nowhere", 16, 3, n=5)


def test_read_image_says_what_is_wrong_with_the_file(tmp_path):
    with pytest.raises(CarganError, match="does not exist"):
        inpaint.read_image(tmp_path / "nowhere.png", 16, 3)
    photo = np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)
    ok, jpeg = cv2.imencode(".jpg", photo)
    for name, cut in (("half.jpg", len(jpeg) // 2), ("no_end.jpg", len(jpeg) - 2)):
        (tmp_path / name).write_bytes(jpeg.tobytes()[:cut])  # no end-of-image marker
        with pytest.raises(CarganError, match="truncated|cut short"):
            inpaint.read_image(tmp_path / name, 40, 3)
    (tmp_path / "text.png").write_text("not a picture")
    with pytest.raises(CarganError, match="could not read .*text.png as an image"):
        inpaint.read_image(tmp_path / "text.png", 16, 3)
    cv2.imwrite(str(tmp_path / "small.png"), photo[:16, :16])
    with pytest.raises(CarganError, match="16x16 but a --degraded sr4 observation for this "
                                          "32x32 generator is 8x8"):
        inpaint.read_image(tmp_path / "small.png", 8, 3,
                           wanted="a --degraded sr4 observation for this 32x32 generator is")
