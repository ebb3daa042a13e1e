from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import BigIntPK, JSONType, UTCDateTime, utcnow


class AuditLog(db.Model):
    """Append-only trail. Written only by app/audit.py; no secrets and no bodies in ``detail``."""

    __tablename__ = "audit_logs"
    __table_args__ = (
        sa.Index("ix_audit_logs_org_id", "organization_id", "id"),
        sa.Index("ix_audit_logs_org_provider_id", "organization_id", "provider", "id"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # No foreign key: the trail outlives what it describes (a deleted org keeps its history).
    organization_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True)
    actor: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    action: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    provider: Mapped[str | None] = mapped_column(sa.String(50), nullable=True)
    target: Mapped[str | None] = mapped_column(sa.String(255), nullable=True)
    outcome: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    status_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    latency_ms: Mapped[float | None] = mapped_column(sa.Float, nullable=True)
    request_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    ip: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    detail: Mapped[dict | None] = mapped_column(JSONType, nullable=True)
