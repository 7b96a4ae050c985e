# Over 450 lines: one API behind two front ends (Lambda, local server) that must not drift.
"""The car API: AWS Lambda's `lambda_handler` and a local server with a gallery page, one logic.

Both answer GET/POST /api/generate with the fields n, seed, format, seed_b, steps and the design
controls class, direction + amount or directions (query string or a JSON body) and return
PNGs. The Lambda handler takes API Gateway REST (payload 1.0) and HTTP API (payload 2.0) proxy
events and direct invocations; its model is loaded once per container from the path in
$CARGAN_MODEL (its classes and directions from serving_controls.json beside it). Nothing here
imports TensorFlow or OpenCV unless the model itself is a .keras/SavedModel: with a .tflite
model the container needs only ai-edge-litert and numpy (PNGs are written with zlib).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import html
import json
import logging
import math
import os
import re
import secrets
import struct
import sys
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from cargan_tf.errors import CarganError, first_line
from cargan_tf.export import CONTROLS_FILE, ServingModel, load_serving_model

LOG = logging.getLogger("cargan_tf.serve")

MODEL_ENV = "CARGAN_MODEL"   # Lambda: path of the exported model inside the container
MAX_N = 64                   # images per request (fewer when they would not fit the response)
MAX_STEPS = 64               # images along an interpolation
DEFAULT_STEPS = 8
MAX_SEED = 2**32 - 1         # seeds are 0..MAX_SEED (exact in JavaScript numbers, too)
MAX_BODY_BYTES = 16 * 1024   # a request body is a small JSON object
MAX_JSON_DEPTH = 4           # the body is one flat object: {"n": 4, ...} has depth 1
MAX_METHOD_CHARS = 16        # longer "methods" in an event are malformed, not unknown
MAX_AMOUNT = 20.0            # distance along a direction (z has norm ~ sqrt(latent_dim))
MAX_DIRECTION_TERMS = 8      # directions=K:A,... moves along at most this many at once
MAX_CLASS_CHARS = 64
PAGE_DIRECTIONS = 5          # sliders on the gallery page (the strongest directions)
PAGE_AMOUNT = 6              # their range: -PAGE_AMOUNT .. PAGE_AMOUNT
GRID_PAD = 2                 # white pixels between and around images (as cargan_tf.viz.image_grid)
# Lambda's synchronous response limit is 6 MB. The PNG travels base64-encoded (4/3 larger) in a
# JSON envelope with headers; keep the encoded body under 6,000,000 bytes with room to spare.
MAX_RESPONSE_BYTES = 6_000_000
PNG_BUDGET_BYTES = (MAX_RESPONSE_BYTES - 16 * 1024) * 3 // 4

FIELDS = {
    "n": f"how many images, an integer 1..{MAX_N} (fewer for large images, so the response stays "
         "under Lambda's 6 MB limit); default 1",
    "seed": f"which images, an integer 0..{MAX_SEED}; default a random seed (sent back in the "
            "X-Cargan-Seed header)",
    "format": "png (exactly one image, n=1) or grid (all images in one PNG); default png for one "
              "image, grid otherwise",
    "seed_b": f"interpolate from seed to seed_b, an integer 0..{MAX_SEED}; returns `steps` images "
              "in one grid row",
    "steps": f"images along the interpolation, an integer 2..{MAX_STEPS}; default {DEFAULT_STEPS}; "
             "only with seed_b",
    "class": "a conditional model's kind of car: one of its class names (or its index); default: "
             "every class in turn",
    "direction": "move the cars along this latent direction (SeFa; 0 = the strongest), an integer; "
                 "with amount",
    "amount": f"how far along `direction`, a number -{MAX_AMOUNT:g}..{MAX_AMOUNT:g} (z has norm "
              "about sqrt(latent_dim))",
    "directions": f"several at once instead: K:A pairs separated by commas (at most "
                  f"{MAX_DIRECTION_TERMS}), e.g. 0:2.5,3:-1",
}


# Sent with every response, by the Lambda handler and the local server alike. The gallery page
# replaces the Content-Security-Policy with its own (its script and style, by hash).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


# --- requests and responses --------------------------------------------------------------------

@dataclass
class Response:
    """What the handler and the server send: status, body bytes, content type, extra headers."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    def all_headers(self) -> dict[str, str]:
        return {"Content-Type": self.content_type, **SECURITY_HEADERS, **self.headers}

    def to_lambda(self) -> dict:
        """The proxy-integration response (same keys for payload 1.0 and 2.0)."""
        binary = not self.content_type.startswith(("application/json", "text/"))
        body = base64.b64encode(self.body).decode("ascii") if binary else self.body.decode("utf-8")
        return {"statusCode": self.status, "headers": self.all_headers(), "body": body,
                "isBase64Encoded": binary}


