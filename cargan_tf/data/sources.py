# Over 450 lines: the one seam over every kind of source, each format's checks with it.
"""Where training images come from: `load_images` is the one seam the training code calls, over
toycars, Fashion-MNIST, Stanford Cars, a prepared cache and a raw image folder."""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import re
import tempfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np

from cargan_tf.config import RunConfig
from cargan_tf.data.cache import MANIFEST_NAME, load_cache, read_manifest
from cargan_tf.data.decode import fit_image
from cargan_tf.data.prepare import prepare, scan_folder
from cargan_tf.data.toycars import draw_toycars
from cargan_tf.env import in_colab
from cargan_tf.errors import DataError

DEFAULT_TOYCARS_N = 8192
FASHION_ENV = "CARGAN_FASHION_MNIST"
FASHION_SPLITS = {"train": "train", "test": "t10k"}  # split -> file-name prefix
CACHE_ENV = "CARGAN_CACHE_DIR"  # where raw folders are prepared when no cache_dir is given
STANFORD_ANNOTATION_NAMES = ("cars_train_annos.mat", "anno_train.csv", "cars_train_annos.csv")

# Column names that Stanford Cars mirrors use in their CSV annotation files.
_CSV_COLUMNS = {
    "file": ("fname", "filename", "file_name", "file", "image", "image_name", "image name",
             "img", "img_name", "path", "image_path", "relative_im_path", "name"),
    "x1": ("x1", "bbox_x1", "xmin", "x_min", "left"),
    "y1": ("y1", "bbox_y1", "ymin", "y_min", "top"),
    "x2": ("x2", "bbox_x2", "xmax", "x_max", "right"),
    "y2": ("y2", "bbox_y2", "ymax", "y_max", "bottom"),
}
# idx data-type codes -> big-endian NumPy dtypes (http://yann.lecun.com/exdb/mnist/).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def describe_sources() -> str:
    """What `data` may be, one line each (for CLI help and error messages)."""
    return (
        "toycars: procedural cars drawn on the fly, no files needed (n images, default "
        f"{DEFAULT_TOYCARS_N}); "
        "fashion_mnist or fashion_mnist:FOLDER: Fashion-MNIST idx files from FOLDER, "
        f"${FASHION_ENV}, Keras' cache, or Keras' download on Colab; "
        "stanford_cars:TRAIN_DIR: the Stanford Cars train photos, whole; "
        "stanford_cars_cropped:TRAIN_DIR: the same cropped to their annotated boxes "
        f"({' or '.join(STANFORD_ANNOTATION_NAMES)} beside the folder); "
        "a folder written by `python -m cargan_tf prepare` (it has manifest.json); "
        "a folder of idx files (Fashion-MNIST, MNIST); "
        "any other image folder, prepared on the fly into a cache (searched recursively)"
    )


def load_images(
    data: str,
    size: int,
    channels: int,
    *,
    n: int | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
    fit: str = "center_crop",
    progress: bool = True,
) -> np.ndarray:
    """Training images for `data` (see describe_sources): uint8 (N, size, size, channels),
    RGB for channels=3, grayscale for 1, values 0..255.

    n: toycars draws n images (default 8192); other sources keep a random subset of n
    (seeded by `seed`, original order kept), or everything when they hold n or fewer.
    cache_dir: the folder under which raw image folders are prepared (default
    $CARGAN_CACHE_DIR or the system temp folder); re-runs reuse it incrementally.
    fit: how non-square photos become square (center_crop, pad, stretch), for folders.
    progress: a progress bar while a folder is prepared.
    """
    name, sep, rest = data.partition(":")
    if name == "toycars" and not sep:
        count = DEFAULT_TOYCARS_N if n is None else n
        return draw_toycars(count, size=size, seed=seed, channels=channels)[0]
    if name == "fashion_mnist":
        images, _ = load_fashion_mnist(rest or None)
        return _to_size(_subset(images, n, seed), size, channels)  # subset first: less to resize
    if name in ("stanford_cars", "stanford_cars_cropped"):
        if not rest:
            raise DataError(
                f"{name} needs the train folder: {name}:/path/to/cars_train (the data cannot be "
                "downloaded automatically any more; get it from a mirror, e.g. Kaggle)"
            )
        images = load_stanford_cars(
            rest, crop_to_box=name == "stanford_cars_cropped", size=size, channels=channels,
            fit=fit, cache_dir=cache_dir, progress=progress,
        )
        return _subset(images, n, seed)

    path = Path(data).expanduser()
    if not path.exists():
        raise DataError(
            f"unknown data source {data!r}: not a known name and no folder at {path}. "
            f"Use one of: {describe_sources()}"
        )
    if not path.is_dir():
        raise DataError(f"data {path} is a file; pass the folder that holds the images")
    if (path / MANIFEST_NAME).is_file():
        return _subset(_load_prepared(path, size, channels), n, seed)
    if _find_idx_files(path):
        images, _ = load_fashion_mnist(path)
        return _to_size(_subset(images, n, seed), size, channels)  # subset first: less to resize
    images = _prepare_folder(path, size, channels, fit, cache_dir, progress=progress)
    return _subset(images, n, seed)


