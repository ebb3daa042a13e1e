from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import JSONType, UTCDateTime, new_uuid, utcnow

STATUSES = ("connected", "disconnected", "error", "pending")


class Integration(db.Model):
    """An org's connection to one provider account: identifiers and status, never a secret.

    The columns are the seed design's, plus ``account_key`` — the canonical identifier (lower-case
    store name, E.164 number…) — whose ``UNIQUE(provider, account_key)`` makes one account belong
    to at most one org. A disconnected row keeps its history but releases the claim (NULL key).
    """

    __tablename__ = "integrations"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "provider", name="uq_integrations_org_provider"),
        sa.UniqueConstraint("provider", "account_key", name="uq_integrations_provider_account"),
    )

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=new_uuid)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    provider: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False, default="disconnected")
    account_identifier: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
    account_key: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    connected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sync_status: Mapped[str | None] = mapped_column(sa.String(50), nullable=True)
    error_message: Mapped[str | None] = mapped_column(sa.Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow
    )

    @classmethod
    def for_org(cls, org_id):
        """The only way handlers reach integrations: scoped by the org taken from the key."""
        return sa.select(cls).where(cls.organization_id == org_id)
