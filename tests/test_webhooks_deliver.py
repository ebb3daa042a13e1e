"""Delivering events to an org's endpoint: Standard Webhooks signatures, retries, safety, isolation."""

import threading
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from standardwebhooks import Webhook

from app import deliveries as delivery_service
from app.extensions import db
from app.models import Delivery
from app.models.base import utcnow
from app.outbound import AddressRefused, Outbound, Target
from sandbox.server import serve
from tests.webhooks_support import ENV, PAGE_A, PAGE_B, Receiver, claim, messenger_body, messenger_headers


@pytest.fixture
def app(make_app):
    return make_app(**ENV)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def receiver():
    endpoint = Receiver()
    with serve(endpoint.wsgi) as server:
        endpoint.url = server.url + "/hooks"
        yield endpoint


def _inbound(app, client, org_id, page=PAGE_A, text="hello"):
    claim(app, org_id, "messenger", page) if not _claimed(app, page) else None
    body = messenger_body(page, text)
    assert client.post("/webhooks/messenger", data=body, headers=messenger_headers(body)).status_code == 200


def _claimed(app, page):
    from app.models import Integration

    with app.app_context():
        return db.session.execute(sa.select(Integration).where(Integration.account_key == page)).first() is not None


def _run(app, limit=20):
    with app.app_context():
        return delivery_service.run_batch(limit)


def _deliveries(app):
    with app.app_context():
        return list(db.session.execute(sa.select(Delivery).order_by(Delivery.id)).scalars())


def test_endpoint_secret_is_shown_once_and_rotates_on_put(client, org, receiver, audit_rows):
    _, headers = org
    created = client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers)
    assert created.status_code == 201 and created.json["secret"].startswith("whsec_")
    shown = client.get("/api/v1/webhook-endpoint", headers=headers)
    assert shown.status_code == 200 and "secret" not in shown.json and shown.json["url"] == receiver.url
    replaced = client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers)
    assert replaced.status_code == 200 and replaced.json["secret"] != created.json["secret"]
    assert client.delete("/api/v1/webhook-endpoint", headers=headers).status_code == 204
    gone = client.get("/api/v1/webhook-endpoint", headers=headers)
    assert gone.status_code == 404 and gone.json["code"] == "webhook_endpoint_not_set"
    for row in audit_rows():
        assert created.json["secret"] not in str(row.detail)


def test_without_a_signing_key_no_endpoint_can_be_set(make_app, new_org):
    app = make_app(**{**ENV, "WEBHOOK_SIGNING_KEY": None})
    client = app.test_client()
    from tests.conftest import ADMIN_KEY

    org = client.post("/api/v1/admin/organizations", json={"slug": "nokey"},
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json
    key = client.post(f"/api/v1/admin/organizations/{org['id']}/api-keys", json={},
                      headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json["key"]
    response = client.put("/api/v1/webhook-endpoint", json={"url": "http://127.0.0.1:9/x"},
                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 503 and response.json["code"] == "webhooks_not_configured"


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/x", "https://10.0.0.8/x", "https://169.254.169.254/latest",
                                 "https://[::1]/x", "https://[fd00:ec2::254]/x", "https://user:pw@example.com/x",
                                 "ftp://example.com/x", "https://localhost/x"])
def test_unsafe_urls_are_refused_outside_the_sandbox(make_app, url):
    app = make_app(**{**ENV, "SANDBOX": None})
    with app.app_context(), pytest.raises(Exception) as refused:
        delivery_service.check_url(url, sandbox=False)
    assert refused.value.code == "unsafe_webhook_url" and refused.value.extra["field"] == "url"


def test_loopback_is_allowed_in_the_sandbox_only_and_private_never(client, org):
    _, headers = org
    assert client.put("/api/v1/webhook-endpoint", json={"url": "http://127.0.0.1:9/x"},
                      headers=headers).status_code == 201
    private = client.put("/api/v1/webhook-endpoint", json={"url": "http://192.168.1.10/x"}, headers=headers)
    assert private.status_code == 422 and private.json["code"] == "unsafe_webhook_url"
    assert private.json["field"] == "url"


def test_a_delivery_is_signed_so_the_standardwebhooks_verifier_accepts_it(app, client, org, receiver):
    org_row, headers = org
    secret = client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers).json["secret"]
    _inbound(app, client, org_row["id"])
    assert _run(app)["delivered"] == 1
    [sent] = receiver.requests
    payload = Webhook(secret).verify(sent["body"], sent["headers"])
    assert payload["type"] == "messenger.message" and payload["data"]["entry"][0]["id"] == PAGE_A
    assert sent["headers"]["webhook-id"].startswith("msg_")
    listed = client.get("/api/v1/events", headers=headers).json["data"]
    assert listed[0]["delivery"]["status"] == "delivered" and listed[0]["delivery"]["last_status_code"] == 200
    with pytest.raises(Exception):
        Webhook("whsec_" + "A" * 43 + "=").verify(sent["body"], sent["headers"])


