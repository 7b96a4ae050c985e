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


def judge(blind_count, tmp_path, name, grids, seed, yes):
    """Sheets of `grids`, verdicts by yes(grid image's stem, row), tallied: the tally's path."""
    record = blind_count.make_sheets(grids, tmp_path / name, seed=seed)
    stems = {spec.split("=")[0]: spec.split("=")[1] for spec in grids}
    lines = [f"{label} {'Y' if yes(stems[t['grid']], t['row']) else 'N'}"
             for label, t in record["tiles"].items()]
    (tmp_path / f"{name}.txt").write_text("\n".join(lines))
    blind_count.tally(tmp_path / name / "key.json", tmp_path / f"{name}.txt",
                      tmp_path / f"{name}.json")
    return tmp_path / f"{name}.json"


def test_agree_matches_tiles_across_sheets_names_and_tallies(blind_count, tmp_path):
    g = str(save_png(tmp_path / "g.png", coded_grid(0)))
    h = str(save_png(tmp_path / "h.png", coded_grid(2)))
    # A: one sheet set, yes to g's rows 0-2 (18 of 72)
    mine = judge(blind_count, tmp_path, "a", [f"g={g}", f"h={h}"], 1,
                 lambda image, row: image == g and row <= 2)
    # B: other seeds, other names, two tallies; yes to g's rows 0, 1, 5 and h's row 0 (24)
    theirs_g = judge(blind_count, tmp_path, "b1", [f"G={g}"], 5,
                     lambda image, row: row in (0, 1, 5))
    theirs_h = judge(blind_count, tmp_path, "b2", [f"H={h}"], 6, lambda image, row: row == 0)
    result = blind_count.agree([f"A={mine}", f"B={theirs_g},{theirs_h}"], tmp_path / "agree.json")
    assert result["counts"] == {"g": {"A": 18, "B": 18, "tiles": 36},
                                "h": {"A": 0, "B": 6, "tiles": 36}}
    pair = result["pairs"]["A vs B"]
    # alike: g rows 0-1 and 3-4, h rows 1-5 = 54 of 72; chance .25 * 1/3 + .75 * 2/3 = 7/12
    assert pair["tiles"] == 72 and pair["agreement"] == pytest.approx(0.75)
    assert pair["kappa"] == pytest.approx((0.75 - 7 / 12) / (5 / 12))
    assert json.loads((tmp_path / "agree.json").read_text())["pairs"] == result["pairs"]
    x = str(save_png(tmp_path / "x.png", coded_grid(1)))
    elsewhere = judge(blind_count, tmp_path, "c", [f"x={x}"], 2, lambda image, row: True)
    with pytest.raises(SystemExit, match="judged no tile in common"):
        blind_count.agree([f"A={mine}", f"C={elsewhere}"])
    # a results file holding tallies under its own keys is read like the tallies themselves
    nested = tmp_path / "results.json"
    nested.write_text(json.dumps({"g": {"blind_count": json.loads(theirs_g.read_text())},
                                  "h": [{"blind_count": json.loads(theirs_h.read_text())}]}))
    assert blind_count.agree([f"A={mine}", f"B={nested}"])["pairs"] == result["pairs"]
    # two grids one name (two seeds' tallies that both say "ada"): named by a counter that
    # tells them apart, else by their pictures
    for path in (theirs_g, theirs_h):
        text = path.read_text()
        path.write_text(text.replace('"G', '"ada').replace('"H', '"ada'))
    assert set(blind_count.agree([f"B={theirs_g},{theirs_h}", f"A={mine}"])["counts"]) == {"g", "h"}
    assert set(blind_count.agree([f"B={theirs_g},{theirs_h}", f"B2={theirs_g},{theirs_h}"])
               ["counts"]) == {g, h}
    with pytest.raises(SystemExit, match="holds no tally"):
        blind_count.agree([f"A={mine}", f"B={tmp_path / 'b1' / 'key.json'}"])


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
