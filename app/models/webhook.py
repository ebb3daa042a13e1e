"""Inbound provider events, their delivery outbox, and each org's webhook endpoint.

::

    provider ─▶ /webhooks/<provider> ─▶ inbound_events (UNIQUE provider, event_id)
                                        └─ deliveries (one row per attributed event: the outbox)
    worker / cron ─▶ claims a due delivery ─▶ POSTs to webhook_endpoints.url, signed (Standard Webhooks)
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import BigIntPK, JSONType, UTCDateTime, new_uuid, utcnow


class InboundEvent(db.Model):
    """One verified provider event. ``organization_id`` is NULL when no org has claimed the
    account named inside the signed content: the event is kept, visible to the admin."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        # The concurrency decision: the first INSERT of a delivery wins, every copy is a no-op.
        sa.UniqueConstraint("provider", "event_id", name="uq_inbound_events_provider_event"),
        sa.Index("ix_inbound_events_org_received", "organization_id", "received_at", "id"),
        sa.Index("ix_inbound_events_provider_digest", "provider", "body_sha256"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_uuid)
    provider: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    # The provider's own id of the delivery (MessageSid, X-Shopify-Webhook-Id, a digest of a
    # Messenger entry): the dedupe key.
    event_id: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    # The account the signed content names (Page id, E.164 number, store name).
    account_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    topic: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # The raw body as signed (admin only; a Messenger batch may name several Pages) …
    body: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    body_sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # … and the part of it that belongs to the org: what it is delivered and can read.
    payload: Mapped[dict] = mapped_column(JSONType, nullable=False)
    # ``attributed`` or ``unattributed``.
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False)

    @classmethod
    def for_org(cls, org_id):
        return sa.select(cls).where(cls.organization_id == org_id)


class Delivery(db.Model):
    """The outbox: one row per attributed event, written in the event's transaction.

    ``pending`` (due at ``next_attempt_at``) → ``delivering`` (claimed under ``lease_owner``
    until ``lease_until``) → ``delivered`` | ``pending`` again (retry) | ``dead`` | ``no_endpoint``.
    """

    __tablename__ = "deliveries"
    __table_args__ = (
        sa.UniqueConstraint("event_id", name="uq_deliveries_event"),
        sa.Index("ix_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    event_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("inbound_events.id", ondelete="CASCADE"), nullable=False
    )
    organization_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True)
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False, default="pending")
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)


class WebhookEndpoint(db.Model):
    """Where an org receives its events. The signing secret is not stored: it is derived from
    ``WEBHOOK_SIGNING_KEY`` and ``secret_salt`` by HMAC (app/deliveries.py); a new PUT draws a
    new salt, which rotates the secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_uuid)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    url: Mapped[str] = mapped_column(sa.String(2048), nullable=False)
    secret_salt: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow)

    @classmethod
    def for_org(cls, org_id):
        return sa.select(cls).where(cls.organization_id == org_id)
