"""Class labels for a conditional run, aligned with the images `load_images_for(cfg)` returns.

- toycars: the body type of each car (sedan, hatchback, suv, pickup, sports, van), read from
  the drawing parameters (no image is drawn twice).
- an image folder, or a cache `prepare` made of one: Keras' convention
  (`image_dataset_from_directory`, `flow_from_directory`): each sub-folder is a class, named
  after it, classes in sorted order (`cars/suv/*.jpg`, `cars/sedan/*.jpg`; deeper folders
  belong to their top sub-folder). The cache's manifest says which file each image came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cargan_tf.config import RunConfig
from cargan_tf.data.cache import MANIFEST_NAME, read_manifest
from cargan_tf.data.sources import DEFAULT_TOYCARS_N, _subset, cache_folder_for
from cargan_tf.data.toycars import BODY_TYPES, sample_params
from cargan_tf.errors import DataError


@dataclass(frozen=True)
class ClassLabels:
    """ids: int64 (N,) in 0..K-1, one per training image; names: the K classes in id order."""

    ids: np.ndarray
    names: tuple[str, ...]
    source: str  # where the labels came from, for classes.json

    def counts(self) -> dict[str, int]:
        return {name: int((self.ids == k).sum()) for k, name in enumerate(self.names)}


def toycars_body_types(n: int, seed: int, start: int = 0) -> np.ndarray:
    """int64 (n,): the body type of toycars images start..start+n-1 for `seed` (draw_toycars'
    labels["body_type"], without drawing)."""
    return np.array([sample_params(np.random.default_rng([seed, start + i]))["body_type"]
                     for i in range(n)], np.int64)


def class_labels_for(cfg: RunConfig, fit: str = "center_crop") -> ClassLabels:
    """The classes of cfg.data's training images, in the order load_images_for(cfg) gives them
    (call that first: a raw folder is prepared into its cache there)."""
    data = cfg.data
    name, sep, _ = data.partition(":")
    if name == "toycars" and not sep:
        n = DEFAULT_TOYCARS_N if cfg.data_n is None else cfg.data_n
        return ClassLabels(toycars_body_types(n, cfg.seed), BODY_TYPES, "toycars body_type")
    path = Path(data).expanduser()
    if not path.is_dir():
        raise DataError(f"conditional=true needs classes, and {data!r} has none that cargan_tf "
                        "reads: use toycars (its body types) or a folder whose sub-folders are "
                        "the classes (cars/suv/*.jpg, cars/sedan/*.jpg)")
    cache = path if (path / MANIFEST_NAME).is_file() else \
        cache_folder_for(path, cfg.image_size, cfg.channels, fit)
    manifest = read_manifest(cache)
    kept = sorted((s for s in manifest["sources"] if s.get("status") == "kept"),
                  key=lambda s: s["index"])
    top = [s["path"] for s in kept if "/" not in s["path"]]
    if top:
        raise DataError(f"{len(top)} image(s) sit directly in {manifest['src']}, outside any "
                        f"class sub-folder (e.g. {top[0]}): with conditional=true each "
                        "sub-folder is a class; move them into one")
    folders = [s["path"].split("/", 1)[0] for s in kept]
    names = tuple(sorted(set(folders)))
    if len(names) < 2:
        raise DataError(f"{manifest['src']} has {len(names)} class sub-folder(s) "
                        f"({', '.join(names) or 'none'}): a conditional GAN needs two or more "
                        "(cars/suv/*.jpg, cars/sedan/*.jpg)")
    index = {n: k for k, n in enumerate(names)}
    ids = np.array([index[f] for f in folders], np.int64)
    return ClassLabels(_subset(ids, cfg.data_n, cfg.seed), names,
                       f"sub-folders of {manifest['src']}")
