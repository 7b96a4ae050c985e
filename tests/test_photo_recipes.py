"""benchmarks/photo_recipes.py: the seeds' recipes on photos for equal wall time, judged."""

import json
import math

import cv2
import numpy as np
import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def photo_recipes():
    return load_benchmark("photo_recipes")


def test_a_recipe_names_its_preset_and_its_set_changes(photo_recipes):
    assert photo_recipes.parse_recipe("selu128") == ("selu128", "selu128", [])
    assert photo_recipes.parse_recipe("fixed=aim64:fake_batch_mode=training,d_batchnorm=false") \
        == ("fixed", "aim64", ["fake_batch_mode=training", "d_batchnorm=false"])
    with pytest.raises(SystemExit, match="'oops' is not KEY=VALUE"):
        photo_recipes.parse_recipe("fixed=aim64:oops")


def test_a_setting_whose_value_is_a_comma_list_stays_whole(photo_recipes):
    assert photo_recipes.parse_recipe("ada=photo64cpu:diffaugment=color,translation,ada_target=0.6") \
        == ("ada", "photo64cpu", ["diffaugment=color,translation", "ada_target=0.6"])


def test_every_recipe_gets_the_same_minutes_data_and_seed(photo_recipes, tmp_path):
    args = photo_recipes.argparse.Namespace(data=tmp_path / "train", minutes=15.0, seed=1,
                                            workdir=tmp_path / "runs", smoke=False)
    command = photo_recipes.train_command("fixed", "aim64", ["lr_g=1e-4"], args)
    joined = " ".join(command)
    assert "--preset aim64" in joined and f"--data {tmp_path / 'train'}" in joined
    assert "--minutes 15.0" in joined and "--set seed=1" in joined
    assert "--set data_n=none" in joined and joined.endswith("--set lr_g=1e-4 --minutes 15.0")
    assert f"--run-dir {tmp_path / 'runs' / 'fixed-seed1'}" in joined


def _photos(folder, n, rng):
    folder.mkdir()
    for i in range(n):
        image = np.full((40, 56, 3), rng.integers(0, 255, 3), np.uint8)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(image, (int(rng.integers(0, 20)), 20), (int(rng.integers(30, 55)), 34),
                      colour, -1)
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)


def test_smoke_run_trains_scores_and_draws_the_recipes_side_by_side(photo_recipes, tmp_path,
                                                                   monkeypatch):
    rng = np.random.default_rng(0)
    _photos(tmp_path / "train", 48, rng)
    _photos(tmp_path / "held", 24, rng)
    monkeypatch.setenv("CARGAN_CACHE_DIR", str(tmp_path / "cache"))
    out, grid = tmp_path / "scores.json", tmp_path / "grids.jpg"
    photo_recipes.main(["--data", str(tmp_path / "train"), "--held-out", str(tmp_path / "held"),
                        "--recipe", "dcgan64", "--recipe", "nobn=aim64:d_batchnorm=false",
                        "--smoke", "--n", "24", "--workdir", str(tmp_path / "runs"),
                        "--out", str(out), "--grid", str(grid)])
    rows = json.loads(out.read_text())
    assert [(row["recipe"], row["preset"], row["set"]) for row in rows] == [
        ("dcgan64", "dcgan64", []), ("nobn", "aim64", ["d_batchnorm=false"])]
    for row in rows:
        assert row["steps"] > 0 and math.isfinite(row["fid"]) and 0 <= row["recall"] <= 1
        assert (tmp_path / "runs" / f"{row['recipe']}-seed0" / "generator.keras").exists()
    config = json.loads((tmp_path / "runs" / "nobn-seed0" / "config.json").read_text())
    assert config["preset"] == "aim64" and config["d_batchnorm"] is False
    picture = cv2.imread(str(grid))
    assert picture is not None and picture.shape[1] > 2 * picture.shape[0] - 100  # two panels

    # an existing run's checkpoint as the reference: scored like the recipes, shown first
    nobn = tmp_path / "runs" / "nobn-seed0"
    step = max(json.loads(p.read_text())["step"] for p in nobn.glob("checkpoints/*/state.json"))
    with pytest.raises(SystemExit, match=f"has no checkpoint at step {step + 1} .it has .*{step}"):
        photo_recipes.main(["--data", str(tmp_path / "train"), "--held-out",
                            str(tmp_path / "held"), "--reference", f"ref={nobn}@{step + 1}",
                            "--workdir", str(tmp_path / "runs")])
    photo_recipes.main(["--data", str(tmp_path / "train"), "--held-out", str(tmp_path / "held"),
                        "--recipe", "nobn=aim64:d_batchnorm=false", "--reference",
                        f"ref={nobn}@{step}", "--smoke", "--n", "24", "--workdir",
                        str(tmp_path / "runs"), "--out", str(out)])
    reference, again = json.loads(out.read_text())
    assert (reference["recipe"], reference["steps"]) == ("ref", step)
    assert reference["from"] == f"{nobn}@{step}" and reference["grid"] == again["grid"]
    # the same weights, latents and photos: the checkpoint scores what the finished run scored
    assert reference["fid"] == pytest.approx(again["fid"], rel=1e-3)


def test_missing_folders_are_named(photo_recipes, tmp_path):
    with pytest.raises(SystemExit, match="--held-out .*: not a folder of photos"):
        photo_recipes.main(["--data", str(tmp_path), "--held-out", str(tmp_path / "nope")])


def test_a_caption_wider_than_its_panel_is_drawn_smaller_not_cut_off():
    from cargan_tf.viz import caption

    panel = np.zeros((120, 80, 3), np.uint8)
    out = caption(panel, "photo64_s0  FID 64  3900 steps")
    strip = out[: out.shape[0] - panel.shape[0]]
    assert out.shape[1] == 80 and (strip < 128).any(), "the caption was not drawn"
    assert (strip[:, -2:] == 255).all(), "the caption runs off the panel's right edge"
