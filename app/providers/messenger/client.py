"""The Messenger client: the Page's token, ``appsecret_proof``, and Graph calls through app/outbound.py.

Tokens: ``MESSENGER_PAGE_ACCESS_TOKENS`` (JSON Page id → Page token) wins for the Pages it names;
otherwise ``MESSENGER_PAGE_ACCESS_TOKEN`` (one Page). Every call carries ``appsecret_proof`` =
hex HMAC-SHA256(key = app secret, message = token)
(https://developers.facebook.com/docs/graph-api/securing-requests/). The token travels in the
``Authorization: Bearer`` header, never in a URL.

Graph errors are ``{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}``
(https://developers.facebook.com/docs/messenger-platform/error-codes); ``_raise_for`` maps them:

    code 10 / subcode 2018278   outside the window       ─▶ 422 outside_messaging_window
    code 100 / subcode 2018001  no such user for the Page ─▶ 422 on recipient_id
    code 4, 17, 32, 613, 80006  rate limits (any HTTP status) ─▶ 429 upstream_rate_limited
                                (Retry-After: the usage header's estimated_time_to_regain_access,
                                else 60 s — Graph sends no Retry-After)
    code 190, 102, 200, 10 (other), HTTP 401/403, code 100 naming appsecret_proof
                                                            ─▶ 502 upstream_auth_failed
    anything else                                           ─▶ 502 upstream_bad_response
"""

from __future__ import annotations

import hashlib
import hmac
import json as jsonlib
import math
import re
import time
from urllib.parse import urlencode

from flask import current_app

from app.errors import UpstreamAuthFailed, UpstreamBadResponse, UpstreamRateLimited, ValidationFailed
from app.messaging import OutsideMessagingWindow
from app.outbound import Response, Target
from app.providers.answers import Answer
from app.proxy import note
from app.quota import Reading

NAME = "messenger"
read = Answer(NAME, "Messenger")  # typed reads of Graph's answers (app/providers/answers.py)
PAGE_ID = re.compile(r"[1-9][0-9]{4,19}", re.ASCII)
RATE_LIMIT_CODES = {4, 17, 32, 613, 80006}
AUTH_CODES = {102, 190, 200}
USAGE_HEADERS = ("X-App-Usage", "X-Business-Use-Case-Usage")
DEFAULT_WAIT = 60  # a throttled call without a usage header: Graph's limits reset within the hour


def _usage(headers) -> tuple[float | None, float | None]:
    """(highest usage in percent, seconds until access is regained) from Graph's usage headers —
    https://developers.facebook.com/docs/graph-api/overview/rate-limiting/: ``X-App-Usage`` is
    ``{"call_count", "total_cputime", "total_time"}`` (percent of the app's hourly allowance);
    ``X-Business-Use-Case-Usage`` (Page tokens are under Business Use Case limits) is
    ``{"<object id>": [{"type", "call_count", "total_cputime", "total_time",
    "estimated_time_to_regain_access"}]}``, the last in minutes. Unreadable values are ignored."""
    used = regain = None
    for name in USAGE_HEADERS:
        raw = headers.get(name)
        if not raw or len(raw) > 4096:
            continue
        try:
            value = jsonlib.loads(raw)
        except (ValueError, RecursionError):
            continue
        entries = [value] if isinstance(value, dict) and "call_count" in value else [
            e for group in (value.values() if isinstance(value, dict) else ()) if isinstance(group, list)
            for e in group]
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            for key in ("call_count", "total_cputime", "total_time"):
                number = _number(entry.get(key))
                if number is not None:
                    used = number if used is None else max(used, number)
            minutes = _number(entry.get("estimated_time_to_regain_access"))
            if minutes:
                regain = max(regain or 0.0, minutes * 60)
    return used, regain


def _number(value) -> float | None:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _rate_limit_code(response: Response) -> bool:
    if response.status_code == 200 or len(response.content) > 65536:
        return False
    try:
        error = jsonlib.loads(response.content).get("error")
    except (ValueError, RecursionError, AttributeError):
        return False
    # Lenient on purpose (a reader must not fail a call): any int-valued code counts.
    return isinstance(error, dict) and type(error.get("code")) is int and error["code"] in RATE_LIMIT_CODES