@pytest.mark.parametrize("mode,status,error", [
    ("500", "pending", "endpoint answered HTTP 500"),
    ("410", "dead", "endpoint answered HTTP 410"),
    ("redirect", "pending", "redirect"),
    ("slow", "pending", "upstream_outcome_unknown"),  # a POST cut off mid-answer: it may have arrived
])
def test_endpoint_faults_are_retried_on_the_schedule_or_dead_lettered(app, client, org, receiver, mode, status, error):
    org_row, headers = org
    client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers)
    receiver.mode = mode
    _inbound(app, client, org_row["id"])
    before = utcnow()
    _run(app)
    [delivery] = _deliveries(app)
    assert delivery.status == status and delivery.attempts == 1 and error in delivery.last_error
    if status == "pending":
        wait = (delivery.next_attempt_at - before).total_seconds()
        assert 5 * 0.8 - 1 <= wait <= 5 * 1.2 + 5  # the first step of the schedule, jittered
    assert [r["path"] for r in receiver.requests] == ["/hooks"]  # a redirect is never followed


def test_after_the_last_attempt_the_delivery_is_dead(app, client, org, receiver):
    org_row, headers = org
    client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers)
    receiver.mode = "500"
    _inbound(app, client, org_row["id"])
    with app.app_context():
        db.session.execute(sa.update(Delivery).values(attempts=delivery_service.MAX_ATTEMPTS - 1))
        db.session.commit()
    _run(app)
    [delivery] = _deliveries(app)
    assert delivery.status == "dead" and delivery.attempts == delivery_service.MAX_ATTEMPTS
    assert sum(delivery_service.SCHEDULE) / 3600 > 24  # "about a day"


def test_loopback_endpoint_is_refused_at_delivery_outside_the_sandbox(make_app, org, receiver):
    sandbox_app = make_app(**ENV)
    sandbox_client = sandbox_app.test_client()
    org_row, headers = org
    assert sandbox_client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers).status_code == 201
    _inbound(sandbox_app, sandbox_client, org_row["id"])
    live = make_app(**{**ENV, "SANDBOX": None})
    _run(live)
    [delivery] = _deliveries(live)
    assert delivery.status == "pending" and "unsafe_webhook_url" in delivery.last_error
    assert receiver.requests == []


def test_the_address_actually_connected_to_is_checked(receiver):
    """DNS can change after the URL was accepted: the connection's peer is what counts."""
    outbound = Outbound(connect_timeout=1, read_timeout=1, deadline=2, max_retries=0, pool_size=1)
    url = receiver.url.replace("127.0.0.1", "localhost")

    def public_only(address):
        if not delivery_service.address_allowed(address, sandbox=False):
            raise AddressRefused(address)

    with pytest.raises(AddressRefused):
        outbound.call("webhook endpoint", "POST", url, expected=Target.of(url), headers={}, content=b"{}",
                      idempotent=False, any_status=True, peer_check=public_only)
    assert receiver.requests == []


def test_several_workers_deliver_each_event_exactly_once(app, client, org, receiver):
    org_row, headers = org
    client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers)
    for i in range(6):
        _inbound(app, client, org_row["id"], text=f"message {i}")
    barrier = threading.Barrier(3)
    results = []

    def worker():
        barrier.wait()
        results.append(_run(app))

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(r["delivered"] for r in results) == 6
    ids = [r["headers"]["webhook-id"] for r in receiver.requests]
    assert len(ids) == 6 and len(set(ids)) == 6


