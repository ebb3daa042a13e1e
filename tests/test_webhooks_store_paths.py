"""PostgreSQL's single-statement store writes what the transaction writes (webhooks/store.py).

The same deliveries go through both paths — the single statement (every stored-listener gives its
SQL) and the transaction (a stored-listener without SQL forces it) — and the stored rows are
compared: events, their audit rows, outbox rows and messaging windows. SQLite has one path only.
"""

import json
import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Delivery, InboundEvent, MessagingWindow
from tests.webhooks_support import (
    ENV, PAGE_A, PAGE_B, claim, messenger_body, messenger_headers, shopify_headers, twilio_post,
)
from webhooks import dispatch

NUMBER = "+14155550123"
UNCLAIMED_PAGE = "104512345678909"


@pytest.fixture
def app(make_app):
    app = make_app(**ENV)
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the single-statement store is PostgreSQL's; needs DATABASE_URL pointing at PostgreSQL")
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def claims(app, new_org):
    (org_a, _), (org_b, _) = new_org("org-a"), new_org("org-b")
    claim(app, org_a["id"], "messenger", PAGE_A)
    claim(app, org_b["id"], "messenger", PAGE_B, status="pending")
    claim(app, org_a["id"], "whatsapp", NUMBER)
    claim(app, org_a["id"], "shopify", "demo-store")
    claim(app, org_b["id"], "shopify", "other-store")
    return org_a, org_b


def _deliver(client) -> list:
    """Every kind of delivery the store distinguishes, with fixed ids; returns the answers."""
    answers = []

    def messenger(body):
        response = client.post("/webhooks/messenger", data=body, headers=messenger_headers(body))
        answers.append((response.status_code, response.get_json(silent=True)))

    first = messenger_body(PAGE_A, mid="m_first", psid="900300")
    messenger(first)
    messenger(first)  # a copy: acknowledged, stored once
    messenger(messenger_body(PAGE_A, mid="m_later", psid="900300"))  # the same window, extended
    messenger(messenger_body(PAGE_B, mid="m_pending"))  # a pending claim: kept unattributed
    messenger(messenger_body(UNCLAIMED_PAGE, mid="m_unclaimed"))
    a, b = json.loads(messenger_body(PAGE_A, mid="m_batch_a")), json.loads(messenger_body(PAGE_B, mid="m_batch_b"))
    messenger(json.dumps({"object": "page", "entry": a["entry"] + b["entry"]}).encode())  # a batch
    params = {"MessageSid": "SM" + "1" * 32, "AccountSid": "AC" + "0" * 32, "From": "whatsapp:+447700900123",
              "To": f"whatsapp:{NUMBER}", "Body": "hi there", "NumMedia": "0", "WaId": "447700900123"}
    response = twilio_post(client, "/webhooks/twilio/whatsapp", params)
    answers.append((response.status_code, response.data))
    order = json.dumps({"id": 820982911946154508, "email": "jon@example.com"}).encode()
    for shop, webhook_id in (("demo-store", "w-1"), ("other-store", "w-2")):  # w-2: the same body elsewhere
        response = client.post("/webhooks/shopify", data=order,
                               headers=shopify_headers(order, shop=shop, webhook_id=webhook_id))
        answers.append((response.status_code, response.data))
    return answers


def _stored(app) -> dict:
    """What the deliveries left, keyed by (provider, event_id) instead of generated ids and times."""
    with app.app_context():
        events = {row.id: row for row in db.session.execute(sa.select(InboundEvent)).scalars()}
        key = {id_: (e.provider, e.event_id) for id_, e in events.items()}
        audit = db.session.execute(sa.select(AuditLog).where(AuditLog.action == "webhook.received")).scalars()
        deliveries = db.session.execute(sa.select(Delivery)).scalars()
        windows = db.session.execute(sa.select(MessagingWindow)).scalars()
        return {
            "events": sorted((e.provider, e.event_id, e.organization_id, e.account_key, e.topic, e.body,
                              e.body_sha256, json.dumps(e.payload, sort_keys=True), e.status)
                             for e in events.values()),
            "audit": sorted((key[uuid.UUID(r.detail["event"])], r.organization_id, r.actor, r.outcome,
                             r.provider, r.target, r.status_code, r.detail["topic"], r.detail["attributed"],
                             r.ip, r.request_id is not None, r.latency_ms is not None, r.at is not None)
                            for r in audit),
            "deliveries": sorted((key[d.event_id], d.organization_id, d.status, d.attempts,
                                  d.next_attempt_at == d.created_at == d.updated_at == events[d.event_id].received_at)
                                 for d in deliveries),
            # Twilio sends no message time: the window's is the arrival's; Messenger's is signed.
            "windows": sorted((w.organization_id, w.channel, w.customer,
                               w.last_inbound_at if w.channel == "messenger" else "arrival") for w in windows),
        }


def _forget(app) -> None:
    with app.app_context():
        for model in (Delivery, InboundEvent, MessagingWindow):
            db.session.execute(sa.delete(model))
        db.session.execute(sa.delete(AuditLog).where(AuditLog.action == "webhook.received"))
        db.session.commit()


def _transaction_only(connection, *args):
    """A stored-listener without SQL: the store must use the transaction."""


def test_both_paths_store_the_same_rows_and_give_the_same_answers(app, client, claims):
    assert dispatch.stored_statements() is not None  # the messaging window gives its SQL
    single = _deliver(client), _stored(app)
    _forget(app)
    dispatch.on_inbound_message_stored(_transaction_only)
    try:
        assert dispatch.stored_statements() is None
        transaction = _deliver(client), _stored(app)
    finally:
        dispatch.remove_listener(_transaction_only)
    assert single == transaction
    answers, stored = single
    assert [status for status, _ in answers] == [200] * len(answers)
    assert len(stored["events"]) == 8 and len(stored["audit"]) == 8  # the copies stored nothing
    assert len(stored["deliveries"]) == 5 and len(stored["windows"]) == 3


def test_a_single_event_delivery_is_one_statement(app, client, claims):
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engines = [db.engine, app.extensions["autocommit_engine"]]
        for engine in engines:
            sa.event.listen(engine, "before_cursor_execute", count)
        try:
            body = messenger_body(PAGE_A)
            assert client.post("/webhooks/messenger", data=body, headers=messenger_headers(body)).status_code == 200
        finally:
            for engine in engines:
                sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 1 and statements[0].lstrip().startswith("WITH owner AS")
    stored = _stored(app)
    assert (len(stored["events"]), len(stored["audit"]), len(stored["deliveries"]), len(stored["windows"])) == (1,) * 4
