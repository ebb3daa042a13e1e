"""Twilio emulator: the REST API's Messages (WhatsApp) and the Messaging API's Senders, as WSGI.

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json        form; 201 + the Message resource
    GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json  the Message (status as it moved)
    GET  /v2/Channels/Senders?Channel=whatsapp&PageSize=&Page=  {senders: [...], meta: {...}}

One emulator serves both hosts (``TWILIO_API_URL`` and ``TWILIO_MESSAGING_URL`` point at it).
Auth: HTTP basic, Account SID : Auth Token. Errors are Twilio's ``{"code", "message",
"more_info", "status"}`` (https://www.twilio.com/docs/usage/twilios-response), the codes from
Twilio's error dictionary:

    bad or missing credentials   401 20003 "Authenticate"
    another account's path       404 20404
    To / From missing            400 21604 / 21603
    To not whatsapp:+E.164       400 21211 "Invalid 'To' Phone Number"
    From not an ONLINE sender    400 63007 "Twilio could not find a Channel with the specified From address"
    no Body, MediaUrl, ContentSid 400 21619;  Body over 1600 characters 400 21617
    unknown ContentSid           400 21655;  ContentVariables not a JSON object 400 21656
    over the account's rate      429 20429 "Too Many Requests" (https://www.twilio.com/docs/api/errors/20429:
                                 "never processed and always safe to retry"; no Retry-After is
                                 documented — the ``rate_limited`` fault adds one with ``retry_after``)

The 24-hour window is Twilio's: a free-form message outside it (no ``ContentSid``) is accepted
with 201 ``queued`` and then fails asynchronously — its status callback says ``failed`` with
``ErrorCode`` 63016 (https://www.twilio.com/docs/api/errors/63016). Inside the window, or with a
template, the callbacks go ``sent`` then ``delivered``. Callbacks and inbound messages are signed
with ``X-Twilio-Signature`` by the ``twilio`` package's own ``RequestValidator`` over the exact
URL posted to and the form.

Controls (not recorded):

    POST /__sandbox__/faults   {"kind", "times", "number", ...}  kinds: rate_limited + sandbox/faults.py
    POST /__sandbox__/reset
    POST /__sandbox__/window   {"to": "+1…" (our sender), "from": "+1…" (customer), "hours_ago"?}
    POST /__sandbox__/inbound  {"url", "to", "from", "body"}   fire a signed inbound message
    POST /__sandbox__/status   {"url", "sid", "status", "error_code"?}  fire a signed status callback
    GET  /__sandbox__/received
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import urllib3
from flask import Flask, Response, request
from twilio.request_validator import RequestValidator

from .faults import FaultQueue, RateWindow, serve_common

API_VERSION = "2010-04-01"
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=10))
DEFAULT_TEMPLATES = {"HX" + "0" * 31 + "1": "Your order {{1}} has shipped."}


def _error(code: int, message: str, status: int) -> Response:
    body = {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status}
    return Response(json.dumps(body), status=status, content_type="application/json")


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def _sender_sid(number: str) -> str:
    return "XE" + hashlib.sha256(number.encode()).hexdigest()[:32]


def _rfc2822(at: float | None = None) -> str:
    return format_datetime(datetime.fromtimestamp(at or time.time(), timezone.utc))


class TwilioEmulator:
    def __init__(self, account_sid: str, auth_token: str, senders: dict[str, str], *,
                 templates: dict[str, str] | None = None, send_rate: int = 100,
                 callback_delay: float = 0.05):
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.senders = dict(senders)  # "+E164" -> status (ONLINE, OFFLINE, …)
        self.templates = dict(DEFAULT_TEMPLATES if templates is None else templates)
        self.callback_delay = callback_delay
        self.validator = RequestValidator(auth_token)
        self.received: list[dict] = []
        self.fired: list[dict] = []
        self.messages: dict[str, dict] = {}
        self.faults = FaultQueue(frozenset({"rate_limited"}))
        self.rate = RateWindow(send_rate)
        self._last_inbound: dict[tuple[str, str], float] = {}  # (our number, customer) -> unix time
        self._lock = threading.Lock()
        self.wsgi = self._build_app()

    def __call__(self, environ, start_response):
        return self.wsgi(environ, start_response)

    # ------------------------------------------------------------------ controls

    def inject(self, kind: str, times: int = 1, number: str | None = None, **params) -> None:
        """``number``: only sends from this sender (E.164) match."""
        self.faults.add(kind, times, number, None, **params)

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.fired.clear()
            self.messages.clear()
            self._last_inbound.clear()
        self.faults.clear()
        self.rate.clear()

    def open_window(self, to: str, customer: str, hours_ago: float = 0.0) -> None:
        with self._lock:
            self._last_inbound[(to, customer)] = time.time() - hours_ago * 3600

    def sends(self) -> list[dict]:
        with self._lock:
            return [r for r in self.received if r["endpoint"] == "messages" and r["method"] == "POST"]

    def sign(self, url: str, params: dict) -> str:
        return self.validator.compute_signature(url, params)

    def _post_signed(self, url: str, params: dict, kind: str) -> dict:
        headers = {"X-Twilio-Signature": self.sign(url, params), "User-Agent": "TwilioProxy/1.1",
                   "Content-Type": "application/x-www-form-urlencoded"}
        try:
            answer = _http.request("POST", url, fields=params, headers=headers, encode_multipart=False,
                                   redirect=False)
            result = {"url": url, "status": answer.status, "body": answer.data[:500].decode("utf-8", "replace")}
        except urllib3.exceptions.HTTPError as exc:
            result = {"url": url, "status": None, "error": type(exc).__name__}
        with self._lock:
            self.fired.append({**result, "kind": kind, "params": params})
        return result

    def fire_inbound(self, url: str, to: str, customer: str, body: str = "Hello",
                     profile_name: str = "Sandbox Customer") -> dict:
        """POST a signed inbound WhatsApp message to ``url``, as Twilio would; the window opens."""
        self.open_window(to, customer)
        sid = "SM" + secrets.token_hex(16)
        params = {"MessageSid": sid, "SmsMessageSid": sid, "SmsSid": sid, "AccountSid": self.account_sid,
                  "From": f"whatsapp:{customer}", "To": f"whatsapp:{to}", "Body": body, "NumMedia": "0",
                  "NumSegments": "1", "ProfileName": profile_name, "WaId": customer.lstrip("+"),
                  "MessageType": "text", "SmsStatus": "received", "ApiVersion": API_VERSION}
        return {**self._post_signed(url, params, "inbound"), "sid": sid}

    def fire_status(self, url: str, sid: str, status: str, error_code: int | None = None) -> dict:
        """POST a signed status callback for message ``sid`` to ``url``."""
        with self._lock:
            message = dict(self.messages.get(sid) or {})
        params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "SmsStatus": status,
                  "AccountSid": self.account_sid, "From": message.get("from", ""), "To": message.get("to", ""),
                  "ApiVersion": API_VERSION, "ChannelPrefix": "whatsapp",
                  "ChannelToAddress": (message.get("to") or "").replace("whatsapp:", "")}
        if error_code is not None:
            params["ErrorCode"] = str(error_code)
            params["ErrorMessage"] = "Outside messaging window" if error_code == 63016 else "Delivery failed"
        return self._post_signed(url, params, "status")

    # ------------------------------------------------------------------ app

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        app.url_map.strict_slashes = False

        @app.before_request
        def record():
            if request.path.startswith("/__sandbox__/"):
                return None
            endpoint = "messages" if "/Messages" in request.path else (
                "senders" if request.path.startswith("/v2/Channels/Senders") else None)
            form = {k: request.form.getlist(k) if len(request.form.getlist(k)) > 1 else v
                    for k, v in request.form.items()}
            with self._lock:
                self.received.append({"method": request.method, "path": request.path, "endpoint": endpoint,
                                      "query": dict(request.args), "form": form,
                                      "headers": {k.lower(): v for k, v in request.headers.items()},
                                      "at": time.time()})
            sender = (request.form.get("From") or "").replace("whatsapp:", "") or None
            fault = self.faults.take(sender, endpoint)
            if fault is None:
                return None
            if fault["kind"] == "rate_limited":
                throttled = _error(20429, "Too Many Requests", 429)
                if fault["params"].get("retry_after") is not None:
                    throttled.headers["Retry-After"] = str(fault["params"]["retry_after"])
                return throttled
            return serve_common(fault, json.dumps({"code": 20500, "message": "Internal Server Error",
                                                   "more_info": "https://www.twilio.com/docs/errors/20500",
                                                   "status": 500}),
                                json.dumps({"code": 20503, "message": "Service Unavailable",
                                            "more_info": "https://www.twilio.com/docs/errors/20503",
                                            "status": 503}))

        @app.post(f"/{API_VERSION}/Accounts/<account>/Messages.json")
        def create_message(account: str):
            denied = self._authenticate(account)
            return denied or self._create()

        @app.get(f"/{API_VERSION}/Accounts/<account>/Messages/<sid>.json")
        def fetch_message(account: str, sid: str):
            denied = self._authenticate(account)
            if denied:
                return denied
            with self._lock:
                message = self.messages.get(sid)
            if message is None:
                return _error(20404, f"The requested resource /{API_VERSION}/Accounts/{account}/Messages/{sid}.json "
                                     "was not found", 404)
            return _json(message)

        @app.get("/v2/Channels/Senders")
        def senders():
            denied = self._authenticate(None)
            return denied or self._senders()

        @app.post("/__sandbox__/faults")
        def add_fault():
            spec = dict(request.get_json(silent=True) or {})
            try:
                self.inject(spec.pop("kind", None), spec.pop("times", 1), spec.pop("number", None), **spec)
            except (TypeError, ValueError) as exc:
                return _json({"error": str(exc)}, 400)
            return _json({"ok": True}, 201)

        @app.post("/__sandbox__/reset")
        def reset():
            self.reset()
            return _json({"ok": True})

        @app.post("/__sandbox__/window")
        def window():
            spec = request.get_json(silent=True) or {}
            self.open_window(str(spec.get("to")), str(spec.get("from")), float(spec.get("hours_ago", 0)))
            return _json({"ok": True})

        @app.post("/__sandbox__/inbound")
        def inbound():
            spec = request.get_json(silent=True) or {}
            return _json(self.fire_inbound(str(spec["url"]), str(spec["to"]), str(spec["from"]),
                                           str(spec.get("body", "Hello"))))

        @app.post("/__sandbox__/status")
        def status():
            spec = request.get_json(silent=True) or {}
            code = spec.get("error_code")
            return _json(self.fire_status(str(spec["url"]), str(spec["sid"]), str(spec["status"]),
                                          int(code) if code is not None else None))

        @app.get("/__sandbox__/received")
        def received():
            with self._lock:
                return _json({"received": list(self.received), "fired": list(self.fired),
                              "messages": list(self.messages.values())})

        @app.errorhandler(404)
        def not_found(_error):
            return _error(20404, f"The requested resource {request.path} was not found", 404)

        @app.errorhandler(405)
        def not_allowed(_error):
            return _error(20004, "Method not allowed", 405)

        return app

    def _authenticate(self, account: str | None) -> Response | None:
        auth = request.authorization
        if (auth is None or auth.type != "basic" or auth.username != self.account_sid
                or not secrets.compare_digest(auth.password or "", self.auth_token)):
            response = _error(20003, "Authenticate", 401)
            response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
            return response
        if account is not None and account != self.account_sid:
            return _error(20404, f"The requested resource {request.path} was not found", 404)
        return None

    def _create(self) -> Response:
        form = request.form
        to, sender = form.get("To"), form.get("From")
        if not to:
            return _error(21604, "A 'To' phone number is required.", 400)
        if not sender:
            return _error(21603, "A 'From' phone number is required.", 400)
        if not (to.startswith("whatsapp:") and E164.fullmatch(to[len("whatsapp:"):])):
            return _error(21211, f"Invalid 'To' Phone Number: {to[:40]}", 400)
        number = sender[len("whatsapp:"):] if sender.startswith("whatsapp:") else None
        if number is None or self.senders.get(number) != "ONLINE":
            return _error(63007, "Twilio could not find a Channel with the specified From address", 400)
        body, media, content_sid = form.get("Body"), form.getlist("MediaUrl"), form.get("ContentSid")
        if not body and not media and not content_sid:
            return _error(21619, "A text message body or media urls must be specified.", 400)
        if body and len(body) > 1600:
            return _error(21617, "The concatenated message body exceeds the 1600 character limit.", 400)
        if content_sid:
            if content_sid not in self.templates:
                return _error(21655, "The ContentSid is Invalid.", 400)
            try:
                variables = json.loads(form.get("ContentVariables") or "{}")
            except ValueError:
                variables = None
            if not isinstance(variables, dict):
                return _error(21656, "The ContentVariables Parameter is invalid.", 400)
            body = self.templates[content_sid]
            for key, value in variables.items():
                body = body.replace("{{%s}}" % key, str(value))
        if not self.rate.allow(self.account_sid):
            return _error(20429, "Too Many Requests", 429)
        customer = to[len("whatsapp:"):]
        with self._lock:
            last = self._last_inbound.get((number, customer))
        outside = not content_sid and (last is None or time.time() - last > 24 * 3600)
        sid = ("MM" if media else "SM") + secrets.token_hex(16)
        now = _rfc2822()
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        message = {
            "account_sid": self.account_sid, "api_version": API_VERSION, "body": body or "",
            "date_created": now, "date_sent": None, "date_updated": now, "direction": "outbound-api",
            "error_code": None, "error_message": None, "from": sender, "messaging_service_sid": None,
            "num_media": str(len(media)), "num_segments": "1", "price": None, "price_unit": "USD",
            "sid": sid, "status": "queued", "to": to, "uri": base + ".json",
            "subresource_uris": {"media": base + "/Media.json", "feedback": base + "/Feedback.json"},
        }
        with self._lock:
            self.messages[sid] = message
        callback = form.get("StatusCallback")
        threading.Thread(target=self._progress, args=(sid, callback, outside), daemon=True).start()
        return _json(message, 201)

    def _progress(self, sid: str, callback: str | None, outside: bool) -> None:
        """queued ─▶ sent ─▶ delivered, or ─▶ failed (63016) outside the window; callbacks if asked."""
        steps = [("failed", 63016)] if outside else [("sent", None), ("delivered", None)]
        for status, code in steps:
            time.sleep(self.callback_delay)
            with self._lock:
                message = self.messages.get(sid)
                if message is None:
                    return
                message.update(status=status, date_updated=_rfc2822(), error_code=code,
                               error_message="Outside messaging window" if code else None)
                if status == "sent":
                    message["date_sent"] = message["date_updated"]
            if callback:
                self.fire_status(callback, sid, status, code)

    def _senders(self) -> Response:
        if request.args.get("Channel") != "whatsapp":
            return _error(20001, "Channel must be whatsapp or rcs", 400)
        try:
            size = min(max(int(request.args.get("PageSize", 20)), 1), 1000)
            page = max(int(request.args.get("Page", 0)), 0)
        except ValueError:
            return _error(20001, "Invalid PageSize or Page", 400)
        numbers = sorted(self.senders)
        chunk = numbers[page * size:(page + 1) * size]
        root = request.host_url.rstrip("/") + "/v2/Channels/Senders"

        def url(p: int) -> str:
            return f"{root}?Channel=whatsapp&PageSize={size}&Page={p}"

        senders = [{
            "sid": _sender_sid(n), "status": self.senders[n],
            "sender_id": f"whatsapp:{n}", "configuration": {"waba_id": "1234567890", "verification_method": "sms",
                                                           "verification_code": None, "voice_application_sid": None},
            "webhook": None, "profile": {"name": f"Sandbox {n}"}, "properties": None,
            "offline_reasons": None if self.senders[n] == "ONLINE" else [
                {"code": "30001", "message": "Sender offline", "more_info": None}],
            "compliance": None, "url": f"{root}/{_sender_sid(n)}",
        } for n in chunk]
        more = (page + 1) * size < len(numbers)
        return _json({"senders": senders, "meta": {
            "page": page, "page_size": size, "first_page_url": url(0),
            "previous_page_url": url(page - 1) if page else None, "url": url(page),
            "next_page_url": url(page + 1) if more else None, "key": "senders"}})