def graph_signals(response: Response) -> Reading | None:
    """The account's budget as Graph states it (``Provider.rate_limit``; app/quota.py): usage as
    percent of a 100 % allowance, and — on a throttled call (codes 4, 17, 32, 613, 80006, which
    Graph answers with HTTP 400, not 429) — a wait until access is regained."""
    used, regain = _usage(response.headers)
    wait = None
    if response.status_code == 429 or _rate_limit_code(response):
        wait = regain or DEFAULT_WAIT
    if used is None and wait is None:
        return None
    return Reading(limit=100.0, remaining=None if used is None else max(0.0, 100.0 - used), wait=wait)


def appsecret_proof(token: str, app_secret: str) -> str:
    return hmac.new(app_secret.encode(), token.encode(), hashlib.sha256).hexdigest()


class MessengerClient:
    def __init__(self, app):
        self.creds = app.extensions["credentials"][NAME]
        self.outbound = app.extensions["outbound"]
        self.base = app.config["MESSENGER_GRAPH_URL"]
        self.version = app.config["MESSENGER_GRAPH_VERSION"]
        self.expected = Target.of(self.base)

    def _token(self, page_id: str) -> str:
        mapped = self.creds.map("MESSENGER_PAGE_ACCESS_TOKENS")
        if page_id in mapped:
            return mapped[page_id].reveal()
        single = self.creds.get("MESSENGER_PAGE_ACCESS_TOKEN")
        if single is not None:
            return single.reveal()
        raise UpstreamAuthFailed(NAME, "The platform holds no Page access token for this Page.")

    def _call(self, page_id: str, method: str, path: str, *, query: dict | None = None,
              json: dict | None = None, idempotent: bool) -> dict:
        if not PAGE_ID.fullmatch(page_id):  # second line of defence: validated when connected
            raise UpstreamBadResponse(NAME, "Refused to call an unexpected path.")
        token = self._token(page_id)
        secret = self.creds.get("MESSENGER_APP_SECRET").reveal()
        params = {**(query or {}), "appsecret_proof": appsecret_proof(token, secret)}
        url = f"{self.base}/{self.version}/{path}?{urlencode(params)}"
        outcome = self.outbound.call(
            NAME, method, url, expected=self.expected,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            json=json, idempotent=idempotent,
            account=page_id,  # the Page's shared budget and circuit breaker (app/quota.py)
        )
        note(upstream_status=outcome.response.status_code, attempts=outcome.attempts)
        payload = read.document(outcome.response)
        if outcome.response.status_code != 200 or "error" in payload:
            _raise_for(outcome.response, payload)
        return payload

    def me(self, page_id: str) -> dict:
        """``GET /me?fields=id,name`` with the Page's token: the Page that token belongs to."""
        return self._call(page_id, "GET", "me", query={"fields": "id,name"}, idempotent=True)

    def send(self, page_id: str, body: dict) -> dict:
        """``POST /{page_id}/messages``: a send is never re-sent blindly (not idempotent upstream)."""
        return self._call(page_id, "POST", f"{page_id}/messages", json=body, idempotent=False)


def client() -> MessengerClient:
    existing = current_app.extensions.get("messenger_client")
    if existing is None:
        existing = current_app.extensions["messenger_client"] = MessengerClient(current_app)
    return existing


def _raise_for(response: Response, payload: dict):
    error = read.obj(payload.get("error"))
    code, subcode = read.int(error.get("code")), read.int(error.get("error_subcode"))
    if code is not None:
        note(upstream_error=code, upstream_subcode=subcode)
    if code == 10 and subcode == 2018278:
        raise OutsideMessagingWindow(
            "Messenger refused the message: it is outside the 24-hour window (send it with a message `tag`).")
    if code == 100 and subcode == 2018001:
        raise ValidationFailed("recipient_id", "is not a person who has messaged this Page")
    if code in RATE_LIMIT_CODES or response.status_code == 429:
        _, regain = _usage(response.headers)  # Graph sends no Retry-After
        raise UpstreamRateLimited(NAME, math.ceil(regain or DEFAULT_WAIT))
    message = read.str(error.get("message")) or ""
    if code in AUTH_CODES or code == 10 or response.status_code in (401, 403) or (
            code == 100 and "appsecret_proof" in message):  # the app secret does not match the app
        raise UpstreamAuthFailed(NAME, "Messenger refused the platform's Page token.")
    raise UpstreamBadResponse(NAME, f"Messenger refused the call (HTTP {response.status_code}"
                                    + (f", code {code})." if code is not None else ")."))
