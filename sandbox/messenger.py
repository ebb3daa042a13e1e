"""Messenger Platform emulator (Graph API Send API + ``/me``), as a WSGI app.

    GET  /{version}/me?fields=id,name                    the token's Page
    POST /{version}/{page_id}/messages (or /me/messages)  message or sender_action

Auth as Graph: the Page token as ``access_token`` (query or form) or ``Authorization: Bearer``
/ ``OAuth``; with ``require_proof`` (the default) ``appsecret_proof`` = hex HMAC-SHA256(app secret,
token) must come with it. Errors are Graph's ``{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}`` (https://developers.facebook.com/docs/messenger-platform/error-codes):

    no/unknown token            400 code 190 OAuthException "Invalid OAuth access token."
    bad appsecret_proof         400 code 100 "Invalid appsecret_proof provided in the API argument"
    token of another Page       400 code 10 / 200 permission error (guess: Graph's permission shape)
    unknown PSID for the Page   400 code 100 / 2018001 "No matching user found"
    outside the 24-hour window  400 code 10 / 2018278 "(#10) This message is sent outside of allowed window."
    rate limit (per Page/s)     400 code 4 "(#4) Application request limit reached" (HTTP status a guess)

Rate-limit signals (https://developers.facebook.com/docs/graph-api/overview/rate-limiting/): every
send answer carries ``X-Business-Use-Case-Usage`` (Page tokens fall under Business Use Case
limits) with the Page's ``call_count`` as a percentage of its window. The ``rate_limited`` fault
takes ``code`` (4, 17, 32, 613 or 80006; default 4) and ``regain_minutes`` — when given, the
throttled answer's usage header says ``estimated_time_to_regain_access`` (Graph's only wait hint:
it sends no ``Retry-After``); without it the answer has no usage header.

A PSID is known to a Page once it has written (``fire_inbound``, or ``open_window`` for a test);
a send without a ``tag`` needs its last message within 24 hours. Controls (not recorded):

    POST /__sandbox__/faults    {"kind", "times", "page", ...}   kinds: rate_limited + sandbox/faults.py
    POST /__sandbox__/reset
    POST /__sandbox__/window    {"page", "psid", "hours_ago"?}   the PSID wrote hours_ago (0) hours ago
    POST /__sandbox__/inbound   {"url", "page", "psid", "text"}  fire a signed message webhook at url
    POST /__sandbox__/delivery  {"url", "page", "psid", "mids", "kind": "delivery"|"read"}
    GET  /__sandbox__/received

Webhooks are signed as Meta signs them: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body,
app secret)>`` over exactly the bytes posted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from typing import Any

import urllib3
from flask import Flask, Response, request

from .faults import FaultQueue, RateWindow, serve_common

_http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=10))


def _graph_error(message: str, code: int, subcode: int | None = None, status: int = 400,
                 type_: str = "OAuthException") -> Response:
    error: dict[str, Any] = {"message": message, "type": type_, "code": code,
                             "fbtrace_id": secrets.token_urlsafe(8)}
    if subcode is not None:
        error["error_subcode"] = subcode
    response = Response(json.dumps({"error": error}), status=status, content_type="application/json")
    response.headers["WWW-Authenticate"] = f'OAuth "Facebook Platform" "invalid_request" "{message}"'
    return response


RATE_LIMIT_MESSAGES = {4: "(#4) Application request limit reached", 17: "(#17) User request limit reached",
                       32: "(#32) Page request limit reached", 613: "(#613) Calls to this api have exceeded the rate limit.",
                       80006: "(#80006) There have been too many messages sent to this user."}
BUC_HEADER = "X-Business-Use-Case-Usage"


def _usage(page: str, percent: int, regain_minutes: int = 0) -> str:
    return json.dumps({page: [{"type": "messenger", "call_count": percent, "total_cputime": min(percent, 1),
                               "total_time": min(percent, 1), "estimated_time_to_regain_access": regain_minutes}]})


def _throttled(page: str | None, params: dict) -> Response:
    code = int(params.get("code", 4))
    response = _graph_error(RATE_LIMIT_MESSAGES.get(code, RATE_LIMIT_MESSAGES[4]), code)
    if params.get("regain_minutes") is not None and page:
        response.headers[BUC_HEADER] = _usage(page, 100, int(params["regain_minutes"]))
    return response


def _ok(body: dict) -> Response:
    return Response(json.dumps(body), status=200, content_type="application/json")


def sign(body: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


class MessengerEmulator:
    def __init__(self, page_tokens: dict[str, str], app_secret: str, *, require_proof: bool = True,
                 page_names: dict[str, str] | None = None, send_rate: int = 300):
        self.page_tokens = dict(page_tokens)  # page id -> token
        self.app_secret = app_secret
        self.require_proof = require_proof
        self.page_names = dict(page_names or {})
        self.received: list[dict] = []
        self.fired: list[dict] = []
        self.faults = FaultQueue(frozenset({"rate_limited"}))
        self.rate = RateWindow(send_rate)
        self._last_inbound: dict[tuple[str, str], float] = {}  # (page, psid) -> unix time
        self._lock = threading.Lock()
        self.wsgi = self._build_app()

    def __call__(self, environ, start_response):
        return self.wsgi(environ, start_response)

    # ------------------------------------------------------------------ controls

    def inject(self, kind: str, times: int = 1, page: str | None = None, **params) -> None:
        self.faults.add(kind, times, page, None, **params)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.fired.clear()
            self._last_inbound.clear()
        self.faults.clear()
        self.rate.clear()

    def open_window(self, page: str, psid: str, hours_ago: float = 0.0) -> None:
        with self._lock:
            self._last_inbound[(page, psid)] = time.time() - hours_ago * 3600

    def sends(self, page: str | None = None) -> list[dict]:
        with self._lock:
            return [r for r in self.received if r["endpoint"] == "messages" and page in (None, r["page"])]

    def _post_signed(self, url: str, payload: dict) -> dict:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, self.app_secret),
                   "User-Agent": "facebookexternalua"}
        try:
            answer = _http.request("POST", url, body=body, headers=headers, redirect=False)
            result = {"url": url, "status": answer.status, "body": answer.data.decode("utf-8", "replace")[:2000]}
        except urllib3.exceptions.HTTPError as exc:
            result = {"url": url, "status": None, "error": type(exc).__name__}
        with self._lock:
            self.fired.append({**result, "payload": payload})
        return result

    def fire_inbound(self, url: str, page: str, psid: str, text: str = "Hello") -> dict:
        """POST a signed ``messages`` webhook to ``url``, as Meta would; the PSID's window opens."""
        now_ms = int(time.time() * 1000)
        self.open_window(page, psid)
        mid = "m_" + secrets.token_urlsafe(24)
        payload = {"object": "page", "entry": [{"id": page, "time": now_ms, "messaging": [{
            "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": now_ms,
            "message": {"mid": mid, "text": text}}]}]}
        return {**self._post_signed(url, payload), "mid": mid}

    def fire_delivery(self, url: str, page: str, psid: str, mids: list[str] | None = None,
                      kind: str = "delivery") -> dict:
        """POST a signed ``message_deliveries`` (or ``message_reads``) webhook to ``url``."""
        now_ms = int(time.time() * 1000)
        event: dict[str, Any] = {"sender": {"id": psid}, "recipient": {"id": page}, "timestamp": now_ms}
        if kind == "read":
            event["read"] = {"watermark": now_ms}
        else:
            event["delivery"] = {"mids": list(mids or []), "watermark": now_ms}
        payload = {"object": "page", "entry": [{"id": page, "time": now_ms, "messaging": [event]}]}
        return self._post_signed(url, payload)

    # ------------------------------------------------------------------ app

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        app.url_map.strict_slashes = False

        @app.before_request
        def record():
            if request.path.startswith("/__sandbox__/"):
                return None
            parts = request.path.strip("/").split("/")
            endpoint = "messages" if parts[-1] == "messages" else ("me" if parts[-1] == "me" else None)
            page = parts[1] if len(parts) == 3 and endpoint == "messages" else None
            with self._lock:
                self.received.append({
                    "method": request.method, "path": request.path, "endpoint": endpoint, "page": page,
                    "query": dict(request.args), "json": request.get_json(silent=True),
                    "headers": {k.lower(): v for k, v in request.headers.items()}, "at": time.time()})
            fault = self.faults.take(page, endpoint)
            if fault is None:
                return None
            if fault["kind"] == "rate_limited":
                return _throttled(page, fault["params"])
            return serve_common(
                fault,
                json.dumps({"error": {"message": "An unexpected error has occurred. Please retry your request later.",
                                      "type": "OAuthException", "code": 2, "fbtrace_id": "sandbox"}}),
                json.dumps({"error": {"message": "Service temporarily unavailable", "type": "OAuthException",
                                      "code": 2, "fbtrace_id": "sandbox"}}))

        @app.get("/<version>/me")
        def me(version: str):
            page, error = self._authenticate()
            if error:
                return error
            return _ok({"id": page, "name": self.page_names.get(page, f"Sandbox Page {page}")})

        @app.post("/<version>/<page_ref>/messages")
        def messages(version: str, page_ref: str):
            page, error = self._authenticate()
            if error:
                return error
            if page_ref not in ("me", page):
                return _graph_error("(#200) The Page access token does not belong to this Page", 200,
                                    type_="OAuthException")
            if not self.rate.allow(page):
                throttled = _throttled(page, {})
                throttled.headers[BUC_HEADER] = _usage(page, 100)
                return throttled
            answer = self._send(page, request.get_json(silent=True))
            if self.rate.limit:
                answer.headers[BUC_HEADER] = _usage(page, min(100, 100 * self.rate.used(page) // self.rate.limit))
            return answer

        @app.post("/__sandbox__/faults")
        def add_fault():
            spec = dict(request.get_json(silent=True) or {})
            try:
                self.inject(spec.pop("kind", None), spec.pop("times", 1), spec.pop("page", None), **spec)
            except (TypeError, ValueError) as exc:
                return Response(json.dumps({"error": str(exc)}), 400, content_type="application/json")
            return Response(json.dumps({"ok": True}), 201, content_type="application/json")

        @app.post("/__sandbox__/reset")
        def reset():
            self.reset()
            return _ok({"ok": True})

        @app.post("/__sandbox__/window")
        def window():
            spec = request.get_json(silent=True) or {}
            self.open_window(str(spec.get("page")), str(spec.get("psid")), float(spec.get("hours_ago", 0)))
            return _ok({"ok": True})

        @app.post("/__sandbox__/inbound")
        def inbound():
            spec = request.get_json(silent=True) or {}
            return _ok(self.fire_inbound(str(spec["url"]), str(spec["page"]), str(spec["psid"]),
                                         str(spec.get("text", "Hello"))))

        @app.post("/__sandbox__/delivery")
        def delivery():
            spec = request.get_json(silent=True) or {}
            return _ok(self.fire_delivery(str(spec["url"]), str(spec["page"]), str(spec["psid"]),
                                          spec.get("mids"), str(spec.get("kind", "delivery"))))

        @app.get("/__sandbox__/received")
        def received():
            with self._lock:
                return _ok({"received": list(self.received), "fired": list(self.fired)})

        @app.errorhandler(404)
        def not_found(_error):
            return _graph_error("Unknown path components", 2500, type_="OAuthException")

        @app.errorhandler(405)
        def not_allowed(_error):
            return _graph_error("Unsupported request - method type", 100, type_="GraphMethodException")

        return app

    def _authenticate(self) -> tuple[str | None, Response | None]:
        token = request.args.get("access_token") or request.form.get("access_token")
        header = request.headers.get("Authorization", "")
        for scheme in ("Bearer ", "OAuth "):
            if header.startswith(scheme):
                token = header[len(scheme):].strip()
        page = next((p for p, t in self.page_tokens.items() if token and hmac.compare_digest(t, token)), None)
        if page is None:
            return None, _graph_error("Invalid OAuth access token - Cannot parse access token", 190)
        proof = request.args.get("appsecret_proof") or request.form.get("appsecret_proof")
        expected = hmac.new(self.app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()
        if (proof or self.require_proof) and not hmac.compare_digest(proof or "", expected):
            return None, _graph_error("Invalid appsecret_proof provided in the API argument", 100)
        return page, None

    def _send(self, page: str, body: Any) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("recipient"), dict):
            return _graph_error("(#100) The parameter recipient is required", 100)
        psid = body["recipient"].get("id")
        has_message, action = "message" in body, body.get("sender_action")
        if has_message == (action is not None):
            return _graph_error("(#100) Must send either message or sender_action", 100)
        if action is not None and action not in ("mark_seen", "typing_on", "typing_off"):
            return _graph_error("(#100) Param sender_action must be one of {MARK_SEEN, TYPING_ON, TYPING_OFF}", 100)
        if has_message:
            message = body["message"]
            text = message.get("text") if isinstance(message, dict) else None
            if not isinstance(message, dict) or (text is None and "attachment" not in message):
                return _graph_error("(#100) Message cannot be empty, must provide valid attachment or text", 100)
            if isinstance(text, str) and len(text) > 2000:
                return _graph_error("(#100) Length of param message[text] must be less than or equal to 2000", 100)
        with self._lock:
            last = self._last_inbound.get((page, psid))
        if last is None:
            return _graph_error("(#100) No matching user found", 100, 2018001)
        tagged = body.get("messaging_type") == "MESSAGE_TAG" and body.get("tag")
        if not tagged and time.time() - last > 24 * 3600:
            return _graph_error("(#10) This message is sent outside of allowed window.", 10, 2018278)
        if action is not None:
            return _ok({"recipient_id": psid})
        return _ok({"recipient_id": psid, "message_id": "m_" + secrets.token_urlsafe(24)})
