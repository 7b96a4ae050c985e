"""Export is atomic: a failure part-way through writing any format (a full disk, TensorFlow's
ResourceExhaustedError from SaveV2, a failed rename) leaves the previous export loadable and
export_report.json true; a SavedModel swap interrupted between its two renames is repaired."""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cargan_tf import export as ex
from cargan_tf.errors import CarganError, RunFolderError

ALL = ("keras", "savedmodel", "litert_float16", "litert_dynamic_range")
DEAD_PID = 99_999_999  # above any pid_max: no process has it


@pytest.fixture(scope="module")
def generators(tmp_path_factory) -> tuple[Path, Path]:
    """Two untrained tiny generators with different weights: the old and the new export."""
    import keras

    from cargan_tf import models

    from conftest import tiny_config

    folder = tmp_path_factory.mktemp("generators")
    paths = []
    for seed in (0, 1):
        keras.utils.set_random_seed(seed)
        path = folder / f"g{seed}.keras"
        models.build_generator(tiny_config()).save(path)
        paths.append(path)
    return paths[0], paths[1]


@pytest.fixture(scope="module")
def old_export(generators, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("old_export") / "export"
    report = ex.export(generators[0], out, verbose=False)
    assert report["ok"] and set(report["exports"]) == set(ALL)
    return out


@pytest.fixture
def out(old_export, tmp_path) -> Path:
    """A fresh copy of the old export to fail a re-export into."""
    return Path(shutil.copytree(old_export, tmp_path / "export"))


def fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every file under the folder, by relative path (hidden files included)."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_report_is_true(out: Path, generator: Path) -> dict:
    """Every export the report names is there, loads, and makes `generator`'s images."""
    from cargan_tf.generate import images_for_seed, load_generator

    report = json.loads((out / ex.REPORT_FILE).read_text())
    reference = images_for_seed(load_generator(generator), 7, 4)
    for name, entry in report["exports"].items():
        model = ex.load_serving_model(out / entry["path"])
        diff = np.abs(model.images_for_seed(7, 4).astype(int) - reference.astype(int))
        assert entry["ok"] == bool(diff.max() <= ex.TOLERANCES[name]["max_abs_diff"]), name
    return report


def part_then(error: BaseException, writer):
    """A writer that writes part of its output (the real writer's, cut short), then fails."""
    def broken(*args):
        path = args[-1]
        writer(*args)
        if path.is_dir():  # a SavedModel: lose its variables, as a SaveV2 cut short would
            shutil.rmtree(path / "variables")
        else:
            path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        raise error
    return broken


def disk_full() -> OSError:
    return OSError(errno.ENOSPC, "No space left on device")


def resource_exhausted():
    import tensorflow as tf

    return tf.errors.ResourceExhaustedError(
        None, None, "/x/variables/variables_temp/part-00000-of-00001.data-00000-of-00001.tempstate"
                    "; No space left on device [Op:SaveV2]")


FAULTS = {
    "keras file, disk full": ("_write_keras", disk_full),
    "SavedModel, ResourceExhaustedError in SaveV2": ("_write_savedmodel", resource_exhausted),
    "second .tflite, disk full": ("_write_litert", disk_full),
}


@pytest.mark.parametrize("case", sorted(FAULTS))
def test_a_failed_reexport_leaves_the_previous_export_and_a_true_report(
        case, out, generators, monkeypatch):
    before = fingerprint(out)
    writer_name, make_error = FAULTS[case]
    real = getattr(ex, writer_name)
    if writer_name == "_write_litert":  # the float16 file is written, the dynamic-range one fails
        def writer(savedmodel, variant, path):
            if variant == "float16":
                return real(savedmodel, variant, path)
            return part_then(make_error(), real)(savedmodel, variant, path)
    else:
        writer = part_then(make_error(), real)
    monkeypatch.setattr(ex, writer_name, writer)

    with pytest.raises(RunFolderError) as err:
        ex.export(generators[1], out, verbose=False)
    message = str(err.value)
    assert "\n" not in message and "unchanged" in message and "free space" in message
    assert isinstance(err.value, CarganError)  # the CLI prints it as one line, exit code 2
    assert fingerprint(out) == before  # not a byte changed, no staged file left behind
    report = assert_report_is_true(out, generators[0])
    assert report["ok"] and set(report["exports"]) == set(ALL)


def test_a_report_that_cannot_be_updated_replaces_nothing(out, generators, monkeypatch):
    from cargan_tf import runs

    before = fingerprint(out)

    def full(path, obj):
        raise RunFolderError(f"could not write {path}") from disk_full()
    monkeypatch.setattr(runs, "write_json_atomic", full)
    with pytest.raises(RunFolderError, match="No space left on device.*unchanged"):
        ex.export(generators[1], out, ("keras", "litert"), verbose=False)
    assert fingerprint(out) == before


def test_a_rename_failing_midway_leaves_a_report_naming_only_untouched_files(
        out, generators, monkeypatch):
    real, calls = ex._swap_into_place, []

    def second_fails(staged, final):
        calls.append(final.name)
        if len(calls) == 2:
            raise disk_full()
        real(staged, final)
    monkeypatch.setattr(ex, "_swap_into_place", second_fails)
    with pytest.raises(RunFolderError, match="keras were replaced"):
        ex.export(generators[1], out, verbose=False)
    report = json.loads((out / ex.REPORT_FILE).read_text())
    # the new serving.keras is in place; the report no longer names any file being replaced,
    # and what it still names (nothing here: all four were being replaced) is the old export
    assert report["replacing"] == sorted(ALL) and report["exports"] == {} and not report["ok"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    monkeypatch.undo()
    report = ex.export(generators[1], out, verbose=False)  # run again: all new, all true
    assert report["ok"] and "replacing" not in report
    assert_report_is_true(out, generators[1])


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two renames"])
def test_a_reexport_replaces_the_savedmodel_folder_whole(exchange, out, generators, monkeypatch):
    if not exchange:
        monkeypatch.setattr(ex, "_exchange", lambda a, b: False)
    report = ex.export(generators[1], out, ("savedmodel",), verbose=False)
    assert report["exports"]["savedmodel"]["ok"]
    # the other exports are still generator 0's: reported stale, not ok
    assert report["exports"]["keras"].get("stale") and report["ok"] is False
    assert_report_is_true(out, generators[1])
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_swap_killed_between_its_renames_is_repaired_by_the_next_export(
        out, generators):
    # as a kill between the two renames leaves it: the old folder aside, no folder in place
    aside = out / f".{ex.SAVEDMODEL_DIR}.old-{DEAD_PID}-0abc"
    (out / ex.SAVEDMODEL_DIR).rename(aside)
    leftover = out / f".serving_float16.tmp-{DEAD_PID}-0def.tflite"  # a killed writer's file
    leftover.write_bytes(b"half a flatbuffer")
    report = ex.export(generators[0], out, ("keras",), verbose=False)
    assert report["ok"] and report["exports"]["savedmodel"]["ok"]
    assert (out / ex.SAVEDMODEL_DIR / "saved_model.pb").exists()
    assert not aside.exists() and not leftover.exists()
    assert_report_is_true(out, generators[0])


def test_a_live_writers_staged_files_are_kept(out, generators):
    import os

    mine = out / f".serving.tmp-{os.getppid()}-0abc.keras"  # a live process's (our parent)
    mine.write_bytes(b"being written")
    ex.export(generators[0], out, ("keras",), verbose=False)
    assert mine.read_bytes() == b"being written"
