"""Kustomer API emulator (the endpoints Switchboard calls), as a WSGI app.

Real Kustomer serves every org from one host (``https://api.kustomerapp.com``, EU
``https://api.prod2.kustomerapp.com``); the API key decides the org. The emulator does the same:
paths are Kustomer's, and each key belongs to one org::

    GET  /v1/auth/tokens/current                      the key and its org
    GET  /v1/customers/email={email}                  one customer or 404
    GET  /v1/customers/phone={phone}                  one customer or 404
    GET  /v1/customers/{id}/conversations?page=&pageSize=
    POST /v1/conversations                            {customer, name, status, priority?, externalId?}
    POST /v1/conversations/{id}/messages              {channel, app, direction, preview, externalId?, ...}
    POST /v1/conversations/{id}/notes                 {body}

Auth header ``Authorization: Bearer <API key>``. Keys are JWT-shaped (``header.payload.sig``,
base64url) with ``org`` (the org id) and ``orgName`` (the subdomain) in the payload, as Kustomer
keys have been seen to carry (providers.md: unverified for current keys).

Test controls under ``/__sandbox__/`` (not recorded)::

    POST /__sandbox__/faults   {"kind", "times", "org", ...params}
    POST /__sandbox__/reset
    GET  /__sandbox__/received

Facts followed (developer.kustomer.com):
  * errors are ``{"errors": [{"status", "code", "title", "source"?}]}``; 401 for a bad key;
  * one 60 s rate-limit window per org shared by every key; ``x-ratelimit-limit`` and
    ``x-ratelimit-remaining`` on answers; 429 when exhausted;
  * customers by email/phone: one customer (``data`` object) or 404;
  * conversations list: ``data`` array, ``meta`` {page, pageSize}, ``links`` {self, next|null};
  * notes and messages: 120 per minute per customer (not emulated).
Guesses (Kustomer's documentation is silent):
  * the 429 when the window is spent carries ``Retry-After`` (seconds to the window's end); an
    injected ``http_429`` carries one only when ``retry_after`` is given;
  * 404 body ``{"errors":[{"status":404,"code":"not_found","title":"Not Found"}]}``; 400 for a
    body that is not a JSON object, or lacks a required field (``code: "invalid"``);
  * ``pageSize`` is capped at 100.
  * ``externalId`` (Kustomer documents it on conversation and message creates, and its custom-channel
    guide finds conversations by it; uniqueness and a duplicate's answer are not documented): unique
    per org and object type; a create naming one already used is 409 ``duplicate`` with
    ``source.pointer`` ``/externalId`` and nothing is created. Conversations show it in their
    attributes.

Faults take ``after=True`` (http_500/502/503, slow): the request is handled first — what it
creates exists — and then the fault is served: an answer lost on the way back.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import secrets
import threading
import time
import uuid
from typing import Any, Callable

from flask import Flask, Response, request

from . import faults

FAULT_KINDS = frozenset({"http_429", "http_500", "http_502", "http_503", "slow", "redirect", "garbage",
                         "respond"})
WINDOW = 60.0
MAX_PAGE_SIZE = 100


def make_key(org_id: str, org_name: str, secret: str = "sandbox") -> str:
    """A JWT-shaped Kustomer API key naming its org (the signature is not a real one)."""
    def part(obj) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    return ".".join([part({"alg": "HS256", "typ": "JWT"}),
                     part({"org": org_id, "orgName": org_name, "user": f"{org_id[:12]}bot0000000000"[:24],
                           "roles": ["org.user.customer.read", "org.user.conversation.write",
                                     "org.user.message.write", "org.user.note.write"]}),
                     base64.urlsafe_b64encode(secret.encode()).rstrip(b"=").decode()])


def _oid(seed: str) -> str:
    """A stable 24-hex ObjectId-like id."""
    import hashlib

    return hashlib.sha256(seed.encode()).hexdigest()[:24]


def demo_orgs() -> dict:
    """Two orgs with a few customers and conversations each."""
    orgs = {}
    for name, people in (
        ("demo", [("Ada Lovelace", "ada@example.com", "+14155550101"),
                  ("Grace Hopper", "grace@example.com", "+14155550102")]),
        ("other", [("Alan Turing", "alan@example.org", "+442071838750")]),
    ):
        org_id = _oid(f"org:{name}")
        customers, conversations = {}, {}
        for i, (full, email, phone) in enumerate(people):
            cid = _oid(f"customer:{name}:{i}")
            customers[cid] = {"id": cid, "name": full, "emails": [{"type": "home", "email": email}],
                              "phones": [{"type": "mobile", "phone": phone}], "externalId": f"ext-{name}-{i}",
                              "createdAt": "2025-01-0%dT10:00:00.000Z" % (i + 1),
                              "updatedAt": "2026-03-0%dT10:00:00.000Z" % (i + 1)}
            for j in range(3 if i == 0 else 1):
                vid = _oid(f"conversation:{name}:{i}:{j}")
                conversations[vid] = {"id": vid, "customer": cid, "name": f"Question {j + 1}",
                                      "status": "done" if j else "open", "priority": 3,
                                      "channels": ["email"], "messageCount": 1, "noteCount": 0,
                                      "createdAt": "2026-02-1%dT09:00:00.000Z" % j,
                                      "updatedAt": "2026-02-1%dT09:30:00.000Z" % j}
        orgs[name] = {"id": org_id, "name": name, "customers": customers, "conversations": conversations,
                      "messages": {}, "notes": {}}
    return orgs


def _json(body: Any, status: int = 200, headers: dict | None = None) -> Response:
    response = Response(json.dumps(body, separators=(",", ":")), status=status,
                        content_type="application/json; charset=utf-8")
    response.headers["x-request-id"] = str(uuid.uuid4())
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _error(status: int, code: str, title: str, source: dict | None = None, headers=None) -> Response:
    entry = {"status": status, "code": code, "title": title}
    if source:
        entry["source"] = source
    return _json({"errors": [entry]}, status, headers)


def _duplicate() -> Response:
    """A create naming an ``externalId`` already used in the org (a guess: Kustomer does not
    document the answer)."""
    return _error(409, "duplicate", "An object with this externalId already exists", {"pointer": "/externalId"})


def _resource(kind: str, obj: dict, org_id: str, relationships: dict | None = None) -> dict:
    attributes = {k: v for k, v in obj.items() if k not in ("id", "customer", "conversation")}
    rel = {"org": {"data": {"type": "org", "id": org_id}}}
    for name, (rkind, rid) in (relationships or {}).items():
        rel[name] = {"data": {"type": rkind, "id": rid}}
    return {"type": kind, "id": obj["id"], "attributes": attributes, "relationships": rel,
            "links": {"self": f"/v1/{kind}s/{obj['id']}"}}


class KustomerEmulator:
    """Kustomer's API for ``orgs`` (name → data), keys from ``keys`` (org name → API key)."""

    def __init__(self, keys: dict[str, str] | None = None, orgs: dict | None = None, *,
                 rate_limit: int = 300, clock: Callable[[], float] = time.monotonic):
        self.orgs = orgs if orgs is not None else demo_orgs()
        self.keys = dict(keys) if keys is not None else {n: make_key(o["id"], n) for n, o in self.orgs.items()}
        self.rate_limit = rate_limit
        self.clock = clock
        self.received: list[dict] = []
        self._faults: list[dict] = []
        self._windows: dict[str, tuple[float, int]] = {}  # org -> (window start, used)
        self._lock = threading.Lock()
        self._pristine = json.dumps(self.orgs)
        self.wsgi = self._build_app()

    def __call__(self, environ, start_response):
        return self.wsgi(environ, start_response)

    # ------------------------------------------------------------------ test controls

    def inject(self, kind: str, times: int = 1, org: str | None = None, **params) -> None:
        """Serve fault ``kind`` on the next ``times`` requests (of ``org``'s key, if given).

        Params: ``retry_after`` (http_429: sent only if given), ``seconds`` (slow),
        ``location`` (redirect), ``body``/``status`` (respond: exactly this text), ``after``
        (handle the request, then serve the fault), ``path`` (only requests whose path matches
        this ``fnmatch`` pattern, e.g. ``/v1/conversations/*/messages``).
        """
        faults.check(kind, FAULT_KINDS, times, params)
        with self._lock:
            self._faults.append({"kind": kind, "times": int(times), "org": org, "params": params})

    def reset(self) -> None:
        """Forget received requests, faults, rate windows and everything created."""
        with self._lock:
            self.received.clear()
            self._faults.clear()
            self._windows.clear()
            self.orgs.clear()
            self.orgs.update(json.loads(self._pristine))

    def customer(self, org: str, index: int = 0) -> dict:
        return list(self.orgs[org]["customers"].values())[index]

    # ------------------------------------------------------------------ app

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        app.url_map.strict_slashes = False

        @app.before_request
        def record() -> Response | None:
            raw = request.get_data(cache=True)
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = ValueError
            request.environ["sandbox.json"] = body
            if request.path.startswith("/__sandbox__/"):
                return None
            org = self._org_of(request.headers.get("Authorization"))
            with self._lock:
                self.received.append({
                    "method": request.method,
                    "path": request.path,
                    "raw_path": request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI"),
                    "query": request.query_string.decode("latin-1"),
                    "org": org,
                    "headers": {k.lower(): v for k, v in request.headers.items()},
                    "json": None if body is ValueError else body,
                    "at": time.time(),
                })
            fault = self._take_fault(org)
            if fault is not None and fault["params"].get("after"):
                request.environ["sandbox.late_fault"] = fault  # served once the request took effect
            elif fault is not None:
                answer = self._render_fault(fault)
                if answer is not None:
                    return answer
            if org is None:
                return _error(401, "unauthorized", "Unauthorized")
            return self._spend(org)

        @app.after_request
        def rate_headers(response: Response) -> Response:
            late = request.environ.get("sandbox.late_fault")
            if late is not None:
                response = self._render_fault(late) or response
            org = self._org_of(request.headers.get("Authorization"))
            if org is not None and not request.path.startswith("/__sandbox__/"):
                with self._lock:
                    _, used = self._windows.get(org, (0.0, 0))
                response.headers.setdefault("x-ratelimit-limit", str(self.rate_limit))
                response.headers.setdefault("x-ratelimit-remaining", str(max(0, self.rate_limit - used)))
            return response

        @app.get("/v1/auth/tokens/current")
        def current_token() -> Response:
            org = self._org_of(request.headers.get("Authorization"))
            data = self.orgs[org]
            return _json({"data": {"type": "token", "id": _oid("token:" + org),
                                   "attributes": {"name": "switchboard", "roles": ["org.user"]},
                                   "relationships": {"org": {"data": {"type": "org", "id": data["id"]}}}}})

        @app.get("/v1/customers/<path:selector>")
        def customers(selector: str) -> Response:
            org = self._org_of(request.headers.get("Authorization"))
            data = self.orgs[org]
            if selector.endswith("/conversations"):
                return self._conversations(org, selector[: -len("/conversations")])
            field, sep, value = selector.partition("=")
            if not sep or field not in ("email", "phone") or "/" in value:
                return _error(404, "not_found", "Not Found")
            for customer in data["customers"].values():
                pool = [e["email"].lower() for e in customer["emails"]] if field == "email" else \
                    [p["phone"] for p in customer["phones"]]
                if (value.lower() if field == "email" else value) in pool:
                    return _json({"data": _resource("customer", customer, data["id"])})
            return _error(404, "not_found", "Customer not found")

        @app.post("/v1/conversations")
        def create_conversation() -> Response:
            org = self._org_of(request.headers.get("Authorization"))
            data = self.orgs[org]
            body = request.environ["sandbox.json"]
            if not isinstance(body, dict):
                return _error(400, "invalid", "Body must be a JSON object")
            customer = body.get("customer")
            if not isinstance(customer, str) or customer not in data["customers"]:
                return _error(400, "invalid", "customer is not valid", {"pointer": "/customer"})
            if body.get("status", "open") not in ("open", "snoozed", "done"):
                return _error(400, "invalid", "status is not valid", {"pointer": "/status"})
            external = body.get("externalId")
            if external is not None and (not isinstance(external, str) or not 1 <= len(external) <= 256):
                return _error(400, "invalid", "externalId is not valid", {"pointer": "/externalId"})
            vid = secrets.token_hex(12)
            now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
            conversation = {"id": vid, "customer": customer, "name": body.get("name"), "externalId": external,
                            "status": body.get("status", "open"), "priority": body.get("priority", 3),
                            "channels": [], "messageCount": 0, "noteCount": 0, "createdAt": now, "updatedAt": now}
            with self._lock:
                if external is not None and any(c.get("externalId") == external
                                                for c in data["conversations"].values()):
                    return _duplicate()
                data["conversations"][vid] = conversation
            return _json({"data": _resource("conversation", conversation, data["id"],
                                            {"customer": ("customer", customer)})}, 201)

        @app.post("/v1/conversations/<conversation_id>/messages")
        def create_message(conversation_id: str) -> Response:
            return self._child(conversation_id, "message", ("channel", "app"))

        @app.post("/v1/conversations/<conversation_id>/notes")
        def create_note(conversation_id: str) -> Response:
            return self._child(conversation_id, "note", ("body",))

        @app.post("/__sandbox__/faults")
        def add_fault() -> Response:
            spec = dict(request.environ["sandbox.json"] or {})
            try:
                self.inject(spec.pop("kind", None), spec.pop("times", 1), spec.pop("org", None), **spec)
            except (TypeError, ValueError) as exc:
                return _json({"error": str(exc)}, 400)
            return _json({"ok": True}, 201)

        @app.post("/__sandbox__/reset")
        def reset() -> Response:
            self.reset()
            return _json({"ok": True})

        @app.get("/__sandbox__/received")
        def received() -> Response:
            with self._lock:
                return _json({"received": list(self.received)})

        @app.errorhandler(404)
        def not_found(_error) -> Response:
            return _error(404, "not_found", "Not Found")

        @app.errorhandler(405)
        def not_allowed(_error) -> Response:
            return _error(404, "not_found", "Not Found")

        return app

    # ------------------------------------------------------------------ handlers

    def _conversations(self, org: str, customer_id: str) -> Response:
        data = self.orgs[org]
        if customer_id not in data["customers"]:
            return _error(404, "not_found", "Customer not found")
        try:
            page = int(request.args.get("page", "1"))
            size = int(request.args.get("pageSize", "25"))
        except ValueError:
            return _error(400, "invalid", "page and pageSize must be numbers")
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            return _error(400, "invalid", "page or pageSize out of range")
        rows = sorted((c for c in data["conversations"].values() if c["customer"] == customer_id),
                      key=lambda c: (c["createdAt"], c["id"]), reverse=True)
        chunk = rows[(page - 1) * size: page * size]
        more = len(rows) > page * size
        base = f"/v1/customers/{customer_id}/conversations"
        return _json({
            "data": [_resource("conversation", c, data["id"], {"customer": ("customer", customer_id)}) for c in chunk],
            "meta": {"page": page, "pageSize": size},
            "links": {"self": f"{base}?page={page}&pageSize={size}",
                      "next": f"{base}?page={page + 1}&pageSize={size}" if more else None},
        })

    def _child(self, conversation_id: str, kind: str, required: tuple[str, ...]) -> Response:
        org = self._org_of(request.headers.get("Authorization"))
        data = self.orgs[org]
        conversation = data["conversations"].get(conversation_id)
        if conversation is None:
            return _error(404, "not_found", "Conversation not found")
        body = request.environ["sandbox.json"]
        if not isinstance(body, dict):
            return _error(400, "invalid", "Body must be a JSON object")
        for name in required:
            if not isinstance(body.get(name), str) or not body[name]:
                return _error(400, "invalid", f"{name} is required", {"pointer": f"/{name}"})
        external = body.get("externalId")
        if external is not None and (not isinstance(external, str) or not 1 <= len(external) <= 256):
            return _error(400, "invalid", "externalId is not valid", {"pointer": "/externalId"})
        oid = secrets.token_hex(12)
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        item = {"id": oid, **{k: v for k, v in body.items() if isinstance(v, (str, int, bool))},
                "createdAt": now, "updatedAt": now}
        with self._lock:
            if external is not None and any(i.get("externalId") == external for i in data[kind + "s"].values()):
                return _duplicate()
            data[kind + "s"][oid] = {**item, "conversation": conversation_id}
            conversation["messageCount" if kind == "message" else "noteCount"] += 1
        return _json({"data": _resource(kind, item, data["id"], {
            "conversation": ("conversation", conversation_id), "customer": ("customer", conversation["customer"])})}, 201)

    # ------------------------------------------------------------------ auth, limits, faults

    def _org_of(self, header: str | None) -> str | None:
        if not header or not header.startswith("Bearer "):
            return None
        token = header[len("Bearer "):]
        for org, key in self.keys.items():
            if secrets.compare_digest(key.encode(), token.encode()) and org in self.orgs:
                return org
        return None

    def _spend(self, org: str) -> Response | None:
        now = self.clock()
        with self._lock:
            start, used = self._windows.get(org, (now, 0))
            if now - start >= WINDOW:
                start, used = now, 0
            if used >= self.rate_limit:
                wait = max(1, int(WINDOW - (now - start) + 0.999))
                self._windows[org] = (start, used)
                return _error(429, "too_many_requests", "Too Many Requests", headers={
                    "Retry-After": str(wait), "x-ratelimit-limit": str(self.rate_limit),
                    "x-ratelimit-remaining": "0"})
            self._windows[org] = (start, used + 1)
        return None

    def _serve_fault(self, org: str | None) -> Response | None:
        fault = self._take_fault(org)
        return None if fault is None else self._render_fault(fault)

    def _take_fault(self, org: str | None) -> dict | None:
        with self._lock:
            fault = next((f for f in self._faults if f["org"] in (None, org) and (
                f["params"].get("path") is None or fnmatch.fnmatchcase(request.path, f["params"]["path"]))), None)
            if fault is None:
                return None
            fault["times"] -= 1
            if fault["times"] <= 0:
                self._faults.remove(fault)
        return fault

    def _render_fault(self, fault: dict) -> Response | None:
        params = fault["params"]
        match fault["kind"]:
            case "http_429":
                headers = {"x-ratelimit-limit": str(self.rate_limit), "x-ratelimit-remaining": "0"}
                if "retry_after" in params:
                    headers["Retry-After"] = str(params["retry_after"])
                return _error(429, "too_many_requests", "Too Many Requests", headers=headers)
            case "http_500" | "http_502" | "http_503":
                status = int(fault["kind"][5:])
                return _error(status, "server_error", {500: "Internal Server Error", 502: "Bad Gateway",
                                                       503: "Service Unavailable"}[status])
            case "slow":
                time.sleep(float(params["seconds"]))
                return None
            case "redirect":
                response = Response("", status=302)
                response.headers["Location"] = params.get("location", "http://127.0.0.1:9/")
                return response
            case "garbage":
                return Response("<html><body>Bad gateway</body></html>", status=200,
                                content_type="application/json; charset=utf-8")
            case "respond":
                return Response(params["body"], status=int(params.get("status", 200)),
                                content_type="application/json; charset=utf-8")
        return None
