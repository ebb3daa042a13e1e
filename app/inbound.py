"""What every inbound request must satisfy before a view sees it (the twin of app/outbound.py).

One ``before_request`` guard, in one place rather than per endpoint:

- **URL**: no control character (C0 or DEL) in the path or in a query name or value — 422
  ``validation_error`` naming the parameter. PostgreSQL refuses NUL in text, and no identifier,
  filter or search term of ours has a use for control characters.
- **Body size** is counted on the bytes actually read, ``Transfer-Encoding: chunked`` included,
  not on the ``Content-Length`` header alone — 413 ``payload_too_large`` past
  ``MAX_CONTENT_LENGTH``, on every endpoint (a view that ignores its body too). werkzeug's own
  bounded stream stops *silently* at the limit, which turned a too-large chunked body into a
  truncated one.
- **JSON bodies**, on the endpoints that read one (declared with ``@blp.arguments`` in the json
  location): a non-empty body must be declared ``application/json`` or ``application/*+json``
  (else 415 ``unsupported_media_type``: it used to be read as empty), and must parse within bounds
  — at most ``MAX_JSON_DEPTH`` levels, numbers of at most ``MAX_NUMBER_CHARS`` characters, no
  ``NaN``/``Infinity``, UTF-8 (else 400 ``bad_request``, ``field: body``); strings may not hold
  NUL or unpaired surrogates, which no database column takes (422 naming the field).

The hot path (a GET without a body) reads four WSGI environ keys and scans two short strings
(about 2 µs).
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import NoReturn

from flask import Flask, current_app, request

from app.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed

MAX_JSON_DEPTH = 32
MAX_NUMBER_CHARS = 100

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# In the raw query string a control character arrives percent-encoded (or, from a lax client, raw).
_RAW_QUERY_CONTROL = re.compile(r"%(?:[01][0-9A-Fa-f]|7[Ff])|[\x00-\x1f\x7f]")
# Text no database column takes: NUL (PostgreSQL) and lone surrogates (not encodable as UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def init_app(app: Flask) -> None:
    """Register the guard; call after every blueprint is registered (it reads which endpoints
    take a JSON body from their ``@blp.arguments`` declarations)."""
    app.extensions["json_body_endpoints"] = json_body_endpoints(app)
    app.before_request(guard)


def json_body_endpoints(app: Flask) -> frozenset[str]:
    endpoints = set()
    for endpoint, view in app.view_functions.items():
        parameters = getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", [])
        if any(p.get("in") in ("json", "json_or_form") for p in parameters):
            endpoints.add(endpoint)
    return frozenset(endpoints)


def guard() -> None:
    # Raw WSGI strings, one proxy lookup: this runs on every request, the proxy's hot path too.
    # PATH_INFO and QUERY_STRING carry the URL's bytes as latin-1, so a control character is
    # the same code point there as after decoding, and UTF-8 sequences (>= 0x80) never match.
    environ = request.environ
    if _CONTROL.search(environ.get("PATH_INFO", "")):
        _refuse_path()
    query = environ.get("QUERY_STRING")
    if query and _RAW_QUERY_CONTROL.search(query):
        _refuse_query()
    # HTTP/1.1: a request with neither Content-Length nor Transfer-Encoding has no body.
    if environ.get("CONTENT_LENGTH", "0") in ("", "0") and "HTTP_TRANSFER_ENCODING" not in environ:
        return
    body = _read_body(request.content_length, current_app.config["MAX_CONTENT_LENGTH"])
    if body and request.endpoint in current_app.extensions["json_body_endpoints"]:
        if not request.is_json:
            raise UnsupportedMediaType("This endpoint takes a JSON body: send it with Content-Type: application/json.")
        load_json(body)  # webargs parses it again; this pass only refuses what it must not see


# --- URL --------------------------------------------------------------------------------------


def _refuse_path() -> NoReturn:
    names = [name for name, value in (request.view_args or {}).items()
             if isinstance(value, str) and _CONTROL.search(value)]
    raise ValidationFailed(names[0] if names else "path", "must not contain control characters")


def _refuse_query() -> NoReturn:
    for name, value in request.args.items(multi=True):
        if _CONTROL.search(value) or _CONTROL.search(name):
            raise ValidationFailed(name if not _CONTROL.search(name) else "query", "must not contain control characters")
    raise ValidationFailed("query", "must not contain control characters")


# --- body -------------------------------------------------------------------------------------


def _read_body(length: int | None, limit: int) -> bytes:
    """Read the whole body, at most ``limit`` bytes, and put it back as a plain buffer so that
    werkzeug (and webargs through it) reads the same bytes again."""
    if length is not None and length > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    environ = request.environ
    if "wsgi.input_terminated" in environ:
        want = limit + 1  # the server ends the stream (chunked, or gunicorn): read to its end
    elif length:
        want = length
    else:
        return b""  # chunked through a server that does not de-chunk: werkzeug reads nothing either
    stream, chunks, got = environ["wsgi.input"], [], 0
    while got < want:
        chunk = stream.read(min(65536, want - got))
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    if got > limit:
        raise PayloadTooLarge(f"The request body is larger than {limit} bytes.")
    if length is not None and got < length:
        raise BadRequest("body", "ended before its Content-Length")
    body = b"".join(chunks)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


# --- JSON -------------------------------------------------------------------------------------


class _Refused(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"has a number longer than {MAX_NUMBER_CHARS} characters")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _Refused(f"has a number longer than {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("has a number out of range")
    return value


def _parse_constant(name: str):
    raise _Refused(f"has {name}, which is not JSON")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)


def load_json(body: bytes):
    """Parse a request body within bounds, or raise a 400/422 problem naming the field."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("body", "is not valid UTF-8") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise BadRequest("body", f"is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except _Refused as exc:
        raise BadRequest("body", str(exc)) from None
    except ValueError:
        raise BadRequest("body", "is not valid JSON") from None
    _check_tree(value)
    return value


def _check_tree(value) -> None:
    """Depth and storable strings, walking containers only (iteratively: no recursion to exhaust)."""
    stack = [(value, 1, "")]
    while stack:
        node, depth, path = stack.pop()
        if isinstance(node, dict):
            items = node.items()
        elif isinstance(node, list):
            items = enumerate(node)
        else:
            if isinstance(node, str) and _UNSTORABLE.search(node):
                raise ValidationFailed((path or "body")[:200], "must not contain NUL or unpaired surrogate characters")
            continue
        if depth > MAX_JSON_DEPTH:
            raise BadRequest("body", f"is nested deeper than {MAX_JSON_DEPTH} levels")
        for key, child in items:
            name = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and _UNSTORABLE.search(key):
                raise ValidationFailed((path or "body")[:200], "has a key with NUL or unpaired surrogate characters")
            if isinstance(child, (dict, list, str)):
                stack.append((child, depth + 1, name))
