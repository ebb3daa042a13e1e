"""``Idempotency-Key`` on every POST and the connecting PUT, as Stripe defines it.

The auth decorators (``org_required``, ``admin_required`` in app/auth.py) call ``guard`` once the
caller is known, so every POST route — and every provider action added later — gets this without
a line of its own. GETs pay one method comparison.

::

    POST/PUT with Idempotency-Key ─▶ header valid? (422 naming it)
      ─▶ INSERT the in-progress row, UNIQUE(scope, key)      first request: run the view,
           │                                                 then (after_request) save the answer
           └─ conflict ─▶ expired?  delete it, insert again
                        ─▶ other method/path/body?  422 idempotency_key_reused
                        ─▶ answered?  the saved status and body, ``Idempotent-Replayed: true``
                        ─▶ still running?  409 idempotency_key_in_progress (``Retry-After: 1``)

What is saved follows Stripe (https://docs.stripe.com/api/idempotent_requests): the answer of a
request whose endpoint began its work, successes and failures alike, 5xx included — an upstream
timeout's outcome is unknown, and a retry must not repeat a send. Not saved (the key is released
and a retry runs again): requests refused before the work — 401/403 never reach here, 429 from the
org's limit neither; 422 ``validation_error`` (the input was refused), 400/413/415 — and our own
infrastructure failing (``database_unavailable``, ``shared_state_unavailable``: nothing changed).

Scope: ``org:<id>`` or ``admin``. Nothing in a row is readable without the idempotency key
itself: the lookup hash and the request digest are HMACs keyed by it, and the saved answer is
AES-GCM encrypted with a key derived from it (an issued API key is in that answer; see
docs/decisions.md). Rows expire after ``IDEMPOTENCY_KEY_TTL`` seconds (24 h); expired rows are
deleted lazily. A row still "in progress" after ``ABANDONED_AFTER`` belongs to a request whose
process died (every wait is bounded well below that); the next retry takes it over.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import Callable

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask, Response, current_app, g, request

from app.errors import IdempotencyKeyInProgress, IdempotencyKeyReused, SwitchboardError, ValidationFailed
from app.extensions import autocommit
from app.models import IdempotencyKey
from app.models.base import utcnow

log = logging.getLogger("switchboard.idempotency")

HEADER = "Idempotency-Key"
METHODS = frozenset({"POST", "PUT"})
MAX_LENGTH = 255  # Stripe's limit
_KEY = re.compile(r"[\x21-\x7e]{1,%d}" % MAX_LENGTH, re.ASCII)  # printable ASCII, no spaces
ABANDONED_AFTER = timedelta(minutes=5)
_SWEEP_EVERY = 60.0  # seconds between lazy deletions of expired rows (per process)
# Problem codes whose answer is not saved: the request was refused before the work, or our own
# storage failed and nothing was changed, or the provider refused it undone (its 429 — or
# Switchboard's budget or circuit breaker, which refuse before sending). A retry with the same key
# runs again; saving these would replay a pause of seconds for the key's whole lifetime.
NOT_SAVED = frozenset({"validation_error", "bad_request", "payload_too_large", "unsupported_media_type",
                       "rate_limited", "database_unavailable", "shared_state_unavailable",
                       "upstream_rate_limited", "upstream_circuit_open", "provider_not_configured"})
# Headers that belong to the answer (not to this exchange) and are replayed with it.
_REPLAYED_HEADERS = ("Location", "Content-Location")

_t = IdempotencyKey.__table__
_INSERT = sa.insert(_t)
_FIND = sa.select(_t.c.id, _t.c.request_digest, _t.c.owner, _t.c.locked_at, _t.c.expires_at,
                  _t.c.response_status, _t.c.response).where(
    _t.c.scope == sa.bindparam("scope"), _t.c.key_hash == sa.bindparam("key_hash"))
# (Bound names differ from column names: an UPDATE reserves those for its SET values.)
_OWNED = sa.and_(_t.c.scope == sa.bindparam("b_scope"), _t.c.key_hash == sa.bindparam("b_key_hash"),
                 _t.c.owner == sa.bindparam("b_owner"))
_last_sweep = 0.0


@dataclass(frozen=True)
class _Claim:
    """This request holds the key: it runs the view and saves the answer."""

    scope: str
    key_hash: str
    owner: str
    cipher_key: bytes


def guard(view: Callable, scope: Callable[[], str]) -> Callable:
    """Wrap ``view`` (already authenticated: ``scope()`` names the caller) with the key check."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if request.method in METHODS and HEADER in request.headers:
            replay = begin(scope())
            if replay is not None:
                return replay
        return view(*args, **kwargs)

    return wrapper


def _derive(scope: str, key: str) -> tuple[str, bytes, bytes]:
    """(lookup hash, request-digest key, cipher key), all from the caller's idempotency key."""
    root = hmac.new(key.encode(), b"switchboard-idempotency\0" + scope.encode(), hashlib.sha256).digest()
    lookup = hmac.new(root, b"lookup", hashlib.sha256).hexdigest()
    return lookup, hmac.new(root, b"request", hashlib.sha256).digest(), hmac.new(root, b"cipher", hashlib.sha256).digest()


def _request_digest(digest_key: bytes) -> str:
    """Method, path (with query) and body. A JSON body is compared as JSON (key order and
    spacing do not matter), anything else byte for byte."""
    body = request.get_data(cache=True)
    if request.is_json and body:
        try:
            body = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
        except ValueError:
            pass  # not JSON after all: the raw bytes (the view will refuse it anyway)
    query = request.query_string
    target = request.path.encode() + (b"?" + query if query else b"")
    message = b"\0".join([request.method.encode(), target, body])
    return hmac.new(digest_key, message, hashlib.sha256).hexdigest()


