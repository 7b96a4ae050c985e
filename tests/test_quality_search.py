"""benchmarks/quality_search.py builds equal-step configs for every candidate."""

import pytest

from conftest import load_benchmark


@pytest.fixture(scope="module")
def quality_search():
    return load_benchmark("quality_search")


@pytest.mark.parametrize("name", ["baseline", "quick32", "quick32_ada", "hinge_sn"])
def test_every_candidate_gets_the_same_steps_batch_and_seed(quality_search, name):
    cfg, steps = quality_search.candidate_config(name, 1, 6144, 400)
    assert (steps, cfg.epochs, cfg.batch_size, cfg.seed, cfg.data_n) == (6144, 1024, 64, 1, 400)
    assert cfg.eval_every_epochs == 0  # scored once, at the end, unless asked


def test_eval_every_steps_becomes_whole_epochs(quality_search):
    cfg, steps = quality_search.candidate_config("quick32_ada", 0, 12288, 400,
                                                 eval_every_steps=1536)
    assert (steps, cfg.epochs, cfg.eval_every_epochs) == (12288, 2048, 256)
    assert cfg.ada_target == 0.6 and cfg.diffaugment == "color,translation,cutout"
    cfg.validate()
