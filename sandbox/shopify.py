"""Shopify Admin API emulator (GraphQL Admin API + client-credentials grant), as a WSGI app.

Real Shopify is virtual-hosted (``https://{shop}.myshopify.com/...``). ``*.localhost`` does not
resolve everywhere, so the emulator is virtual-hosted by a path prefix instead: every Shopify
path is served under ``/shops/{shop}``. Everything after the prefix follows Shopify::

    POST /shops/{shop}/admin/api/{version}/graphql.json   X-Shopify-Access-Token
    POST /shops/{shop}/admin/oauth/access_token           grant_type=client_credentials

Test controls live under ``/__sandbox__/`` (a prefix Shopify never uses) and are not recorded:

    POST /__sandbox__/faults   {"kind", "times", "shop", "endpoint", ...params}
    POST /__sandbox__/reset
    POST /__sandbox__/shops/{shop}/settings   {"protected_customer_data"?: bool, "scopes"?: "a,b"}
    POST /__sandbox__/expire-tokens   {"shop"?}
    GET  /__sandbox__/received

A GraphQL request goes through, in order::

    record ─▶ injected fault? ─▶ shop known? (404) ─▶ version YYYY-MM? (404) ─▶ token (401)
           ─▶ body (400) ─▶ parse/validate (200 + errors) ─▶ cost ≤ 1000? (MAX_COST_EXCEEDED)
           ─▶ bucket has room? (THROTTLED) ─▶ execute ─▶ refund requested − actual

Facts followed (with sources):
  * 401 body for a bad/missing token: ``{"errors":"[API] Invalid API key or access token
    (unrecognized login or wrong password)"}`` — https://shopify.dev/docs/api/usage/response-codes
  * 400 ``{"errors":{"query":"Required parameter missing or invalid"}}`` and 404
    ``{"errors":"Not Found"}`` — sample error codes on https://shopify.dev/docs/api/admin-graphql
  * client-credentials grant: form (or JSON) ``grant_type``/``client_id``/``client_secret``;
    answer ``{"access_token","scope","expires_in"}`` with ``expires_in`` "always 86399" —
    https://shopify.dev/docs/apps/build/authentication-authorization/access-tokens/client-credentials-grant
  * rate limits per app *and* store, leaky bucket; ``extensions.cost`` on every GraphQL answer;
    THROTTLED is HTTP 200 with ``errors[].extensions.code == "THROTTLED"`` and
    ``actualQueryCost: null`` — https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits
  * single query limit 1000 points, ``MAX_COST_EXCEEDED`` (same page).

Guesses (Shopify's documentation is silent):
  * A bad client id/secret gets HTTP 400 ``{"error":"invalid_client","error_description":...}``
    (Shopify's OAuth errors are 400 + ``error``/``error_description``; RFC 6749 §5.2 would also
    allow 401). A shop outside ``grant_shops`` gets 400 ``shop_not_permitted`` ("Client
    credentials cannot be performed on this shop."), as reported by users.
  * Tokens minted by earlier grants stay valid until they expire (a new grant does not revoke).
  * Unknown shop: 404 ``{"errors":"Not Found"}``. Versions must be ``YYYY-01|04|07|10`` or
    ``unstable`` (Shopify releases quarterly); anything else is 404. We do not "fall forward".
  * The bucket is keyed per (shop, app): tokens minted for ``client_id`` share one bucket per shop,
    each static token in ``access_tokens`` is its own custom app.
  * Fault bodies: 429 uses the REST throttle message with ``Retry-After``; 500 uses
    ``{"errors":"An unexpected error occurred"}`` (documented sample); 503 ``{"errors":"Service
    Unavailable"}`` is a guess.
  * An undecodable ``after`` cursor is HTTP 200 with ``"Invalid cursor for current pagination
    sort."`` at path ``["products"]`` and ``data: null`` — graphql-ruby's wording, seen in the wild
    in clients of the Admin API; Shopify documents no code for it, so none is sent.
  * Revoking a minted token (the app uninstalled, its secret rotated) is ``expire_tokens``: the
    next call gets the documented 401 ``Invalid API key or access token``.
  * ``drop`` closes the socket via werkzeug's ``environ["werkzeug.socket"]``; under another WSGI
    server that key is absent and the fault is skipped (answered normally).
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl

from flask import Flask, Request, Response, request

from . import faults
from . import shopify_graphql as gql

DATA_FILE = Path(__file__).with_name("data") / "shopify.json"
DEFAULT_SCOPE = "read_products,read_orders,read_inventory,read_customers,write_draft_orders"

INVALID_TOKEN_BODY = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
NOT_FOUND_BODY = {"errors": "Not Found"}
BAD_QUERY_BODY = {"errors": {"query": "Required parameter missing or invalid"}}

FAULT_KINDS = frozenset({"throttled", "http_429", "http_500", "http_502", "http_503", "slow", "redirect", "garbage", "drop",
                         "drip", "respond"})
ENDPOINTS = frozenset({"graphql", "token"})

_VERSION = re.compile(r"\d{4}-(01|04|07|10)|unstable")
_SHOP_PATH = re.compile(r"/shops/([^/]+)(/.*)?")


def load_demo_data() -> dict:
    """The demo shops in ``sandbox/data/shopify.json``."""
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))


def _json(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    response = Response(
        json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json; charset=utf-8",
    )
    response.headers["X-Request-Id"] = str(uuid.uuid4())
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class _Bucket:
    """A leaky bucket: ``level`` points available, refilled at ``rate`` per second."""

    def __init__(self, size: float, rate: float, now: float):
        self.size, self.rate, self.level, self.stamp = size, rate, size, now

    def refill(self, now: float) -> None:
        self.level = min(self.size, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def status(self) -> dict:
        return {
            "maximumAvailable": float(self.size),
            "currentlyAvailable": int(self.level),
            "restoreRate": float(self.rate),
        }


class ShopifyEmulator:
    """The Shopify Admin API for the shops in ``data``, served as a WSGI app (``.wsgi``).

    Thread-safe: ``received``, ``grants``, faults, tokens and buckets are guarded by one lock.
    """

    def __init__(
        self,
        access_tokens: dict[str, str] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_ttl: int = 86399,
        bucket_size: int = 2000,
        restore_rate: int = 100,
        data: dict | None = None,
        *,
        scope: str = DEFAULT_SCOPE,
        grant_shops: set[str] | None = None,
        max_query_cost: int = gql.DEFAULT_MAX_QUERY_COST,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.access_tokens = dict(access_tokens or {})
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_ttl = token_ttl
        self.bucket_size = bucket_size
        self.restore_rate = restore_rate
        self.scope = scope
        self.grant_shops = set(grant_shops) if grant_shops is not None else None
        self.max_query_cost = max_query_cost
        self.clock = clock
        self._data = data if data is not None else load_demo_data()
        self.views = gql.load_views(self._data)
        # Per shop: {"protected_customer_data": bool, "scopes": "a,b"} (see ``configure``).
        self.shop_settings: dict[str, dict] = {}

        self.received: list[dict] = []
        self.grants: Counter[str] = Counter()
        self._faults: list[dict] = []
        self._minted: dict[str, tuple[str, float]] = {}  # token -> (shop, expires at)
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._lock = threading.Lock()
        self.wsgi = self._build_app()

    def __call__(self, environ, start_response):
        return self.wsgi(environ, start_response)

    @property
    def shops(self) -> list[str]:
        return sorted(self.views)

    # ------------------------------------------------------------------ test controls

    def inject(self, kind: str, times: int = 1, shop: str | None = None, endpoint: str | None = None, **params) -> None:
        """Serve fault ``kind`` on the next ``times`` matching requests (before normal handling).

        ``shop``/``endpoint`` (``"graphql"`` or ``"token"``) narrow which requests match.
        Params: ``retry_after`` (http_429), ``seconds`` (slow), ``location`` (redirect),
        ``body`` and ``status`` (respond: serve exactly this text as JSON, with this status —
        for answers Shopify should never give: odd shapes, huge values, deep nesting).
        """
        faults.check(kind, FAULT_KINDS, times, params)
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"unknown endpoint {endpoint!r}; expected one of {sorted(ENDPOINTS)}")
        with self._lock:
            self._faults.append(
                {"kind": kind, "times": int(times), "shop": shop, "endpoint": endpoint, "params": params}
            )

    def configure(self, shop: str, *, protected_customer_data: bool | None = None,
                  scopes: str | None = None) -> None:
        """How ``shop`` answers this app: ``protected_customer_data=False`` withholds customers'
        names, emails and phones (null + an ``errors`` entry, as Shopify does for an app without
        approval); ``scopes`` (comma-separated) replaces the granted access scopes (a field that
        needs another is null + ``ACCESS_DENIED``). ``reset()`` restores the defaults."""
        with self._lock:
            settings = self.shop_settings.setdefault(shop, {})
            if protected_customer_data is not None:
                settings["protected_customer_data"] = bool(protected_customer_data)
            if scopes is not None:
                settings["scopes"] = scopes

    def reset(self) -> None:
        """Forget received requests, grant counts, queued faults, rate-limit buckets, per-shop
        settings and created draft orders."""
        with self._lock:
            self.shop_settings.clear()
            self.views = gql.load_views(self._data)
            self.received.clear()
            self.grants.clear()
            self._faults.clear()
            self._buckets.clear()

    def expire_tokens(self, shop: str | None = None) -> None:
        """Expire every token minted by the grant (for ``shop``, or all shops)."""
        with self._lock:
            for token, (owner, _) in list(self._minted.items()):
                if shop is None or owner == shop:
                    self._minted[token] = (owner, float("-inf"))

    def requests_to(self, shop: str, endpoint: str | None = None) -> list[dict]:
        """Recorded requests for ``shop`` (optionally only ``"graphql"`` or ``"token"`` ones)."""
        with self._lock:
            return [r for r in self.received if r["shop"] == shop and (endpoint is None or r["endpoint"] == endpoint)]

    # ------------------------------------------------------------------ app

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        app.url_map.strict_slashes = False

        @app.before_request
        def record() -> Response | None:
            body = _parse_body(request)
            request.environ["sandbox.body"] = body
            if request.path.startswith("/__sandbox__/"):
                return None
            match = _SHOP_PATH.fullmatch(request.path)
            shop = match.group(1) if match else None
            endpoint = _endpoint_of(request.path)
            with self._lock:
                self.received.append(
                    {
                        "method": request.method,
                        "path": request.path,
                        "shop": shop,
                        "endpoint": endpoint,
                        "headers": {name.lower(): value for name, value in request.headers.items()},
                        "json": body["json"],
                        "form": body["form"],
                        "at": time.time(),
                    }
                )
            if shop is None:
                return None
            return self._serve_fault(shop, endpoint)

        @app.post("/shops/<shop>/admin/api/<version>/graphql.json")
        def graphql(shop: str, version: str) -> Response:
            return self._graphql(shop, version)

        @app.post("/shops/<shop>/admin/oauth/access_token")
        def access_token(shop: str) -> Response:
            return self._grant(shop)

        @app.post("/__sandbox__/faults")
        def add_fault() -> Response:
            spec = dict(request.environ["sandbox.body"]["json"] or {})
            try:
                self.inject(spec.pop("kind", None), spec.pop("times", 1), spec.pop("shop", None),
                            spec.pop("endpoint", None), **spec)
            except (TypeError, ValueError) as exc:
                return _json({"error": str(exc)}, 400)
            return _json({"ok": True}, 201)

        @app.post("/__sandbox__/shops/<shop>/settings")
        def settings(shop: str) -> Response:
            spec = dict(request.environ["sandbox.body"]["json"] or {})
            try:
                self.configure(shop, **spec)
            except TypeError as exc:
                return _json({"error": str(exc)}, 400)
            return _json({"ok": True})

        @app.post("/__sandbox__/reset")
        def reset() -> Response:
            self.reset()
            return _json({"ok": True})

        @app.post("/__sandbox__/expire-tokens")
        def expire() -> Response:
            self.expire_tokens((request.environ["sandbox.body"]["json"] or {}).get("shop"))
            return _json({"ok": True})

        @app.get("/__sandbox__/received")
        def received() -> Response:
            with self._lock:
                return _json({"received": list(self.received), "grants": dict(self.grants)})

        @app.errorhandler(404)
        def not_found(_error) -> Response:
            return _json(NOT_FOUND_BODY, 404)

        @app.errorhandler(405)
        def not_allowed(_error) -> Response:
            return _json(NOT_FOUND_BODY, 404)  # Shopify serves only POST here; others look absent (guess)

        return app

    # ------------------------------------------------------------------ faults

    def _take_fault(self, shop: str, endpoint: str | None) -> dict | None:
        with self._lock:
            for fault in self._faults:
                if fault["shop"] not in (None, shop) or fault["endpoint"] not in (None, endpoint):
                    continue
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _serve_fault(self, shop: str, endpoint: str | None) -> Response | None:
        fault = self._take_fault(shop, endpoint)
        if fault is None:
            return None
        params = fault["params"]
        match fault["kind"]:
            case "throttled":
                return self._throttled_fault(shop)
            case "http_429":
                # REST-style throttle answer: https://shopify.dev/docs/api/usage/rate-limits
                # retry_after=None: a 429 without the header (a proxy in front of Shopify).
                retry_after = params.get("retry_after", 1)
                return _json(
                    {"errors": "Exceeded 2 calls per second for api client. "
                               "Reduce request rates to resume uninterrupted service."},
                    429,
                    {} if retry_after is None else {"Retry-After": str(retry_after)},
                )
            case "http_500":
                return _json({"errors": "An unexpected error occurred"}, 500)
            case "http_502":  # what a load balancer in front of Shopify answers: HTML, not JSON
                return Response("<html><body>502 Bad Gateway</body></html>", status=502, content_type="text/html")
            case "http_503":
                return _json({"errors": "Service Unavailable"}, 503)
            case "respond":
                return Response(params["body"], status=int(params.get("status", 200)),
                                content_type="application/json; charset=utf-8")
            case "slow":
                time.sleep(float(params["seconds"]))
                return None  # then answer normally
            case "redirect":
                response = Response("", status=302)
                response.headers["Location"] = params.get("location", "http://127.0.0.1:9/")
                return response
            case "garbage":
                return Response(
                    "<!DOCTYPE html><html><body><h1>There was a problem loading this website</h1></body></html>",
                    status=200,
                    content_type="text/html; charset=utf-8",
                )
            case "drip":
                # Headers at once, then the body a byte at a time: every socket read finishes
                # within a read timeout, yet the whole answer takes ``seconds`` × its length.
                pause = float(params.get("seconds", 0.5))
                body = b'{"data": {"shop": null}}'

                def trickle():
                    for i in range(len(body)):
                        time.sleep(pause)
                        yield body[i:i + 1]

                return Response(trickle(), status=200, content_type="application/json",
                                headers={"Content-Length": str(len(body))})
            case "drop":
                sock = request.environ.get("werkzeug.socket")
                if sock is None:
                    return None  # not under werkzeug's server: skipped, answered normally
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return Response("", status=500)  # never reaches the client
        return None

    def _throttled_fault(self, shop: str) -> Response:
        body = request.environ["sandbox.body"]
        query = (body["json"] or {}).get("query") if isinstance(body["json"], dict) else None
        requested = 0
        if isinstance(query, str):
            requested = gql.prepare(query, (body["json"] or {}).get("variables"), None).requested_cost
        key = self._bucket_key(shop, request.headers.get("X-Shopify-Access-Token", ""))
        with self._lock:
            status = self._bucket(key).status()
        return _json({"errors": [gql.throttled_error()], "extensions": {"cost": _cost(requested, None, status)}})

    # ------------------------------------------------------------------ auth

    def _token_valid(self, shop: str, token: str | None) -> bool:
        if not token:
            return False
        static = self.access_tokens.get(shop)
        if static is not None and secrets.compare_digest(static, token):
            return True
        with self._lock:
            owner, expires_at = self._minted.get(token, (None, 0.0))
        return owner == shop and self.clock() < expires_at

    def _bucket_key(self, shop: str, token: str) -> tuple[str, str]:
        # Limits are per app and store. Minted tokens all belong to the client_id app.
        with self._lock:
            minted = token in self._minted
        return (shop, f"app:{self.client_id}" if minted else f"token:{token}")

    def _bucket(self, key: tuple[str, str]) -> _Bucket:
        """The bucket for ``key``, refilled to now. Call with the lock held."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(self.bucket_size, self.restore_rate, now)
        bucket.refill(now)
        return bucket

    # ------------------------------------------------------------------ GraphQL

    def _graphql(self, shop: str, version: str) -> Response:
        view = self.views.get(shop)
        if view is None or not _VERSION.fullmatch(version):
            return _json(NOT_FOUND_BODY, 404)
        token = request.headers.get("X-Shopify-Access-Token")
        if not self._token_valid(shop, token):
            return _json(INVALID_TOKEN_BODY, 401)

        query, variables, operation_name = _graphql_params(request.environ["sandbox.body"], request.mimetype)
        if query is None:
            return _json(BAD_QUERY_BODY, 400)

        headers = {"X-Shopify-API-Version": version}
        prepared = gql.prepare(query, variables, operation_name)
        key = self._bucket_key(shop, token)
        if prepared.errors:
            with self._lock:
                status = self._bucket(key).status()
            return _json({"errors": prepared.errors, "extensions": {"cost": _cost(0, 0, status)}}, headers=headers)

        requested = prepared.requested_cost
        if requested > self.max_query_cost:
            with self._lock:
                status = self._bucket(key).status()
            error = gql.max_cost_error(requested, self.max_query_cost)
            return _json({"errors": [error], "extensions": {"cost": _cost(requested, None, status)}}, headers=headers)

        with self._lock:
            bucket = self._bucket(key)
            if requested > bucket.level:
                status = bucket.status()
                return _json(
                    {"errors": [gql.throttled_error()], "extensions": {"cost": _cost(requested, None, status)}},
                    headers=headers,
                )
            bucket.level -= requested  # reserve the requested cost ...

        with self._lock:
            settings = dict(self.shop_settings.get(shop, {}))
        context = {
            "version": version,
            "scopes": set(settings.get("scopes", self.scope).split(",")),
            "protected_customer_data": settings.get("protected_customer_data", True),
        }
        with self._lock:  # draftOrderCreate changes the shop's data: one operation at a time
            body, actual = gql.execute_prepared(prepared, view, context)

        with self._lock:
            bucket = self._bucket(key)
            bucket.level = min(bucket.size, bucket.level + max(0, requested - actual))  # ... refund the rest
            status = bucket.status()
        body["extensions"] = {"cost": _cost(requested, actual, status)}
        return _json(body, headers=headers)

    # ------------------------------------------------------------------ client-credentials grant

    def _grant(self, shop: str) -> Response:
        if shop not in self.views:
            return _json(NOT_FOUND_BODY, 404)
        body = request.environ["sandbox.body"]
        params = body["form"] or (body["json"] if isinstance(body["json"], dict) else {}) or {}
        params = {k: v for k, v in params.items() if isinstance(v, str)}
        params.update({k: v for k, v in request.args.items() if k not in params})  # query string, too

        grant_type = params.get("grant_type")
        if grant_type is None:
            return _oauth_error("invalid_request", "The authorization code was not found or was already used")
        if grant_type != "client_credentials":
            return _oauth_error("unsupported_grant_type", "The authorization grant type is not supported.")
        client_id, client_secret = params.get("client_id"), params.get("client_secret")
        if not client_id or not client_secret:
            return _oauth_error("invalid_request", "Missing client_id or client_secret.")
        if not (
            self.client_id
            and self.client_secret
            and secrets.compare_digest(client_id, self.client_id)
            and secrets.compare_digest(client_secret, self.client_secret)
        ):
            return _oauth_error("invalid_client", "Client authentication failed.")
        if self.grant_shops is not None and shop not in self.grant_shops:
            return _oauth_error("shop_not_permitted", "Client credentials cannot be performed on this shop.")

        token = "shpat_" + secrets.token_hex(16)
        with self._lock:
            self._minted[token] = (shop, self.clock() + self.token_ttl)
            self.grants[shop] += 1
        return _json({"access_token": token, "scope": self.scope, "expires_in": self.token_ttl})