def load_images_for(cfg: RunConfig) -> np.ndarray:
    """Training images uint8 (N, S, S, C) for cfg.data (toycars, fashion_mnist, a folder...)."""
    return load_images(cfg.data, cfg.image_size, cfg.channels, n=cfg.data_n, seed=cfg.seed,
                       progress=cfg.progress)


def _subset(images: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    if n is None or n >= len(images):
        return images
    keep = np.sort(np.random.default_rng(seed).choice(len(images), size=n, replace=False))
    return images[keep]


def _load_prepared(path: Path, size: int, channels: int) -> np.ndarray:
    manifest = read_manifest(path)
    have = (manifest["options"]["size"], manifest["options"]["channels"])
    if have != (size, channels):
        raise DataError(
            f"prepared cache {path} holds {have[0]}x{have[0]}x{have[1]} images, this run asks "
            f"for {size}x{size}x{channels}: prepare the source again at that size into another "
            f"folder (prepare --size {size} --channels {channels}; notebook 01: image_size, "
            "channels), or set the run's image_size and channels to match "
            f"(--set image_size={have[0]} --set channels={have[1]}; notebook 02: the same names)"
        )
    return load_cache(path)


def cache_folder_for(
    src: Path, size: int, channels: int, fit: str, cache_dir: str | os.PathLike | None = None,
    tag: str = "",
) -> Path:
    """The cache folder a raw image folder is prepared into: one per source and options."""
    base = cache_dir or os.environ.get(CACHE_ENV)
    base = Path(base).expanduser() if base else Path(tempfile.gettempdir()) / "cargan_tf_cache"
    key = hashlib.blake2b(str(src.resolve()).encode(), digest_size=4).hexdigest()
    suffix = f"-{tag}" if tag else ""
    return base / f"{src.name or 'images'}-{key}-{size}x{size}x{channels}-{fit}{suffix}"


def _prepare_folder(
    src: Path, size: int, channels: int, fit: str, cache_dir: str | None,
    boxes: dict | None = None, tag: str = "", progress: bool = True,
) -> np.ndarray:
    dst = cache_folder_for(src, size, channels, fit, cache_dir, tag)
    result = prepare(src, dst, size=size, channels=channels, fit=fit, boxes=boxes,
                             progress=progress)
    print(result.summary(), f"(report: {result.report_path})")
    # train has no --fit: another fit is a prepared folder, which --data takes as it is (a
    # prepare command knows no boxes: cropped Stanford Cars take fit= in Python)
    remedy = (f"'python -m cargan_tf prepare {src} PREPARED --size {size} --fit {{}}' and "
              f"then --data PREPARED" if boxes is None
              else "fit='{}' (load_stanford_cars or load_images)")
    for warning in result.warnings(size_how="train --image-size {}", fit_how=remedy):
        print(warning, flush=True)
    return load_cache(dst)


def _to_size(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Grayscale uint8 (N, h, w, 1) -> uint8 (N, size, size, channels), area-resized when
    shrinking; channels=3 repeats the gray value (R = G = B)."""
    if images.shape[1:3] != (size, size):
        # cv2.resize drops the single channel axis; put it back.
        images = np.stack([fit_image(img, size, "stretch")[0] for img in images])[..., None]
    return np.repeat(images, 3, axis=-1) if channels == 3 else images


# --------------------------------------------------------------------------- Fashion-MNIST


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one idx file (gzip-compressed or not) into an array of its declared shape."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read {path}: {err}; download the file again") from None
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path} is not an idx file (it starts with {raw[:4].hex(' ') or 'nothing'}, an idx "
            "file with 00 00 08 0N); is it an HTML page saved under the wrong name?"
        )
    ndim, dtype = raw[3], np.dtype(_IDX_DTYPES[raw[2]])
    offset = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise DataError(
            f"{path}: its header says shape {dims} ({expected} bytes of data) but it holds "
            f"{len(raw) - offset} bytes; the file is truncated or damaged: download it again"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=offset).reshape(dims)
    return data.astype(dtype.newbyteorder("="))  # native byte order, and a writable copy


def _find_idx_files(folder: Path) -> dict[str, dict[str, Path]]:
    """{split: {"images": path, "labels": path}} for the idx files present in `folder`."""
    found: dict[str, dict[str, Path]] = {}
    if not folder.is_dir():
        return found
    pattern = re.compile(r"^(train|t10k)-(images|labels)[-.]idx[13]-ubyte(\.gz)?$")
    for entry in sorted(folder.iterdir()):
        match = pattern.match(entry.name)
        if match and entry.is_file():
            split = "train" if match.group(1) == "train" else "test"
            found.setdefault(split, {}).setdefault(match.group(2), entry)
    return found


def _read_fashion_split(files: dict[str, Path]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(files["images"]), read_idx(files["labels"])
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(
            f"{files['images']} holds {images.dtype} {images.shape}, Fashion-MNIST images are "
            "uint8 (N, 28, 28): is this the labels file, or another data set?"
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DataError(
            f"{files['labels']} holds {labels.dtype} {labels.shape}, expected uint8 (N,)"
        )
    if len(labels) != len(images):
        raise DataError(
            f"{files['images']} has {len(images)} images but {files['labels']} has "
            f"{len(labels)} labels; the two files come from different downloads"
        )
    if len(labels) and labels.max() > 9:
        raise DataError(f"{files['labels']} has label {labels.max()}; Fashion-MNIST uses 0-9")
    return images[..., None], labels.astype(np.int64)


def _fashion_folder(path: str | os.PathLike | None) -> Path | None:
    """The folder to read idx files from: path, $CARGAN_FASHION_MNIST or Keras' cache."""
    if path is not None:
        return Path(path).expanduser()
    if os.environ.get(FASHION_ENV):
        return Path(os.environ[FASHION_ENV]).expanduser()
    keras_home = Path(os.environ.get("KERAS_HOME", "~/.keras")).expanduser()
    cached = keras_home / "datasets" / "fashion-mnist"
    return cached if _find_idx_files(cached) else None


def _keras_fashion_mnist() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    import keras  # here: it imports TensorFlow, and only Colab downloads through it

    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    return {
        "train": (x_train[..., None], y_train.astype(np.int64)),
        "test": (x_test[..., None], y_test.astype(np.int64)),
    }


def load_fashion_mnist(
    path: str | os.PathLike | None = None, split: str = "train", *, with_labels: bool = True
) -> tuple[np.ndarray, np.ndarray] | np.ndarray:
    """Fashion-MNIST from the standard idx files: images uint8 (N, 28, 28, 1) in 0..255 and
    labels int64 (N,) in 0..9 (images only when with_labels=False).

    path: a folder with train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), t10k-...
    When None: $CARGAN_FASHION_MNIST, then Keras' cache (~/.keras/datasets/fashion-mnist),
    then keras.datasets.fashion_mnist.load_data() on Colab. If the requested split ("train"
    or "test") is missing but the other one is there, that one is used, with a printed note.
    """
    if split not in FASHION_SPLITS:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    folder = _fashion_folder(path)
    if folder is None:
        if not in_colab():
            raise DataError(
                "no Fashion-MNIST files found: pass a folder with the idx files "
                "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-...), e.g. "
                f"data='fashion_mnist:/path/to/folder', or set ${FASHION_ENV} to it"
            )
        images, labels = _keras_fashion_mnist()[split]
    else:
        images, labels = _read_fashion_folder(folder, split)
    return (images, labels) if with_labels else images


def _read_fashion_folder(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if not folder.is_dir():
        raise DataError(f"Fashion-MNIST folder {folder} does not exist; check the path")
    found = _find_idx_files(folder)
    complete = {s: f for s, f in found.items() if {"images", "labels"} <= set(f)}
    if split in complete:
        return _read_fashion_split(complete[split])
    other = "test" if split == "train" else "train"
    if other in complete:
        prefix = FASHION_SPLITS[split]
        print(
            f"note: {folder} has no complete {split} split ({prefix}-images/{prefix}-labels "
            f"idx files); using its {other} split instead"
        )
        return _read_fashion_split(complete[other])
    present = sorted(p.name for f in found.values() for p in f.values())
    raise DataError(
        f"{folder} has no Fashion-MNIST idx file pair (found: {', '.join(present) or 'none'}); "
        "it needs train-images-idx3-ubyte(.gz) with train-labels-idx1-ubyte(.gz), or the "
        "t10k-... pair"
    )


def load_fashion_mnist_splits(
    path: str | os.PathLike | None = None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] | None:
    """((train_images, train_labels), (test_images, test_labels)) as load_fashion_mnist
    returns them, or None when only one split is available."""
    folder = _fashion_folder(path)
    if folder is None:
        if not in_colab():
            return None
        splits = _keras_fashion_mnist()
        return splits["train"], splits["test"]
    found = _find_idx_files(folder)
    if not all({"images", "labels"} <= set(found.get(s, {})) for s in FASHION_SPLITS):
        return None
    return _read_fashion_split(found["train"]), _read_fashion_split(found["test"])


# --------------------------------------------------------------------------- Stanford Cars


def _devkit_boxes(path: Path) -> dict[str, tuple[int, int, int, int]]:
    try:
        import scipy.io  # here: scipy is optional (the devkit's .mat annotations only)
    except ImportError:
        raise DataError(
            f"reading {path.name} needs scipy (`pip install scipy`); or pass the CSV "
            "annotations that mirrors ship (columns fname,x1,y1,x2,y2)"
        ) from None
    try:
        mat = scipy.io.loadmat(str(path), squeeze_me=True)
    except Exception as err:  # scipy raises several types for a damaged file
        raise DataError(f"cannot read {path}: {err}") from None
    records = mat.get("annotations")
    if records is None or records.dtype.names is None:
        raise DataError(f"{path} has no 'annotations' struct array; is it the devkit's file?")
    name_field = "fname" if "fname" in records.dtype.names else "relative_im_path"
    needed = {name_field, "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"}
    if not needed <= set(records.dtype.names):
        raise DataError(f"{path} annotations have fields {records.dtype.names}, need {needed}")
    boxes = {}
    for rec in np.atleast_1d(records):
        key = str(rec[name_field])
        boxes[key] = tuple(int(rec[k]) for k in ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2"))
    return boxes


def _csv_boxes(path: Path) -> dict[str, tuple[int, int, int, int]]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = [row for row in csv.reader(fh) if any(cell.strip() for cell in row)]
    if not rows:
        raise DataError(f"annotation file {path} is empty")

    def is_number(cell: str) -> bool:
        try:
            float(cell)
        except ValueError:
            return False
        return True

    if len(rows[0]) >= 5 and all(is_number(c) for c in rows[0][1:5]):
        columns = {"file": 0, "x1": 1, "y1": 2, "x2": 3, "y2": 4}  # headerless: fname,x1,y1,x2,y2
        body = rows
    else:
        header = [cell.strip().lower() for cell in rows[0]]
        columns = {}
        for key, aliases in _CSV_COLUMNS.items():
            match = next((header.index(a) for a in aliases if a in header), None)
            if match is None:
                raise DataError(
                    f"{path} has columns {rows[0]}; need a {key} column, named one of {aliases}"
                )
            columns[key] = match
        body = rows[1:]
    boxes = {}
    for number, row in enumerate(body, start=2 if body is not rows else 1):
        try:
            box = tuple(int(float(row[columns[k]])) for k in ("x1", "y1", "x2", "y2"))
            boxes[row[columns["file"]].strip()] = box
        except (ValueError, IndexError):
            raise DataError(f"{path} line {number} is not a valid box row: {row}") from None
    return boxes


def read_stanford_annotations(path: str | os.PathLike) -> dict[str, tuple[int, int, int, int]]:
    """{file name: (x1, y1, x2, y2)} from the devkit's .mat file or a mirror's CSV.

    Coordinates are as the devkit stores them: 1-based pixels, x2/y2 inclusive.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"annotation file {path} does not exist")
    boxes = _devkit_boxes(path) if path.suffix.lower() == ".mat" else _csv_boxes(path)
    if not boxes:
        raise DataError(f"annotation file {path} has no boxes")
    return boxes


def _find_annotations(train_dir: Path) -> Path:
    parent = train_dir.parent
    places = (train_dir, parent, parent / "devkit", parent / "car_devkit" / "devkit")
    for place in places:
        for name in STANFORD_ANNOTATION_NAMES:
            if (place / name).is_file():
                return place / name
    raise DataError(
        f"no annotations found for {train_dir}: looked for "
        f"{', '.join(STANFORD_ANNOTATION_NAMES)} in it, beside it and in devkit/; "
        "copy the annotation file (cars_train_annos.mat or a CSV of boxes) into one of those "
        "places, pass annotations=PATH to load_stanford_cars, or use stanford_cars:DIR for "
        "whole photos"
    )


def load_stanford_cars(
    train_dir: str | os.PathLike,
    annotations: str | os.PathLike | None = None,
    crop_to_box: bool = False,
    *,
    size: int = 64,
    channels: int = 3,
    fit: str = "center_crop",
    cache_dir: str | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Stanford Cars photos from its train folder: uint8 (N, size, size, channels) RGB/gray.

    crop_to_box: crop each photo to its annotated bounding box before `fit` resizes it;
    annotations come from `annotations` (the devkit's cars_train_annos.mat, which needs
    scipy, or a mirror's CSV with fname,x1,y1,x2,y2) or are looked for beside the folder.
    Photos without a box are skipped and listed in the prepare report. Prepared once into a
    cache (see load_images), re-used on later calls.
    """
    train_dir = Path(train_dir).expanduser()
    if not crop_to_box:
        return _prepare_folder(train_dir, size, channels, fit, cache_dir, progress=progress)
    if not train_dir.is_dir():
        raise DataError(f"Stanford Cars train folder {train_dir} does not exist; check the path")
    ann_path = Path(annotations).expanduser() if annotations else _find_annotations(train_dir)
    annotated = read_stanford_annotations(ann_path)
    by_name = {PurePosixPath(name).name: box for name, box in annotated.items()}
    files, _ = scan_folder(train_dir)
    boxes = {}
    for f in files:
        box = annotated.get(f.rel) or by_name.get(PurePosixPath(f.rel).name)
        if box is not None:
            x1, y1, x2, y2 = box
            # devkit: 1-based, inclusive ends -> 0-based, exclusive ends
            boxes[f.rel] = (x1 - 1, y1 - 1, x2, y2)
    if not boxes:
        example = next(iter(annotated))
        raise DataError(
            f"none of the {len(files)} images in {train_dir} has a box in {ann_path} (it names "
            f"files like {example!r}); is it the annotation file for this folder?"
        )
    tag = "boxes-" + hashlib.blake2b(str(ann_path.resolve()).encode(), digest_size=3).hexdigest()
    return _prepare_folder(train_dir, size, channels, fit, cache_dir, boxes=boxes, tag=tag,
                           progress=progress)
