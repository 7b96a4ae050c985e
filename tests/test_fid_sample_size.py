"""benchmarks/fid_sample_size.py: FID against the full training set, by sample count and at infinity."""

import json

import numpy as np
import pytest

from cargan_tf import features, metrics
from cargan_tf.data.sources import load_images
from cargan_tf.data.toycars import draw_toycars
from cargan_tf.evaluate import EVAL_SEED
from cargan_tf.generate import generate_images, generator_from_checkpoint, latent_dim_of
from cargan_tf.latents import seed_to_latent
from cargan_tf.runs import RunPaths, list_checkpoints, read_json

from conftest import load_benchmark, write_image_folder


@pytest.fixture(scope="module")
def fid_sample_size():
    return load_benchmark("fid_sample_size")


def test_fid_at_infinity_is_the_intercept_of_fid_against_one_over_n(fid_sample_size):
    sizes = [500, 1000, 2000, 5000]
    assert fid_sample_size.fid_at_infinity(sizes, [4.0 + 3000.0 / n for n in sizes]) == \
        pytest.approx(4.0)
    # with no dependence on N the line is flat: the intercept is the value itself
    assert fid_sample_size.fid_at_infinity(sizes, [7.5] * 4) == pytest.approx(7.5)


def test_sizes_must_be_two_or_more_counts(fid_sample_size):
    assert fid_sample_size.parse_sizes("2000, 500,1000") == [500, 1000, 2000]
    for bad in ("500", "500,abc", "1,10", ""):
        with pytest.raises(SystemExit, match="give two or more sample counts"):
            fid_sample_size.parse_sizes(bad)


def test_runs_are_scored_against_every_training_image_on_the_first_n_latents(
        fid_sample_size, tiny_run, tmp_path, capsys):
    train = write_image_folder(tmp_path / "train", draw_toycars(80, 16, seed=1)[0])
    held = write_image_folder(tmp_path / "held", draw_toycars(40, 16, seed=2)[0])
    checkpoint = list_checkpoints(RunPaths(tiny_run))[-1]
    step = int(read_json(checkpoint / "state.json")["step"])
    out = tmp_path / "sizes.json"
    fid_sample_size.main(["--train", str(train), "--held", str(held), "--features", "pixels",
                          "--sizes", "30,60", "--held-steps", "4",
                          "--run", f"tiny={tiny_run}@{step}", "--baseline", "tiny",
                          "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["reference_images"] == 80
    floor, tiny = result["floor"], result["runs"]["tiny"]
    assert floor["sizes"] == [10, 20, 30, 40] and tiny["sizes"] == [30, 60]

    # recomputed independently: the first 30 latents of EVAL_SEED against all 80 training images
    judge = features.get_extractor("pixels", 16, 3)
    reference = judge.features(load_images(str(train), 16, 3, progress=False))
    generator = generator_from_checkpoint(tiny_run, checkpoint)
    fake = generate_images(generator, seed_to_latent(EVAL_SEED, 30, latent_dim_of(generator)))
    assert tiny["fid"][0] == pytest.approx(
        metrics.frechet_distance(judge.features(fake), reference), rel=1e-6)
    # the tiny 2-epoch run draws blobs: far above real toycars at any size
    assert min(tiny["fid"]) > max(floor["fid"])
    assert tiny["fid_inf_above_floor"] == pytest.approx(tiny["fid_inf"] - floor["fid_inf"])
    assert tiny["fid_at_largest"] == tiny["fid"][-1]
    assert tiny["ratio_to_baseline"] == pytest.approx(
        {"fid_at_largest": 1.0, "fid_inf": 1.0, "fid_inf_above_floor": 1.0})
    printed = capsys.readouterr().out
    assert "held-out photos vs all 80 training photos" in printed
    assert np.isfinite(floor["fid_inf"])


def test_a_held_folder_too_small_for_its_steps_is_refused(fid_sample_size, tmp_path):
    train = write_image_folder(tmp_path / "train", draw_toycars(20, 16, seed=1)[0])
    held = write_image_folder(tmp_path / "held", draw_toycars(6, 16, seed=2)[0])
    with pytest.raises(SystemExit, match="--held has 6 images: it needs at least 10"):
        fid_sample_size.main(["--train", str(train), "--held", str(held), "--features", "pixels",
                              "--out", str(tmp_path / "x.json")])