class ApiError(Exception):
    """A request the API refuses: HTTP status and a message saying what is allowed."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}

    def response(self) -> Response:
        payload = {"error": str(self)}
        if self.status in (400, 405, 413):
            payload["fields"] = FIELDS
        response = json_response(self.status, payload)
        response.headers.update(self.headers)
        return response


def method_not_allowed(method: object, allowed: str = "GET, POST") -> ApiError:
    """405 with an Allow header: the API is GET (query string) or POST (JSON body)."""
    what = "GET / (the page)" if allowed == "GET" else "GET (query string) or POST (JSON body)"
    return ApiError(405, f"method {_show(method)} is not allowed: use {what}", {"Allow": allowed})


class ModelUnavailable(ApiError):
    """The model is missing or unreadable: a 500 that says what to fix (details in the logs)."""

    def __init__(self, message: str):
        super().__init__(500, message)


def json_response(status: int, payload: dict) -> Response:
    return Response(status, json.dumps(payload, indent=1).encode("utf-8"), "application/json",
                    {"Cache-Control": "no-store"})


@dataclass(frozen=True)
class GenerateRequest:
    """A validated request: n images for seed, or `steps` images from seed to seed_b."""

    n: int
    seed: int
    format: str
    seed_b: int | None = None
    steps: int | None = None
    random_seed: bool = False
    class_name: str | int | None = None      # as asked; checked against the model's classes
    amounts: tuple[tuple[int, float], ...] = ()  # (direction, distance) pairs

    @property
    def count(self) -> int:
        return self.steps if self.seed_b is not None else self.n


def parse_request(fields: Mapping[str, object]) -> GenerateRequest:
    """Validate the API fields (strings from a query, or JSON values); ApiError 400 if invalid."""
    if not isinstance(fields, Mapping) or not all(isinstance(k, str) for k in fields):
        raise ApiError(400, "the fields must be an object whose names are strings, such as "
                            '{"n": 4, "seed": 7, "format": "grid"}')
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        shown = ", ".join(_show(name) for name in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        raise ApiError(400, f"unknown field(s) {shown}: the allowed fields are {', '.join(FIELDS)}")
    controls = {"class_name": _class_field(fields), "amounts": _amounts_field(fields)}
    interpolate = fields.get("seed_b") is not None
    if fields.get("seed") is None:
        seed, random_seed = secrets.randbelow(MAX_SEED + 1), True
    else:
        seed, random_seed = _integer(fields, "seed", 0, MAX_SEED), False
    fmt = fields.get("format")
    if fmt is not None and fmt not in ("png", "grid"):
        raise ApiError(400, f"format={_show(fmt)} is unknown: use png (exactly one image) or grid "
                            "(all images in one PNG)")
    if interpolate:
        if fields.get("n") is not None:
            raise ApiError(400, f"an interpolation returns `steps` images: give steps (2..{MAX_STEPS}) "
                                "instead of n")
        if fmt == "png":
            raise ApiError(400, "format=png returns exactly one image and an interpolation returns "
                                f"`steps` (2..{MAX_STEPS}) images: use format=grid")
        steps = DEFAULT_STEPS if fields.get("steps") is None else _integer(fields, "steps", 2, MAX_STEPS)
        return GenerateRequest(n=steps, seed=seed, format="grid",
                               seed_b=_integer(fields, "seed_b", 0, MAX_SEED), steps=steps,
                               random_seed=random_seed, **controls)
    if fields.get("steps") is not None:
        raise ApiError(400, "steps only applies to an interpolation: give seed_b as well, or drop steps")
    n = 1 if fields.get("n") is None else _integer(fields, "n", 1, MAX_N)
    fmt = fmt or ("png" if n == 1 else "grid")
    if fmt == "png" and n != 1:
        raise ApiError(400, f"format=png returns exactly one image (n=1); for n={n} use format=grid")
    return GenerateRequest(n=n, seed=seed, format=fmt, random_seed=random_seed, **controls)


def _class_field(fields: Mapping[str, object]) -> str | int | None:
    """The `class` field as asked: a name (a short string) or an index (an integer >= 0)."""
    value = fields.get("class")
    if value is None:
        return None
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        return _integer(fields, "class", 0, 2**16)
    if isinstance(value, int) and not isinstance(value, bool):
        return _integer(fields, "class", 0, 2**16)
    if isinstance(value, str) and 0 < len(value) <= MAX_CLASS_CHARS and value.isprintable():
        return value
    raise ApiError(400, f"class={_show(value)} is not a class: give one of the model's class "
                        f"names (at most {MAX_CLASS_CHARS} characters) or its index")


_NUMBER = re.compile(r"-?[0-9]{1,6}(\.[0-9]{1,8})?|-?\.[0-9]{1,8}")


def _number(value: object, name: str) -> float:
    """A distance along a direction: a JSON number or a decimal string, within +-MAX_AMOUNT."""
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        value = float(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**53:
        value = float(value)
    if not isinstance(value, float) or not math.isfinite(value):
        raise ApiError(400, f"{name}={_show(value)} is not a number: {name} must be a number "
                            f"-{MAX_AMOUNT:g}..{MAX_AMOUNT:g}")
    if abs(value) > MAX_AMOUNT:
        raise ApiError(400, f"{name}={_show(value)} is out of range: {name} must be a number "
                            f"-{MAX_AMOUNT:g}..{MAX_AMOUNT:g}")
    return value


def _amounts_field(fields: Mapping[str, object]) -> tuple[tuple[int, float], ...]:
    """((direction, distance), ...) from `direction` + `amount` or from `directions`."""
    one = fields.get("direction") is not None or fields.get("amount") is not None
    if one and fields.get("directions") is not None:
        raise ApiError(400, "give direction + amount, or directions=K:A,..., not both")
    if one:
        if fields.get("direction") is None or fields.get("amount") is None:
            raise ApiError(400, "direction and amount go together: which direction (an integer "
                                "from 0) and how far (a number)")
        return ((_integer(fields, "direction", 0, 2**16), _number(fields["amount"], "amount")),)
    text = fields.get("directions")
    if text is None:
        return ()
    terms = text.split(",") if isinstance(text, str) and len(text) <= 400 else None
    if not terms or len(terms) > MAX_DIRECTION_TERMS or not all(":" in t for t in terms):
        raise ApiError(400, f"directions={_show(text)} is not a list of K:A pairs: give at most "
                            f"{MAX_DIRECTION_TERMS} such as 0:2.5,3:-1")
    pairs: dict[int, float] = {}
    for term in terms:
        k, _, a = term.partition(":")
        k = _integer({"directions": k}, "directions", 0, 2**16)
        if k in pairs:
            raise ApiError(400, f"directions: direction {k} is given twice; give each once")
        pairs[k] = _number(a, f"directions' amount for {k}")
    return tuple(pairs.items())


def _show(value: object) -> str:
    """A short, safe rendering of a client's value for an error message (never raises)."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        text = repr(value)
    elif isinstance(value, int):
        # repr of a huge int is slow or refused (ValueError past 4300 digits): say its size
        text = repr(value) if value.bit_length() <= 128 else \
            f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    elif isinstance(value, str):
        text = repr(value[:60])
    elif isinstance(value, (list, tuple)):
        text = "a list"
    elif isinstance(value, Mapping):
        text = "an object"
    else:
        text = f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