def begin(scope: str) -> Response | None:
    """Claim the key for this request (``None``: run the view) or answer instead of the view."""
    key = request.headers.get(HEADER, "")
    if not _KEY.fullmatch(key):
        raise ValidationFailed(HEADER, f"must be 1 to {MAX_LENGTH} printable ASCII characters without "
                                       "spaces (a V4 UUID is a good choice)")
    lookup, digest_key, cipher_key = _derive(scope, key)
    digest = _request_digest(digest_key)
    where = {"scope": scope, "key_hash": lookup}
    for _ in range(3):
        now = utcnow()
        owner = secrets.token_hex(16)
        try:
            autocommit(_INSERT, {**where, "request_digest": digest, "owner": owner, "locked_at": now,
                                 "created_at": now,
                                 "expires_at": now + timedelta(seconds=current_app.config["IDEMPOTENCY_KEY_TTL"]),
                                 "response_status": None, "response": None})
        except sa.exc.IntegrityError:
            pass  # the key is known: look at its row
        else:
            g.idempotency = _Claim(scope, lookup, owner, cipher_key)
            _sweep(now)
            return None
        row = autocommit(_FIND, where)
        if row is None:
            continue  # deleted (expired) between our INSERT and SELECT: try again
        if row.expires_at <= now:
            autocommit(sa.delete(_t).where(_t.c.id == row.id, _t.c.expires_at <= now))
            continue
        if not hmac.compare_digest(row.request_digest, digest):
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used with a different request (method, path or body); "
                "use a new key for a new request.", field=HEADER)
        if row.response_status is not None:
            return _replay(row.response_status, row.response, cipher_key, lookup)
        if row.locked_at is not None and now - row.locked_at > ABANDONED_AFTER:
            # The first request's process died before answering; its outcome is unknown, as it
            # would be without a key. Take the key over (one taker wins: compare-and-set).
            taken = autocommit(sa.update(_t).where(_t.c.id == row.id, _t.c.owner == row.owner)
                               .values(owner=owner, locked_at=now).returning(_t.c.id))
            if taken is not None:
                g.idempotency = _Claim(scope, lookup, owner, cipher_key)
                return None
        break
    raise IdempotencyKeyInProgress(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        headers={"Retry-After": "1"})


def _sweep(now) -> None:
    """Lazy expiry: at most once a minute per process, delete what has expired (indexed)."""
    global _last_sweep
    clock = time.monotonic()
    if clock - _last_sweep < _SWEEP_EVERY:
        return
    _last_sweep = clock
    try:
        autocommit(sa.delete(_t).where(_t.c.expires_at <= now))
    except sa.exc.SQLAlchemyError:  # housekeeping only: the request goes on
        log.warning("idempotency sweep failed")


# --- the saved answer --------------------------------------------------------------------------


def _seal(cipher_key: bytes, aad: str, status: int, response: Response) -> bytes:
    meta = json.dumps({"content_type": response.content_type,
                       "headers": {h: response.headers[h] for h in _REPLAYED_HEADERS if h in response.headers}},
                      separators=(",", ":")).encode()
    plaintext = len(meta).to_bytes(4, "big") + meta + response.get_data()
    nonce = os.urandom(12)
    return nonce + AESGCM(cipher_key).encrypt(nonce, plaintext, f"{aad}:{status}".encode())


def _replay(status: int, sealed: bytes, cipher_key: bytes, aad: str) -> Response:
    try:
        plaintext = AESGCM(cipher_key).decrypt(sealed[:12], sealed[12:], f"{aad}:{status}".encode())
    except InvalidTag:  # only a changed row gets here
        log.error("idempotency record failed authentication")
        raise SwitchboardError("The saved answer for this Idempotency-Key cannot be read.") from None
    size = int.from_bytes(plaintext[:4], "big")
    meta = json.loads(plaintext[4:4 + size])
    response = current_app.response_class(plaintext[4 + size:], status=status, content_type=meta["content_type"])
    for name, value in meta["headers"].items():
        response.headers[name] = value
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _problem_code(response: Response) -> str | None:
    if response.status_code < 400 or response.mimetype != "application/problem+json":
        return None
    try:
        return json.loads(response.get_data()).get("code")
    except (ValueError, AttributeError):
        return None


def _finish(response: Response) -> Response:
    """After every request: save the answer of a request that holds a key, or release the key."""
    claim: _Claim | None = g.pop("idempotency", None)
    if claim is None:
        return response
    params = {"b_scope": claim.scope, "b_key_hash": claim.key_hash, "b_owner": claim.owner}
    try:
        if response.is_streamed or _problem_code(response) in NOT_SAVED:
            autocommit(sa.delete(_t).where(_OWNED), params)
        else:
            sealed = _seal(claim.cipher_key, claim.key_hash, response.status_code, response)
            autocommit(sa.update(_t).where(_OWNED).values(
                response_status=response.status_code, response=sealed, owner=None, locked_at=None), params)
    except sa.exc.SQLAlchemyError as exc:
        # The work is done and its answer goes out; the key stays "in progress" until it is
        # abandoned (ABANDONED_AFTER), then a retry runs again.
        log.error("idempotency answer not saved (%s) request_id=%s", type(exc).__name__, g.get("request_id"))
    return response


def init_app(app: Flask) -> None:
    # Registered before the other after_request hooks, so it runs after them (Flask runs them in
    # reverse): what is saved is exactly what was sent, the proxy's audit outcome included.
    app.after_request(_finish)
