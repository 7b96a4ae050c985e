"""The input pipeline: each epoch's order is a function of (seed, epoch), one pipeline for many
epochs gives the same batches as one per epoch, and a resume inside an epoch skips exactly."""

import numpy as np
import pytest

from cargan_tf.data.pipeline import epoch_dataset, epoch_order, run_dataset


def images(n=20, size=4):
    # image k is filled with the value k: a batch's values name the images in it
    return np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None],
                           (n, size, size, 3)).copy()


def ids(batch):
    """Which images a float batch in [-1, 1] holds (exact: k / 127.5 - 1 rounds back to k)."""
    return [int(round((float(x[0, 0, 0]) + 1.0) * 127.5)) for x in np.asarray(batch)]


def test_run_dataset_is_the_epochs_in_order_and_skips_inside_the_first():
    data = images()
    got = [ids(b) for b in run_dataset(data, 6, seed=3, first_epoch=2, last_epoch=4,
                                       skip_batches=1)]
    want = []
    for epoch in (2, 3, 4):
        order = epoch_order(20, 3, epoch).tolist()
        starts = range(6 if epoch == 2 else 0, 18, 6)  # 3 full batches; the 2 left are dropped
        want += [order[s:s + 6] for s in starts]
    assert got == want


def test_without_drop_remainder_every_image_comes_once_per_epoch():
    batches = [ids(b) for b in run_dataset(images(), 6, 0, 1, 2, drop_remainder=False)]
    assert [len(b) for b in batches] == [6, 6, 6, 2] * 2
    first, second = sum(batches[:4], []), sum(batches[4:], [])
    assert sorted(first) == sorted(second) == list(range(20))
    assert first != second  # reshuffled each epoch


@pytest.mark.parametrize("flip", [False, True])
def test_one_pipeline_for_many_epochs_equals_one_per_epoch(flip):
    data = np.random.default_rng(0).integers(0, 256, (20, 4, 4, 3), dtype=np.uint8)
    joined = [np.asarray(b) for b in run_dataset(data, 6, 5, 1, 3, skip_batches=2, flip=flip)]
    separate = [np.asarray(b) for epoch in (1, 2, 3)
                for b in epoch_dataset(data, 6, 5, epoch, skip_batches=2 if epoch == 1 else 0,
                                       flip=flip)]
    assert len(joined) == len(separate) == 1 + 3 + 3
    for a, b in zip(joined, separate):
        np.testing.assert_array_equal(a, b)
    if flip:  # some images really were mirrored
        plain = [np.asarray(b) for b in run_dataset(data, 6, 5, 1, 3, skip_batches=2)]
        assert any(not np.array_equal(a, b) for a, b in zip(joined, plain))