_INTEGER = re.compile(r"-?[0-9]{1,20}")


def _integer(fields: Mapping[str, object], name: str, low: int, high: int) -> int:
    value = fields[name]
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name}={_show(value)} is not an integer: {name} must be an integer "
                            f"{low}..{high}")
    if not low <= value <= high:
        raise ApiError(400, f"{name}={_show(value)} is out of range: {name} must be an integer "
                            f"{low}..{high}")
    return value


def fields_from_http(method: str, query: Mapping[str, str] | None, body: bytes | None) -> dict:
    """Fields of an HTTP request: the query string, overridden by a JSON-object body."""
    if method not in ("GET", "POST"):
        raise method_not_allowed(method)
    fields = dict(query or {})
    if body and body.strip():
        fields.update(json_body(body))
    return fields


_MALFORMED_BODY = ('malformed body: send a JSON object such as {"n": 4, "seed": 7, "format": '
                   '"grid"}, or use the query string')
def json_body(body: bytes) -> dict:
    """A request body as a JSON object: at most MAX_BODY_BYTES and MAX_JSON_DEPTH levels deep.

    The depth is counted before parsing: Python's json module recurses once per level, and a
    body of 16 KB of brackets would otherwise end in RecursionError (a 500) instead of a 400.
    """
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is {len(body)} bytes: at most {MAX_BODY_BYTES} (a small "
                            "JSON object)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, f"{_MALFORMED_BODY} (the body is not UTF-8)") from None
    if _nests_deeper_than(text, MAX_JSON_DEPTH):
        raise ApiError(400, f"{_MALFORMED_BODY} (it nests more than {MAX_JSON_DEPTH} levels deep: "
                            "the fields are one flat object)")
    try:
        payload = json.loads(text)
    except (ValueError, RecursionError):  # also integers of more than 4300 digits
        payload = None
    if not isinstance(payload, dict):
        raise ApiError(400, _MALFORMED_BODY)
    return payload


# --- images to PNG ---------------------------------------------------------------------------

def image_grid(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """uint8 (N, S, S, C) -> one uint8 image, GRID_PAD white pixels around each (viz's layout).

    cargan_tf.viz.image_grid draws the same grid; this copy keeps OpenCV out of the Lambda image.
    """
    n, h, w, c = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.full((rows * h + (rows + 1) * GRID_PAD, cols * w + (cols + 1) * GRID_PAD, c), 255,
                   np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = GRID_PAD + r * (h + GRID_PAD), GRID_PAD + k * (w + GRID_PAD)
        grid[y:y + h, x:x + w] = images[i]
    return grid


def encode_png(image: np.ndarray, level: int = 6) -> bytes:
    """uint8 (H, W, C), C = 1 (gray) or 3 (RGB) -> PNG bytes, with zlib alone (no OpenCV)."""
    h, w, c = image.shape
    rows = np.zeros((h, 1 + w * c), np.uint8)  # each row: filter type 0 (none), then its pixels
    rows[:, 1:] = image.reshape(h, w * c)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, {1: 0, 3: 2}[c], 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), level)) + chunk(b"IEND", b""))


