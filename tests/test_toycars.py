"""toycars: shapes, determinism, and labels that agree with what was drawn."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from cargan_tf.data.toycars import (
    BACKGROUND_RGB,
    BACKGROUNDS,
    BODY_TYPES,
    COLOUR_RGB,
    COLOURS,
    contact_sheet,
    draw_car,
    draw_toycars,
    sample_params,
)
from cargan_tf.errors import ConfigError

LABEL_DTYPES = {
    "body_type": np.int64, "colour": np.int64, "background": np.int64,
    "wheel_size": np.float32, "offset_x": np.float32, "offset_y": np.float32,
    "scale": np.float32,
}
# a neutral car: only the label keys, so every other knob takes its default (no jitter)
BASE = {"body_type": 0, "colour": 1, "background": 0, "wheel_size": 0.075,
        "offset_x": 0.0, "offset_y": 0.0, "scale": 1.0}


def car_mask(params: dict, size: int = 64) -> np.ndarray:
    """Pixels that belong to the car: identical when drawn on a light and on a dark background."""
    p = {**params, "road": False, "bg_jitter": (0.0,) * 6}
    light = draw_car({**p, "background": BACKGROUNDS.index("plain_light")}, size).astype(int)
    dark = draw_car({**p, "background": BACKGROUNDS.index("plain_dark")}, size).astype(int)
    return np.abs(light - dark).sum(axis=2) < 24


def extent(mask: np.ndarray) -> tuple[int, int]:
    """Height and width of the mask's bounding box."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def column_height(mask: np.ndarray, frac: float) -> int:
    """Height of the car at a fraction of its length from the rear (the left end)."""
    cols = np.flatnonzero(mask.any(axis=0))
    col = mask[:, int(round(cols[0] + frac * (cols[-1] - cols[0])))]
    rows = np.flatnonzero(mask.any(axis=1))
    return rows[-1] - np.flatnonzero(col)[0] + 1


@pytest.mark.parametrize("size", [16, 32, 64, 128])
@pytest.mark.parametrize("channels", [1, 3])
def test_shapes_and_dtypes(size, channels):
    images, labels = draw_toycars(3, size=size, seed=1, channels=channels)
    assert images.shape == (3, size, size, channels) and images.dtype == np.uint8
    assert set(labels) == set(LABEL_DTYPES)
    for key, dtype in LABEL_DTYPES.items():
        assert labels[key].shape == (3,) and labels[key].dtype == dtype, key
    assert draw_car(BASE, size, channels).shape == (size, size, channels)


def test_grayscale_is_luminance_of_rgb():
    rgb, _ = draw_toycars(4, size=32, seed=2)
    gray, _ = draw_toycars(4, size=32, seed=2, channels=1)
    expected = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in rgb])[..., None]
    np.testing.assert_array_equal(gray, expected)


@pytest.mark.parametrize("kwargs", [{"size": 15}, {"size": 32.5}, {"channels": 2}, {"n": -1}])
def test_rejects_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        draw_toycars(**{"n": 2, **kwargs})


def test_deterministic_per_seed_and_index():
    a, la = draw_toycars(10, size=32, seed=3)
    b, lb = draw_toycars(10, size=32, seed=3)
    np.testing.assert_array_equal(a, b)
    for key in la:
        np.testing.assert_array_equal(la[key], lb[key])
    c, _ = draw_toycars(10, size=32, seed=4)
    assert not np.array_equal(a, c)
    assert all(not np.array_equal(a[i], c[i]) for i in range(10))
    # image i depends only on (seed, start + i), not on n or on the images before it
    one, l_one = draw_toycars(1, size=32, seed=3, start=5)
    np.testing.assert_array_equal(a[5], one[0])
    assert all(la[key][5] == l_one[key][0] for key in la)
    tail, _ = draw_toycars(4, size=32, seed=3, start=6)
    np.testing.assert_array_equal(a[6:], tail)


def test_images_are_draw_car_of_the_sampled_params():
    images, labels = draw_toycars(5, size=32, seed=8, start=20)
    for i in range(5):
        params = sample_params(np.random.default_rng([8, 20 + i]))
        np.testing.assert_array_equal(images[i], draw_car(params, 32))
        for key in LABEL_DTYPES:
            assert labels[key][i] == np.asarray(params[key], LABEL_DTYPES[key]), key


def test_background_label_matches_the_corner():
    tops = np.array([top for top, _ in BACKGROUND_RGB], float)
    rng = np.random.default_rng(0)
    for k, name in enumerate(BACKGROUNDS):
        for _ in range(5):
            image = draw_car({**sample_params(rng), "background": k}, 64).astype(float)
            corner = image[0, 0]
            assert np.linalg.norm(tops - corner, axis=1).argmin() == k, name
            # gradients change down the left edge (above the road); plain ones do not
            change = np.abs(image[24, 0] - corner).sum()
            assert (change > 20) if name.startswith("gradient") else (change <= 3), name


