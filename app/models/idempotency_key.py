from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import BigIntPK, UTCDateTime, utcnow


class IdempotencyKey(db.Model):
    """One ``Idempotency-Key`` a caller sent, and the answer it got (app/idempotency.py).

    Neither the key nor the answer is readable from this row alone: ``key_hash`` and
    ``request_digest`` are HMACs keyed by the caller's idempotency key, and ``response`` (status
    line aside) is encrypted with a key derived from it — an issued API key lives in there.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        # The concurrency decision: the first INSERT wins, every other request sees its row.
        sa.UniqueConstraint("scope", "key_hash", name="uq_idempotency_keys_scope_key"),
        sa.Index("ix_idempotency_keys_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # ``org:<uuid>`` or ``admin``: one org's keys never replay for another caller.
    scope: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    key_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    request_digest: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # While the first request runs: who holds the key and since when (NULL once answered).
    owner: Mapped[str | None] = mapped_column(sa.String(32), nullable=True)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    response_status: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    response: Mapped[bytes | None] = mapped_column(sa.LargeBinary, nullable=True)
