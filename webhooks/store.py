"""Store verified events: attribute, INSERT … ON CONFLICT DO NOTHING, audit, outbox — one commit.

The claim table (``integrations``) says which org owns the account the signed content names.
Only an approved claim attributes (``connected`` or ``error``); a ``pending`` one has not been
approved (design §6 rule 9), so its events stay unattributed — kept, admin-visible, and not
delivered to the org that merely named the account.
"""

from __future__ import annotations

import hashlib
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app import audit
from app.extensions import db
from app.models import Delivery, InboundEvent, Integration
from app.models.base import utcnow
from webhooks import dispatch
from webhooks.base import Received, Stored

ATTRIBUTING = ("connected", "error")


def _insert(table):
    dialect = db.engine.dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _owners(provider: str, keys: set[str]) -> dict[str, uuid.UUID]:
    if not keys:
        return {}
    rows = db.session.execute(
        sa.select(Integration.account_key, Integration.organization_id)
        .where(Integration.provider == provider, Integration.account_key.in_(keys),
               Integration.status.in_(ATTRIBUTING))
    )
    return {key: org for key, org in rows}


def record(received: list[Received], body: bytes) -> list[Stored]:
    digest = hashlib.sha256(body).hexdigest()
    now = utcnow()
    stored: list[Stored] = []
    owners: dict[tuple[str, str], uuid.UUID] = {}
    for provider in {r.provider for r in received}:
        keys = {r.account_key for r in received if r.provider == provider and r.account_key}
        owners.update({(provider, k): org for k, org in _owners(provider, keys).items()})
    try:
        for item in received:
            org_id = owners.get((item.provider, item.account_key)) if item.account_key else None
            if item.dedupe_body and _seen_for_other_account(item, digest):
                stored.append(Stored(item, None, org_id))
                continue
            event_id = uuid.uuid4()
            statement = (
                _insert(InboundEvent.__table__)
                .values(id=event_id, provider=item.provider, event_id=item.event_id,
                        organization_id=org_id, account_key=item.account_key, topic=item.topic,
                        received_at=now, body=body, body_sha256=digest, payload=item.payload,
                        status="attributed" if org_id else "unattributed")
                .on_conflict_do_nothing(index_elements=["provider", "event_id"])
                .returning(InboundEvent.__table__.c.id)
            )
            new_id = db.session.execute(statement).scalar()
            if new_id is None:  # a copy of a delivery already stored: acknowledged, stored once
                stored.append(Stored(item, None, org_id))
                continue
            audit.record(audit.Action.WEBHOOK_RECEIVED, provider=item.provider, target=item.account_key,
                         organization_id=org_id, actor="provider", status_code=200,
                         detail={"event": str(new_id), "topic": item.topic, "attributed": org_id is not None})
            if org_id is not None:
                db.session.execute(sa.insert(Delivery.__table__).values(
                    event_id=new_id, organization_id=org_id, status="pending", attempts=0,
                    next_attempt_at=now, created_at=now, updated_at=now))
            stored.append(Stored(item, new_id, org_id))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    for entry in stored:
        if entry.id is not None and entry.organization_id is not None and entry.received.message:
            channel, customer, at = entry.received.message
            dispatch.inbound_message(entry.organization_id, channel, customer, at)
    return stored


def _seen_for_other_account(item: Received, digest: str) -> bool:
    """The same signed body already stored under another account (an unsigned header changed)."""
    other = db.session.execute(
        sa.select(InboundEvent.id).where(
            InboundEvent.provider == item.provider, InboundEvent.body_sha256 == digest,
            sa.or_(InboundEvent.account_key.is_(None), InboundEvent.account_key != item.account_key)
            if item.account_key else InboundEvent.account_key.is_not(None),
        ).limit(1)
    ).first()
    return other is not None
