"""Seeds to latents: one pure function shared by every consumer."""

import numpy as np
import pytest

from cargan_tf import latents


def test_seed_gives_the_same_rows_whatever_n():
    a = latents.seed_to_latent(5, 4, 10)
    b = latents.seed_to_latent(5, 1, 10)
    assert a.dtype == np.float32 and a.shape == (4, 10)
    np.testing.assert_array_equal(a[:1], b)
    assert not np.array_equal(a, latents.seed_to_latent(6, 4, 10))


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_seed_is_refused(bad):
    with pytest.raises(ValueError, match="non-negative integer"):
        latents.seed_to_latent(bad, 1, 4)


def test_slerp_hits_both_ends_and_keeps_norm_for_equal_norms():
    z = latents.interpolation_latents(1, 2, 5, 64)
    a, b = latents.seed_to_latent(1, 1, 64)[0], latents.seed_to_latent(2, 1, 64)[0]
    np.testing.assert_allclose(z[0], a, rtol=1e-5)
    np.testing.assert_allclose(z[-1], b, rtol=1e-5)
    c = latents.slerp(a / np.linalg.norm(a), b / np.linalg.norm(b), np.linspace(0, 1, 7))
    np.testing.assert_allclose(np.linalg.norm(c, axis=1), 1.0, rtol=1e-5)


def test_step_noise_and_labels_are_reproducible_and_in_range():
    np.testing.assert_array_equal(latents.step_noise(0, 9, 3, 4), latents.step_noise(0, 9, 3, 4))
    assert not np.array_equal(latents.step_noise(0, 9, 3, 4), latents.step_noise(0, 10, 3, 4))
    y = latents.step_labels(0, 3, 0, 1000, 0.8, 1.0)
    assert y.shape == (1000, 1) and y.min() >= 0.8 and y.max() <= 1.0 and y.std() > 0.03
    assert not np.array_equal(y, latents.step_labels(0, 3, 1, 1000, 0.8, 1.0))
