"""Twilio (WhatsApp) webhooks: inbound messages and delivery-status callbacks.

``X-Twilio-Signature`` = base64 HMAC-SHA1(auth token, public URL + sorted POST parameters),
checked with the twilio package's own ``RequestValidator`` (which also follows
``X-Twilio-Webhooks-Signature-Settings``). The URL is rebuilt from ``PUBLIC_BASE_URL``: behind a
TLS-terminating proxy the URL the request arrived at is not the one Twilio signed. Every posted
parameter is covered (Twilio adds fields without notice), so nothing outside the signature is
read.

Attribution: an inbound message names the org's number in ``To``; a status callback reports a
message the org sent, so its number is ``From``. Dedupe: ``MessageSid`` (inbound) and
``MessageSid:MessageStatus`` (each status once).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from types import SimpleNamespace
from urllib.parse import parse_qsl

from flask import Response, current_app
from twilio.request_validator import RequestValidator, get_signature_algorithm
from werkzeug.datastructures import MultiDict

from app.errors import BadRequest, ProviderNotConfigured
from webhooks.base import Received, refuse

PROVIDER = "whatsapp"
E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)
SID = re.compile(r"[A-Z]{2}[0-9a-f]{32}", re.ASCII)
STATUS = re.compile(r"[a-z_]{1,32}", re.ASCII)
TWIML_EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def _verify(request) -> bytes:
    from webhooks import secret

    token = secret(PROVIDER, "TWILIO_AUTH_TOKEN")
    base = current_app.config["PUBLIC_BASE_URL"]
    if not base:
        raise ProviderNotConfigured(PROVIDER, ["PUBLIC_BASE_URL"], "set PUBLIC_BASE_URL")
    body = request.get_data(cache=True)
    query = request.query_string.decode("latin-1")
    url = base + request.path + (f"?{query}" if query else "")
    signature = request.headers.get("X-Twilio-Signature")
    try:
        params = MultiDict(parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False))
    except UnicodeDecodeError:
        raise refuse("twilio") from None
    algorithm = get_signature_algorithm(request.headers.get("X-Twilio-Webhooks-Signature-Settings"))
    if not signature or not RequestValidator(token).validate(url, params, signature, algorithm=algorithm):
        raise refuse("twilio")
    return body


def _params(body: bytes) -> dict:
    return dict(parse_qsl(body.decode("ascii"), keep_blank_values=True))


def _number(value: str | None) -> str | None:
    number = (value or "").removeprefix("whatsapp:")
    return number if E164.fullmatch(number) else None


def _sid(params: dict) -> str:
    sid = params.get("MessageSid") or params.get("SmsSid") or ""
    if not SID.fullmatch(sid):
        raise BadRequest("MessageSid", "is missing or not a Twilio message SID")
    return sid


def _handle_inbound(request, body: bytes) -> list[Received]:
    params = _params(body)
    sid = _sid(params)
    customer = _number(params.get("From"))
    message = ("whatsapp", customer, datetime.now(timezone.utc)) if customer else None
    return [Received(PROVIDER, sid, _number(params.get("To")), "message", params, message=message)]


def _handle_status(request, body: bytes) -> list[Received]:
    params = _params(body)
    sid = _sid(params)
    status = params.get("MessageStatus") or params.get("SmsStatus") or ""
    if not STATUS.fullmatch(status):
        raise BadRequest("MessageStatus", "is missing or malformed")
    return [Received(PROVIDER, f"{sid}:{status}", _number(params.get("From")), "message.status", params)]


def _acknowledge(_stored) -> Response:
    return Response(TWIML_EMPTY, mimetype="text/xml")


inbound = SimpleNamespace(verify=_verify, handle=_handle_inbound, acknowledge=_acknowledge)
status = SimpleNamespace(verify=_verify, handle=_handle_status, acknowledge=_acknowledge)
