"""Events kept while a claim was pending join the org when the admin approves the claim.

An event naming an account whose claim is ``pending`` is stored unattributed (``webhooks/store.py``):
naming an account is not owning it (design §6 rule 9). The admin's approval — or an assignment
over that pending claim — is the proof of control. What arrived *while this org's claim on this
account was pending* was addressed to the same owner, so the approval's own transaction::

    approve ─▶ claim_started(org, provider, account)   (the audit trail: the first
               integration.pending for this account since the claim last ended or changed)
      ─▶ UPDATE inbound_events SET organization_id = org  (unattributed, this account, since then)
      ─▶ INSERT deliveries (pending, due now)  ─▶ audit webhook.attributed (how many, since when)
      ─▶ dispatch.inbound_message_stored per customer message (the 24-hour window, same transaction)
      ─▶ commit ─▶ announce() : dispatch.inbound_message per customer message (after-commit listeners)

Events from before the claim stay unattributed and admin-only: nobody had asked for the account
then, and approving a claim made today says nothing about who owned it last month.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import urlencode

import sqlalchemy as sa

from app import audit
from app.extensions import db
from app.models import AuditLog, Delivery, InboundEvent
from app.models.base import utcnow
from webhooks import dispatch

# Audit actions that end or replace a claim: the pending stretch starts after the last of them.
_CLAIM_CHANGES = (audit.Action.INTEGRATION_CONNECTED, audit.Action.INTEGRATION_APPROVED,
                  audit.Action.INTEGRATION_REJECTED, audit.Action.INTEGRATION_RELEASED,
                  audit.Action.INTEGRATION_ASSIGNED, audit.Action.INTEGRATION_DISCONNECTED)


@dataclass
class Attributed:
    events: int = 0
    messages: list[tuple] = field(default_factory=list)  # (org, channel, customer, at)

    def announce(self) -> None:
        """After the commit: each newly attributed customer message, once, to the after-commit listeners."""
        for org_id, channel, customer, at in self.messages:
            dispatch.inbound_message(org_id, channel, customer, at)


def claim_started(org_id, provider: str, account_key: str) -> datetime | None:
    """When this org's current pending claim on ``account_key`` began, from the audit trail."""
    log = AuditLog.__table__.c
    scope = (log.organization_id == org_id, log.provider == provider)
    boundary = db.session.execute(
        sa.select(sa.func.max(log.id)).where(*scope, sa.or_(
            log.action.in_([a.value for a in _CLAIM_CHANGES]),
            sa.and_(log.action == audit.Action.INTEGRATION_PENDING.value,
                    sa.or_(log.target.is_(None), log.target != account_key)),
        ))
    ).scalar()
    query = sa.select(sa.func.min(log.at)).where(
        *scope, log.action == audit.Action.INTEGRATION_PENDING.value, log.target == account_key)
    if boundary is not None:
        query = query.where(log.id > boundary)
    started = db.session.execute(query).scalar()
    if started is not None and started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    return started


def attribute_pending(org_id, provider: str, account_key: str | None, *, actor: str) -> Attributed:
    """In the caller's transaction (not committed here): give ``org_id`` the unattributed events
    of ``account_key`` received since its pending claim began, each with its outbox row."""
    result = Attributed()
    if account_key is None:
        return result
    org_id = org_id if isinstance(org_id, uuid.UUID) else uuid.UUID(str(org_id))
    since = claim_started(org_id, provider, account_key)
    if since is None:
        return result
    events = InboundEvent.__table__.c
    rows = db.session.execute(
        sa.select(events.id, events.topic, events.payload, events.received_at)
        .where(events.provider == provider, events.account_key == account_key,
               events.organization_id.is_(None), events.received_at >= since)
        .order_by(events.received_at, events.id)
    ).all()
    if not rows:
        return result
    ids = [row.id for row in rows]
    # Nobody else can attribute these meanwhile: UNIQUE(provider, account_key) lets one org at a
    # time hold (even a pending) claim on the account, and the caller's conditional UPDATE of that
    # claim serialises approvals. The webhook side only inserts new rows.
    db.session.execute(
        sa.update(InboundEvent.__table__)
        .where(events.id.in_(ids), events.organization_id.is_(None))
        .values(organization_id=org_id, status="attributed")
    )
    now = utcnow()
    db.session.execute(sa.insert(Delivery.__table__), [
        {"event_id": event_id, "organization_id": org_id, "status": "pending", "attempts": 0,
         "next_attempt_at": now, "created_at": now, "updated_at": now} for event_id in ids])
    audit.record(audit.Action.WEBHOOK_ATTRIBUTED, provider=provider, target=account_key,
                 organization_id=org_id, actor=actor,
                 detail={"events": len(ids), "since": since.isoformat()})
    result.events = len(ids)
    result.messages = [m for row in rows for m in _messages(org_id, provider, row)]
    connection = db.session.connection()
    for message in result.messages:  # the 24-hour window, written in the approval's transaction
        dispatch.inbound_message_stored(connection, *message)
    return result


def _messages(org_id, provider: str, row) -> list[tuple]:
    """The customer messages inside a stored event, as its receiver saw them when it arrived."""
    payload = row.payload if isinstance(row.payload, dict) else json.loads(row.payload or "{}")
    if provider == "messenger":
        from webhooks import messenger

        return [(org_id, *r.message) for r in messenger.handle(None, json.dumps(payload).encode()) if r.message]
    if provider == "whatsapp" and row.topic == "message":
        from webhooks import twilio

        at = row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=timezone.utc)
        return [(org_id, "whatsapp", r.message[1], at)
                for r in twilio.inbound.handle(None, urlencode(payload).encode()) if r.message]
    return []
