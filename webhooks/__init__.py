"""Provider webhooks: verify → attribute → store → acknowledge (design §4, §6 rule 5).

::

    provider ──raw body──▶ POST /webhooks/<source> ─▶ receiver.verify(request)   401 when wrong
            (constant time, over the raw bytes, before anything parses them)
        ─▶ receiver.handle(request, body) ─▶ [Received(account named in the *signed* content)]
        ─▶ store.record: INSERT … ON CONFLICT DO NOTHING + audit row + outbox row, one commit
        ─▶ 2xx (a duplicate is acknowledged too) ─▶ dispatch.inbound_message listeners
        ─▶ (worker / cron, app/deliveries.py) POST to the org's endpoint, signed

One module per provider; this one route dispatches. The routes sit outside ``/api/v1``: no API
key, no per-org limiter, nothing in Redis. The database is the only dependency — when it is down
the answer is 503 ``database_unavailable`` (the error tree's handler), never a 2xx.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Flask, current_app, request

from app.errors import NotFound, ProviderNotConfigured
from webhooks import messenger, shopify, store, twilio

log = logging.getLogger("switchboard.webhooks")

# source (the path after /webhooks/) → receiver module
RECEIVERS = {
    "messenger": messenger,
    "twilio/whatsapp": twilio.inbound,
    "twilio/status": twilio.status,
    "shopify": shopify,
}

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


@bp.get("/messenger")
def messenger_handshake():
    """Meta's subscription check: echo ``hub.challenge`` when ``hub.verify_token`` matches."""
    return messenger.handshake(request)


@bp.post("/<path:source>")
def receive(source):
    receiver = RECEIVERS.get(source)
    if receiver is None:
        raise NotFound("No webhook receiver at this path.")
    body = receiver.verify(request)
    stored = store.record(receiver.handle(request, body), body)
    return receiver.acknowledge(stored)


def secret(provider: str, name: str):
    """A signing secret from the credential registry; 503 when the provider is not configured."""
    entry = current_app.extensions["credentials"][provider]
    value = entry.get(name)
    if value is None:
        raise ProviderNotConfigured(provider, [name], f"set {name}")
    return value.reveal()


def secrets(provider: str, name: str) -> list[str]:
    """The signing secret, then ``<name>_PREVIOUS`` when set: during a rotation the provider may
    still sign with the old one (Shopify says to accept both until the old one is revoked)."""
    current = secret(provider, name)
    previous = current_app.extensions["credentials"][provider].get(f"{name}_PREVIOUS")
    return [current] + ([previous.reveal()] if previous is not None else [])


def init_app(app: Flask) -> None:
    credentials = app.extensions["credentials"]
    if credentials["whatsapp"].configured and not app.config["PUBLIC_BASE_URL"]:
        # Twilio signs the public URL it called; without it no Twilio webhook can be verified.
        log.warning("Twilio is configured but PUBLIC_BASE_URL is not: /webhooks/twilio/* answer 503")
    app.register_blueprint(bp)