def test_redeliver_replays_one_event_and_only_for_its_org(app, client, new_org, receiver):
    (org_a, headers_a), (org_b, headers_b) = new_org("org-a"), new_org("org-b")
    client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers_a)
    _inbound(app, client, org_a["id"])
    _run(app)
    [event] = client.get("/api/v1/events", headers=headers_a).json["data"]
    other = client.post(f"/api/v1/events/{event['id']}/redeliver", headers=headers_b)
    assert other.status_code == 404 and other.json["code"] == "event_not_found"
    again = client.post(f"/api/v1/events/{event['id']}/redeliver", headers=headers_a)
    assert again.status_code == 202 and again.json["delivery"]["status"] == "pending"
    _run(app)
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["headers"]["webhook-id"] == receiver.requests[1]["headers"]["webhook-id"]


def test_org_isolation_for_events_deliveries_and_endpoints(app, client, new_org, receiver):
    (org_a, headers_a), (org_b, headers_b) = new_org("org-a"), new_org("org-b")
    client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers_a)
    client.put("/api/v1/webhook-endpoint", json={"url": receiver.url + "/b"}, headers=headers_b)
    _inbound(app, client, org_a["id"], PAGE_A, "secret of a")
    _inbound(app, client, org_b["id"], PAGE_B, "for b")
    _run(app)
    by_path = {r["path"]: r["body"] for r in receiver.requests}
    assert b"secret of a" in by_path["/hooks"] and b"secret of a" not in by_path["/hooks/b"]
    assert client.get("/api/v1/webhook-endpoint", headers=headers_b).json["url"].endswith("/b")
    seen_b = client.get("/api/v1/events", headers=headers_b).json["data"]
    assert len(seen_b) == 1 and seen_b[0]["account"] == PAGE_B
    client.delete("/api/v1/webhook-endpoint", headers=headers_b)
    assert client.get("/api/v1/webhook-endpoint", headers=headers_a).status_code == 200


def test_without_an_endpoint_events_wait_to_be_polled(app, client, org):
    org_row, headers = org
    _inbound(app, client, org_row["id"])
    assert _run(app)["no_endpoint"] == 1
    [event] = client.get("/api/v1/events", headers=headers).json["data"]
    assert event["delivery"]["status"] == "no_endpoint"
    refused = client.post(f"/api/v1/events/{event['id']}/redeliver", headers=headers)
    assert refused.status_code == 404 and refused.json["code"] == "webhook_endpoint_not_set"


def test_the_cron_endpoint_and_the_cli_run_a_bounded_batch(app, client, org, admin, receiver):
    org_row, headers = org
    client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers)
    for i in range(3):
        _inbound(app, client, org_row["id"], text=f"m{i}")
    assert client.post("/api/v1/admin/deliveries/run?limit=1", headers=admin).json["delivered"] == 1
    assert client.get("/api/v1/admin/deliveries/run?limit=1", headers=headers).status_code == 401
    result = app.test_cli_runner().invoke(args=["deliveries", "run", "--once", "--batch", "5"])
    assert result.exit_code == 0 and "delivered=2" in result.output
    assert len(receiver.requests) == 3


