"""Build notebooks/*.ipynb from their Python sources, byte for byte the same each time (stable cell
ids, no outputs), and README's notebook table with its "Open in Colab" links.

    python notebooks/build_notebooks.py            # rewrite the notebooks and README's table
    python notebooks/build_notebooks.py --check    # write nothing; exit 1 naming what is stale

Each notebook's cells are in notebooks/src/NN_name.py, in jupytext's "percent" format: a line
`# %%` starts a code cell, `# %% [markdown]` a markdown cell (every line a comment, `# ` removed),
and options follow as key=JSON pairs (`# %% tags=["parameters"]`). Above the first cell is a
preamble for the linter and this builder, not a cell: its docstring is the notebook's row in
README's notebook table, its imports name what the shared setup cell provides.

The builder adds the frame every notebook shares, from notebooks/src/_shared.py: the Colab badge
above the title, the install cell after it, a note above the cell tagged `parameters`, the setup
cell after that. A source cell `# %% include="NAME"` becomes the shared cells marked `part="NAME"`;
a notebook that includes `gpu` (which device trains) asks Colab for a GPU in its metadata too.
The badges, README's links and the install cell's REPO_URL come from cargan_tf/colab_links.py,
the one place that holds the project's public address.

Why a reader of our own instead of depending on jupytext: the format subset above takes 40 lines,
the builder then needs nothing beyond nbformat (already pinned for papermill), and what it writes
is decided here, so a jupytext release cannot change every committed notebook. The sources stay
valid percent-format files: jupytext and editors that know `# %%` cells (VS Code, PyCharm, Spyder)
open them as notebooks.

To add a notebook: copy a source in notebooks/src, keep its preamble, title cell and one
`parameters` cell with `home` and `smoke`, end with nb.record_outputs(...), and run this script.
Keep code in cargan_tf; cells only call and show.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SOURCES = HERE / "src"
SHARED = SOURCES / "_shared.py"
README = REPO / "README.md"
TABLE_START = "<!-- notebook table: written by notebooks/build_notebooks.py from notebooks/src/*.py -->"
TABLE_END = "<!-- end of notebook table -->"
CELL_HEADER = re.compile(r"# %%(?: \[(markdown)\])?(.*)")
OPTION = re.compile(r"\s*(\w+)=")
# What Colab writes when a notebook asks for a GPU runtime (Runtime > Change runtime type > T4 GPU).
GPU_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}


def _load_colab_links():
    """cargan_tf/colab_links.py of this checkout (not an installed copy), without the package."""
    spec = importlib.util.spec_from_file_location("colab_links", REPO / "cargan_tf" / "colab_links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


colab_links = _load_colab_links()

# ---- reading a percent-format source ---------------------------------------------------------

@dataclass
class Cell:
    kind: str                                      # "code" or "markdown"
    options: dict = field(default_factory=dict)    # the key=JSON pairs of its `# %%` line
    lines: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        return "\n".join(self.lines).strip("\n")


@dataclass
class Source:
    stem: str                  # "02_train_dcgan"
    description: str           # the preamble's docstring, one line: README's table row
    cells: list[Cell]


def _options(text: str, where: str) -> dict:
    """'tags=["parameters"] part="gpu"' -> {"tags": ["parameters"], "part": "gpu"}."""
    options, text, position = {}, text.strip(), 0
    while position < len(text):
        match = OPTION.match(text, position)
        try:
            options[match[1]], position = json.JSONDecoder().raw_decode(text, match.end())
        except (TypeError, ValueError):  # no key= (match is None), or not JSON after it
            raise ValueError(f"{where}: cannot read the cell options {text!r}; write key=JSON "
                             'pairs, e.g. tags=["parameters"]') from None
    return options


def read_source(path: Path) -> Source:
    """The preamble's docstring and the cells of a percent-format file."""
    preamble: list[str] = []
    cells: list[Cell] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        header = CELL_HEADER.fullmatch(line)
        if header:
            cells.append(Cell("markdown" if header[1] else "code",
                              _options(header[2], f"{path.name}:{number}")))
        elif not cells:
            preamble.append(line)
        elif cells[-1].kind == "markdown" and line.strip():
            if not (line == "#" or line.startswith("# ")):
                raise ValueError(f"{path.name}:{number}: a markdown cell holds only '# ' lines")
            cells[-1].lines.append(line[2:])
        else:
            cells[-1].lines.append(line)
    docstring = ast.get_docstring(ast.parse("\n".join(preamble))) or ""
    return Source(path.stem, " ".join(docstring.split()), cells)


