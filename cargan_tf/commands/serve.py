"""`python -m cargan_tf serve`: a local HTTP server with the Lambda handler's API and a gallery page."""

from __future__ import annotations

import logging
from pathlib import Path

from cargan_tf.errors import CarganError
from cargan_tf.export import KIND_NAMES, REPORT_FILE, load_serving_model, provenance, serving_kind
from cargan_tf.serve import make_server

# Printed at start-up (and said in the README): what loading a model means.
TRUST_NOTE = ("a SavedModel is code: loading it runs the TensorFlow ops it holds, with this "
              "process's rights (a .keras file is read in Keras' safe mode). Serve only models "
              "you exported yourself or that come from a source you trust.")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve generated cars over HTTP: the gallery page and /api/generate",
        description="Serve a generator locally: GET / is a gallery page (a grid of new cars, a "
                    "new-seed button, a slider between two seeds); GET or POST /api/generate "
                    "takes the same fields as the Lambda handler (n, seed, format, seed_b, steps).")
    p.add_argument("generator", help="a run folder, a .keras file, a SavedModel folder or a .tflite "
                                     "file written by `export`")
    p.add_argument("--port", type=int, default=8000, help="TCP port (0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind; the default serves this machine only, 0.0.0.0 opens it "
                        "to the network")
    p.set_defaults(func=run)


def run(args) -> int:
    if not 0 <= args.port <= 65535:
        raise CarganError(f"--port {args.port}: use 1..65535 (0: any free port)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")  # one line a request
    kind = serving_kind(args.generator)
    print(f"loading {KIND_NAMES[kind]}: {args.generator}", flush=True)
    if kind != "litert" or Path(args.generator).parent.joinpath(REPORT_FILE).exists():
        print(f"  {provenance(args.generator)}")
    print(f"  trust: {TRUST_NOTE}", flush=True)
    model = load_serving_model(args.generator)
    server = make_server(model, args.host, args.port)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: listening on {args.host}: other machines can reach this server")
    size = "x".join(map(str, model.image_shape))
    print(f"serving the {model.kind} model (z of {model.latent_dim} -> {size} images) at "
          f"{server.url}  (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped")
    finally:
        server.server_close()
    return 0