def test_a_delivery_whose_lease_expired_is_taken_over(app, client, org, receiver):
    org_row, headers = org
    client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers)
    _inbound(app, client, org_row["id"])
    with app.app_context():
        assert delivery_service.claim("dead-worker") is not None
        assert delivery_service.claim("other") is None  # leased: nobody else takes it
        db.session.execute(sa.update(Delivery).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert _run(app)["delivered"] == 1
    with app.app_context():  # the first worker's late answer writes nothing
        assert not delivery_service._finish(_deliveries(app)[0].id, "dead-worker", status="pending")
    assert _deliveries(app)[0].status == "delivered"


def test_a_late_answer_after_a_takeover_is_audited_as_lease_lost_and_writes_nothing(app, client, org, receiver,
                                                                                   audit_rows):
    org_row, headers = org
    client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers)
    _inbound(app, client, org_row["id"])
    with app.app_context():
        [(delivery_id, _)] = delivery_service.claim_attempts("slow-worker", 5)
        db.session.execute(sa.update(Delivery).values(lease_until=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert _run(app)["delivered"] == 1
    late = {"outcome": "failure", "provider": "messenger", "target": "127.0.0.1", "status_code": 500,
            "organization_id": uuid.UUID(org_row["id"]), "actor": "system", "latency_ms": 1.5,
            "detail": {"event": "e", "delivery": delivery_id, "attempt": 1, "result": "pending"}}
    with app.app_context():
        assert not delivery_service._finish(delivery_id, "slow-worker", status="pending", last_status_code=500,
                                            last_error="endpoint answered HTTP 500", attempt=late)
    [delivery] = _deliveries(app)
    assert (delivery.status, delivery.last_status_code) == ("delivered", 200)
    rows = audit_rows(action="delivery.attempted")
    assert [(r.detail.get("lease_lost"), r.detail["result"], r.status_code) for r in rows] == [
        (None, "delivered", 200), (True, "pending", 500)]
    assert rows[1].latency_ms == 1.5 and str(rows[1].organization_id) == org_row["id"]


def test_every_delivery_attempt_leaves_an_audit_row_the_org_can_read(app, client, new_org, receiver):
    (org_a, headers_a), (org_b, headers_b) = new_org("org-a"), new_org("org-b")
    secret = client.put("/api/v1/webhook-endpoint", json={"url": receiver.url + "?token=endpoint-query-secret"},
                        headers=headers_a).json["secret"]
    receiver.mode = "500"
    _inbound(app, client, org_a["id"], text="private customer words")
    _run(app)  # attempt 1: the endpoint answers 500
    with app.app_context():
        db.session.execute(sa.update(Delivery).values(next_attempt_at=utcnow()))
        db.session.commit()
    receiver.mode = "ok"
    _run(app)  # attempt 2: delivered
    page = client.get("/api/v1/audit-logs", headers=headers_a)
    assert page.status_code == 200
    attempts = [r for r in page.json["data"] if r["action"] == "delivery.attempted"]
    assert [(r["outcome"], r["status_code"], r["detail"]["attempt"], r["detail"]["result"]) for r in attempts] == [
        ("success", 200, 2, "delivered"), ("failure", 500, 1, "pending")]  # newest first
    for row in attempts:
        assert row["provider"] == "messenger" and row["target"] == "127.0.0.1" and row["actor"] == "system"
        assert row["latency_ms"] >= 0 and row["detail"]["duration_ms"] == row["latency_ms"]
        assert row["organization_id"] == org_a["id"]
    trail = page.get_data(as_text=True)
    for never in (secret, secret.removeprefix("whsec_"), "private customer words", "endpoint-query-secret",
                  ENV["WEBHOOK_SIGNING_KEY"]):
        assert never not in trail
    other = client.get("/api/v1/audit-logs", headers=headers_b).json["data"]
    assert not [r for r in other if r["action"] == "delivery.attempted"]


def test_an_attempt_without_an_endpoint_is_audited_too(app, client, org):
    org_row, headers = org
    _inbound(app, client, org_row["id"])
    assert _run(app)["no_endpoint"] == 1
    [row] = [r for r in client.get("/api/v1/audit-logs", headers=headers).json["data"]
             if r["action"] == "delivery.attempted"]
    assert row["outcome"] == "failure" and row["status_code"] is None and row["detail"]["result"] == "no_endpoint"


def test_a_worker_attempts_several_deliveries_at_once_each_exactly_once(app, client, org, receiver):
    org_row, headers = org
    client.put("/api/v1/webhook-endpoint", json={"url": receiver.url}, headers=headers)
    for i in range(12):
        _inbound(app, client, org_row["id"], text=f"message {i}")
    receiver.mode = "slow"  # every attempt is still waiting on the endpoint when the next ones start
    with app.app_context():
        counts = delivery_service.run_batch(12, concurrency=12)
    assert counts["claimed"] == 12
    ids = [r["headers"]["webhook-id"] for r in receiver.requests]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert {d.status for d in _deliveries(app)} == {"pending"} and {d.attempts for d in _deliveries(app)} == {1}
