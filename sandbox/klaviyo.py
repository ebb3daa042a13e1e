"""Klaviyo API emulator (the private-key REST API Switchboard calls), as a WSGI app.

Served as Klaviyo serves ``https://a.klaviyo.com``::

    GET  /api/accounts                                 the key's account (public_api_key = company id)
    GET  /api/lists | /api/segments                    page[size] ≤ 10, page[cursor]
    GET  /api/campaigns?filter=equals(messages.channel,'email'|'sms')   (the filter is required)
    POST /api/events                                   202, empty body; unique_id dedupes
    POST /api/profile-subscription-bulk-create-jobs    202, empty body
    POST /api/profile-import                           201 created / 200 updated

Test controls under ``/__sandbox__/`` (not recorded): ``faults``, ``reset``, ``received``.

Facts followed (https://developers.klaviyo.com/en/reference/api_overview and
https://developers.klaviyo.com/en/docs/rate_limits_and_error_handling; bodies as in Klaviyo's OpenAPI
description, revision 2026-07-15):
  * ``Authorization: Klaviyo-API-Key <private key>`` and a ``revision`` header on every call;
    JSON:API bodies, ``Content-Type: application/vnd.api+json``.
  * Errors: ``{"errors": [{"id", "status", "code", "title", "detail", "source": {"pointer"|"parameter"}}]}``.
  * Rate limits per account, fixed windows: burst (1 s) and steady (1 min). Non-429 answers carry
    ``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (the steady window); a 429
    carries ``Retry-After`` (seconds) and not those.
  * ``unique_id``: "If the unique_id is repeated for the same profile and metric, only the first
    processed event will be recorded" (OpenAPI, EventCreateQueryV2).
  * ``page[size]`` of lists and segments is 1–10, of campaigns 1–100; ``links.next`` carries
    ``page[cursor]``.

One revision, answered faithfully: the emulator serves revision ``REVISION`` (2026-07-15) — the
revision Switchboard pins, whose OpenAPI description is in ``../shared/data`` and whose official
SDK (``klaviyo-api`` 24.0.0) parses every answer in the tests. Klaviyo itself answers every
supported revision in that revision's shapes (2026-10-15's campaigns are "omni" campaigns with a
``definition`` and no channel); rather than answer another revision in 2026-07-15's shapes, the
emulator refuses any other well-formed revision with 400 ``invalid`` naming ``revision``.

Guesses (Klaviyo's documentation is silent):
  * The error ``code`` strings (``not_authenticated``, ``invalid``, ``not_found``, ``throttled``)
    follow what Klaviyo is seen answering; a missing ``revision`` is 400 ``invalid``.
  * Cursors are opaque base64 of an offset; an undecodable one is 400 naming ``page[cursor]``.
  * An unknown list in a subscription job is 404 ``not_found`` with the relationship's pointer.
  * A 5xx fault body is a JSON:API error with code ``error``.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import threading
import time
import uuid
from typing import Any, Callable
from urllib.parse import urlencode

from flask import Flask, Response, request

from . import faults

JSON_API = "application/vnd.api+json"
REVISION = "2026-07-15"  # the one revision this emulator answers (see the docstring)
FAULT_KINDS = frozenset({"http_429", "http_500", "http_502", "http_503", "slow", "redirect", "garbage", "respond"})
_REVISION = re.compile(r"20[0-9]{2}-[01][0-9]-[0-3][0-9](\.pre)?")
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

SANDBOX_KEYS = {"AbC123": "pk_sandbox_abc123_0123456789abcdef", "XyZ789": "pk_sandbox_xyz789_0123456789abcdef"}


def demo_account(company_id: str, name: str) -> dict:
    """An account with a few lists, segments and campaigns (ids shaped like Klaviyo's)."""
    stamp = "2026-01-05T10:00:00+00:00"
    suffix = company_id[:3]
    return {
        "name": name,
        "lists": [{"id": f"L{suffix}{n:02d}", "name": f"{label}", "opt_in_process": "single_opt_in",
                   "created": stamp, "updated": stamp}
                  for n, label in enumerate(["Newsletter", "VIP", "SMS Subscribers", "Back in stock",
                                             "Win-back", "Wholesale", "Events", "Beta", "Press", "Staff",
                                             "Referrals", "Holiday"], 1)],
        "segments": [{"id": f"S{suffix}{n:02d}", "name": label, "created": stamp, "updated": stamp,
                      "is_active": True, "is_processing": False, "is_starred": False}
                     for n, label in enumerate(["Repeat purchasers", "Engaged 30 days", "Lapsed"], 1)],
        "campaigns": [{"id": f"C{suffix}{n:02d}", "name": label, "channel": channel, "status": status,
                       "archived": False, "created_at": stamp, "updated_at": stamp,
                       "scheduled_at": None, "send_time": None}
                      for n, (label, channel, status) in enumerate([
                          ("Spring sale", "email", "Sent"), ("Welcome back", "email", "Draft"),
                          ("Flash sale text", "sms", "Scheduled")], 1)],
    }


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


class KlaviyoEmulator:
    """Klaviyo for the accounts in ``keys`` (company id → private key). Thread-safe (one lock)."""

    def __init__(self, keys: dict[str, str] | None = None, *, burst: int = 75, steady: int = 700,
                 clock: Callable[[], float] = time.monotonic):
        self.keys = dict(SANDBOX_KEYS if keys is None else keys)
        self.burst, self.steady, self.clock = burst, steady, clock
        self.received: list[dict] = []
        self._faults: list[dict] = []
        self._lock = threading.Lock()
        self._fresh()
        self.wsgi = self._build_app()

    def _fresh(self) -> None:
        self.accounts = {cid: demo_account(cid, f"Sandbox {cid}") for cid in self.keys}
        self.events: dict[str, list[dict]] = {cid: [] for cid in self.keys}
        self.profiles: dict[str, list[dict]] = {cid: [] for cid in self.keys}
        self.subscriptions: dict[str, list[dict]] = {cid: [] for cid in self.keys}
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}

    def __call__(self, environ, start_response):
        return self.wsgi(environ, start_response)

    # ------------------------------------------------------------------ test controls

    def inject(self, kind: str, times: int = 1, path: str | None = None, **params) -> None:
        """Serve fault ``kind`` on the next ``times`` requests (to ``path`` when given).

        Params: ``retry_after`` (http_429; omit it for a 429 without the header), ``seconds``
        (slow), ``location`` (redirect), ``body``/``status`` (respond), ``after=True`` (handle the
        request first — its effect happens — then serve the fault: an answer lost on the way).
        """
        faults.check(kind, FAULT_KINDS, times, params)
        with self._lock:
            self._faults.append({"kind": kind, "times": int(times), "path": path, "params": params})

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self._faults.clear()
            self._fresh()

    def calls(self, path: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.received if path is None or r["path"] == path]

    # ------------------------------------------------------------------ app

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        app.url_map.strict_slashes = False

        @app.before_request
        def record():
            raw = request.get_data(cache=True)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            request.environ["sandbox.json"] = body
            if request.path.startswith("/__sandbox__/"):
                return None
            with self._lock:
                self.received.append({"method": request.method, "path": request.path,
                                      "query": request.query_string.decode("latin-1"),
                                      "headers": {k.lower(): v for k, v in request.headers.items()},
                                      "json": body, "at": time.time()})
            fault = self._take_fault(request.path)
            request.environ["sandbox.fault"] = fault
            if fault is not None and not fault["params"].get("after"):
                return self._serve_fault(fault)
            return self._check_request()

        @app.after_request
        def late_fault(response):
            fault = request.environ.get("sandbox.fault")
            if fault is not None and fault["params"].get("after"):
                return self._serve_fault(fault) or response
            return response

        @app.get("/api/accounts")
        def accounts():
            cid = request.environ["sandbox.company"]
            return self._ok({"data": [self._account(cid)], "links": self._links("/api/accounts")})

        @app.get("/api/lists")
        def lists():
            return self._page("list", self.accounts[request.environ["sandbox.company"]]["lists"], 10)

        @app.get("/api/segments")
        def segments():
            return self._page("segment", self.accounts[request.environ["sandbox.company"]]["segments"], 10)

        @app.get("/api/campaigns")
        def campaigns():
            match = re.fullmatch(r"equals\(messages\.channel,'(email|sms|mobile_push)'\)",
                                 request.args.get("filter", ""))
            if match is None:
                return _error(400, "invalid", "Invalid input.",
                              "A channel filter is required: equals(messages.channel,'email'|'sms').",
                              parameter="filter")
            rows = [c for c in self.accounts[request.environ["sandbox.company"]]["campaigns"]
                    if c["channel"] == match.group(1)]
            return self._page("campaign", rows, 100)

        @app.post("/api/events")
        def events():
            return self._create_event(request.environ["sandbox.company"])

        @app.post("/api/profile-subscription-bulk-create-jobs")
        def subscribe():
            return self._subscribe(request.environ["sandbox.company"])

        @app.post("/api/profile-import")
        def profile_import():
            return self._import_profile(request.environ["sandbox.company"])

        @app.post("/__sandbox__/faults")
        def add_fault():
            spec = dict(request.environ["sandbox.json"] or {})
            try:
                self.inject(spec.pop("kind", None), spec.pop("times", 1), spec.pop("path", None), **spec)
            except (TypeError, ValueError) as exc:
                return Response(json.dumps({"error": str(exc)}), 400, content_type="application/json")
            return Response(json.dumps({"ok": True}), 201, content_type="application/json")

        @app.post("/__sandbox__/reset")
        def reset():
            self.reset()
            return Response(json.dumps({"ok": True}), content_type="application/json")

        @app.get("/__sandbox__/received")
        def received():
            with self._lock:
                return Response(json.dumps({"received": list(self.received)}), content_type="application/json")

        @app.errorhandler(404)
        def not_found(_error):
            return _error(404, "not_found", "Not found.", "The requested resource does not exist.")

        @app.errorhandler(405)
        def not_allowed(_error):
            return _error(405, "method_not_allowed", "Method not allowed.", "This method is not allowed here.")

        return app

    # ------------------------------------------------------------------ the request gate

    def _check_request(self) -> Response | None:
        """Auth, revision, content type, rate limits — in Klaviyo's order (auth first)."""
        header = request.headers.get("Authorization", "")
        key = header[len("Klaviyo-API-Key "):] if header.startswith("Klaviyo-API-Key ") else None
        company = None
        for cid, secret in self.keys.items():
            if key and secrets.compare_digest(secret, key):
                company = cid
        if company is None:
            return _error(401, "not_authenticated", "Authentication credentials were not provided.",
                          "Missing or invalid private key.")
        request.environ["sandbox.company"] = company
        revision = request.headers.get("revision", "")
        if not _REVISION.fullmatch(revision):
            return _error(400, "invalid", "Invalid input.", "A valid revision header is required.",
                          parameter="revision")
        if revision != REVISION:
            return _error(400, "invalid", "Invalid input.",
                          f"The sandbox answers revision {REVISION} only (its shapes are those of that "
                          "revision's OpenAPI description).", parameter="revision")
        if request.method == "POST" and request.mimetype not in (JSON_API, "application/json"):
            return _error(415, "unsupported_media_type", "Unsupported media type.",
                          f"Unsupported media type \"{request.mimetype}\" in request.")
        return self._spend(company)

    def _spend(self, company: str) -> Response | None:
        now = self.clock()
        with self._lock:
            counts = {}
            for window, size, limit in (("burst", 1, self.burst), ("steady", 60, self.steady)):
                start = int(now // size) * size
                seen_start, seen = self._windows.get((company, window), (start, 0))
                if seen_start != start:
                    seen = 0
                if seen >= limit:
                    return _error(429, "throttled", "Request was throttled.",
                                  "Request was throttled. Expected available in 1 second.",
                                  headers={"Retry-After": str(max(1, int(start + size - now)))})
                counts[window] = (start, seen)
            for window, (start, seen) in counts.items():
                self._windows[(company, window)] = (start, seen + 1)
            start, seen = counts["steady"]
            request.environ["sandbox.ratelimit"] = {
                "RateLimit-Limit": str(self.steady), "RateLimit-Remaining": str(max(0, self.steady - seen - 1)),
                "RateLimit-Reset": str(max(1, int(start + 60 - now)))}
        return None

    def _ok(self, body: Any, status: int = 200) -> Response:
        response = Response("" if body is None else json.dumps(body, separators=(",", ":")), status=status,
                            content_type=JSON_API)
        for name, value in request.environ.get("sandbox.ratelimit", {}).items():
            response.headers[name] = value
        return response

    # ------------------------------------------------------------------ faults

    def _take_fault(self, path: str) -> dict | None:
        with self._lock:
            for fault in self._faults:
                if fault["path"] not in (None, path):
                    continue
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _serve_fault(self, fault: dict) -> Response | None:
        params = fault["params"]
        match fault["kind"]:
            case "http_429":
                headers = {"Retry-After": str(params["retry_after"])} if params.get("retry_after") is not None else {}
                return _error(429, "throttled", "Request was throttled.", "Request was throttled.", headers=headers)
            case "http_500":
                return _error(500, "error", "A server error occurred.", "An unexpected error occurred.")
            case "http_502":  # what a load balancer in front of Klaviyo answers: not JSON:API
                return Response("<html><body>502 Bad Gateway</body></html>", status=502, content_type="text/html")
            case "http_503":
                return _error(503, "error", "Service unavailable.", "The service is temporarily unavailable.")
            case "respond":
                return Response(params["body"], status=int(params.get("status", 200)), content_type=JSON_API)
            case "slow":
                time.sleep(float(params["seconds"]))
                return None
            case "redirect":
                response = Response("", status=302)
                response.headers["Location"] = params.get("location", "http://127.0.0.1:9/api/accounts")
                return response
            case "garbage":
                return Response("<html><body>Bad gateway</body></html>", status=200, content_type="text/html")
        return None

    # ------------------------------------------------------------------ resources

    def _account(self, cid: str) -> dict:
        return {
            "type": "account", "id": f"acct{cid}",
            "attributes": {
                "test_account": True,
                "contact_information": {
                    "default_sender_name": self.accounts[cid]["name"], "default_sender_email": "sandbox@example.com",
                    "website_url": "https://example.com", "organization_name": self.accounts[cid]["name"],
                    "street_address": {"address1": "1 Sandbox Way", "address2": None, "city": "Boston",
                                       "region": "MA", "country": "US", "zip": "02110"}},
                "industry": "Retail", "timezone": "America/New_York", "preferred_currency": "USD",
                "public_api_key": cid, "locale": "en-US"},
            "links": {"self": f"{request.host_url}api/accounts/acct{cid}"},
        }

    def _links(self, path: str, next_query: dict | None = None) -> dict:
        links = {"self": f"{request.host_url.rstrip('/')}{path}"}  # next/prev only when there is one
        if next_query:
            links["next"] = f"{request.host_url.rstrip('/')}{path}?{urlencode(next_query)}"
        return links

    def _page(self, kind: str, rows: list[dict], max_size: int) -> Response:
        try:
            size = int(request.args.get("page[size]", min(10, max_size)))
            if not 1 <= size <= max_size:
                raise ValueError
        except ValueError:
            return _error(400, "invalid", "Invalid input.", f"page[size] must be between 1 and {max_size}.",
                          parameter="page[size]")
        offset = 0
        cursor = request.args.get("page[cursor]")
        if cursor is not None:
            try:
                offset = int(base64.urlsafe_b64decode(cursor.encode() + b"==").decode().removeprefix("o"))
            except ValueError:
                return _error(400, "invalid", "Invalid input.", "Invalid page cursor.", parameter="page[cursor]")
        chunk = rows[offset:offset + size]
        data = [{"type": kind, "id": row["id"],
                 "attributes": self._attributes(kind, row),
                 "relationships": {}, "links": {"self": f"{request.host_url}api/{kind}s/{row['id']}"}}
                for row in chunk]
        next_query = None
        if offset + size < len(rows):
            next_query = {k: v for k, v in request.args.items() if k != "page[cursor]"}
            next_query["page[cursor]"] = base64.urlsafe_b64encode(f"o{offset + size}".encode()).decode().rstrip("=")
        return self._ok({"data": data, "links": self._links(request.path, next_query)})

    @staticmethod
    def _attributes(kind: str, row: dict) -> dict:
        attributes = {k: v for k, v in row.items() if k not in ("id", "channel")}
        if kind == "campaign":
            attributes.update({"audiences": {"included": [], "excluded": []},
                               "send_options": {"use_smart_sending": True},
                               "send_strategy": {"method": "immediate"},
                               "tracking_options": None})
        return attributes

    def _body_attributes(self, kind: str) -> tuple[dict | None, Response | None]:
        body = request.environ["sandbox.json"]
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("type") != kind or not isinstance(data.get("attributes"), dict):
            return None, _error(400, "invalid", "Invalid input.", f"Expected a '{kind}' resource object.",
                                pointer="/data")
        return data, None

    def _identity_error(self, attributes: dict, base: str) -> Response | None:
        email, phone = attributes.get("email"), attributes.get("phone_number")
        if email is not None and (not isinstance(email, str) or not _EMAIL.fullmatch(email)):
            return _error(400, "invalid", "Invalid input.", "Invalid email address", pointer=f"{base}/email")
        if phone is not None and (not isinstance(phone, str) or not _E164.fullmatch(phone)):
            return _error(400, "invalid", "Invalid input.", "Invalid phone number format (Example of a valid "
                          "format: +13239169023)", pointer=f"{base}/phone_number")
        if not any(attributes.get(k) for k in ("email", "phone_number", "external_id", "id")):
            return _error(400, "invalid", "Invalid input.", "A profile identifier is required.", pointer=base)
        return None

    def _create_event(self, cid: str) -> Response:
        data, error = self._body_attributes("event")
        if error:
            return error
        attributes = data["attributes"]
        if not isinstance(attributes.get("properties"), dict):
            return _error(400, "invalid", "Invalid input.", "'properties' is a required field.",
                          pointer="/data/attributes/properties")
        metric = ((attributes.get("metric") or {}).get("data") or {}).get("attributes") or {}
        if not isinstance(metric.get("name"), str) or not metric["name"]:
            return _error(400, "invalid", "Invalid input.", "A metric name is required.",
                          pointer="/data/attributes/metric/data/attributes/name")
        profile = ((attributes.get("profile") or {}).get("data") or {}).get("attributes") or {}
        error = self._identity_error(profile, "/data/attributes/profile/data/attributes")
        if error:
            return error
        who = profile.get("email") or profile.get("phone_number") or profile.get("external_id")
        with self._lock:
            unique = attributes.get("unique_id")
            duplicate = unique is not None and any(
                e["unique_id"] == unique and e["metric"] == metric["name"] and e["profile"] == who
                for e in self.events[cid])
            if not duplicate:
                self.events[cid].append({"metric": metric["name"], "profile": who, "unique_id": unique,
                                         "properties": attributes["properties"], "value": attributes.get("value"),
                                         "time": attributes.get("time") or _now_iso()})
        return self._ok(None, 202)

    def _subscribe(self, cid: str) -> Response:
        data, error = self._body_attributes("profile-subscription-bulk-create-job")
        if error:
            return error
        list_ref = ((data.get("relationships") or {}).get("list") or {}).get("data") or {}
        profiles = ((data["attributes"].get("profiles") or {}).get("data"))
        if not isinstance(profiles, list) or not 1 <= len(profiles) <= 1000:
            return _error(400, "invalid", "Invalid input.", "Between 1 and 1000 profiles are required.",
                          pointer="/data/attributes/profiles/data")
        for n, profile in enumerate(profiles):
            attributes = profile.get("attributes") if isinstance(profile, dict) else None
            if not isinstance(attributes, dict):
                return _error(400, "invalid", "Invalid input.", "A profile is required.",
                              pointer=f"/data/attributes/profiles/data/{n}")
            error = self._identity_error(attributes, f"/data/attributes/profiles/data/{n}/attributes")
            if error:
                return error
        if list_ref.get("type") != "list" or list_ref.get("id") not in {
                row["id"] for row in self.accounts[cid]["lists"]}:
            return _error(404, "not_found", "Not found.", "The list does not exist.",
                          pointer="/data/relationships/list/data/id")
        with self._lock:
            for profile in profiles:
                self.subscriptions[cid].append({"list": list_ref["id"], **copy.deepcopy(profile["attributes"])})
        return self._ok(None, 202)

    def _import_profile(self, cid: str) -> Response:
        data, error = self._body_attributes("profile")
        if error:
            return error
        attributes = data["attributes"]
        error = self._identity_error(attributes, "/data/attributes")
        if error:
            return error
        with self._lock:
            found = next((p for p in self.profiles[cid] if any(
                attributes.get(k) and p.get(k) == attributes[k] for k in ("email", "phone_number", "external_id"))),
                None)
            created = found is None
            if created:
                found = {"id": "01" + uuid.uuid4().hex[:24].upper(), "created": _now_iso()}
                self.profiles[cid].append(found)
            found.update({k: copy.deepcopy(v) for k, v in attributes.items() if v is not None})
            found["updated"] = _now_iso()
            profile = dict(found)
        profile_id = profile.pop("id")
        body = {"data": {"type": "profile", "id": profile_id, "attributes": {
            "email": None, "phone_number": None, "external_id": None, "first_name": None, "last_name": None,
            "organization": None, "title": None, "properties": {}, **profile},
            "links": {"self": f"{request.host_url}api/profiles/{profile_id}"}}}
        return self._ok(body, 201 if created else 200)


def _error(status: int, code: str, title: str, detail: str, *, pointer: str | None = None,
           parameter: str | None = None, headers: dict | None = None) -> Response:
    error: dict = {"id": str(uuid.uuid4()), "status": status, "code": code, "title": title, "detail": detail}
    if pointer or parameter:
        error["source"] = {"pointer": pointer} if pointer else {"parameter": parameter}
    response = Response(json.dumps({"errors": [error]}), status=status, content_type=JSON_API)
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
