from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db
from app.models.base import BigIntPK, UTCDateTime


class MessagingWindow(db.Model):
    """The customer's last inbound message, per (org, channel, customer): the 24-hour window.

    ``channel`` is the provider (``messenger``, ``whatsapp``); ``customer`` its canonical address
    (a Messenger PSID, an E.164 number without the ``whatsapp:`` prefix). Written by the webhook
    side (``app.messaging.record_inbound``), read by every free-form send (app/messaging.py).
    """

    __tablename__ = "messaging_windows"
    __table_args__ = (
        sa.UniqueConstraint("organization_id", "channel", "customer", name="uq_messaging_windows_org_channel_customer"),
    )

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    organization_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("organizations.id", ondelete="CASCADE"), nullable=False
    )
    channel: Mapped[str] = mapped_column(sa.String(16), nullable=False)
    customer: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    last_inbound_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
