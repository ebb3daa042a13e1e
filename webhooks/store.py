"""Store verified events: attribute, INSERT … ON CONFLICT DO NOTHING, audit, outbox — one commit.

The claim table (``integrations``) says which org owns the account the signed content names.
Only an approved claim attributes (``connected`` or ``error``); a ``pending`` one has not been
approved (design §6 rule 9), so its events stay unattributed — kept, admin-visible, and not
delivered to the org that merely named the account.

This is the webhook hot path (every provider delivery, at whatever rate the provider sends), so
it speaks SQLAlchemy Core, with statements built once: no ORM session, no per-call statement
building (whose coercion and cache-key work was ~90 % of a delivery's CPU, docs/benchmarks.md).
Two paths, storing the same rows (tests/test_webhooks_store_paths.py)::

    PostgreSQL, one event, every stored-listener has SQL ─▶ one statement in autocommit:
        owner ─▶ event (INSERT … ON CONFLICT DO NOTHING RETURNING) ─▶ audit, outbox, window
    otherwise (SQLite, a batch) ─▶ one transaction on one connection: the claim lookup reads
        first (on SQLite that takes no write lock, so concurrent copies queue on the INSERT, not
        on a read snapshot), then the event, its audit row, its outbox row, the listeners; commit

Either way everything is committed before the acknowledgement, or nothing is.
"""

from __future__ import annotations

import hashlib
import uuid

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from app import audit
from app.extensions import autocommit, db
from app.models import Delivery, InboundEvent, Integration
from app.models.base import utcnow
from webhooks import dispatch
from webhooks.base import Received, Stored

ATTRIBUTING = ("connected", "error")

_events, _deliveries, _claims = InboundEvent.__table__, Delivery.__table__, Integration.__table__