def png_bound(height: int, width: int, channels: int) -> int:
    """The most bytes encode_png can write for an image this size, whatever its pixels.

    zlib's compressBound for the filtered rows, plus PNG's signature and three chunks.
    """
    raw = height * (1 + width * channels)
    return raw + (raw >> 12) + (raw >> 14) + (raw >> 25) + 13 + 8 + 25 + 12 + 12


def grid_shape(count: int, image_shape: tuple[int, int, int], fmt: str,
               cols: int | None = None) -> tuple[int, int, int]:
    """(H, W, C) of the PNG a request sends: one image, or image_grid's layout."""
    h, w, c = image_shape
    if fmt == "png":
        return h, w, c
    cols = cols or math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    return rows * h + (rows + 1) * GRID_PAD, cols * w + (cols + 1) * GRID_PAD, c


def max_images(image_shape: tuple[int, int, int]) -> int:
    """The largest n (<= MAX_N) whose grid fits the response budget even if incompressible."""
    best = 0
    for count in range(1, MAX_N + 1):
        if png_bound(*grid_shape(count, image_shape, "grid")) <= PNG_BUDGET_BYTES:
            best = count
    return best


# --- the API -------------------------------------------------------------------------------------

def api_response(fields: Mapping[str, object], get_model: Callable[[], ServingModel]) -> Response:
    """Validate fields, generate, and return the PNG response; ApiError for refused requests."""
    request = parse_request(fields)
    model = get_model()
    cols = request.steps if request.seed_b is not None else None
    shape = grid_shape(request.count, model.image_shape, request.format, cols)
    if png_bound(*shape) > PNG_BUDGET_BYTES:
        what = "steps" if request.seed_b is not None else "n"
        size = "x".join(map(str, model.image_shape))
        raise ApiError(400, f"{what}={request.count} is too many {size} images for one response "
                            f"(Lambda's 6 MB limit): at most {max_images(model.image_shape)}")
    classes, amounts = _model_controls(request, model)
    if request.seed_b is not None:
        images = model.interpolation(request.seed, request.seed_b, request.steps, classes,
                                     amounts)
    else:
        images = model.images_for_seed(request.seed, request.n, classes, amounts)
    picture = images[0] if request.format == "png" else image_grid(images, cols)
    headers = {
        "X-Cargan-Seed": str(request.seed),
        "X-Cargan-Images": str(len(images)),
        "X-Cargan-Image-Size": "x".join(map(str, model.image_shape)),
        # a given seed always names the same images (for this model); a random one does not
        "Cache-Control": "no-store" if request.random_seed else "public, max-age=3600",
    }
    if request.seed_b is not None:
        headers["X-Cargan-Seed-B"] = str(request.seed_b)
    if classes is not None:
        headers["X-Cargan-Class"] = model.classes[classes]
    return Response(200, encode_png(picture), "image/png", headers)


