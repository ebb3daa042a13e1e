"""The Twilio client: HTTP basic auth (Account SID : Auth Token), calls through app/outbound.py.

Two hosts, both configuration: the REST API (``TWILIO_API_URL``, messages) and the Messaging API
(``TWILIO_MESSAGING_URL``, WhatsApp senders). Errors are ``{"code", "message", "more_info",
"status"}`` (https://www.twilio.com/docs/usage/twilios-response); ``_raise_for`` maps them:

    HTTP 401 / code 20003               ─▶ 502 upstream_auth_failed
    21211, 21614, 21612, 63024          ─▶ 422 on ``to`` (not a number Twilio can reach)
    21655, 21656 (ContentSid/Variables) ─▶ 422 on ``content_sid`` / ``content_variables``
    63007 (From is no WhatsApp channel) ─▶ 502 upstream_auth_failed
    429 / 20429 (outbound layer)        ─▶ 429 upstream_rate_limited (Retry-After when Twilio sends
                                           it), never retried for a send — Twilio says a 429 was not
                                           processed, so the caller may retry it
    anything else                       ─▶ 502 upstream_bad_response
"""

from __future__ import annotations

import base64
import re
from urllib.parse import urlencode

from flask import current_app

from app.errors import UpstreamAuthFailed, UpstreamBadResponse, ValidationFailed
from app.outbound import Response, Target
from app.providers.answers import Answer
from app.proxy import note

NAME = "whatsapp"
read = Answer(NAME, "Twilio")  # typed reads of Twilio's answers (app/providers/answers.py)
ACCOUNT_SID = re.compile(r"AC[0-9a-f]{32}", re.ASCII)
MAX_SENDER_PAGES = 10
_CALLER = {21211: "to", 21612: "to", 21614: "to", 63024: "to", 21655: "content_sid", 21656: "content_variables"}


class TwilioClient:
    def __init__(self, app):
        self.creds = app.extensions["credentials"][NAME]
        self.outbound = app.extensions["outbound"]
        self.api = app.config["TWILIO_API_URL"]
        self.messaging = app.config["TWILIO_MESSAGING_URL"]

    def _auth(self) -> tuple[str, dict]:
        sid = self.creds.get("TWILIO_ACCOUNT_SID").reveal()
        if not ACCOUNT_SID.fullmatch(sid):
            raise UpstreamAuthFailed(NAME, "The platform's TWILIO_ACCOUNT_SID is not an account SID.")
        token = self.creds.get("TWILIO_AUTH_TOKEN").reveal()
        basic = base64.b64encode(f"{sid}:{token}".encode()).decode()
        return sid, {"Authorization": f"Basic {basic}", "Accept": "application/json"}

    def _call(self, method: str, url: str, base: str, number: str, *, data: dict | None = None,
              idempotent: bool) -> dict:
        _, headers = self._auth()
        # The Twilio account's shared budget and circuit breaker (app/quota.py; the scope is the
        # account, not the number: Twilio limits concurrent requests per account).
        outcome = self.outbound.call(NAME, method, url, expected=Target.of(base), headers=headers,
                                     data=data, idempotent=idempotent, account=number)
        note(upstream_status=outcome.response.status_code, attempts=outcome.attempts)
        payload = read.document(outcome.response)
        if outcome.response.status_code not in (200, 201):
            _raise_for(outcome.response, payload)
        return payload

    def send(self, number: str, form: dict) -> dict:
        """``POST /2010-04-01/Accounts/{sid}/Messages.json`` (201) from ``number``: never re-sent blindly."""
        sid, _ = self._auth()
        return self._call("POST", f"{self.api}/2010-04-01/Accounts/{sid}/Messages.json", self.api, number,
                          data=form, idempotent=False)

    def whatsapp_senders(self, number: str) -> list[dict]:
        """Every WhatsApp sender of the account (``GET /v2/Channels/Senders?Channel=whatsapp``)."""
        url = f"{self.messaging}/v2/Channels/Senders?{urlencode({'Channel': 'whatsapp', 'PageSize': 100})}"
        senders: list[dict] = []
        for _ in range(MAX_SENDER_PAGES):
            page = self._call("GET", url, self.messaging, number, idempotent=True)
            items = page.get("senders")
            if not isinstance(items, list):
                raise UpstreamBadResponse(NAME, "Twilio's senders answer had no list of senders.")
            senders.extend(s for s in items if isinstance(s, dict))
            meta = page.get("meta") if isinstance(page.get("meta"), dict) else {}
            url = meta.get("next_page_url")
            if not isinstance(url, str) or not url:
                return senders
        return senders  # more than MAX_SENDER_PAGES pages: what was read decides


def client() -> TwilioClient:
    existing = current_app.extensions.get("twilio_client")
    if existing is None:
        existing = current_app.extensions["twilio_client"] = TwilioClient(current_app)
    return existing


def _raise_for(response: Response, payload: dict):
    code = read.int(payload.get("code"))
    if code is not None:
        note(upstream_error=code)
    if response.status_code in (401, 403) or code == 20003:
        raise UpstreamAuthFailed(NAME, "Twilio refused the platform's account credentials.")
    if code in _CALLER:
        field = _CALLER[code]
        raise ValidationFailed(field, "Twilio refused it" + (
            ": not a number reachable on WhatsApp" if field == "to" else f" (Twilio error {code})"))
    if code == 63007:
        raise UpstreamAuthFailed(NAME, "Twilio has no WhatsApp channel for this number on the platform's account.")
    raise UpstreamBadResponse(NAME, f"Twilio refused the call (HTTP {response.status_code}"
                                    + (f", error {code})." if code is not None else ")."))