_OWNER = (
    sa.select(_claims.c.organization_id)
    .where(_claims.c.provider == sa.bindparam("provider"), _claims.c.account_key == sa.bindparam("key"),
           _claims.c.status.in_(ATTRIBUTING))
)
# The first INSERT of a delivery wins; a copy inserts nothing and RETURNING gives no row.
_INSERT_EVENT = {
    name: dialect.insert(_events).on_conflict_do_nothing(index_elements=["provider", "event_id"])
    .returning(_events.c.id)
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_INSERT_DELIVERY = sa.insert(_deliveries)
_SEEN_BODY_ELSEWHERE = (  # the same signed body stored under another (or no) account
    sa.select(_events.c.id)
    .where(_events.c.provider == sa.bindparam("provider"), _events.c.body_sha256 == sa.bindparam("digest"),
           sa.or_(_events.c.account_key.is_(None), _events.c.account_key != sa.bindparam("key")))
    .limit(1)
)
_SEEN_BODY_ATTRIBUTED = (  # … for a delivery naming no account: stored under any account
    sa.select(_events.c.id)
    .where(_events.c.provider == sa.bindparam("provider"), _events.c.body_sha256 == sa.bindparam("digest"),
           _events.c.account_key.is_not(None))
    .limit(1)
)


def _owners(connection, provider: str, keys: set[str]) -> dict[str, uuid.UUID]:
    owners = {}
    for key in keys:
        org = connection.execute(_OWNER, {"provider": provider, "key": key}).scalar()
        if org is not None:
            owners[key] = org
    return owners


def _single_statement(listeners: tuple[dispatch.StoredStatement, ...]) -> sa.Select:
    """One delivery's whole store as one PostgreSQL statement of data-modifying CTEs.

    ``owner`` (the approved claim's org) → ``event`` (INSERT … ON CONFLICT DO NOTHING, and for
    ``dedupe_body`` nothing when the same body is stored under another account) → its audit row,
    its outbox row and the stored-listeners' statements, each reading ``event``'s RETURNING row
    (none for a duplicate, so they write nothing). All parts see one snapshot and commit together
    (one statement in autocommit); the answer is the new event's id (NULL for a duplicate) and
    the claim's org.
    """
    p = sa.bindparam
    owner = sa.select(_claims.c.organization_id).where(
        _claims.c.provider == p("provider", type_=_claims.c.provider.type),
        _claims.c.account_key == p("key", type_=_claims.c.account_key.type),
        _claims.c.status.in_(ATTRIBUTING)).cte("owner")
    org = sa.select(owner.c.organization_id).scalar_subquery()
    seen = sa.exists().where(  # _seen_for_other_account in SQL: a NULL key matches any stored key
        _events.c.provider == p("provider"), _events.c.body_sha256 == p("digest", type_=_events.c.body_sha256.type),
        _events.c.account_key.is_distinct_from(p("key")))
    values = sa.select(
        p("id", type_=_events.c.id.type), p("provider"), p("event_id", type_=_events.c.event_id.type), org,
        p("key"), p("topic", type_=_events.c.topic.type), p("now", type_=_events.c.received_at.type),
        p("body", type_=_events.c.body.type), p("digest"), p("payload", type_=_events.c.payload.type),
        sa.case((org.is_not(None), "attributed"), else_="unattributed"),
    ).where(sa.not_(sa.and_(p("dedupe_body", type_=sa.Boolean), seen)))
    event = (postgresql.insert(_events)
             .from_select(["id", "provider", "event_id", "organization_id", "account_key", "topic", "received_at",
                           "body", "body_sha256", "payload", "status"], values)
             .on_conflict_do_nothing(index_elements=["provider", "event_id"])
             .returning(_events.c.id, _events.c.organization_id)
             .cte("event"))
    parts = [
        audit.insert_from(event, organization_id=event.c.organization_id, detail=sa.func.jsonb_build_object(
            "event", sa.cast(event.c.id, sa.Text), "topic", sa.cast(p("topic"), sa.Text),
            "attributed", event.c.organization_id.is_not(None))),
        sa.insert(_deliveries).from_select(
            ["event_id", "organization_id", "status", "attempts", "next_attempt_at", "created_at", "updated_at"],
            sa.select(event.c.id, event.c.organization_id, sa.literal("pending"), sa.literal(0),
                      p("now"), p("now"), p("now")).where(event.c.organization_id.is_not(None))),
        *(listener.build(event) for listener in listeners),
    ]
    statement = sa.select(sa.select(event.c.id).scalar_subquery(), org)
    for number, part in enumerate(parts):
        statement = statement.add_cte(part.cte(f"part_{number}"))
    return statement


_SINGLE: dict[tuple, sa.Select] = {}  # per set of stored-listeners (they are registered at start-up)


def record(received: list[Received], body: bytes) -> list[Stored]:
    digest = hashlib.sha256(body).hexdigest()
    now = utcnow()
    listeners = dispatch.stored_statements()
    if db.engine.dialect.name == "postgresql" and len(received) == 1 and listeners is not None:
        return _record_in_one_statement(received[0], body, digest, now, listeners)
    stored: list[Stored] = []
    insert_event = _INSERT_EVENT[db.engine.dialect.name]
    with db.engine.begin() as connection:  # commits on exit; rolls back if anything raised
        owners: dict[tuple[str, str], uuid.UUID] = {}
        for provider in {r.provider for r in received}:
            keys = {r.account_key for r in received if r.provider == provider and r.account_key}
            owners.update({(provider, k): org for k, org in _owners(connection, provider, keys).items()})
        for item in received:
            org_id = owners.get((item.provider, item.account_key)) if item.account_key else None
            if item.dedupe_body and _seen_for_other_account(connection, item, digest):
                stored.append(Stored(item, None, org_id))
                continue
            new_id = connection.execute(insert_event, {
                "id": uuid.uuid4(), "provider": item.provider, "event_id": item.event_id,
                "organization_id": org_id, "account_key": item.account_key, "topic": item.topic,
                "received_at": now, "body": body, "body_sha256": digest, "payload": item.payload,
                "status": "attributed" if org_id else "unattributed",
            }).scalar()
            if new_id is None:  # a copy of a delivery already stored: acknowledged, stored once
                stored.append(Stored(item, None, org_id))
                continue
            audit.record(audit.Action.WEBHOOK_RECEIVED, provider=item.provider, target=item.account_key,
                         organization_id=org_id, actor="provider", status_code=200,
                         detail={"event": str(new_id), "topic": item.topic, "attributed": org_id is not None},
                         connection=connection)
            if org_id is not None:
                connection.execute(_INSERT_DELIVERY, {
                    "event_id": new_id, "organization_id": org_id, "status": "pending", "attempts": 0,
                    "next_attempt_at": now, "created_at": now, "updated_at": now})
            stored.append(Stored(item, new_id, org_id))
        # In-transaction listeners (the messaging window), sorted so that two batches touching
        # the same windows lock them in the same order (no deadlock on PostgreSQL).
        for org_id, channel, customer, at in sorted(_messages(stored), key=lambda m: (str(m[0]), m[1], m[2])):
            dispatch.inbound_message_stored(connection, org_id, channel, customer, at)
    for org_id, channel, customer, at in _messages(stored):
        dispatch.inbound_message(org_id, channel, customer, at)
    return stored


def _record_in_one_statement(item: Received, body: bytes, digest: str, now, listeners) -> list[Stored]:
    """PostgreSQL, one event (a provider's usual delivery): one round trip instead of a
    transaction of four or five statements (BEGIN, claim, INSERTs, COMMIT)."""
    statement = _SINGLE.get(listeners)
    if statement is None:
        statement = _SINGLE[listeners] = _single_statement(listeners)
    params = {
        "provider": item.provider, "key": item.account_key, "id": uuid.uuid4(), "event_id": item.event_id,
        "topic": item.topic, "now": now, "body": body, "digest": digest, "payload": item.payload,
        "dedupe_body": item.dedupe_body,
        **audit.params(audit.row(audit.Action.WEBHOOK_RECEIVED, provider=item.provider, target=item.account_key,
                                 actor="provider", status_code=200)),
    }
    for listener in listeners:
        params.update(listener.params(item.message))
    new_id, org_id = autocommit(statement, params)
    stored = [Stored(item, new_id, org_id)]
    for org, channel, customer, at in _messages(stored):
        dispatch.inbound_message(org, channel, customer, at)
    return stored


def _messages(stored: list[Stored]):
    """(org, channel, customer, at) of each newly stored, attributed inbound customer message."""
    for entry in stored:
        if entry.id is not None and entry.organization_id is not None and entry.received.message:
            yield (entry.organization_id, *entry.received.message)


def _seen_for_other_account(connection, item: Received, digest: str) -> bool:
    """The same signed body already stored under another account (an unsigned header changed)."""
    if item.account_key:
        query, params = _SEEN_BODY_ELSEWHERE, {"provider": item.provider, "digest": digest, "key": item.account_key}
    else:
        query, params = _SEEN_BODY_ATTRIBUTED, {"provider": item.provider, "digest": digest}
    return connection.execute(query, params).first() is not None