def sources() -> list[Source]:
    """Every notebook source (SOURCES/NN_name.py), in order."""
    return [read_source(path) for path in sorted(SOURCES.glob("[0-9]*.py"))]


# ---- building a notebook ---------------------------------------------------------------------

def wheel_name() -> str:
    """The file `make dist` writes, e.g. cargan_tf-0.1.0-py3-none-any.whl (version: pyproject)."""
    version = re.search(r'(?m)^version = "([^"]+)"', (REPO / "pyproject.toml").read_text())[1]
    return f"cargan_tf-{version}-py3-none-any.whl"


def shared_parts(stem: str) -> dict[str, list[Cell]]:
    """_shared.py's cells by part, with {stem}, {repo_url} and {wheel} filled in."""
    values = {"{stem}": stem, "{repo_url}": colab_links.install_url(), "{wheel}": wheel_name()}
    parts: dict[str, list[Cell]] = {}
    for cell in read_source(SHARED).cells:
        text = cell.source
        for key, value in values.items():
            text = text.replace(key, value)
        parts.setdefault(cell.options["part"], []).append(Cell(cell.kind, {}, text.splitlines()))
    return parts


def _cell(cell: Cell):
    if cell.kind == "markdown":
        return new_markdown_cell(cell.source)
    made = new_code_cell(cell.source)
    if cell.options.get("tags"):
        made.metadata["tags"] = list(cell.options["tags"])
    return made


def build(source: Source) -> nbformat.NotebookNode:
    """The notebook: badge, title, install, parameters, setup, then the source's own cells."""
    parts = shared_parts(source.stem)
    title, *rest = source.cells
    if title.kind != "markdown":
        raise ValueError(f"{source.stem}: the first cell is the title, a markdown cell")
    if sum("parameters" in c.options.get("tags", []) for c in rest) != 1:
        raise ValueError(f"{source.stem}: one cell must be tagged parameters")
    badge = Cell("markdown", {}, [colab_links.badge_html(source.stem)])
    cells = [badge, title, *parts["install"]]
    for cell in rest:
        if "include" in cell.options:
            cells += parts[cell.options["include"]]
        elif "parameters" in cell.options.get("tags", []):
            cells += [*parts["parameters"], cell, *parts["setup"]]
        else:
            cells.append(cell)
    notebook = new_notebook(cells=[_cell(cell) for cell in cells])
    for number, cell in enumerate(notebook.cells):
        cell.id = f"{source.stem[:3]}{number:03d}"
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
        "colab": {"provenance": []},
    }
    if any(cell.options.get("include") == "gpu" for cell in rest):
        notebook.metadata.update(GPU_METADATA)
    return notebook


def render(source: Source) -> str:
    return nbformat.writes(build(source)) + "\n"


# ---- README's notebook table -----------------------------------------------------------------

def readme_table(notebooks: list[Source]) -> str:
    rows = ["| notebook | Colab | what it does |", "|---|---|---|"]
    rows += [f"| [`{s.stem}.ipynb`](notebooks/{s.stem}.ipynb) | {colab_links.badge_markdown(s.stem)} "
             f"| {s.description} |" for s in notebooks]
    return "\n".join(rows)


def with_table(readme: str, notebooks: list[Source]) -> str:
    """README's text with the part between TABLE_START and TABLE_END written anew."""
    start, end = readme.find(TABLE_START), readme.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"README has no notebook table between {TABLE_START!r} and {TABLE_END!r}")
    return readme[:start] + f"{TABLE_START}\n{readme_table(notebooks)}\n" + readme[end:]


# ---- the command -----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="folder to write the notebooks to")
    parser.add_argument("--readme", type=Path, default=README, help="README with the notebook table")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming every notebook (or README) that differs")
    args = parser.parse_args(argv)
    notebooks = sources()
    wanted = {args.out / f"{s.stem}.ipynb": render(s) for s in notebooks}
    wanted[args.readme] = with_table(args.readme.read_text(encoding="utf-8"), notebooks)
    if args.check:
        stale = [path.name for path, text in wanted.items()
                 if not path.exists() or path.read_text(encoding="utf-8") != text]
        stale += [f"{path.name} (no source in notebooks/src)" for path in sorted(args.out.glob("*.ipynb"))
                  if path not in wanted]
        if stale:
            print(f"out of date: {', '.join(stale)}; run python notebooks/build_notebooks.py")
            return 1
        return 0
    for path, text in wanted.items():
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8", newline="\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
