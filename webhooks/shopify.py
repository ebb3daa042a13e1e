"""Shopify webhooks (https://shopify.dev/docs/apps/build/webhooks/subscribe/https).

``X-Shopify-Hmac-Sha256`` = base64 HMAC-SHA256(raw body, the app's client secret —
``SHOPIFY_ADMIN_API_SECRET``; during a rotation ``SHOPIFY_ADMIN_API_SECRET_PREVIOUS`` too, as
https://shopify.dev/docs/apps/build/authentication-authorization/client-secrets/rotate-revoke-client-credentials
asks: "accept both webhooks signed with the new client secret and webhooks signed with the old
client secret until after you revoke the old secret"). Shopify signs only the body: the shop, topic and delivery id are
headers anyone can change. So:

* the dedupe key is ``X-Shopify-Webhook-Id`` alone (unique per delivery) — a captured delivery
  re-sent with another shop's header is a duplicate, not a new event for that shop;
* the same signed body already stored for another shop is a duplicate too, whatever delivery id
  comes with it (a replay with a fresh id and another shop's header gets nothing delivered).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re

from flask import Response

from app.errors import BadRequest
from webhooks.base import Received, refuse, same

PROVIDER = "shopify"
log = logging.getLogger("switchboard.webhooks")
SHOP_DOMAIN = re.compile(r"([a-z0-9][a-z0-9-]{0,61}[a-z0-9]?)\.myshopify\.com", re.ASCII)
WEBHOOK_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}", re.ASCII)
TOPIC = re.compile(r"[a-z_]{1,50}/[a-z_]{1,50}", re.ASCII)


def matches_any(signature, secrets: list[str], provided: str | None) -> int | None:
    """Which of ``secrets`` (0: the current one, 1: the previous one) signed, or ``None``.

    Every candidate is computed and compared in constant time, whichever matches first, so the
    answer's timing says nothing about which secret (if any) was close."""
    matched = None
    for index, candidate in enumerate(secrets):
        if same(signature(candidate), provided) and matched is None:
            matched = index
    return matched


def verify(request) -> bytes:
    from webhooks import secrets

    candidates = secrets(PROVIDER, "SHOPIFY_ADMIN_API_SECRET")  # + SHOPIFY_ADMIN_API_SECRET_PREVIOUS
    body = request.get_data(cache=True)
    matched = matches_any(lambda key: base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode(),
                          candidates, request.headers.get("X-Shopify-Hmac-Sha256"))
    if matched is None:
        raise refuse(PROVIDER)
    if matched:
        # Tells the operator the old secret is still in use; once these stop, drop the variable.
        log.info("shopify webhook verified with SHOPIFY_ADMIN_API_SECRET_PREVIOUS")
    return body


def handle(request, body: bytes) -> list[Received]:
    headers = request.headers
    webhook_id = headers.get("X-Shopify-Webhook-Id", "")
    if not WEBHOOK_ID.fullmatch(webhook_id):
        raise BadRequest("X-Shopify-Webhook-Id", "is missing or malformed")
    topic = headers.get("X-Shopify-Topic", "")
    if not TOPIC.fullmatch(topic):
        raise BadRequest("X-Shopify-Topic", "is missing or malformed")
    match = SHOP_DOMAIN.fullmatch(headers.get("X-Shopify-Shop-Domain", "").lower())
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRequest("body", "is not JSON") from None
    payload = {
        "topic": topic,
        "shop_domain": match.group(0) if match else None,
        "api_version": headers.get("X-Shopify-API-Version", "")[:20] or None,
        "event_id": headers.get("X-Shopify-Event-Id", "")[:100] or None,
        "triggered_at": headers.get("X-Shopify-Triggered-At", "")[:40] or None,
        "body": data,
    }
    return [Received(PROVIDER, webhook_id, match.group(1) if match else None, topic, payload, dedupe_body=True)]


def acknowledge(_stored) -> Response:
    return Response(status=200)
