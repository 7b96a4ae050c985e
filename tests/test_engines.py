"""The fused engine takes the same step as the Keras engine; the joint schedule trains too."""

import keras
import numpy as np
import pytest

from cargan_tf.engines import FusedEngine, KerasEngine, step_inputs

from conftest import fresh, real_batch, tiny_config

# float32 arithmetic in a different op order (one graph vs three): observed differences are
# ~1e-7; 1e-5 relative + 1e-6 absolute leaves room for other CPUs' kernels.
RTOL, ATOL = 1e-5, 1e-6


@pytest.mark.parametrize("bn_mode", ["inference", "batch"])
def test_one_fused_step_equals_one_keras_step(bn_mode):
    cfg = tiny_config(frozen_d_batchnorm=bn_mode)
    a, b = fresh(cfg), fresh(cfg)
    for x, y in zip(a.generator.weights + a.discriminator.weights,
                    b.generator.weights + b.discriminator.weights):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    real = real_batch(cfg)
    keras_engine, fused_engine = KerasEngine(a, cfg), FusedEngine(b, cfg)
    for step in range(2):  # the second step also checks optimizer state (Adam moments)
        inputs = step_inputs(cfg, step, len(real))
        row_k = keras_engine.step(real, inputs)
        row_f = fused_engine.step(real, inputs)
        for key in row_k:
            assert row_f[key] == pytest.approx(row_k[key], rel=1e-4, abs=1e-6), key
    for x, y in zip(a.generator.weights + a.discriminator.weights,
                    b.generator.weights + b.discriminator.weights):
        np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=RTOL, atol=ATOL, err_msg=x.path)


def test_joint_schedule_updates_both_and_is_a_different_recipe():
    cfg = tiny_config(engine="fused", schedule="joint")
    sg = fresh(cfg)
    d_vars = list(sg.discriminator.trainable_weights)  # the step ends with D frozen again,
    d0 = [v.numpy().copy() for v in d_vars]            # so read these after it, not D's list
    g0 = [v.numpy().copy() for v in sg.generator.trainable_weights]
    row = FusedEngine(sg, cfg, "joint").step(real_batch(cfg), step_inputs(cfg, 0, 16))
    assert all(np.isfinite(v) for v in row.values())
    assert all(not np.array_equal(a, b.numpy())
               for a, b in zip(d0, d_vars, strict=True))
    assert all(not np.array_equal(a, b.numpy())
               for a, b in zip(g0, sg.generator.trainable_weights))
    assert sg.d_optimizer.iterations.numpy() == 1  # one D update, not two


def test_fused_run_writes_a_run_and_resumes(tmp_path):
    from cargan_tf import runs
    from cargan_tf.train import train

    cfg = tiny_config(engine="fused", progress=False)
    train(cfg.replace(epochs=1), tmp_path)
    train(cfg, tmp_path)
    positions = [(r["epoch"], r["batch"]) for r in runs.read_history(tmp_path / "history.csv")]
    assert positions == [(e, b) for e in (1, 2) for b in range(4)]
    assert (tmp_path / "generator.keras").exists()


@pytest.mark.parametrize("engine,precision", [("keras", "mixed_bfloat16"),
                                              ("fused", "mixed_float16")])
def test_mixed_precision_keeps_outputs_and_losses_float32(tmp_path, engine, precision):
    from cargan_tf import runs
    from cargan_tf.train import Trainer

    cfg = tiny_config(engine=engine, precision=precision, epochs=1, progress=False)
    trainer = Trainer(cfg, tmp_path)
    trainer.run()
    inner = trainer.generator.layers[1]
    assert inner.compute_dtype == precision.split("_")[1]  # bfloat16 / float16 inside
    assert all(v.dtype == "float32" for v in trainer.generator.weights)  # float32 master weights
    assert trainer.samples().dtype == np.float32
    rows = runs.read_history(tmp_path / "history.csv")
    assert rows and all(np.isfinite(r["g_loss"]) and np.isfinite(r["d_loss_real"]) for r in rows)
    assert keras.config.dtype_policy().name == "float32"  # the global policy was restored


def test_precision_policy_auto_builds_with_this_machines_choice(monkeypatch):
    # a preset's "auto" before config.finish(): Keras has no policy of that name
    from cargan_tf import models

    monkeypatch.setattr(models, "auto_precision", lambda: ("mixed_bfloat16", "test CPU"))
    with models.precision_policy("auto"):
        g = models.build_generator(tiny_config())
    assert g.layers[1].compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in g.weights)
    assert keras.config.dtype_policy().name == "float32"
