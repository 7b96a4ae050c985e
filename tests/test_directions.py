"""SeFa directions: the closed form against an independent one, on a trained run, and the CLI."""

import json

import numpy as np
import pytest

from cargan_tf import cli, directions, viz
from cargan_tf.latents import seed_to_latent

from conftest import tiny_config


def test_sefa_is_the_right_singular_vectors_of_the_normalised_weights():
    rng = np.random.default_rng(0)
    a_t = rng.standard_normal((12, 40)) * rng.uniform(0.1, 3, 40)  # rows: z; columns: outputs
    values, vectors = directions.sefa(a_t)
    np.testing.assert_allclose(vectors @ vectors.T, np.eye(12), atol=1e-10)
    assert np.all(np.diff(values) <= 0)
    # independently: the SVD of the unit-column matrix, A^T = U S V^T, so A^T A's... in z
    unit = a_t / np.linalg.norm(a_t, axis=0)
    u, s, _ = np.linalg.svd(unit)
    np.testing.assert_allclose(values, s ** 2, rtol=1e-9)
    for k in range(12):  # the same vectors up to sign
        assert abs(abs(vectors[k] @ u[:, k]) - 1) < 1e-8
    # the top direction is what the layer responds to most: |A n| is largest for it
    responses = np.linalg.norm(vectors @ unit, axis=1)
    assert responses[0] == pytest.approx(responses.max())


@pytest.mark.parametrize("architecture", ["dcgan", "pytorch_dcgan"])
def test_first_layer_matrix_is_the_linear_map_on_z(architecture):
    """|first layer(z)| = |z A^T| for any z: the matrix is the layer (Dense, or the transposed
    conv on a 1x1 image, whose outputs it holds in another order)."""
    import keras

    from cargan_tf import models

    cfg = tiny_config(architecture=architecture, kernel_size=4, use_bias=False)
    generator = models.build_generator(cfg)
    name, a_t = directions.first_layer_matrix(generator, cfg.latent_dim)
    layer = generator.get_layer(name)
    z = np.random.default_rng(1).standard_normal((5, cfg.latent_dim)).astype("float32")
    x = z.reshape(5, 1, 1, -1) if architecture == "pytorch_dcgan" else z
    out = np.asarray(layer(keras.ops.convert_to_tensor(x))).reshape(5, -1)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), np.linalg.norm(z @ a_t, axis=1),
                               rtol=1e-4)


def test_directions_of_a_trained_run_are_orthonormal_sorted_and_move_the_car_most(tiny_run):
    from cargan_tf.generate import generate_images, load_generator

    generator = load_generator(tiny_run)
    found = directions.sefa_directions(generator)
    d = found.vectors
    assert d.shape == (tiny_config().latent_dim, tiny_config().latent_dim)
    np.testing.assert_allclose(d @ d.T, np.eye(len(d)), atol=1e-5)
    assert np.all(np.diff(found.eigenvalues) <= 1e-9) and found.layer.startswith("dense")

    z = seed_to_latent(0, 16, d.shape[1])
    base = generate_images(generator, z).astype(np.float64)

    def change(direction):
        moved = generate_images(generator, z + 3.0 * direction).astype(np.float64)
        return np.abs(moved - base).mean()

    rng = np.random.default_rng(0)
    random = [change(v / np.linalg.norm(v)) for v in rng.standard_normal((8, d.shape[1]))]
    assert change(d[0]) > np.mean(random), (change(d[0]), random)
    assert change(d[0]) > change(d[-1])  # the weakest direction barely moves it


def test_directions_command_draws_a_row_per_seed(tiny_run, tmp_path):
    out = tmp_path / "dirs"
    assert cli.main(["directions", str(tiny_run), "--out", str(out), "--n", "3",
                     "--seeds", "0,1", "--amounts=-4,0,4"]) == 0
    pictures = sorted(out.glob("direction_*.png"))
    assert [p.name for p in pictures] == ["direction_00.png", "direction_01.png",
                                          "direction_02.png"]
    saved = json.loads((out / "directions.json").read_text())
    assert len(saved["vectors"]) >= 3 and saved["eigenvalues"][0] >= saved["eigenvalues"][1]
    picture = viz.decode_png(pictures[0].read_bytes())
    from cargan_tf.generate import load_generator

    generator = load_generator(tiny_run)
    rows = directions.direction_rows(generator, directions.sefa_directions(generator), 0,
                                     (0, 1), (-4.0, 0.0, 4.0))
    assert rows.shape == (6, 16, 16, 3)
    # the middle column (amount 0) is each seed's own car
    np.testing.assert_array_equal(rows[1], viz.to_uint8(generator(seed_to_latent(0, 1, 16)))[0])
    assert picture.shape[1] >= 640 and picture.shape[0] > picture.shape[1] / 3 * 2 * 0.9


def test_sample_along_a_direction(tiny_run, tmp_path):
    def sample(*extra):
        out = tmp_path / "_".join(extra or ("plain",)) / "g.png"
        assert cli.main(["sample", str(tiny_run), "--seed", "2", "--n", "4", "--grid",
                         "--out", str(out), *extra]) == 0
        return viz.decode_png(out.read_bytes())

    plain = sample()
    np.testing.assert_array_equal(sample("--direction", "0", "--amount", "0"), plain)
    assert np.abs(sample("--direction", "0", "--amount", "5").astype(int) - plain).mean() > 1
    assert cli.main(["sample", str(tiny_run), "--direction", "0"]) == 2
    assert cli.main(["sample", str(tiny_run), "--direction", "999", "--amount", "1",
                     "--out", str(tmp_path / "x")]) == 2