def _model_controls(request: GenerateRequest, model: ServingModel
                    ) -> tuple[int | None, dict[int, float]]:
    """(class index or None, {direction: distance}) of a request, checked against the model."""
    names, count = model.classes, len(model.controls.directions)
    classes = None
    if request.class_name is not None:
        if not names:
            raise ApiError(400, "this model has no classes (it was not trained with "
                                "conditional=true): leave out class")
        if isinstance(request.class_name, int):
            if request.class_name >= len(names):
                raise ApiError(400, f"class={request.class_name} is out of range: this model's "
                                    f"classes are 0..{len(names) - 1} ({', '.join(names)})")
            classes = request.class_name
        elif request.class_name in names:
            classes = names.index(request.class_name)
        else:
            raise ApiError(400, f"class={_show(request.class_name)} is unknown: this model's "
                                f"classes are {', '.join(names)}")
    for k, _ in request.amounts:
        if k >= count:
            raise ApiError(400, f"direction {k} does not exist: this model has {count} "
                                + (f"(0..{count - 1})" if count else
                                   f"(export it again to get {CONTROLS_FILE} beside it)"))
    return classes, dict(request.amounts)


# --- AWS Lambda ----------------------------------------------------------------------------------

_MODELS: dict[str, ServingModel] = {}  # per container: loaded on the first request, then reused


def model_from_env() -> ServingModel:
    """The model at $CARGAN_MODEL, loaded once per container; ModelUnavailable if it cannot be."""
    path = os.environ.get(MODEL_ENV, "").strip()
    if not path:
        raise ModelUnavailable(f"the model is not configured: set the environment variable {MODEL_ENV} "
                               "to an exported model (a .tflite file, a SavedModel folder or a .keras "
                               "file; see `python -m cargan_tf export`)")
    if path not in _MODELS:
        if not Path(path).exists():
            raise ModelUnavailable(f"the model file is missing: nothing at {MODEL_ENV}={path}; check "
                                   "that the container image copies the exported model there")
        try:
            _MODELS[path] = load_serving_model(path)
        except Exception as err:  # any failure to read the model is the same 500 for a client
            LOG.exception("could not load the model at %s=%s", MODEL_ENV, path)
            reason = first_line(err)
            raise ModelUnavailable(f"the model at {MODEL_ENV}={path} could not be read ({reason}); "
                                   "re-export it with `python -m cargan_tf export`") from None
    return _MODELS[path]


def _malformed_event(what: str) -> ApiError:
    return ApiError(400, f"malformed event: {what}. Send an API Gateway proxy event (REST API "
                         "payload 1.0 or HTTP API payload 2.0), or the fields themselves, such as "
                         '{"n": 4, "seed": 7, "format": "grid"}')


def _nests_deeper_than(text: str, limit: int) -> bool:
    """True if the JSON text opens more than `limit` brackets at once (outside its strings).

    One pass, linear in the text (a regex for the strings backtracks quadratically on `"\\"...`).
    """
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def event_fields(event: object) -> dict:
    """API fields from a Lambda event: a REST (1.0) or HTTP API (2.0) proxy event, or direct.

    Every part the handler reads is checked for its type first: a malformed event is a 400
    that says which part is wrong, never a 500.
    """
    if not isinstance(event, dict):
        raise ApiError(400, "the event must be a JSON object: a proxy event, or fields such as "
                            '{"n": 4, "seed": 7, "format": "grid"}')
    context = event.get("requestContext")
    if "httpMethod" in event:  # API Gateway REST API, payload 1.0
        method, where = event["httpMethod"], "httpMethod"
    elif isinstance(context, dict) and "http" in context:  # HTTP API, payload 2.0
        if not isinstance(context["http"], dict):
            raise _malformed_event("requestContext.http must be an object with the method")
        method, where = context["http"].get("method"), "requestContext.http.method"
    else:  # a direct invocation: the event is the fields
        return dict(event)
    if not isinstance(method, str) or not 0 < len(method) <= MAX_METHOD_CHARS:
        raise _malformed_event(f"{where} must be an HTTP method such as GET, not {_show(method)}")
    query = _query_parameters(event)
    body = event.get("body")
    if body is not None and not isinstance(body, str):
        raise ApiError(400, "malformed body: send a JSON object as the request body")
    if body and len(body) > MAX_BODY_BYTES * 4 // 3 + 4:
        raise ApiError(413, f"the body is {len(body)} bytes: at most {MAX_BODY_BYTES} (a small JSON object)")
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(encoded, bool) and encoded is not None:
        raise _malformed_event(f"isBase64Encoded must be true or false, not {_show(encoded)}")
    raw = None
    if body and encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except ValueError:
            raise ApiError(400, "malformed body: isBase64Encoded is true but the body is not "
                                "base64") from None
    elif body:
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, which no real request can hold
            raise ApiError(400, f"{_MALFORMED_BODY} (the body is not valid Unicode)") from None
    return fields_from_http(method.upper(), query, raw)