# ---------------------------------------------------------------------- helpers


def _oauth_error(error: str, description: str) -> Response:
    return _json({"error": error, "error_description": description}, 400)


def _cost(requested: int, actual: int | None, status: dict) -> dict:
    return {"requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status}


def _endpoint_of(path: str) -> str | None:
    if path.endswith("/graphql.json"):
        return "graphql"
    if path.endswith("/admin/oauth/access_token"):
        return "token"
    return None


def _parse_body(req: Request) -> dict:
    """The raw body, plus JSON and form views of it (each None when it is not that)."""
    raw = req.get_data(cache=True)
    parsed_json = parsed_form = None
    if req.mimetype == "application/x-www-form-urlencoded":
        parsed_form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    elif raw and (req.mimetype == "application/json" or req.mimetype.endswith("+json")):
        try:
            parsed_json = json.loads(raw)
        except ValueError:
            parsed_json = None
    return {"raw": raw, "json": parsed_json, "form": parsed_form}


def _graphql_params(body: dict, mimetype: str) -> tuple[str | None, dict | None, str | None]:
    """``(query, variables, operationName)``; JSON bodies and ``application/graphql`` are accepted."""
    if mimetype == "application/graphql":
        return body["raw"].decode("utf-8", "replace") or None, None, None
    payload = body["json"]
    if not isinstance(payload, dict) or not isinstance(payload.get("query"), str) or not payload["query"].strip():
        return None, None, None
    variables = payload.get("variables")
    if isinstance(variables, str):  # some clients send variables as a JSON string
        try:
            variables = json.loads(variables)
        except ValueError:
            variables = None
    operation_name = payload.get("operationName")
    return payload["query"], variables if isinstance(variables, dict) else None, (
        operation_name if isinstance(operation_name, str) else None
    )
