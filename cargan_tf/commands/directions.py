"""`python -m cargan_tf directions`: closed-form semantic directions (SeFa) of a trained run,
drawn as a row of cars per seed moving along each."""

from __future__ import annotations

from pathlib import Path

from cargan_tf.errors import CarganError


def register(subparsers) -> None:
    from cargan_tf.directions import AMOUNTS, N_DIRECTIONS, SEEDS  # no TensorFlow at import

    p = subparsers.add_parser(
        "directions", help="find latent directions (SeFa) and draw cars moving along them",
        description="SeFa (Shen & Zhou 2021): the eigenvectors of A^T A, A the generator's "
                    "first layer's weights on z, are the latent directions that change the "
                    "picture most. Writes direction_00.png ... (rows: seeds; columns: amounts "
                    "along the direction) and directions.json. Apply one with `sample RUN "
                    "--direction K --amount A`.")
    p.add_argument("generator", help="a run folder or a generator .keras file")
    p.add_argument("--out", default=None,
                   help="output folder (default: RUN/directions/, or beside a .keras file)")
    p.add_argument("--n", type=int, default=N_DIRECTIONS, help="directions to draw (the first N)")
    p.add_argument("--seeds", default=",".join(map(str, SEEDS)),
                   help="a row of cars per seed, comma-separated")
    p.add_argument("--amounts", default=",".join(f"{a:g}" for a in AMOUNTS),
                   help="distances along each direction, comma-separated, written with = "
                        "when the first is negative (--amounts=-4,0,4); z has norm about "
                        "sqrt(latent_dim), 10 for z of 100")
    p.add_argument("--class", dest="class_name", default=None,
                   help="a conditional run: draw this class (default: one class per row)")
    p.set_defaults(func=run)


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        seeds = ()
    if not seeds or min(seeds) < 0:
        raise CarganError(f"--seeds {text!r}: give non-negative integers separated by commas")
    return seeds


def run(args) -> int:
    from cargan_tf.directions import parse_amounts

    if args.n < 1:
        raise CarganError(f"--n {args.n}: draw at least 1 direction")
    seeds, amounts = parse_seeds(args.seeds), parse_amounts(args.amounts)
    # here: generate imports TensorFlow, which `--help` must not
    from cargan_tf.directions import write_direction_pictures
    from cargan_tf.generate import class_index, load_generator
    from cargan_tf.runs import RunPaths

    source = Path(args.generator)
    generator = load_generator(source)
    classes = None
    if args.class_name is not None:
        classes = class_index(generator, args.class_name)
    out = Path(args.out) if args.out else (
        RunPaths(source).directions if source.is_dir() else
        source.with_name(f"{source.stem}_directions"))
    written = write_direction_pictures(generator, out, args.n, seeds, amounts, classes)
    print("\n".join(map(str, written)))
    return 0