def _query_parameters(event: dict) -> dict[str, str]:
    """queryStringParameters as {name: value}, both strings; a repeated name is a 400."""
    query = event.get("queryStringParameters")
    if query is None:
        query = {}
    if not isinstance(query, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                              for k, v in query.items()):
        raise _malformed_event("queryStringParameters must be an object of strings "
                               '({"n": "4"}) or null')
    multi = event.get("multiValueQueryStringParameters")  # REST API: every value of a name
    if isinstance(multi, dict):
        repeated = [k for k, v in multi.items() if isinstance(v, list) and len(v) > 1]
        if repeated:
            raise ApiError(400, f"field(s) {', '.join(_show(k) for k in repeated[:5])} given "
                                "more than once: give each once")
    elif multi is not None:
        raise _malformed_event("multiValueQueryStringParameters must be an object or null")
    return query


def lambda_handler(event: object, context: object = None) -> dict:
    """AWS Lambda entry point: an API Gateway proxy event (1.0 or 2.0) or fields -> response dict.

    200: a base64 PNG (isBase64Encoded true, Content-Type image/png). 400/405/413: JSON
    {"error": ..., "fields": ...} saying what is allowed. 500: JSON {"error": ...}, never a traceback.
    """
    try:
        response = api_response(event_fields(event), model_from_env)
    except ApiError as err:
        response = err.response()
    except Exception:
        LOG.exception("unexpected error while answering an event with keys %s",
                      sorted(map(str, event))[:20] if isinstance(event, dict) else type(event))
        response = json_response(500, {"error": "internal error while generating images; the "
                                                "function's logs have the details"})
    return response.to_lambda()


# --- the local server and its gallery page -----------------------------------------------------------

