"""Every malformed request is a 4xx with a JSON body, in the Lambda handler and the local server.

The cases the issue found (deep JSON, queryStringParameters as a string, requestContext.http not
an object, seed=10**5000, PUT/DELETE/HEAD/OPTIONS) one by one, then a seeded fuzz: hundreds of
generated events and HTTP requests (random methods, paths, bodies, nesting, odd types, huge
numbers, unicode) with zero 5xx. `hypothesis` is not installed in the venv; a seeded
random.Random makes the cases, so a failure names the case and reruns identically.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import math
import random
import socket
import string
import threading
from pathlib import Path

import numpy as np
import pytest

from cargan_tf import serve
from cargan_tf.export import ServingModel

FIXTURES = Path(__file__).parent / "fixtures"
TEMPLATES = {name: json.loads((FIXTURES / f"{name}.json").read_text())
             for name in ("apigw_rest_v1_get", "apigw_rest_v1_post", "apigw_http_v2_get",
                          "apigw_http_v2_post", "direct_invocation")}
FUZZ_CASES = 240


class FlatModel(ServingModel):
    """A stand-in generator: 8x8 gray-ish cars in no time (the fuzz is about the input side)."""

    kind = "flat"

    def __init__(self):
        super().__init__(Path("flat.tflite"), 4, (8, 8, 3))

    def _run(self, z):
        levels = np.clip((z[:, :1, None, None] * 40 + 128), 0, 255).astype(np.uint8)
        return np.broadcast_to(levels, (len(z), 8, 8, 3)).copy()


@pytest.fixture
def handler_env(monkeypatch):
    model = FlatModel()
    monkeypatch.setenv(serve.MODEL_ENV, "/opt/model/flat.tflite")
    monkeypatch.setattr(serve, "_MODELS", {"/opt/model/flat.tflite": model})
    return model


def check_reply(reply: dict, case: object) -> int:
    """A Lambda reply: never 5xx; a PNG for 200, a JSON {"error": ...} for anything else."""
    status = reply["statusCode"]
    assert status < 500, (case, reply)
    headers = reply["headers"]
    assert headers["X-Content-Type-Options"] == "nosniff", case
    if status == 200:
        assert reply["isBase64Encoded"] and headers["Content-Type"] == "image/png"
        assert base64.b64decode(reply["body"]).startswith(b"\x89PNG\r\n\x1a\n")
    else:
        assert status in (400, 405, 413), (case, status)
        assert headers["Content-Type"] == "application/json" and not reply["isBase64Encoded"]
        error = json.loads(reply["body"])["error"]
        assert error and "Traceback" not in error, case
    return status


def deep(depth: int, leaf: object = 1, kind: str = "[") -> object:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "[" else {"a": value}
    return value


# --- the issue's cases, one by one -------------------------------------------------------------

def v2_post(body: str, encoded: bool = False) -> dict:
    event = copy.deepcopy(TEMPLATES["apigw_http_v2_post"])
    event["body"], event["isBase64Encoded"] = body, encoded
    return event


ISSUE_EVENTS = {
    "queryStringParameters a string": lambda: {
        **copy.deepcopy(TEMPLATES["apigw_rest_v1_get"]), "queryStringParameters": "n=4&seed=7"},
    "queryStringParameters a list": lambda: {
        **copy.deepcopy(TEMPLATES["apigw_http_v2_get"]), "queryStringParameters": ["seed"]},
    "queryStringParameters values not strings": lambda: {
        **copy.deepcopy(TEMPLATES["apigw_http_v2_get"]), "queryStringParameters": {"seed": [1]}},
    "requestContext.http a string": lambda: {
        **copy.deepcopy(TEMPLATES["apigw_http_v2_get"]),
        "requestContext": {"http": "GET /api/generate"}},
    "requestContext.http null": lambda: {
        **copy.deepcopy(TEMPLATES["apigw_http_v2_get"]), "requestContext": {"http": None}},
    "httpMethod a huge number": lambda: {
        **copy.deepcopy(TEMPLATES["apigw_rest_v1_get"]), "httpMethod": 10**5000},
    "httpMethod null": lambda: {**copy.deepcopy(TEMPLATES["apigw_rest_v1_get"]), "httpMethod": None},
    "seed=10**5000 direct": lambda: {"seed": 10**5000},
    "seed=-10**5000 direct": lambda: {"seed": -10**5000},
    "n=10**5000 direct": lambda: {"n": 10**5000, "format": "grid"},
    "seed of 5000 digits in the query": lambda: {
        **copy.deepcopy(TEMPLATES["apigw_rest_v1_get"]),
        "queryStringParameters": {"seed": "1" + "0" * 5000}},
    "seed of 5000 digits in a JSON body": lambda: v2_post('{"seed": 1' + "0" * 5000 + "}"),
    "seed a float too large": lambda: {"seed": 1e308},
    "seed NaN": lambda: {"seed": math.nan},
    "body nested 8000 deep (v2)": lambda: v2_post("[" * 8000 + "]" * 8000),
    "body nested objects (v1)": lambda: {
        **copy.deepcopy(TEMPLATES["apigw_rest_v1_post"]), "body": '{"a":' * 2500 + "1" + "}" * 2500},
    "body nested, base64": lambda: v2_post(base64.b64encode(b"[" * 12_000).decode(), True),
    "body a lone surrogate": lambda: v2_post('{"seed": "\ud800"}'),
    "body not UTF-8 (base64)": lambda: v2_post(base64.b64encode(b'{"seed": "\xff\xfe"}').decode(), True),
    "isBase64Encoded a string": lambda: {**v2_post('{"seed": 1}'), "isBase64Encoded": "yes"},
    "body a number": lambda: {**v2_post(""), "body": 12},
    "field value nested 100000 deep (direct)": lambda: {"seed": deep(100_000)},
    "field names not strings (direct)": lambda: {1: 2},
    "repeated query field (v1)": lambda: {
        **copy.deepcopy(TEMPLATES["apigw_rest_v1_get"]),
        "multiValueQueryStringParameters": {"n": ["2", "3"]}},
}


@pytest.mark.parametrize("case", sorted(ISSUE_EVENTS))
def test_the_issues_malformed_events_get_400_with_a_json_body(case, handler_env):
    reply = serve.lambda_handler(ISSUE_EVENTS[case](), None)
    assert check_reply(reply, case) == 400


def test_huge_numbers_are_named_by_their_size_not_printed(handler_env):
    reply = serve.lambda_handler({"seed": 10**5000}, None)
    error = json.loads(reply["body"])["error"]
    assert "an integer of about 5001 digits" in error and "0..4294967295" in error
    assert len(reply["body"]) < 4000


def test_a_flat_body_still_works_and_depth_is_bounded(handler_env):
    assert check_reply(serve.lambda_handler(v2_post('{"n": 4, "seed": 3}'), None), "flat") == 200
    nested = json.dumps({"n": deep(serve.MAX_JSON_DEPTH)})  # one level too deep
    assert "levels deep" in json.loads(serve.lambda_handler(v2_post(nested), None)["body"])["error"]
    with pytest.raises(serve.ApiError, match="levels deep"):
        serve.json_body(b'{"seed": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    # brackets inside strings are text, not nesting (a string ending in an escaped quote, too)
    assert serve.json_body(b'{"format": "[[[[[[\\"{{{{{"}') == {"format": '[[[[[["{{{{{'}


# --- a seeded fuzz of the handler ------------------------------------------------------------------

def odd_value(rng: random.Random, depth: int = 0) -> object:
    """A value of a type or size the API does not expect (and sometimes one it does)."""
    choice = rng.randrange(20)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, -1, 1, 7, 64, 65, 2**32 - 1, 2**32, 2**63, -2**63])
    if choice == 3:
        return rng.choice([10**5000, -10**5000, 10**4301, 2**100_000])
    if choice == 4:
        return rng.choice([1.5, -0.0, 1e308, -1e308, math.inf, -math.inf, math.nan, 4.0])
    if choice == 5:
        return "".join(rng.choice(string.printable) for _ in range(rng.randrange(12)))
    if choice == 6:
        return "".join(chr(rng.randrange(0x80, 0x2FFFF)) for _ in range(rng.randrange(1, 12)))
    if choice == 7:
        return rng.choice(["", " ", "\x00", "\ud800", "NaN", "1e9", "0x10", "٣", "²", "+4", " 4 "])
    if choice == 8:
        return str(rng.randrange(10**6)) * rng.randrange(1, 400)  # digit strings, some huge
    if choice == 9:
        return "x" * rng.choice([100, 20_000, 70_000])
    if choice == 10:
        return deep(rng.choice([2, 50, 3000]), kind=rng.choice("[{"))
    if choice == 11 and depth < 3:
        return [odd_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if choice == 12 and depth < 3:
        return {odd_key(rng): odd_value(rng, depth + 1) for _ in range(rng.randrange(4))}
    if choice == 13:
        return rng.choice(["png", "grid", "PNG", "jpeg", "gif"])
    if choice == 14:
        return b"\x00bytes"
    return str(rng.randrange(-5, 70))  # a plausible value, valid or just out of range


def odd_key(rng: random.Random) -> str:
    return rng.choice([*serve.FIELDS, *serve.FIELDS, "model", "path", "", "séed", "n ", "N",
                       "__proto__", "\u202e", "a" * 300])


def odd_fields(rng: random.Random) -> dict:
    return {odd_key(rng): odd_value(rng) for _ in range(rng.randrange(5))}


def odd_body(rng: random.Random) -> tuple[object, bool]:
    """(body, isBase64Encoded) for a proxy event."""
    choice = rng.randrange(9)
    if choice == 0:
        text = dumps(odd_fields(rng))
    elif choice == 1:
        text = rng.choice("[{") * rng.randrange(1, 20_000)
    elif choice == 2:
        text = json.dumps({"seed": deep(rng.randrange(1, 40))})
    elif choice == 3:
        text = "".join(rng.choice('{}[]",:0123456789 \\"ntrue') for _ in range(rng.randrange(60)))
    elif choice == 4:
        return odd_value(rng), rng.choice([True, False, None, "true", 1])
    elif choice == 5:
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
        return base64.b64encode(raw).decode(), True
    elif choice == 6:
        return "%%%" + "".join(rng.choice(string.printable) for _ in range(20)), True
    elif choice == 7:
        text = '{"n": ' + "9" * rng.choice([25, 5000]) + "}"
    else:
        text = json.dumps({"n": rng.randrange(1, 8), "seed": rng.randrange(2**32)})
    if rng.random() < 0.3:
        return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode(), True
    return text, False


def dumps(fields: dict) -> str:
    """JSON text of generated fields; what json cannot write (3000-deep lists, integers past
    4300 digits) as the raw text a client could still send."""
    try:
        return json.dumps(fields, default=repr)
    except (RecursionError, ValueError):
        return '{"seed": ' + "[" * 3000 + "]" * 3000 + ', "n": ' + "9" * 5000 + "}"


def fuzz_event(rng: random.Random) -> object:
    kind = rng.randrange(10)
    if kind == 0:  # not an object at all
        return odd_value(rng)
    if kind in (1, 2):  # a direct invocation
        return odd_fields(rng)
    event = copy.deepcopy(TEMPLATES[rng.choice(sorted(TEMPLATES)[:4])])
    for _ in range(rng.randrange(1, 4)):
        part = rng.randrange(9)
        if part == 0:
            event["queryStringParameters"] = rng.choice(
                [odd_value(rng), odd_fields(rng), {k: as_text(v)[:50] for k, v in odd_fields(rng).items()}])
        elif part == 1:
            event["body"], event["isBase64Encoded"] = odd_body(rng)
        elif part == 2 and "httpMethod" in event:
            event["httpMethod"] = rng.choice([odd_value(rng), "PUT", "get", "HEAD", "OPTIONS", ""])
        elif part == 2 and isinstance(event.get("requestContext"), dict) \
                and isinstance(event["requestContext"].get("http"), dict):
            event["requestContext"]["http"]["method"] = rng.choice([odd_value(rng), "DELETE", "post"])
        elif part == 3:
            event["requestContext"] = rng.choice([odd_value(rng), {"http": odd_value(rng)}])
        elif part == 4:
            event["multiValueQueryStringParameters"] = rng.choice(
                [odd_value(rng), {"n": ["1", "2"]}, {"seed": ["3"]}])
        elif part == 5:
            event["isBase64Encoded"] = odd_value(rng)
        elif part == 6:
            event["headers"] = odd_value(rng)
        elif part == 7:
            event[odd_key(rng)] = odd_value(rng)
        else:
            event.pop(rng.choice(sorted(event)), None)
    return event


def test_fuzzed_events_never_get_a_5xx(handler_env):
    rng = random.Random(25)
    seen: dict[int, int] = {}
    for i in range(FUZZ_CASES):
        event = fuzz_event(rng)
        status = check_reply(serve.lambda_handler(event, None), f"event #{i} (seed 25)")
        seen[status] = seen.get(status, 0) + 1
    assert sum(seen.values()) == FUZZ_CASES >= 200
    assert seen.get(400, 0) > FUZZ_CASES // 3 and 200 in seen and 405 in seen, seen


# --- the local server ------------------------------------------------------------------------------

@pytest.fixture
def server(monkeypatch):
    monkeypatch.setattr(serve._GalleryHandler, "timeout", 2)  # the stalled-body case waits this
    srv = serve.make_server(FlatModel(), "127.0.0.1", 0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(srv, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        reply = conn.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        conn.close()


def raw_request(srv, data: bytes) -> tuple[int, dict, bytes]:
    """Bytes straight onto the socket (what http.client refuses to send); the parsed reply."""
    with socket.create_connection(srv.server_address[:2], timeout=30) as sock:
        sock.sendall(data)
        reply = http.client.HTTPResponse(sock)
        reply.begin()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()


SECURITY = {k.lower() for k in serve.SECURITY_HEADERS}


def check_http(status: int, headers: dict, body: bytes, method: str, case: object) -> int:
    assert status < 500, (case, status, body[:300])
    assert SECURITY <= set(headers), (case, headers)
    if status == 200:
        assert headers["content-type"] in ("image/png", "text/html; charset=utf-8"), case
    elif status != 204:
        assert headers["content-type"] == "application/json", (case, headers)
        if method != "HEAD":
            assert json.loads(body)["error"] and b"Traceback" not in body, case
    return status


@pytest.mark.parametrize("method", ["PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "FOO"])
@pytest.mark.parametrize("path", ["/", "/api/generate", "/nowhere"])
def test_other_methods_get_a_json_405_with_the_security_headers(server, method, path):
    status, headers, body = request(server, method, path, b'{"n": 2}' if method == "PUT" else None)
    assert status == 405 and check_http(status, headers, body, method, (method, path)) == 405
    assert headers["allow"] == ("GET" if path == "/" else "GET, POST")
    if method == "HEAD":
        assert body == b""
    else:
        assert "is not allowed" in json.loads(body)["error"]
    _, ok_headers, _ = request(server, "GET", "/api/generate?seed=1")
    assert {h: ok_headers[h] for h in SECURITY} == {h: headers[h] for h in SECURITY}


def test_deeply_nested_json_gets_400(server):
    for body in (b"[" * 16_000, b'{"seed":' * 1500 + b"1" + b"}" * 1500):
        status, headers, reply = request(server, "POST", "/api/generate", body,
                                         {"Content-Type": "application/json"})
        assert status == 400 and "levels deep" in json.loads(reply)["error"]


RAW_CASES = {
    "garbage request line": b"GARBAGE\r\n\r\n",
    "bad header line": b"GET /api/generate HTTP/1.1\r\nHost x\r\nno colon here\r\n\r\n",
    "Content-Length superscript two": b"POST /api/generate HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n",
    "Content-Length negative": b"POST /api/generate HTTP/1.1\r\nContent-Length: -5\r\n\r\nhello",
    "body shorter than Content-Length": b"POST /api/generate HTTP/1.1\r\nContent-Length: 40\r\n\r\n{}",
    "chunked body": b"POST /api/generate HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "unclosed IPv6 in the target": b"GET //[oops/api HTTP/1.1\r\n\r\n",
    "absolute target": b"GET http://example.com/api/generate?seed=3 HTTP/1.1\r\n\r\n",
    "non-UTF-8 query": b"GET /api/generate?seed=%ff%fe HTTP/1.1\r\n\r\n",
    "latin-1 path": b"GET /\xe9t\xe9 HTTP/1.1\r\n\r\n",
    "request line of 70000 bytes": b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(RAW_CASES))
def test_malformed_http_gets_a_json_4xx(server, case):
    status, headers, body = raw_request(server, RAW_CASES[case])
    assert 200 <= check_http(status, headers, body, "GET", case) < 500


def fuzz_request(rng: random.Random) -> tuple[str, str, bytes | None, dict]:
    method = rng.choice(["GET", "POST"]) if rng.random() < 0.7 else rng.choice(
        ["PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "get", "FOO", "M-SEARCH", "X" * 40])
    query = "&".join(f"{http_quote(k)}={http_quote(as_text(v)[:rng.choice([50, 6000])])}"
                     for k, v in odd_fields(rng).items())
    path = rng.choice(["/", "/api/generate", "/api/generate", "/api/generate", "/favicon.ico",
                       "/../../etc/passwd", "/api/generate/", "/API/generate", "//api/generate",
                       "/" + http_quote(odd_value(rng) if rng.random() < 0.5 else "é")])
    if rng.random() < 0.7:
        path += "?" + query
    body, headers = None, {}
    if method != "GET" or rng.random() < 0.2:
        choice = rng.randrange(5)
        if choice == 0:
            body = dumps(odd_fields(rng)).encode("utf-8", "surrogatepass")
        elif choice == 1:
            body = rng.choice([b"[", b"{"]) * rng.randrange(1, 17_000)
        elif choice == 2:
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        elif choice == 3:
            body = odd_body(rng)[0]
            body = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else None
        else:
            body = b" " * rng.choice([0, 10, 17_000, 40_000])
        headers["Content-Type"] = rng.choice(["application/json", "text/plain", "x/\u00e9".encode(
            "latin-1").decode("latin-1")])
    return method, path, body, headers


def http_quote(value: object) -> str:
    from urllib.parse import quote

    return quote(as_text(value)[:300].encode("utf-8", "surrogatepass"), safe="")


def as_text(value: object) -> str:
    try:
        return str(value)
    except ValueError:  # an integer past Python's 4300-digit str() limit
        return "9" * 5000
    except RecursionError:  # a list nested thousands deep
        return "[" * 3000


def test_fuzzed_requests_never_get_a_5xx(server):
    rng = random.Random(2025)
    seen: dict[int, int] = {}
    for i in range(FUZZ_CASES):
        method, path, body, headers = fuzz_request(rng)
        try:
            status, reply_headers, reply = request(server, method, path, body, headers)
        except (ConnectionError, http.client.HTTPException) as err:  # pragma: no cover
            pytest.fail(f"request #{i} {method} {path[:80]!r}: the server dropped it ({err!r})")
        status = check_http(status, reply_headers, reply, method, f"request #{i} {method} {path[:80]!r}")
        seen[status] = seen.get(status, 0) + 1
    assert sum(seen.values()) == FUZZ_CASES >= 200
    assert {200, 400, 404, 405} <= set(seen), seen
