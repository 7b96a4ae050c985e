"""benchmarks/fid_floor.py: the judge's real-vs-real floor at a sample size, and bias-free scores."""

import json

import pytest

from cargan_tf.data.toycars import draw_toycars
from cargan_tf.runs import RunPaths, list_checkpoints, read_json

from conftest import load_benchmark, write_image_folder


@pytest.fixture(scope="module")
def fid_floor():
    return load_benchmark("fid_floor")


def test_a_run_is_named_as_name_run_dir_at_step(fid_floor):
    assert fid_floor.parse_run("s0=runs/a@b@30342") == ("s0", fid_floor.Path("runs/a@b"), 30342)
    for bad in ("runs/a@30342", "s0=runs/a", "s0=runs/a@last"):
        with pytest.raises(SystemExit, match="expected NAME=RUN_DIR@STEP"):
            fid_floor.parse_run(bad)


def test_real_photos_score_near_the_floor_and_a_tiny_generator_far_above_it(
        fid_floor, tiny_run, tmp_path, capsys):
    # real toycars against other real toycars: the floor; the tiny 2-epoch run draws blobs
    train = write_image_folder(tmp_path / "train", draw_toycars(60, 16, seed=1)[0])
    real = write_image_folder(tmp_path / "real", draw_toycars(30, 16, seed=2)[0])
    step = int(read_json(list_checkpoints(RunPaths(tiny_run))[-1] / "state.json")["step"])
    out = tmp_path / "floor.json"
    fid_floor.main(["--train", str(train), "--real", str(real), "--features", "pixels",
                    "--n", "30", "--draws", "2", "--latent-sets", "2",
                    "--run", f"tiny={tiny_run}@{step}", "--baseline", "tiny", "--out", str(out)])
    result = json.loads(out.read_text())
    floor, tiny = result["floor"]["fid"]["mean"], result["runs"]["tiny"]
    assert 0 < floor < tiny["fid"]["mean"]
    assert len(result["floor"]["fid"]["values"]) == 2 and len(tiny["fid"]["values"]) == 2
    assert tiny["fid_above_floor"]["mean"] == pytest.approx(tiny["fid"]["mean"] - floor)
    assert tiny["kid_x1000"]["mean"] > result["floor"]["kid_x1000"]["mean"]
    assert tiny["ratio_to_baseline"] == pytest.approx(
        {"fid": 1.0, "fid_above_floor": 1.0, "kid_x1000": 1.0})
    assert "floor (2 sets of 30 training photos" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no checkpoint at step 999999"):
        fid_floor.main(["--train", str(train), "--real", str(real), "--features", "pixels",
                        "--n", "30", "--run", f"tiny={tiny_run}@999999", "--out", str(out)])