PAGE_SCRIPT = """
const cfg = JSON.parse(document.getElementById("cfg").textContent);
const $ = (id) => document.getElementById(id);
const sliders = Array.from(document.querySelectorAll("input.dir"));
let current = cfg.seed;
function randomSeed() { const a = new Uint32Array(1); crypto.getRandomValues(a); return a[0]; }
function controls() {
  const terms = sliders.filter((s) => Number(s.value) !== 0).map((s) => `${s.dataset.k}:${s.value}`);
  let query = terms.length ? `&directions=${terms.join(",")}` : "";
  if ($("class") && $("class").value !== "") query += `&class=${$("class").value}`;
  return query;
}
function showGrid(seed) {
  current = seed;
  $("seed").textContent = seed;
  $("grid").src = `/api/generate?n=${cfg.n}&seed=${seed}&format=grid${controls()}`;
}
let strip = null;
function drawFrame() {
  if (!strip || !strip.complete) return;
  const i = Number($("walk").value), ctx = $("frame").getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(strip, cfg.pad + i * (cfg.width + cfg.pad), cfg.pad, cfg.width, cfg.height,
                0, 0, $("frame").width, $("frame").height);
  $("walk-label").textContent = `step ${i} of ${cfg.steps - 1}`;
}
function loadWalk() {
  const a = $("seed-a").value, b = $("seed-b").value, img = new Image();
  img.onload = () => { strip = img; drawFrame(); };
  img.src = `/api/generate?seed=${a}&seed_b=${b}&steps=${cfg.steps}&format=grid${controls()}`;
}
function steered() { showGrid(current); loadWalk(); }
for (const s of sliders) {
  s.addEventListener("input", () => { $(`${s.id}-value`).textContent = s.value; });
  s.addEventListener("change", steered);
}
if ($("class")) $("class").addEventListener("change", steered);
if ($("reset")) $("reset").addEventListener("click", () => {
  for (const s of sliders) { s.value = 0; $(`${s.id}-value`).textContent = "0"; }
  if ($("class")) $("class").value = "";
  steered();
});
$("new-seed").addEventListener("click", () => {
  const seed = randomSeed();
  showGrid(seed);
  $("seed-a").value = seed; $("seed-b").value = randomSeed(); loadWalk();
});
$("walk").addEventListener("input", drawFrame);
$("walk-load").addEventListener("click", loadWalk);
$("walk").max = cfg.steps - 1;
showGrid(cfg.seed);
$("seed-a").value = cfg.seed; $("seed-b").value = cfg.seed + 1; loadWalk();
"""

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 1.5rem auto; padding: 0 1rem; }
#grid, #frame { image-rendering: pixelated; background: #eee; }
#grid { width: 32rem; height: 32rem; object-fit: contain; display: block; }
input[type=number] { width: 8rem; }
#walk { width: 24rem; }
input.dir { width: 16rem; vertical-align: middle; }
"""

PAGE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>cargan: new cars</title>
<style>{style}</style></head>
<body>
<h1>New cars</h1>
<p><button id="new-seed" type="button">New seed</button> seed <code id="seed"></code>
 &middot; {model}</p>
<img id="grid" alt="a grid of generated cars">
{controls}
<h2>Walk between two seeds</h2>
<p>from seed <input id="seed-a" type="number" min="0" max="{max_seed}"> to seed
<input id="seed-b" type="number" min="0" max="{max_seed}">
<button id="walk-load" type="button">Walk</button></p>
<p><input id="walk" type="range" min="0" value="0" aria-label="position between the two seeds">
<span id="walk-label"></span></p>
<canvas id="frame" width="256" height="256"></canvas>
<p>API: <code>GET /api/generate?n=4&amp;seed=7&amp;format=grid</code> or POST the same fields as JSON;
steer with <code>directions=0:2.5,3:-1</code> and, for a model trained by class, <code>class=NAME</code>.</p>
<script type="application/json" id="cfg">{config}</script>
<script>{script}</script>
</body></html>
"""


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only this page's own script and style run; images and requests go to this server alone.
PAGE_CSP = (f"default-src 'none'; img-src 'self'; connect-src 'self'; "
            f"script-src {_csp_hash(PAGE_SCRIPT)}; style-src {_csp_hash(PAGE_STYLE)}; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def controls_html(model: ServingModel) -> str:
    """The page's steering controls: a class selector (conditional models) and a slider for
    each of the first PAGE_DIRECTIONS directions; empty when the model has neither."""
    parts = []
    if model.classes:
        options = "".join(f'<option value="{k}">{html.escape(name)}</option>'
                          for k, name in enumerate(model.classes))
        parts.append('<p><label for="class">kind of car</label> <select id="class">'
                     f'<option value="">every kind, in turn</option>{options}</select></p>')
    for k in range(min(PAGE_DIRECTIONS, len(model.controls.directions))):
        parts.append(f'<p><label for="dir-{k}">direction {k}</label> <input id="dir-{k}" '
                     f'class="dir" data-k="{k}" type="range" min="-{PAGE_AMOUNT}" '
                     f'max="{PAGE_AMOUNT}" step="0.5" value="0"> <output id="dir-{k}-value">0'
                     '</output></p>')
    if not parts:
        return ""
    return ("<h2>Steer</h2>\n<p>Latent directions found in the generator's first layer "
            "(SeFa), strongest first: move a slider and every car moves the same way.</p>\n"
            + "\n".join(parts) + '\n<p><button id="reset" type="button">Reset</button></p>')


def gallery_page(model: ServingModel, seed: int | None = None) -> Response:
    """The gallery: a grid of new cars, a new-seed button, sliders along the model's first
    directions and its class selector, a slider between two seeds."""
    h, w, _ = model.image_shape
    config = {"n": min(16, max_images(model.image_shape)), "steps": min(16, MAX_STEPS),
              "seed": secrets.randbelow(MAX_SEED) if seed is None else seed,
              "width": w, "height": h, "pad": GRID_PAD}
    page = PAGE_HTML.format(style=PAGE_STYLE, script=PAGE_SCRIPT, config=json.dumps(config),
                            max_seed=MAX_SEED, controls=controls_html(model),
                            model=f"{w}x{h} images, z of {model.latent_dim}"
                                  + (f", {len(model.classes)} kinds" if model.classes else ""))
    return Response(200, page.encode("utf-8"), "text/html; charset=utf-8",
                    {"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"})


class GalleryServer(ThreadingHTTPServer):
    """ThreadingHTTPServer around one ServingModel; at most `max_pending` generations queue."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], model: ServingModel, max_pending: int = 4):
        super().__init__(address, _GalleryHandler)
        self.model = model
        self.slots = threading.BoundedSemaphore(max_pending)

    def handle_error(self, request, client_address):
        """A client that hung up or stalled is one log line; anything else, with its traceback."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            LOG.info("%s: connection closed early", client_address[0])
        else:
            LOG.exception("unexpected error on a connection from %s", client_address[0])

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class _GalleryHandler(BaseHTTPRequestHandler):
    """Two routes, fixed in code: / (the page) and /api/generate. No path reaches a file."""

    server: GalleryServer
    server_version = "cargan-serve"
    sys_version = ""
    timeout = 15  # seconds a stalled client may hold its thread
    # a request line too malformed to name its version still gets a status line and headers
    # (http.server's default, HTTP/0.9, would send the JSON body alone)
    default_request_version = "HTTP/1.0"
    _body_read = False

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def __getattr__(self, name: str):
        # BaseHTTPRequestHandler looks up do_<METHOD> and, without one, sends its HTML 501 page.
        # Every other method (PUT, DELETE, HEAD, OPTIONS, PATCH, anything) gets the JSON 405.
        if name.startswith("do_"):
            return lambda: self._route(name[3:])
        raise AttributeError(name)

    def _route(self, method: str) -> None:
        self._body_read = False
        try:
            try:
                path = urlsplit(self.path).path
            except ValueError:  # e.g. "//[oops/": an unclosed IPv6 host in the request target
                raise ApiError(400, "malformed request target: use / or /api/generate") from None
            if method not in ("GET", "POST"):
                raise method_not_allowed(method, "GET" if path in ("/", "/favicon.ico") else "GET, POST")
            if path == "/":
                if method != "GET":
                    raise ApiError(405, "the page is GET / ; the API is GET or POST /api/generate",
                                   {"Allow": "GET"})
                response = gallery_page(self.server.model)
            elif path == "/api/generate":
                response = self._generate(method)
            elif path == "/favicon.ico":  # browsers ask for it; the page has none
                if method != "GET":
                    raise method_not_allowed(method, "GET")
                response = Response(204, b"", "image/x-icon")
            else:
                raise ApiError(404, f"no such page: {_show(path)}; the gallery is / and the API is "
                                    "/api/generate")
        except ApiError as err:
            response = err.response()
            self._discard_unread_body()
        except Exception:
            LOG.exception("unexpected error while answering %s %s", method, self.path[:200])
            response = json_response(500, {"error": "internal error; the server's log has the details"})
            self.close_connection = True
        self._send(response)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The errors http.server finds itself (a malformed request line, headers too long):
        JSON with the same headers as every other response, not its HTML page."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.close_connection = True
        self._send(json_response(code, {"error": f"{message or phrase}: send GET / or GET/POST "
                                                 "/api/generate over HTTP/1.1"}))

    def _generate(self, method: str) -> Response:
        try:
            parsed = parse_qs(urlsplit(self.path).query, keep_blank_values=True, strict_parsing=False,
                              max_num_fields=len(FIELDS) + 4)
        except ValueError:
            raise ApiError(400, "too many query fields: the allowed fields are "
                                f"{', '.join(FIELDS)}") from None
        repeated = [k for k, v in parsed.items() if len(v) > 1]
        if repeated:
            raise ApiError(400, f"field(s) {', '.join(repeated)} given more than once: give each once")
        fields = fields_from_http(method, {k: v[0] for k, v in parsed.items()}, self._read_body())
        if not self.server.slots.acquire(blocking=False):
            raise ApiError(503, "the server is busy with other requests: retry in a moment")
        try:
            return api_response(fields, lambda: self.server.model)
        finally:
            self.server.slots.release()

    def _discard_unread_body(self) -> None:
        """Before an error reply: read (up to 1 MiB of) a body the request left unread, then
        close. A server that closes with unread bytes makes the kernel reset the connection,
        and the client may lose the error reply; a body read as the next request is worse."""
        self.close_connection = True
        length = (self.headers or {}).get("Content-Length", "") if not self._body_read else ""
        self._body_read = True
        if re.fullmatch(r"[0-9]{1,7}", length.strip()) and int(length) <= 1 << 20:
            with contextlib.suppress(OSError):
                self.rfile.read(int(length))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "send the body with a Content-Length (no chunked encoding)")
        length = self.headers.get("Content-Length")
        if not length:
            self._body_read = True
            return b""
        if not re.fullmatch(r"[0-9]{1,12}", length.strip()):  # str.isdigit() accepts "²"
            raise ApiError(400, "Content-Length must be a number of bytes")
        if int(length) > MAX_BODY_BYTES:
            self.close_connection = True  # do not read an oversized body at all
            raise ApiError(413, f"the body is {int(length)} bytes: at most {MAX_BODY_BYTES} (a "
                                "small JSON object)")
        self._body_read = True
        try:
            body = self.rfile.read(int(length))
        except (TimeoutError, ConnectionError):
            body = b""
        if len(body) != int(length):
            raise ApiError(400, f"the body ended after {len(body)} of its Content-Length "
                                f"{int(length)} bytes: send the whole body")
        return body

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        for name, value in response.all_headers().items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":  # a HEAD response has the headers only
            self.wfile.write(response.body)

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        LOG.info("%s %s", self.address_string(), format % args)


def make_server(model: ServingModel, host: str = "127.0.0.1", port: int = 8000) -> GalleryServer:
    """A GalleryServer bound to host:port (port 0: a free port; see .url). Call serve_forever()."""
    try:
        return GalleryServer((host, port), model)
    except OSError as err:
        raise CarganError(f"cannot listen on {host}:{port} ({err.strerror}): pick another --port") from err


# On AWS Lambda, load the model during the container's init phase (full CPU, not billed per
# request). A failure here is reported as a 500 on the first request, not as a crashed import.
if os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get(MODEL_ENV):
    with contextlib.suppress(ModelUnavailable):
        model_from_env()