def test_body_types_have_distinct_silhouettes():
    masks = {name: car_mask({**BASE, "body_type": i}, 128) for i, name in enumerate(BODY_TYPES)}
    (h, w) = zip(*(extent(masks[name]) for name in BODY_TYPES))
    height, width = dict(zip(BODY_TYPES, h)), dict(zip(BODY_TYPES, w))
    # van tallest, then SUV; the sports car lowest and, relative to its height, longest
    assert height["van"] > height["suv"] > height["sedan"] > height["sports"]
    assert height["van"] > 1.4 * height["sports"]
    assert max(BODY_TYPES, key=lambda t: width[t] / height[t]) == "sports"
    assert width["hatchback"] < 0.9 * width["sedan"]
    # sedan: three boxes, the boot and the bonnet well below the roof
    sedan = masks["sedan"]
    assert column_height(sedan, 0.08) < 0.75 * column_height(sedan, 0.5)
    assert column_height(sedan, 0.92) < 0.75 * column_height(sedan, 0.5)
    # hatchback: the roof runs almost to the back
    hatch = masks["hatchback"]
    assert column_height(hatch, 0.1) > 0.85 * column_height(hatch, 0.4)
    # pickup: the open bed is much lower than the cab
    pickup = masks["pickup"]
    assert column_height(pickup, 0.25) < 0.75 * column_height(pickup, 0.55)
    # van: a long roof, almost as high at the back as over the cab
    van = masks["van"]
    assert column_height(van, 0.1) > 0.9 * column_height(van, 0.7)


def test_colour_label_is_the_nearest_named_colour():
    palette = np.array(COLOUR_RGB, float)
    red, green = COLOURS.index("red"), COLOURS.index("green")
    rng = np.random.default_rng(1)
    for k, name in enumerate(COLOURS):
        for _ in range(3):
            params = {**sample_params(rng), "colour": k}
            plain = {**params, "colour_jitter": (0.0, 0.0, 0.0)}
            # body paint: pixels that change a lot between a red and a green car
            a = draw_car({**plain, "colour": red}, 64).astype(int)
            b = draw_car({**plain, "colour": green}, 64).astype(int)
            body = np.abs(a - b).sum(axis=2) > 250
            assert body.sum() > 150
            mean = draw_car(params, 64)[body].mean(axis=0)
            assert np.linalg.norm(palette - mean, axis=1).argmin() == k, (name, mean)


def test_offsets_move_the_car():
    def centre(**kw):
        ys, xs = np.nonzero(car_mask({**BASE, **kw}, 64))
        return xs.mean(), ys.mean()

    # +-0.04 of the width moves the mass centre by about 0.08 * 64 = 5 px, right / down
    assert 0.06 * 64 < centre(offset_x=0.04)[0] - centre(offset_x=-0.04)[0] < 0.1 * 64
    assert 0.06 * 64 < centre(offset_y=0.04)[1] - centre(offset_y=-0.04)[1] < 0.1 * 64
    # zero offsets centre the car's bounding box on the image
    mask = car_mask(BASE, 64)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert abs((rows[0] + rows[-1]) / 2 - 31.5) <= 1.5
    assert abs((cols[0] + cols[-1]) / 2 - 31.5) <= 1.5


def test_larger_wheel_size_gives_more_tyre():
    def dark_bottom(wheel_size):
        image = draw_car({**BASE, "colour": COLOURS.index("red"), "road": False,
                          "wheel_size": wheel_size}, 64)
        bottom = image[32:]  # the wheels are in the lower half
        return int((bottom.max(axis=2) < 60).sum())

    small, big = dark_bottom(0.06), dark_bottom(0.09)
    assert small > 20 and big > 1.5 * small


def test_cars_face_right():
    image = draw_car({**BASE, "colour": COLOURS.index("blue"), "scale": 1.1}, 128).astype(int)
    head = (np.abs(image - (252, 244, 196)).sum(axis=2) < 40).nonzero()[1]
    tail = (np.abs(image - (214, 26, 30)).sum(axis=2) < 60).nonzero()[1]
    assert len(head) > 3 and len(tail) > 3
    assert head.mean() > 96 and tail.mean() < 32


def test_label_distributions_cover_every_class():
    _, labels = draw_toycars(600, size=16, seed=5)
    assert set(labels["body_type"].tolist()) == set(range(len(BODY_TYPES)))
    assert set(labels["colour"].tolist()) == set(range(len(COLOURS)))
    assert set(labels["background"].tolist()) == set(range(len(BACKGROUNDS)))
    assert np.bincount(labels["body_type"]).min() > 600 / len(BODY_TYPES) / 2
    assert 0.04 < labels["wheel_size"].min() and labels["wheel_size"].max() < 0.12
    assert np.abs(labels["offset_x"]).max() <= 0.04 and np.abs(labels["offset_y"]).max() <= 0.04
    assert labels["offset_x"].min() < -0.03 and labels["offset_x"].max() > 0.03
    assert 0.8 <= labels["scale"].min() and labels["scale"].max() <= 1.15


def test_images_are_not_trivial():
    images, _ = draw_toycars(24, size=64, seed=6)
    assert images.reshape(24, -1).std(axis=1).min() > 20
    assert len({im.tobytes() for im in images}) == 24
    rng = np.random.default_rng(6)
    for _ in range(12):
        fraction = car_mask(sample_params(rng), 64).mean()
        assert 0.07 < fraction < 0.45  # car pixels (less its windows): 0.09 .. 0.31 in practice


def test_contact_sheet_layout():
    images, _ = draw_toycars(10, size=16, seed=0)
    sheet = contact_sheet(images, cols=4, pad=2)
    assert sheet.shape == (3 * 18 + 2, 4 * 18 + 2, 3) and sheet.dtype == np.uint8
    np.testing.assert_array_equal(sheet[2:18, 2:18], images[0])
    np.testing.assert_array_equal(sheet[2 + 2 * 18:18 + 2 * 18, 2 + 18:18 + 18], images[9])
    assert (sheet[:2] == 255).all() and (sheet[-18:, -18:] == 255).all()  # padding, empty cell
    gray = contact_sheet(images[:, :, :, 0], cols=8, pad=0)
    assert gray.shape == (32, 128, 1)
