"""What a receiver hands to the store: one verified event, attributed by the signed content."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime

from app.errors import WebhookSignatureInvalid


@dataclass
class Received:
    provider: str  # the claim table's provider name (messenger, whatsapp, shopify)
    event_id: str  # the dedupe key: UNIQUE(provider, event_id)
    account_key: str | None  # canonical account id from the signed content; None: unattributable
    topic: str
    payload: dict  # what the org is delivered
    # An inbound customer message (for the messaging window): (channel, customer id, time).
    message: tuple[str, str, datetime] | None = None
    # Extra dedupe: an identical body already stored for another account is a duplicate.
    dedupe_body: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class Stored:
    received: Received
    id: object | None  # the new row's id; None for a duplicate
    organization_id: object | None


def same(expected: str, provided: str | None) -> bool:
    """Constant-time comparison of two signatures (bytes, so non-ASCII input is not a TypeError)."""
    if not provided:
        return False
    return hmac.compare_digest(expected.encode("latin-1", "replace"), provided.encode("latin-1", "replace"))


def refuse(provider: str) -> WebhookSignatureInvalid:
    return WebhookSignatureInvalid(f"The {provider} webhook signature is missing or does not match; nothing was stored.")
