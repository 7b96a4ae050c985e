"""Shared fixtures: a tiny trained run folder that many tests reuse, and the shared data path."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# numpy's BLAS threads fight TensorFlow's for the 2 cores (big eigendecompositions crawl)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# before any test module imports TensorFlow: the package's import sets TF_ENABLE_ONEDNN_OPTS
import cargan_tf  # noqa: E402,F401

REPO = Path(__file__).resolve().parents[1]


def _can_unshare() -> bool:
    """Root with `unshare --mount`: tests can mount a read-only folder or a tiny tmpfs."""
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


CAN_UNSHARE = _can_unshare()
SHARED_DATA = REPO.parent / "shared" / "data"


def load_benchmark(name: str):
    """benchmarks/<name>.py imported as a module: the benchmarks are scripts, not a package."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_image_folder(path: Path, images) -> Path:
    """uint8 RGB images (N, S, S, 3) written as PNGs into a new folder `path`: a photo folder."""
    import cv2

    path.mkdir()
    for i, image in enumerate(images):
        cv2.imwrite(str(path / f"{i:03d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def tiny_config(**overrides):
    """The smoke version of the aim64 recipe on toycars at 16x16 (seconds on a CPU)."""
    from cargan_tf import config

    cfg = config.smoke(config.preset("aim64")).replace(jit_compile="off")
    return cfg.replace(**overrides) if overrides else cfg


def fresh(cfg):
    """The stacked gan for cfg with weights from seed 0: two calls give identical models."""
    import keras

    from cargan_tf import models
    from cargan_tf.gan import build_gan

    keras.utils.set_random_seed(0)
    return build_gan(models.build_generator(cfg), models.build_discriminator(cfg), cfg)


def meaningful_weights(model):
    """Indices into model.weights, leaving out each bias that feeds a batch norm: its true
    gradient is zero, and Adam turns its round-off (which changes with the ops around it) into
    steps of ~1e-5, so comparing it across two different graphs tests nothing but noise."""
    layers = model.layers
    noise = {id(layer.bias) for layer, nxt in zip(layers, layers[1:])
             if getattr(layer, "bias", None) is not None and "batch_norm" in nxt.name}
    return [i for i, v in enumerate(model.weights) if id(v) not in noise]


def real_batch(cfg, n=16):
    """A fixed random 'real' batch float32 (n, S, S, C) in [-1, 1] for cfg's image shape."""
    import numpy as np

    rng = np.random.default_rng(5)
    return rng.uniform(-1, 1, (n, cfg.image_size, cfg.image_size, cfg.channels)).astype("float32")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A run folder trained for 2 epochs on 64 toycars at 16x16. Treat it as read-only."""
    from cargan_tf.train import train

    run_dir = tmp_path_factory.mktemp("tiny_run") / "run"
    train(tiny_config(), run_dir)
    return run_dir


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the repo; tests using it skip on a fresh clone without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present (a fresh clone has no shared data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_conditional_run(tmp_path_factory) -> Path:
    """A class-conditional run (toycars body types) trained like tiny_run. Read-only."""
    from cargan_tf.train import train

    run_dir = tmp_path_factory.mktemp("tiny_conditional_run") / "run"
    train(tiny_config(conditional=True, engine="fused"), run_dir)
    return run_dir
