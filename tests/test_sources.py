"""load_images and its sources: toycars, Fashion-MNIST idx files, Stanford Cars boxes, caches."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from cargan_tf.data import cache as cache_module
from cargan_tf.data import sources
from cargan_tf.data.sources import (
    load_fashion_mnist,
    load_fashion_mnist_splits,
    load_images,
    load_stanford_cars,
    read_idx,
    read_stanford_annotations,
)
from cargan_tf.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file for a uint8 array (magic 0 0 8 ndim, big-endian dims, then the data)."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion(folder: Path, prefix: str, n: int, gz: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    for kind, array, dims in (("images", images, 3), ("labels", labels, 1)):
        name = f"{prefix}-{kind}-idx{dims}-ubyte" + (".gz" if gz else "")
        data = idx_bytes(array)
        (folder / name).write_bytes(gzip.compress(data) if gz else data)
    return images, labels


@pytest.fixture
def no_fashion_env(monkeypatch, tmp_path):
    """No $CARGAN_FASHION_MNIST, an empty Keras home, not on Colab."""
    monkeypatch.delenv(sources.FASHION_ENV, raising=False)
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)


def test_real_fashion_mnist_sample(shared_data: Path, capsys):
    folder = shared_data / "fashion_mnist_900"
    images, labels = load_fashion_mnist(folder)  # only t10k files there: falls back, says so
    assert "using its test split instead" in capsys.readouterr().out
    assert images.shape == (900, 28, 28, 1) and images.dtype == np.uint8
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [90] * 10
    assert images.max() > 200 and images.min() == 0  # real pixels, not an empty decode
    test_images = load_fashion_mnist(folder, split="test", with_labels=False)
    assert capsys.readouterr().out == ""
    np.testing.assert_array_equal(test_images, images)
    assert load_fashion_mnist_splits(folder) is None  # one split only


def test_fashion_through_load_images(shared_data: Path, no_fashion_env, monkeypatch):
    folder = shared_data / "fashion_mnist_900"
    assert load_images(str(folder), 28, 1).shape == (900, 28, 28, 1)  # idx folder detected
    monkeypatch.setenv(sources.FASHION_ENV, str(folder))
    big = load_images("fashion_mnist", 32, 3, n=50, seed=1)
    assert big.shape == (50, 32, 32, 3) and big.dtype == np.uint8
    assert (big[..., 0] == big[..., 1]).all() and (big[..., 1] == big[..., 2]).all()
    again = load_images(f"fashion_mnist:{folder}", 32, 3, n=50, seed=1)
    np.testing.assert_array_equal(big, again)  # same seed, same subset


def test_fashion_idx_files_written_by_the_test(tmp_path: Path, no_fashion_env):
    train_images, train_labels = write_fashion(tmp_path / "fm", "train", 12, gz=False)
    test_images, _ = write_fashion(tmp_path / "fm", "t10k", 7, gz=True, seed=1)
    images, labels = load_fashion_mnist(tmp_path / "fm")
    np.testing.assert_array_equal(images[..., 0], train_images)
    np.testing.assert_array_equal(labels, train_labels)
    (train, test) = load_fashion_mnist_splits(tmp_path / "fm")
    assert train[0].shape == (12, 28, 28, 1) and test[0].shape == (7, 28, 28, 1)
    np.testing.assert_array_equal(test[0][..., 0], test_images)
    small = load_images(f"fashion_mnist:{tmp_path / 'fm'}", 14, 1)
    expected = cv2.resize(train_images[3], (14, 14), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(small[3, :, :, 0], expected)


def test_fashion_from_keras_cache_and_colab(tmp_path: Path, no_fashion_env, monkeypatch):
    cache = tmp_path / "keras_home" / "datasets" / "fashion-mnist"
    write_fashion(cache, "train", 5)
    monkeypatch.setattr(sources, "_keras_fashion_mnist", lambda: pytest.fail("no download"))
    assert load_fashion_mnist()[0].shape == (5, 28, 28, 1)  # read directly, no Keras import

    for child in cache.iterdir():
        child.unlink()
    with pytest.raises(DataError, match="pass a folder with the idx files"):
        load_fashion_mnist()
    fake = {"train": (np.zeros((3, 28, 28, 1), np.uint8), np.zeros(3, np.int64)),
            "test": (np.ones((2, 28, 28, 1), np.uint8), np.ones(2, np.int64))}
    monkeypatch.setattr(sources, "_keras_fashion_mnist", lambda: fake)
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    assert load_fashion_mnist(split="test")[0].shape == (2, 28, 28, 1)
    assert load_fashion_mnist_splits()[1][1].tolist() == [1, 1]


def test_bad_idx_files_are_clear_errors(tmp_path: Path):
    write_fashion(tmp_path / "fm", "train", 4, gz=False)
    images_file = tmp_path / "fm" / "train-images-idx3-ubyte"
    good = images_file.read_bytes()

    images_file.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="is not an idx file .*HTML"):
        load_fashion_mnist(tmp_path / "fm")
    images_file.write_bytes(good[:-100])
    with pytest.raises(DataError, match="truncated or damaged"):
        read_idx(images_file)
    images_file.write_bytes(gzip.compress(good)[:-30])
    with pytest.raises(DataError, match="cannot read"):
        read_idx(images_file)
    images_file.write_bytes(idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    with pytest.raises(DataError, match="has 3 images but .* 4 labels"):
        load_fashion_mnist(tmp_path / "fm")
    images_file.write_bytes(idx_bytes(np.zeros((4, 32, 32), np.uint8)))
    with pytest.raises(DataError, match=r"Fashion-MNIST images are uint8 \(N, 28, 28\)"):
        load_fashion_mnist(tmp_path / "fm")
    images_file.write_bytes(good)
    labels_file = tmp_path / "fm" / "train-labels-idx1-ubyte"
    labels_file.write_bytes(idx_bytes(np.array([0, 1, 12, 3], np.uint8)))
    with pytest.raises(DataError, match="label 12"):
        load_fashion_mnist(tmp_path / "fm")
    labels_file.unlink()
    with pytest.raises(DataError, match="no Fashion-MNIST idx file pair .*train-images-idx3"):
        load_fashion_mnist(tmp_path / "fm")
    with pytest.raises(DataError, match="does not exist"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_toycars_source():
    images = load_images("toycars", 16, 3, n=4, seed=3)
    assert images.shape == (4, 16, 16, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, load_images("toycars", 16, 3, n=4, seed=3))
    assert load_images("toycars", 16, 1, n=2).shape == (2, 16, 16, 1)


def write_png(path: Path, bgr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), bgr)


def test_raw_folder_and_prepared_cache(tmp_path: Path, capsys):
    rng = np.random.default_rng(0)
    for i in range(5):
        write_png(tmp_path / "photos" / f"{i}.png", rng.integers(0, 256, (30, 40, 3), np.uint8))
    caches = tmp_path / "caches"
    images = load_images(str(tmp_path / "photos"), 16, 3, cache_dir=str(caches))
    assert images.shape == (5, 16, 16, 3)
    out = capsys.readouterr().out
    assert "prepared 5 images 16x16x3" in out and "warning" not in out
    # The same photos at 64x64 are all upscaled: training says so and names its own flag.
    load_images(str(tmp_path / "photos"), 64, 3, cache_dir=str(caches))
    assert "warning: 5 of 5 images (100%) are smaller than 64x64 (most often 40x30) and were " \
        "upscaled, so samples will be as blurry as they are: use 16x16 instead " \
        "(train --image-size 16) or larger photos" in \
        capsys.readouterr().out
    np.testing.assert_array_equal(load_images(str(tmp_path / "photos"), 16, 3,
                                              cache_dir=str(caches)), images)
    assert "up to date" in capsys.readouterr().out  # the second call reuses the cache
    # wide photos: training has no --fit, so the warning names the prepare that keeps them whole
    for i in range(3):
        write_png(tmp_path / "side" / f"{i}.png", rng.integers(0, 256, (20, 50, 3), np.uint8))
    load_images(str(tmp_path / "side"), 16, 3, cache_dir=str(tmp_path / "side_caches"))
    assert "have one side at least twice the other (most often 50x20), and center_crop kept " \
        "only their middle square" in (out := capsys.readouterr().out)
    assert f"use 'python -m cargan_tf prepare {tmp_path / 'side'} PREPARED --size 16 --fit pad' " \
        "and then --data PREPARED (bands fill" in out
    assert load_images(str(tmp_path / "photos"), 16, 3, n=2, cache_dir=str(caches)).shape[0] == 2

    (cache,) = [c for c in caches.iterdir() if c.name.endswith("16x16x3-center_crop")]
    np.testing.assert_array_equal(load_images(str(cache), 16, 3), images)
    with pytest.raises(DataError, match=r"holds 16x16x3 images, this run asks for 64x64x3"):
        load_images(str(cache), 64, 3)


def test_unknown_sources_are_clear_errors(tmp_path: Path):
    with pytest.raises(DataError, match="unknown data source 'nope'.*toycars"):
        load_images("nope", 16, 3)
    with pytest.raises(DataError, match="stanford_cars needs the train folder"):
        load_images("stanford_cars", 16, 3)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        load_images(str(tmp_path / "file.txt"), 16, 3)
    assert "fashion_mnist" in sources.describe_sources()


@pytest.fixture
def boxed_cars(tmp_path: Path) -> Path:
    """cars_train/ with 3 photos: a shade of red inside the annotated box, blue outside."""
    train = tmp_path / "cars_train"
    for i, (x1, y1, x2, y2) in enumerate([(11, 21, 60, 70), (1, 1, 100, 40), (30, 5, 90, 50)]):
        img = np.full((80, 100, 3), (255, 0, 0), np.uint8)  # BGR blue
        img[y1 - 1 : y2, x1 - 1 : x2] = (0, 0, 250 - 20 * i)  # devkit boxes: 1-based, inclusive
        write_png(train / f"{i + 1:05d}.png", img)
    write_png(train / "00004.png", np.zeros((80, 100, 3), np.uint8))  # not annotated
    return train


BOXES = [("00001.png", 11, 21, 60, 70), ("00002.png", 1, 1, 100, 40), ("00003.png", 30, 5, 90, 50)]


def check_all_red(images: np.ndarray) -> None:
    assert images.shape == (3, 16, 16, 3)
    assert (images[..., 1:] == 0).all()  # not one blue pixel mixed in at the box edges
    assert images[:, :, :, 0].tolist() == [[[250 - 20 * i] * 16] * 16 for i in range(3)]


def test_stanford_crop_to_box_from_csv(boxed_cars: Path, tmp_path: Path, capsys):
    csv_path = tmp_path / "anno_train.csv"
    csv_path.write_text("".join(f"{n},{x1},{y1},{x2},{y2},7\n" for n, x1, y1, x2, y2 in BOXES))
    images = load_stanford_cars(boxed_cars, csv_path, crop_to_box=True, size=16, fit="stretch",
                                cache_dir=str(tmp_path / "caches"))
    check_all_red(images)
    (cache,) = (tmp_path / "caches").iterdir()
    report = json.loads((cache / cache_module.REPORT_NAME).read_text())
    assert report["skipped"] == [{"path": "00004.png",
                                  "reason": "no bounding box for this file in the annotations"}]
    whole = load_stanford_cars(boxed_cars, size=16, fit="stretch",
                               cache_dir=str(tmp_path / "caches"))
    assert whole.shape == (4, 16, 16, 3) and (whole[..., 2] > 128).any()  # blue is back

    # The same through load_images, finding anno_train.csv beside the folder on its own.
    by_name = load_images(f"stanford_cars_cropped:{boxed_cars}", 16, 3, fit="stretch",
                          cache_dir=str(tmp_path / "caches"))
    check_all_red(by_name)
    # center_crop of the 100x40 box cuts its ends: the warning names the Python fit (a prepare
    # command would lose the boxes)
    capsys.readouterr()
    load_stanford_cars(boxed_cars, csv_path, crop_to_box=True, size=16,
                       cache_dir=str(tmp_path / "caches"))
    assert "warning: 1 of 3 images (33%) have one side at least twice the other (most often " \
        "100x40)" in (out := capsys.readouterr().out)
    assert "use fit='pad' (load_stanford_cars or load_images)" in out


def test_stanford_csv_with_mirror_header(boxed_cars: Path, tmp_path: Path):
    csv_path = tmp_path / "labels.csv"
    rows = "".join(f"{x1},{y1},{x2},{y2},car,cars_train/{n}\n" for n, x1, y1, x2, y2 in BOXES)
    csv_path.write_text("xmin,ymin,xmax,ymax,Class,Image Name\n" + rows)
    assert read_stanford_annotations(csv_path)["cars_train/00001.png"] == (11, 21, 60, 70)
    check_all_red(load_stanford_cars(boxed_cars, csv_path, crop_to_box=True, size=16,
                                     fit="stretch", cache_dir=str(tmp_path / "c")))
    csv_path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(DataError, match="need a file column"):
        read_stanford_annotations(csv_path)


def test_stanford_devkit_mat(boxed_cars: Path, tmp_path: Path, monkeypatch):
    mat_path = tmp_path / "cars_train_annos.mat"
    mat_path.write_bytes(b"MATLAB 5.0 MAT-file")
    monkeypatch.setitem(sys.modules, "scipy", None)  # scipy not installed
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(DataError, match="needs scipy .*pip install scipy.*CSV"):
        read_stanford_annotations(mat_path)

    # What scipy.io.loadmat(squeeze_me=True) returns for the devkit's struct array.
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    records = np.array([(np.uint8(x1), np.uint8(y1), np.uint8(x2), np.uint8(y2), np.uint8(7), n)
                        for n, x1, y1, x2, y2 in BOXES], dtype=[(f, "O") for f in fields])
    scipy = types.ModuleType("scipy")
    scipy.io = types.SimpleNamespace(loadmat=lambda path, squeeze_me: {"annotations": records})
    monkeypatch.setitem(sys.modules, "scipy", scipy)
    monkeypatch.setitem(sys.modules, "scipy.io", scipy.io)
    check_all_red(load_stanford_cars(boxed_cars, crop_to_box=True, size=16, fit="stretch",
                                     cache_dir=str(tmp_path / "c")))  # found beside the folder


def test_stanford_devkit_mat_with_real_scipy(boxed_cars: Path, tmp_path: Path):
    scipy_io = pytest.importorskip("scipy.io")
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    records = np.array([(x1, y1, x2, y2, 7, n) for n, x1, y1, x2, y2 in BOXES],
                       dtype=[(f, "O") for f in fields])
    scipy_io.savemat(tmp_path / "cars_train_annos.mat", {"annotations": records[None, :]})
    check_all_red(load_stanford_cars(boxed_cars, crop_to_box=True, size=16, fit="stretch",
                                     cache_dir=str(tmp_path / "c")))


def test_stanford_errors(boxed_cars: Path, tmp_path: Path):
    with pytest.raises(DataError, match="no annotations found"):
        load_stanford_cars(boxed_cars, crop_to_box=True, cache_dir=str(tmp_path / "c"))
    other = tmp_path / "other.csv"
    other.write_text("99999.jpg,1,1,5,5\n")
    with pytest.raises(DataError, match="none of the 4 images .* has a box"):
        load_stanford_cars(boxed_cars, other, crop_to_box=True, cache_dir=str(tmp_path / "c"))


def test_data_modules_do_not_import_tensorflow():
    code = ("import sys, argparse, cargan_tf.data.sources, cargan_tf.data.prepare,"
            " cargan_tf.data.download, cargan_tf.commands.prepare, cargan_tf.commands.download;"
            " sub = argparse.ArgumentParser().add_subparsers();"
            " cargan_tf.commands.prepare.register(sub); cargan_tf.commands.download.register(sub);"
            " print(sorted(m for m in ('tensorflow', 'keras', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "['cv2']"  # OpenCV yes (it decodes); TensorFlow and Keras no
