# Over 450 lines: every score of a generator (FID, KID, recall, memorisation), written by one call.
"""Score a generator against real images: FID, KID, precision/recall, diversity and coverage.

`evaluate_generator` is the one call the training loop and the `evaluate` command share; it
returns a dict of numbers and can append them to the run's metrics.csv. `evaluate_run` does
the whole command: load the generator, pick the features, draw the real set, write
metrics.json. Numbers compare runs only when the extractor (name and hash), n and the real
set match; metrics.json records all three.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cargan_tf import features as feats
from cargan_tf import io, metrics, viz
from cargan_tf.config import RunConfig
from cargan_tf.data.sources import load_images
from cargan_tf.data.toycars import draw_toycars
from cargan_tf.errors import CarganError
from cargan_tf.generate import generate_images, latent_dim_of, load_generator, resolve_generator_path
from cargan_tf.latents import seed_to_latent
from cargan_tf.runs import RunPaths, write_json_atomic, write_text_atomic

# Latents of the evaluated samples: seed_to_latent(EVAL_SEED, n, latent_dim), the same for
# every evaluation, so numbers at different epochs score the same points of latent space.
EVAL_SEED = 20240505
# The real reference set for toycars: a draw no run trains on (runs draw seed=cfg.seed from
# index 0), the same for every run whatever its seed, so their numbers compare.
TOYCARS_EVAL_SEED = 7919
TOYCARS_EVAL_START = 1 << 30
_FLOOR_OFFSET = 1 << 24  # the second, disjoint real set for the real-vs-real floor

COPYING_RATIO = 0.8  # below this memorisation ratio, evaluate warns that samples may be copies
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
PR_K = 3  # neighbours for the precision/recall balls (Kynkäänniemi et al. use 3)

# metrics.csv: one row per evaluation during training.
METRICS_COLUMNS: tuple[str, ...] = (
    "epoch", "step", "n", "fid", "kid", "kid_std", "precision", "recall", "diversity",
    "pixel_diversity", "classes_hit", "n_classes", "coverage_kl", "features", "features_hash",
    "seconds",
)
# metrics.json: every key is always present (None where it does not apply).
METRICS_JSON_FIELDS: tuple[str, ...] = (
    "fid", "kid", "kid_std", "precision", "recall", "diversity", "pixel_diversity", "coverage",
    "n", "n_real", "features", "features_hash", "features_dim", "features_requested",
    "features_note", "generator", "data", "real_set", "image_size", "channels", "latent_seed",
    "floor", "memorisation", "seconds", "created",
)

PHOTO_NOTE = ("photo judge: the package's own CNN for natural photos (trained on vehicle and "
              "road-scene crops, never on Stanford Cars; BENCHMARKS.md, 'The photo judge'); "
              "its numbers compare runs scored with the same features_hash, not Inception's")
PIXEL_NOTE = ("pixel features (16x16 thumbnails): they catch blur, noise, colour shifts and "
              "collapse, not whether a shape is right; compare runs with them, do not read "
              "them as realism")


# ---- real images ------------------------------------------------------------------------------

def real_images_for(data: str, image_size: int, channels: int, n: int, *, seed: int = 0,
                    part: int = 0) -> tuple[np.ndarray, str]:
    """(uint8 (n', S, S, C) real images, a description of the set) to evaluate against.

    toycars: n held-out images (seed TOYCARS_EVAL_SEED from index 2^30: never trained on).
    Other data: up to n images of the data itself (a seeded choice; user data has no held-out
    split, so these are training images). part=1 gives a second set disjoint from part 0 (for
    the real-vs-real floor); for finite data it holds what is left after part 0, maybe none.
    """
    if data == "toycars":
        start = TOYCARS_EVAL_START + part * _FLOOR_OFFSET
        images = draw_toycars(n, image_size, TOYCARS_EVAL_SEED, channels, start=start)[0]
        return images, f"toycars held-out: seed {TOYCARS_EVAL_SEED}, images {start}..{start + n - 1}"
    everything = load_images(data, image_size, channels, seed=seed)
    order = np.random.default_rng([seed, 11]).permutation(len(everything))
    chosen = np.sort(order[part * n:(part + 1) * n])
    return everything[chosen], (f"{data}: {len(chosen)} of {len(everything)} images (training "
                                "images: user data has no held-out split)")


# ---- scoring ----------------------------------------------------------------------------------

_real_cache: dict[tuple, tuple[np.ndarray, np.ndarray | None, np.ndarray]] = {}


def _real_features(extractor: feats.Extractor, real: np.ndarray):
    """(features, predicted classes or None, pixel features) of the real set, memoised: the
    training loop scores the same real set every few epochs."""
    key = (extractor.name, extractor.hash, real.shape,
           hashlib.blake2b(np.ascontiguousarray(real).data, digest_size=16).hexdigest())
    if key not in _real_cache:
        if len(_real_cache) >= 4:
            _real_cache.pop(next(iter(_real_cache)))
        classes = (extractor.predict_labels(real)[extractor.class_head]
                   if extractor.class_head else None)
        pixels = feats.PixelExtractor(real.shape[-1]).features(real)
        _real_cache[key] = (extractor.features(real), classes, pixels)
    return _real_cache[key]


def score_images(fake: np.ndarray, real: np.ndarray, extractor: feats.Extractor, *,
                 kid_subsets: int = KID_SUBSETS, kid_subset_size: int = KID_SUBSET_SIZE,
                 k: int = PR_K) -> dict[str, Any]:
    """All metrics of `fake` against `real`, both uint8 (N, S, S, C), under `extractor`.

    KID uses kid_subsets subsets of min(kid_subset_size, half the smaller set).
    Returns fid, kid, kid_std, precision, recall, diversity (feature space), pixel_diversity
    (16x16 thumbnails; needs no extractor), coverage (classes hit, KL(data || samples) under
    the extractor's classifier, computed on its predictions for both sets; None without a
    classifier), n, n_real and the extractor's name, hash and dim.
    """
    if len(fake) < 2 or len(real) < 2:
        raise CarganError(f"need at least 2 generated and 2 real images (got {len(fake)}, "
                          f"{len(real)})")
    real_feats, real_classes, real_pixels = _real_features(extractor, real)
    fake_feats = extractor.features(fake)
    # subsets of at most half the smaller set: with subsets as big as the sets, every subset
    # is the whole set and the std says nothing (the mean is unbiased at any subset size)
    kid_subset_size = min(kid_subset_size, max(2, min(len(fake), len(real)) // 2))
    kid_mean, kid_std = metrics.kid(fake_feats, real_feats, kid_subsets, kid_subset_size)
    k = min(k, len(fake) - 1, len(real) - 1)
    precision, recall = metrics.precision_recall(real_feats, fake_feats, k)
    fake_pixels = feats.PixelExtractor(fake.shape[-1]).features(fake)
    coverage = None
    if real_classes is not None:
        fake_classes = extractor.predict_labels(fake)[extractor.class_head]
        coverage = metrics.mode_coverage(fake_classes, real_classes, len(extractor.class_names))
        coverage.update(head=extractor.class_head, class_names=list(extractor.class_names))
    return {
        "fid": metrics.frechet_distance(fake_feats, real_feats),
        "kid": kid_mean, "kid_std": kid_std,
        "precision": precision, "recall": recall,
        "diversity": metrics.diversity_ratio(fake_feats, real_feats),
        "pixel_diversity": metrics.diversity_ratio(fake_pixels, real_pixels),
        "coverage": coverage,
        "n": len(fake), "n_real": len(real),
        **extractor.describe(),
    }


def evaluate_generator(generator, real_images: np.ndarray, extractor: feats.Extractor,
                       n: int | None = None, *, seed: int = EVAL_SEED,
                       paths: RunPaths | None = None, epoch: int | None = None,
                       step: int | None = None, **score_kwargs: Any) -> dict[str, Any]:
    """Score `n` samples of a Keras generator (default: as many as real images).

    The samples come from seed_to_latent(seed, n, latent_dim). real_images: uint8
    (N, S, S, C) at the generator's size. With `paths`, a row goes to paths.metrics
    (metrics.csv) tagged with epoch and step. Returns score_images' dict plus "seconds".
    """
    start = time.perf_counter()
    n = n or len(real_images)
    fake = generate_images(generator, seed_to_latent(seed, n, latent_dim_of(generator)))
    if fake.shape[1:] != real_images.shape[1:]:
        raise CarganError(f"the generator makes {'x'.join(map(str, fake.shape[1:]))} images, "
                          f"the real set is {'x'.join(map(str, real_images.shape[1:]))}")
    result = score_images(fake, real_images, extractor, **score_kwargs)
    result["seconds"] = round(time.perf_counter() - start, 2)
    if paths is not None:
        append_metrics_row(paths.metrics, {**result, "epoch": epoch, "step": step})
    return result


# ---- metrics.csv --------------------------------------------------------------------------------

def _csv_row(result: dict[str, Any]) -> dict[str, Any]:
    coverage = result.get("coverage") or {}
    row = {**result, "classes_hit": coverage.get("classes_hit"),
           "n_classes": coverage.get("n_classes"), "coverage_kl": coverage.get("kl")}
    return {k: row.get(k) for k in METRICS_COLUMNS}


def append_metrics_row(path: str | os.PathLike, result: dict[str, Any]) -> None:
    """Append one evaluation to metrics.csv (header written when the file is new)."""
    path = Path(path)
    text = io.csv_text([_csv_row(result)], METRICS_COLUMNS, header=not path.exists())
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)


def _metrics_row(raw: dict[str, str]) -> dict[str, Any]:
    if None in raw or any(raw.get(k) is None for k in METRICS_COLUMNS):
        raise KeyError("a torn last line")
    row: dict[str, Any] = {}
    for key in METRICS_COLUMNS:
        value = raw[key]
        if key in ("features", "features_hash") or value == "":
            row[key] = value or None
        elif key in ("epoch", "step", "n", "classes_hit", "n_classes"):
            row[key] = int(float(value))
        else:
            row[key] = float(value)
    return row


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Rows of metrics.csv: numbers as float (epoch, step, n and counts as int), blanks None."""
    return io.read_csv_rows(path, _metrics_row)


def truncate_metrics(path: str | os.PathLike, step: int) -> None:
    """Keep rows with step <= `step` (a resumed run restarts at its checkpoint's step)."""
    path = Path(path)
    if not path.exists():
        return
    keep = [r for r in read_metrics(path) if r["step"] is None or r["step"] <= step]
    write_text_atomic(path, io.csv_text(keep, METRICS_COLUMNS, header=True))


# ---- choosing the features ------------------------------------------------------------------------

def _data_name(data: str) -> tuple[str, str | None]:
    """("fashion_mnist", "FOLDER") for "fashion_mnist:FOLDER"; (data, None) otherwise."""
    name, sep, rest = data.partition(":")
    return (name, rest or None) if name == "fashion_mnist" else (data, None)


def choose_extractor(requested: str, data: str, image_size: int, channels: int, *,
                     weights: str | os.PathLike | None = None, allow_download: bool = False,
                     log: Callable[[str], None] = print) -> tuple[feats.Extractor, str | None]:
    """(extractor, note) for --features `requested` on `data`.

    requested: domain (the data's own judge: the toycars or fashion_mnist CNN, and for photos
    and other user data the packaged photo judge), photo, inception, pixels, or an extractor
    name. When the requested features cannot be had (no Inception weights are present and no
    download is allowed), `log` says so and the pixel features are used instead; `note` (also
    in metrics.json) explains.
    """
    name, data_path = _data_name(data)
    reasons = []
    if requested == "domain":
        domain = feats.domain_name_for(name)
        if domain is not None:
            kwargs = {"data_path": data_path} if data_path else {}
            return feats.get_extractor(domain, image_size, channels, **kwargs), None
        # photos and any other user data: the packaged photo judge, which works offline
        try:
            return feats.get_extractor("photo"), PHOTO_NOTE
        except CarganError as err:
            reasons += [f"no domain extractor for data {data!r} (there are ones for "
                        f"{' and '.join(feats.DOMAIN_EXTRACTORS)})", str(err)]
        found = feats.find_inception_weights(weights)
        if found is not None and found.is_file():
            reasons.append(f"Inception weights are at {found}: pass --features inception to "
                           "use them")
        else:
            reasons.append(feats.inception_weights_missing_message())
    elif requested == "inception":
        try:
            return feats.get_extractor("inception", weights=weights,
                                       allow_download=allow_download), None
        except CarganError as err:
            if weights is not None:
                raise  # an explicit file that does not load is an error, not a fallback
            reasons.append(str(err))
    elif requested in feats.EXTRACTOR_NAMES:
        kwargs = {"data_path": data_path} if requested == "fashion_mnist" and data_path else {}
        extractor = feats.get_extractor(requested, image_size, channels, **kwargs)
        return extractor, PIXEL_NOTE if requested == "pixels" else None
    else:
        raise CarganError(f"--features {requested!r}: use domain, inception, pixels, or one of "
                          f"{', '.join(feats.EXTRACTOR_NAMES)}")
    note = "; ".join(reasons) + f". Using {PIXEL_NOTE}"
    log(f"note: {note}")
    return feats.PixelExtractor(channels), note


# ---- the evaluate command ----------------------------------------------------------------------------

def _run_folder_of(generator_path: Path) -> Path | None:
    """The run folder a generator file belongs to (it has config.json beside it), if any."""
    folder = generator_path.parent
    return folder if RunPaths(folder).config.exists() else None


def evaluate_run(run_or_generator: str | os.PathLike, *, features: str = "domain",
                 n: int = 5000, data: str | None = None, floor: bool = False,
                 weights: str | os.PathLike | None = None, allow_download: bool = False,
                 out: str | os.PathLike | None = None, seed: int = EVAL_SEED,
                 memorisation: bool = True, held_out: str | os.PathLike | None = None,
                 log: Callable[[str], None] = print) -> tuple[dict[str, Any], Path]:
    """Evaluate a run folder (or generator .keras file); write and return metrics.json.

    data: the real images' source (default: the run's config.data; required for a bare
    .keras file outside a run folder). floor: also score a second, disjoint real set against
    the first (the real-vs-real floor: the best any generator can get at this n).
    memorisation: also check whether samples copy the training images (see memorisation_check;
    held_out: a folder of real images of the same kind the run never trained on).
    metrics.json goes to the run folder (out overrides; a bare file gets <stem>_metrics.json).
    """
    if n < 2:
        raise CarganError(f"--n {n}: use at least 2 (5000 for numbers that compare with others)")
    start = time.perf_counter()
    generator_path = resolve_generator_path(run_or_generator)
    run_dir = _run_folder_of(generator_path)
    cfg = RunConfig.from_json(RunPaths(run_dir).config.read_text()) if run_dir else None
    data = data or (cfg.data if cfg else None)
    if data is None:
        raise CarganError(f"{generator_path} is not in a run folder: pass --data (toycars, "
                          "fashion_mnist or an image folder) to say what real images to use")
    generator = load_generator(generator_path)
    _, size, _, channels = (int(d) if d else 0 for d in generator.output_shape)
    extractor, note = choose_extractor(features, data, size, channels, weights=weights,
                                       allow_download=allow_download, log=log)
    seed_data = cfg.seed if cfg else 0
    real, real_set = real_images_for(data, size, channels, n, seed=seed_data)
    log(f"scoring {n} samples of {generator_path} against {real_set} with "
        f"{extractor.name} features")
    fake = generate_images(generator, seed_to_latent(seed, n, latent_dim_of(generator)))
    result = score_images(fake, real, extractor)
    floor_result = None
    if floor:
        other, other_set = real_images_for(data, size, channels, n, seed=seed_data, part=1)
        if len(other) < 2:
            log(f"note: no real-vs-real floor: {data} has no images left beside the {len(real)} "
                "used (evaluate with a smaller --n)")
        else:
            floor_result = score_images(other, real[:len(other)], extractor)
            floor_result = {k: floor_result[k] for k in
                            ("fid", "kid", "kid_std", "precision", "recall", "diversity", "n")}
            floor_result["real_set"] = other_set
    result.update(
        features_requested=features, features_note=note, generator=str(generator_path),
        data=data, real_set=real_set, image_size=size, channels=channels, latent_seed=seed,
        floor=floor_result, created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if out is not None:
        path = Path(out)
    elif run_dir is not None and generator_path == RunPaths(run_dir).generator:
        path = run_dir / "metrics.json"
    else:
        path = generator_path.with_name(f"{generator_path.stem}_metrics.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    if memorisation:
        train = (load_images(cfg.data, size, channels, n=cfg.data_n, seed=cfg.seed,
                             progress=False) if cfg else load_images(data, size, channels,
                                                                     progress=False))
        if held_out is not None:
            reference = load_images(str(held_out), size, channels, progress=False)
        elif data == "toycars":
            reference = real  # the held-out toycars draw, never trained on
        else:
            reference = None
        picture = path.with_name("memorisation.png" if path.name == "metrics.json"
                                 else f"{path.stem}_memorisation.png")
        result["memorisation"] = memorisation_check(fake, train, extractor, reference, picture)
    result["seconds"] = round(time.perf_counter() - start, 2)
    for key in METRICS_JSON_FIELDS:
        result.setdefault(key, None)
    write_json_atomic(path, result)
    return result, path


def memorisation_check(fake: np.ndarray, train: np.ndarray, extractor: feats.Extractor,
                       held_out: np.ndarray | None = None,
                       picture: str | os.PathLike | None = None,
                       pairs: int = 8) -> dict[str, Any]:
    """Do the samples copy training images? (metrics.memorisation in `extractor`'s features)

    fake, train, held_out: uint8 (N, S, S, C). held_out: real images of the same kind the
    generator never saw (None: each training image's nearest other training image stands in).
    picture: where to save the `pairs` samples closest to a training image, each above its
    nearest training image. Returns ratio (about 1: no copying; far below 1: copying), the
    medians, the reference used and the picture's path.
    """
    found = metrics.memorisation(extractor.features(fake), extractor.features(train),
                                 None if held_out is None else extractor.features(held_out))
    closest = np.argsort(found["distances"])[:pairs]
    out = {k: found[k] for k in ("ratio", "median_fake", "median_reference", "reference",
                                 "n_reference")}
    out.update(n_train=int(len(train)), picture=None)
    if picture is not None and len(closest):
        grid = np.concatenate([fake[closest], train[found["nearest"][closest]]])
        out["picture"] = str(viz.save_grid(picture, grid, cols=len(closest)))
    return out


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A short human summary of a metrics dict (the evaluate command prints it)."""
    lines = [f"features {result['features']} ({str(result['features_hash'])[:12]}), "
             f"n {result['n']} vs {result['n_real']} real",
             f"FID {result['fid']:.3f}   KID {result['kid']:.5f} ± {result['kid_std']:.5f}",
             f"precision {result['precision']:.3f}   recall {result['recall']:.3f}   "
             f"diversity {result['diversity']:.3f} (pixels {result['pixel_diversity']:.3f})"]
    coverage = result.get("coverage")
    if coverage:
        lines.append(f"coverage: {coverage['classes_hit']}/{coverage['n_classes']} "
                     f"{coverage['head']} classes hit, KL(data || samples) {coverage['kl']:.4f}")
    floor = result.get("floor")
    if floor:
        lines.append(f"real-vs-real floor (n {floor['n']}): FID {floor['fid']:.3f}   "
                     f"KID {floor['kid']:.5f}   precision {floor['precision']:.3f}   "
                     f"recall {floor['recall']:.3f}")
    memo = result.get("memorisation")
    if memo:
        against = ("held-out images" if memo["reference"] == "held-out"
                   else "training images to each other (no held-out set given)")
        verdict = ("samples sit closer to training images than new images do: it may be "
                   "copying; look at the picture" if memo["ratio"] < COPYING_RATIO
                   else "no sign of copying")
        lines.append(f"memorisation: ratio {memo['ratio']:.3f} (samples' distance to the "
                     f"nearest of {memo['n_train']} training images vs {against}; ~1 = no "
                     f"copying, far below 1 = copying): {verdict}")
        if memo.get("picture"):
            lines.append(f"  closest samples over their nearest training images: {memo['picture']}")
    return lines


def read_baseline(baseline_path: str | os.PathLike) -> tuple[dict[str, Any], float]:
    """(a reference run's metrics.json, its FID); a file that is not one is a CarganError."""
    path = Path(baseline_path)
    try:
        base = json.loads(path.read_text(encoding="utf-8"))
        return base, float(base["fid"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise CarganError(f"--baseline {path}: not a readable metrics.json with a fid ({err}); "
                          "make one with `python -m cargan_tf evaluate RUN --out FILE`") from err


def baseline_lines(result: dict[str, Any], baseline_path: str | os.PathLike) -> list[str]:
    """Lines comparing `result` with a reference run's metrics.json (e.g. the baseline recipe
    trained the same way: benchmarks/quickstart_baseline.py writes one)."""
    path = Path(baseline_path)
    base, fid = read_baseline(path)
    ref = base.get("reference", {})
    lines = [f"baseline {ref.get('name', path.stem)}: FID {fid:.3f}   precision "
             f"{base.get('precision', float('nan')):.3f}   recall "
             f"{base.get('recall', float('nan')):.3f}"
             + (f"   ({ref['note']})" if ref.get("note") else "")]
    if base.get("features_hash") != result.get("features_hash") or base.get("n") != result.get("n"):
        lines.append("  not comparable: the baseline was scored with other features or another "
                     f"--n ({base.get('features')}, n {base.get('n')})")
    else:
        lines.append(f"  this run's FID is {result['fid'] / fid:.2f}x the baseline's "
                     "(lower is better)")
    return lines


class RunEvaluator:
    """What the training loop holds: the extractor and real set, made once, scored each time.

    evaluator = RunEvaluator(cfg, paths, n=2000)
    row = evaluator(generator, epoch=epoch, step=step)  # appends to metrics.csv, returns dict
    """

    def __init__(self, cfg, paths: RunPaths, n: int = 2000, features: str = "domain",
                 log: Callable[[str], None] = print):
        self.paths, self.n = paths, n
        self.extractor, self.note = choose_extractor(features, cfg.data, cfg.image_size,
                                                     cfg.channels, log=log)
        self.real, self.real_set = real_images_for(cfg.data, cfg.image_size, cfg.channels, n,
                                                   seed=cfg.seed)

    def __call__(self, generator, epoch: int | None = None,
                 step: int | None = None) -> dict[str, Any]:
        return evaluate_generator(generator, self.real, self.extractor, self.n,
                                  paths=self.paths, epoch=epoch, step=step)


__all__ = [
    "baseline_lines",
    "evaluate_generator", "score_images", "evaluate_run", "real_images_for", "choose_extractor",
    "RunEvaluator", "append_metrics_row", "read_metrics", "truncate_metrics", "summary_lines",
    "METRICS_COLUMNS", "METRICS_JSON_FIELDS", "EVAL_SEED",
]
