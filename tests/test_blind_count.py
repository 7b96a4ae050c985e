"""benchmarks/blind_count.py: shuffled sheets of grid tiles, and a tally that unshuffles them."""

import json

import cv2
import numpy as np
import pytest

from cargan_tf.viz import image_grid, save_png

from conftest import load_benchmark

SIDE = 16


@pytest.fixture(scope="module")
def blind_count():
    return load_benchmark("blind_count")


def coded_grid(channel: int) -> np.ndarray:
    """A 6x6 RGB grid whose tile k is flat: 20 + 6k in `channel` and in green, 0 in the third."""
    tiles = np.zeros((36, SIDE, SIDE, 3), np.uint8)
    for k in range(36):
        tiles[k, ..., channel] = tiles[k, ..., 1] = 20 + 6 * k
    return image_grid(tiles, cols=6)


def read_cell(sheet: np.ndarray, k: int, blind_count) -> tuple[str, int]:
    """Which grid and tile a sheet's cell k shows, read back from its colour code."""
    y, x = (v + blind_count.TILE_SIDE // 2 for v in blind_count.tile_origin(k))
    blue, green, _ = (int(v) for v in sheet[y, x])  # cv2 reads BGR
    return ("bluish" if blue else "reddish"), (green - 20) // 6


def test_the_key_names_the_grid_and_tile_each_numbered_cell_shows(blind_count, tmp_path):
    bluish = save_png(tmp_path / "bluish.png", coded_grid(2))  # RGB: blue and green
    # the reddish grid as one panel of a wider picture, below a 5-pixel caption strip
    panel = np.full((5 + 110, 130, 3), 255, np.uint8)
    panel[5:5 + 110, 10:10 + 110] = coded_grid(0)
    wide = save_png(tmp_path / "wide.png", panel)
    record = blind_count.make_sheets([f"bluish={bluish}", f"reddish={wide}@10,5,110"],
                                     tmp_path / "blind", seed=3)
    sheets = [cv2.imread(str(tmp_path / "blind" / f"sheet{i}.png")) for i in (0, 1)]
    seen = set()
    for label, tile in record["tiles"].items():
        grid, position = read_cell(sheets[int(label) // 36], int(label) % 36, blind_count)
        assert (grid, position) == (tile["grid"], tile["row"] * 6 + tile["col"])
        seen.add((grid, position))
    assert len(seen) == 72
    order = [record["tiles"][str(k)]["grid"] for k in range(72)]
    assert order[:36] != ["bluish"] * 36  # shuffled across grids, not one grid per sheet
    assert json.loads((tmp_path / "blind" / "key.json").read_text()) == record


def test_the_tally_counts_each_grids_yes_verdicts(blind_count, tmp_path):
    grid = save_png(tmp_path / "g.png", coded_grid(0))
    other = save_png(tmp_path / "h.png", coded_grid(2))
    record = blind_count.make_sheets([f"g={grid}", f"h={other}"], tmp_path / "blind", seed=1)
    # judge yes exactly the tiles of g's first row and h's last two rows
    def yes(t):
        return (t["grid"] == "g" and t["row"] == 0) or (t["grid"] == "h" and t["row"] >= 4)

    verdicts = "\n".join(f"{label} {'Y' if yes(t) else 'n'}" for label, t in record["tiles"].items())
    (tmp_path / "v.txt").write_text("# a comment line\n" + verdicts + "\n")
    result = blind_count.tally(tmp_path / "blind" / "key.json", tmp_path / "v.txt",
                               tmp_path / "out" / "tally.json")
    assert result["counts"] == {"g": {"yes": 6, "tiles": 36}, "h": {"yes": 12, "tiles": 36}}
    assert json.loads((tmp_path / "out" / "tally.json").read_text())["counts"] == result["counts"]


def test_bad_verdicts_and_grids_say_what_is_wrong(blind_count, tmp_path):
    grid = save_png(tmp_path / "g.png", coded_grid(0))
    blind_count.make_sheets([f"g={grid}"], tmp_path / "blind", seed=0)
    key = tmp_path / "blind" / "key.json"
    cases = {"0 Y\n1 maybe\n": r"v.txt:2: expected 'TILE Y' or 'TILE N', got '1 maybe'",
             "0 Y\n0 N\n": "tile 0 judged twice",
             "0 Y\n99 N\n": r"missing \[1, 2, 3, .*not on the sheets \[99\]"}
    for text, message in cases.items():
        (tmp_path / "v.txt").write_text(text)
        with pytest.raises(SystemExit, match=message):
            blind_count.tally(key, tmp_path / "v.txt")
    with pytest.raises(SystemExit, match="expected NAME=IMAGE or NAME=IMAGE@X,Y,SIZE"):
        blind_count.make_sheets([str(grid)], tmp_path / "b2", seed=0)
    with pytest.raises(SystemExit, match=r"the box 50,0,110 does not fit in .*g.png \(110x110\)"):
        blind_count.make_sheets([f"g={grid}@50,0,110"], tmp_path / "b2", seed=0)
    with pytest.raises(SystemExit, match="cannot read .*missing.png as an image"):
        blind_count.make_sheets([f"g={tmp_path / 'missing.png'}"], tmp_path / "b2", seed=0)
