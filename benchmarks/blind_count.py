"""Count a grid's cars by eye without knowing which run drew them: shuffled sheets, then a tally.

    # 1. cut every grid into its tiles, shuffle them all together, number them on sheets:
    python benchmarks/blind_count.py sheets --out BLIND --seed 20261206 \
        --grid photo64cpu_s0=docs/images/photo64cpu_ada_grids.jpg@0,27,384 \
        --grid ada_s0=docs/images/photo64cpu_ada_grids.jpg@392,27,384 ...
    # 2. look at BLIND/sheet*.png (not at BLIND/key.json) and write one line per tile:
    #    "17 Y" (a car body with wheels and windows) or "17 N" (torn, smeared, a blob)
    # 3. unshuffle the verdicts and count per grid:
    python benchmarks/blind_count.py tally --key BLIND/key.json --verdicts VERDICTS.txt --out OUT.json
    # 4. with a second counter (their own sheets and seed, or the same sheets), how far they agree:
    python benchmarks/blind_count.py agree --counter me=OUT.json --counter other=OUT2.json

Counting a grid by eye while knowing which run made it invites the counter to see what they
expect; here every tile of every grid is shown in one random order, so a verdict is given
before its source is known. A grid is NAME=IMAGE (a `save_grid` picture: rows x cols tiles with
a pad around each) or NAME=IMAGE@X,Y,SIZE (the square grid at X,Y of a larger picture, such as
one panel of a side-by-side comparison).

`agree` compares counters tile by tile: a tile is its grid's picture (IMAGE@X,Y,SIZE as given to
`sheets`) and its row and column, so counts made on differently shuffled sheets, under other grid
names, or spread over several tallies (NAME=A.json,B.json; a results file that holds tallies
counts as all of them) still line up. It prints each grid's
count per counter, and per pair of counters the share of tiles judged alike and Cohen's kappa
(agreement beyond what two counters with those yes-rates would reach by chance).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from pathlib import Path

SHEET_COLS = 6
TILE_SIDE = 120  # each tile enlarged to this on a sheet: a 64x64 tile is hard to judge at 1x
CELL = TILE_SIDE + 30  # a tile and its number above it, with a gap


def tile_origin(k: int) -> tuple[int, int]:
    """(y, x) of the top-left pixel of cell k's tile on its sheet (its number sits above)."""
    return 10 + (k // SHEET_COLS) * CELL + 20, 10 + (k % SHEET_COLS) * CELL


def parse_grid(spec: str) -> tuple[str, Path, tuple[int, int, int] | None]:
    """NAME=IMAGE or NAME=IMAGE@X,Y,SIZE."""
    match = re.fullmatch(r"([^=]+)=(.+?)(?:@(\d+),(\d+),(\d+))?", spec)
    if not match:
        raise SystemExit(f"--grid {spec!r}: expected NAME=IMAGE or NAME=IMAGE@X,Y,SIZE")
    name, path, *box = match.groups()
    return name, Path(path), (tuple(int(v) for v in box) if box[0] is not None else None)


def cut_tiles(image, rows: int, cols: int, pad: int):
    """The rows x cols tiles of a grid picture whose tiles are separated by about `pad` pixels."""
    height, width = image.shape[:2]
    pitch_y, pitch_x = (height - pad) / rows, (width - pad) / cols
    inner_y, inner_x = int(pitch_y - pad), int(pitch_x - pad)
    return [image[round(pad + r * pitch_y):round(pad + r * pitch_y) + inner_y,
                  round(pad + c * pitch_x):round(pad + c * pitch_x) + inner_x]
            for r in range(rows) for c in range(cols)]


def make_sheets(grids: list[str], out: Path, seed: int, rows: int = 6, cols: int = 6,
                pad: int = 2) -> dict:
    import cv2
    import numpy as np

    tiles = []
    for spec in grids:
        name, path, box = parse_grid(spec)
        image = cv2.imread(str(path))
        if image is None:
            raise SystemExit(f"--grid {spec!r}: cannot read {path} as an image")
        if box:
            x, y, size = box
            if y + size > image.shape[0] or x + size > image.shape[1]:
                raise SystemExit(f"--grid {spec!r}: the box {x},{y},{size} does not fit in "
                                 f"{path} ({image.shape[1]}x{image.shape[0]})")
            image = image[y:y + size, x:x + size]
        tiles += [(name, k, tile) for k, tile in enumerate(cut_tiles(image, rows, cols, pad))]
    order = list(range(len(tiles)))
    random.Random(seed).shuffle(order)
    out.mkdir(parents=True, exist_ok=True)
    key, per_sheet = {}, SHEET_COLS * SHEET_COLS
    for first in range(0, len(order), per_sheet):
        sheet = np.full((SHEET_COLS * CELL + 10, SHEET_COLS * CELL + 10, 3), 255, np.uint8)
        for k, index in enumerate(order[first:first + per_sheet]):
            name, position, tile = tiles[index]
            label = first + k
            key[str(label)] = {"grid": name, "row": position // cols, "col": position % cols}
            y, x = tile_origin(k)
            sheet[y:y + TILE_SIDE, x:x + TILE_SIDE] = cv2.resize(
                tile, (TILE_SIDE, TILE_SIDE), interpolation=cv2.INTER_CUBIC)
            cv2.putText(sheet, str(label), (x, y - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
        cv2.imwrite(str(out / f"sheet{first // per_sheet}.png"), sheet)
    record = {"seed": seed, "grids": grids, "tiles": key}
    (out / "key.json").write_text(json.dumps(record, indent=1))
    print(f"{len(tiles)} tiles from {len(grids)} grids on {-(-len(tiles) // per_sheet)} sheets "
          f"in {out}; judge the sheets before opening key.json")
    return record


def read_verdicts(path: Path, labels: set[str]) -> dict[str, bool]:
    verdicts = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#")[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"(\d+)\s+([YyNn])", line)
        if not match:
            raise SystemExit(f"{path}:{number}: expected 'TILE Y' or 'TILE N', got {line!r}")
        label, verdict = match.groups()
        if label in verdicts:
            raise SystemExit(f"{path}:{number}: tile {label} judged twice")
        verdicts[label] = verdict.upper() == "Y"
    missing, unknown = labels - set(verdicts), set(verdicts) - labels
    if missing or unknown:
        raise SystemExit(f"{path}: every tile needs one verdict; missing "
                         f"{sorted(map(int, missing))[:10]}, not on the sheets "
                         f"{sorted(map(int, unknown))[:10]}")
    return verdicts


def tally(key_path: Path, verdicts_path: Path, out: Path | None = None) -> dict:
    record = json.loads(key_path.read_text())
    verdicts = read_verdicts(verdicts_path, set(record["tiles"]))
    yes, total = Counter(), Counter()
    for label, tile in record["tiles"].items():
        total[tile["grid"]] += 1
        yes[tile["grid"]] += verdicts[label]
    counts = {name: {"yes": yes[name], "tiles": total[name]} for name in total}
    for name, count in counts.items():
        print(f"{name}: {count['yes']} of {count['tiles']}")
    result = {**record, "counts": counts,
              "tiles": {label: {**tile, "yes": verdicts[label]}
                        for label, tile in record["tiles"].items()}}
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    return result


def tallies_in(value) -> list[dict]:
    """The tallies in a tally file or in a results file that holds some (under any keys)."""
    if isinstance(value, dict):
        if {"grids", "tiles", "counts"} <= set(value):
            return [value]
        return [t for v in value.values() for t in tallies_in(v)]
    if isinstance(value, list):
        return [t for v in value for t in tallies_in(v)]
    return []


def tile_verdicts(tally_paths: list[Path]) -> dict[tuple, tuple[str, bool]]:
    """(image, box, row, col) -> (grid name, yes) over one counter's tallies."""
    verdicts = {}
    records = [(path, record) for path in tally_paths
               for record in tallies_in(json.loads(path.read_text()))]
    for path in tally_paths:
        if not any(p == path for p, _ in records):
            raise SystemExit(f"{path}: holds no tally (run 'tally' on the key and the verdicts "
                             f"first)")
    for _, record in records:
        sources = {}
        for spec in record["grids"]:
            name, image, box = parse_grid(spec)
            sources[name] = (str(image), box)
        for tile in record["tiles"].values():
            verdicts[(*sources[tile["grid"]], tile["row"], tile["col"])] = (tile["grid"],
                                                                            tile["yes"])
    return verdicts


def cohen_kappa(a: list[bool], b: list[bool]) -> float:
    """Agreement beyond chance: 1 when identical, 0 when no better than independent guesses."""
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b)) / n
    p_a, p_b = sum(a) / n, sum(b) / n
    chance = p_a * p_b + (1 - p_a) * (1 - p_b)
    return 1.0 if chance == 1 else (observed - chance) / (1 - chance)


def grid_label(source: tuple, members: list[tuple], judged: dict, pictures: dict) -> str:
    """The grid's name from the first counter whose name for it names no other grid, else its
    picture (IMAGE or IMAGE@X,Y,SIZE). pictures: counter -> name -> the pictures it names."""
    for counter, verdicts in judged.items():
        name = verdicts[members[0]][0]
        if pictures[counter][name] == {source}:
            return name
    image, box = source
    return image + (f"@{','.join(map(str, box))}" if box else "")


def agree(counters: list[str], out: Path | None = None) -> dict:
    """Per grid, each counter's count; per pair, the share of tiles judged alike and kappa."""
    judged = {}
    for spec in counters:
        name, _, paths = spec.partition("=")
        if not name or not paths:
            raise SystemExit(f"--counter {spec!r}: expected NAME=TALLY.json[,TALLY2.json...]")
        judged[name] = tile_verdicts([Path(p) for p in paths.split(",")])
    if len(judged) < 2:
        raise SystemExit("agree needs two --counter options or more")
    first, *others = judged
    shared = set(judged[first]).intersection(*(set(judged[o]) for o in others))
    if not shared:
        raise SystemExit("the counters judged no tile in common (same grid images and boxes?)")
    tiles = sorted(shared, key=lambda t: (t[0], t[1] or (), t[2], t[3]))
    by_source = {}  # a grid is its picture: tallies may give two grids one name
    for tile in tiles:
        by_source.setdefault(tile[:2], []).append(tile)
    pictures = {counter: {} for counter in judged}
    for counter, verdicts in judged.items():
        for tile, (name, _) in verdicts.items():
            pictures[counter].setdefault(name, set()).add(tile[:2])
    grids = {grid_label(source, members, judged, pictures): members
             for source, members in by_source.items()}
    counts = {grid: {name: sum(judged[name][t][1] for t in members) for name in judged}
              | {"tiles": len(members)} for grid, members in grids.items()}
    pairs = {}
    names = list(judged)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            va, vb = [judged[a][t][1] for t in tiles], [judged[b][t][1] for t in tiles]
            pairs[f"{a} vs {b}"] = {"tiles": len(tiles),
                                    "agreement": sum(x == y for x, y in zip(va, vb)) / len(tiles),
                                    "kappa": cohen_kappa(va, vb)}
    width = max(len(g) for g in counts)
    print(f"{'grid':<{width}}  " + "  ".join(f"{n:>8}" for n in names) + "  tiles")
    for grid, row in counts.items():
        print(f"{grid:<{width}}  " + "  ".join(f"{row[n]:>8}" for n in names)
              + f"  {row['tiles']:>5}")
    for pair, row in pairs.items():
        print(f"{pair}: {row['agreement']:.0%} of {row['tiles']} tiles alike, "
              f"kappa {row['kappa']:.2f}")
    result = {"counters": {n: s.partition("=")[2].split(",") for n, s in zip(names, counters)},
              "counts": counts, "pairs": pairs}
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sheets = commands.add_parser("sheets", help="shuffled, numbered sheets of every grid's tiles")
    sheets.add_argument("--grid", action="append", required=True,
                        help="NAME=IMAGE or NAME=IMAGE@X,Y,SIZE (repeatable)")
    sheets.add_argument("--out", type=Path, required=True)
    sheets.add_argument("--seed", type=int, default=0)
    sheets.add_argument("--rows", type=int, default=6)
    sheets.add_argument("--cols", type=int, default=6)
    sheets.add_argument("--pad", type=int, default=2)
    count = commands.add_parser("tally", help="unshuffle the verdicts and count per grid")
    count.add_argument("--key", type=Path, required=True)
    count.add_argument("--verdicts", type=Path, required=True)
    count.add_argument("--out", type=Path)
    both = commands.add_parser("agree", help="how far two or more counters agree, tile by tile")
    both.add_argument("--counter", action="append", required=True,
                      help="NAME=TALLY.json[,TALLY2.json...]: one counter's tallies (repeatable)")
    both.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.command == "sheets":
        make_sheets(args.grid, args.out, args.seed, args.rows, args.cols, args.pad)
    elif args.command == "tally":
        tally(args.key, args.verdicts, args.out)
    else:
        agree(args.counter, args.out)


if __name__ == "__main__":
    sys.exit(main())
