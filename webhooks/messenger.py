"""Facebook Messenger webhooks (https://developers.facebook.com/docs/messenger-platform/webhooks).

``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(raw body, MESSENGER_APP_SECRET)>``. One app secret
signs for every Page, so the Page is ``entry[].id`` inside the signed body — never a header or
the query string. One POST may batch entries of several Pages: each entry is its own event, for
its own org. Meta sends no delivery id; an entry's id is a digest of its content (a re-sent
delivery is byte-identical, so it is a duplicate).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime, timezone

from flask import Response

from app.errors import BadRequest, Forbidden, ProviderNotConfigured
from webhooks.base import Received, refuse, same

PROVIDER = "messenger"
PAGE_ID = re.compile(r"[1-9][0-9]{4,19}", re.ASCII)
KINDS = ("message", "postback", "reaction", "read", "delivery", "optin", "referral", "message_edit")


def handshake(request):
    from webhooks import secret

    token = request.args.get("hub.verify_token")
    try:
        expected = secret(PROVIDER, "MESSENGER_VERIFY_TOKEN")
    except ProviderNotConfigured:
        raise
    if request.args.get("hub.mode") != "subscribe" or not same(expected, token):
        raise Forbidden("The verify token does not match.", code="invalid_verify_token")
    challenge = request.args.get("hub.challenge", "")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", challenge, re.ASCII):
        raise BadRequest("hub.challenge", "must be 1-128 letters, digits, '_' or '-'")
    return Response(challenge, mimetype="text/plain")


def verify(request) -> bytes:
    from webhooks import secret

    app_secret = secret(PROVIDER, "MESSENGER_APP_SECRET")
    body = request.get_data(cache=True)
    expected = "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    if not same(expected, request.headers.get("X-Hub-Signature-256")):
        raise refuse(PROVIDER)
    return body


def handle(request, body: bytes) -> list[Received]:
    try:
        document = json.loads(body)
    except ValueError:
        raise BadRequest("body", "is not JSON") from None
    entries = document.get("entry") if isinstance(document, dict) else None
    if not isinstance(entries, list) or document.get("object") != "page":
        raise BadRequest("body", "is not a Page webhook (object: page, entry: [...])")
    received = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise BadRequest("entry", "must be a list of objects")
        page = str(entry.get("id", ""))
        account = page if PAGE_ID.fullmatch(page) else None
        canonical = json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()
        event_id = f"{page[:40]}:{hashlib.sha256(canonical).hexdigest()}"
        messaging = [m for m in entry.get("messaging", []) or [] if isinstance(m, dict)]
        kinds = [k for m in messaging for k in KINDS if k in m]
        topic = kinds[0] if kinds else ("changes" if "changes" in entry else "entry")
        message = None
        for item in messaging:
            text = item.get("message")
            sender = (item.get("sender") or {}).get("id")
            if isinstance(text, dict) and not text.get("is_echo") and isinstance(sender, str) and sender.isdigit():
                message = ("messenger", sender, _time(item.get("timestamp")))
        received.append(Received(PROVIDER, event_id, account, topic,
                                 {"object": "page", "entry": [entry]}, message=message))
    return received


def acknowledge(_stored) -> Response:
    return Response("EVENT_RECEIVED", mimetype="text/plain")


def _time(millis) -> datetime:
    if isinstance(millis, int) and 0 < millis < 10**14:
        return datetime.fromtimestamp(millis / 1000, timezone.utc)
    return datetime.now(timezone.utc)
