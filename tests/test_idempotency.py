"""Idempotency-Key on POSTs and the connecting PUT: one effect, the first answer replayed.

Everything goes through the app's HTTP interface with the Shopify emulator behind it; the only
direct database access reads rows back, or stands in for a worker that died mid-request.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ApiKey, IdempotencyKey
from app.models.base import utcnow

CONNECT = {"account_identifier": {"storeName": "demo-store"}}


def idem(headers: dict, key: str | None = None) -> dict:
    return {**headers, "Idempotency-Key": key or str(uuid.uuid4())}


def graphql_calls(shopify) -> int:
    return sum(1 for r in shopify.received if r["path"].endswith("/graphql.json"))


def key_count(app, org_id) -> int:
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(ApiKey)
                                  .where(ApiKey.organization_id == uuid.UUID(org_id))).scalar_one()


# --- repeats ----------------------------------------------------------------------------------


def test_issuing_a_key_twice_with_one_idempotency_key_yields_one_key(client, admin, app, new_org):
    org, _ = new_org()
    before = key_count(app, org["id"])
    headers = idem(admin)
    first = client.post(f"/api/v1/admin/organizations/{org['id']}/api-keys", json={"name": "ci"}, headers=headers)
    again = client.post(f"/api/v1/admin/organizations/{org['id']}/api-keys", json={"name": "ci"}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data()  # the same key, byte for byte
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.mimetype == "application/json"
    assert key_count(app, org["id"]) == before + 1
    replayed_key = again.json["key"]
    assert client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {replayed_key}"}).status_code == 200


def test_json_key_order_and_spacing_do_not_make_another_request(client, admin, audit_rows):
    headers = {**idem(admin), "Content-Type": "application/json"}
    first = client.post("/api/v1/admin/organizations", data='{"slug": "acme", "name": "Acme"}', headers=headers)
    again = client.post("/api/v1/admin/organizations", data='{"name":"Acme","slug":"acme"}', headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json == first.json
    assert len(audit_rows(action="org.created")) == 1


def test_connect_replayed_does_not_call_the_provider_again(client, org, shopify, audit_rows):
    _, headers = org
    headers = idem(headers)
    first = client.put("/api/v1/integrations/shopify", json=CONNECT, headers=headers)
    calls = graphql_calls(shopify)
    again = client.put("/api/v1/integrations/shopify", json=CONNECT, headers=headers)
    assert first.status_code == again.status_code == 201  # without the key the repeat is 200
    assert again.json == first.json
    assert graphql_calls(shopify) == calls
    assert len(audit_rows(action="integration.connected")) == 1


def test_an_upstream_failure_is_saved_and_replayed_not_retried(client, org, shopify):
    # Stripe's rule: once the endpoint began its work the answer is saved, 5xx included — for a
    # provider action whose outcome is unknown, a retry must not send it again.
    _, headers = org
    headers = idem(headers)
    shopify.inject("http_500", times=10, endpoint="graphql")
    first = client.put("/api/v1/integrations/shopify", json=CONNECT, headers=headers)
    assert first.status_code == 502
    calls = graphql_calls(shopify)
    shopify.reset()
    again = client.put("/api/v1/integrations/shopify", json=CONNECT, headers=headers)
    assert again.status_code == 502 and again.json == first.json
    assert again.mimetype == "application/problem+json"
    assert again.headers["Idempotent-Replayed"] == "true"
    assert graphql_calls(shopify) == 0 and calls > 0
    fresh = client.put("/api/v1/integrations/shopify", json=CONNECT, headers=idem(dict(org[1])))
    assert fresh.status_code == 201


def test_a_validation_error_is_not_saved_so_the_corrected_request_runs(client, admin):
    headers = idem(admin)
    refused = client.post("/api/v1/admin/organizations", json={"slug": "Not A Slug"}, headers=headers)
    assert refused.status_code == 422 and refused.json["code"] == "validation_error"
    unknown_field = client.post("/api/v1/admin/organizations", json={"slug": "acme", "x": 1}, headers=headers)
    assert unknown_field.status_code == 422 and unknown_field.json["code"] == "validation_error"
    created = client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=headers)
    assert created.status_code == 201


def test_a_refused_authentication_saves_nothing(client, admin):
    key = str(uuid.uuid4())
    denied = client.post("/api/v1/admin/organizations", json={"slug": "acme"},
                         headers={"Authorization": "Bearer wrong-admin-key-0123456789", "Idempotency-Key": key})
    assert denied.status_code == 401
    created = client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=idem(admin, key))
    assert created.status_code == 201 and "Idempotent-Replayed" not in created.headers


# --- misuse -----------------------------------------------------------------------------------


@pytest.mark.parametrize("second", [
    ("post", "/api/v1/admin/organizations", {"slug": "other"}),
    ("post", "/api/v1/admin/organizations?x=1", {"slug": "acme"}),
], ids=["other-body", "other-query"])
def test_the_same_key_with_another_request_is_422_and_does_nothing(client, admin, audit_rows, second):
    headers = idem(admin)
    assert client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=headers).status_code == 201
    method, path, body = second
    response = getattr(client, method)(path, json=body, headers=headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "idempotency_key_reused"
    assert response.json["field"] == "Idempotency-Key"
    assert len(audit_rows(action="org.created")) == 1


def test_the_same_key_on_another_path_is_422(client, admin, new_org):
    org, _ = new_org()
    headers = idem(admin)
    assert client.post(f"/api/v1/admin/organizations/{org['id']}/api-keys", json={}, headers=headers).status_code == 201
    other = client.post(f"/api/v1/admin/organizations/{org['slug']}/api-keys", json={}, headers=headers)
    assert other.status_code == 422 and other.json["code"] == "idempotency_key_reused"


@pytest.mark.parametrize("value", ["x" * 256, "has space", "tab\there", "", "caf\u00e9"],
                         ids=["too-long", "space", "control", "empty", "non-ascii"])
def test_a_malformed_idempotency_key_is_422_naming_the_header(client, admin, audit_rows, value):
    response = client.post("/api/v1/admin/organizations", json={"slug": "acme"},
                           headers={**admin, "Idempotency-Key": value})
    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert response.json["field"] == "Idempotency-Key"
    assert audit_rows(action="org.created") == []


def test_the_longest_key_stripe_allows_is_accepted(client, admin):
    headers = idem(admin, "k" * 255)
    assert client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=headers).status_code == 201


def test_reads_ignore_the_header(client, org):
    _, headers = org
    response = client.get("/api/v1/integrations", headers={**headers, "Idempotency-Key": "x" * 999})
    assert response.status_code == 200 and "Idempotent-Replayed" not in response.headers


# --- scope ------------------------------------------------------------------------------------


def test_keys_are_scoped_to_the_caller(client, admin, new_org, shopify):
    (_, acme), (_, other) = new_org(), new_org()
    shared = str(uuid.uuid4())
    connected = client.put("/api/v1/integrations/shopify", json=CONNECT, headers=idem(acme, shared))
    assert connected.status_code == 201
    # The same key and body for another org is that org's own request (here: a claim conflict).
    claimed = client.put("/api/v1/integrations/shopify", json=CONNECT, headers=idem(other, shared))
    assert claimed.status_code == 409 and claimed.json["code"] == "account_claimed"
    assert "Idempotent-Replayed" not in claimed.headers
    # The admin's key space is its own too: another path is not "reused" there.
    created = client.post("/api/v1/admin/organizations", json={"slug": "fresh"}, headers=idem(admin, shared))
    assert created.status_code == 201
    again = client.put("/api/v1/integrations/shopify", json=CONNECT, headers=idem(acme, shared))
    assert again.headers["Idempotent-Replayed"] == "true" and again.json == connected.json


# --- concurrency ------------------------------------------------------------------------------


def _together(count: int, request) -> list:
    barrier = threading.Barrier(count)
    answers: list = [None] * count

    def run(i):
        barrier.wait()
        answers[i] = request()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return answers


def test_concurrent_requests_with_one_key_do_the_work_once(app, org, shopify, audit_rows):
    _, headers = org
    headers = idem(headers)
    shopify.inject("slow", times=1, endpoint="graphql", seconds=0.5)  # the first one holds the key a while

    def connect():
        response = app.test_client().put("/api/v1/integrations/shopify", json=CONNECT, headers=headers)
        return response.status_code, response.json, response.headers.get("Idempotent-Replayed")

    answers = _together(4, connect)
    statuses = sorted(status for status, _, _ in answers)
    assert statuses.count(201) >= 1 and set(statuses) <= {201, 409}
    assert all(body["code"] == "idempotency_key_in_progress" for status, body, _ in answers if status == 409)
    originals = [body for status, body, replayed in answers if status == 201 and replayed is None]
    assert len(originals) == 1
    assert graphql_calls(shopify) == 1
    assert len(audit_rows(action="integration.connected")) == 1
    after = app.test_client().put("/api/v1/integrations/shopify", json=CONNECT, headers=headers)
    assert after.status_code == 201 and after.json == originals[0]


def test_concurrent_key_issues_with_one_idempotency_key_make_one_key(app, admin, new_org):
    org, _ = new_org()
    before = key_count(app, org["id"])
    headers = idem(admin)

    def issue():
        response = app.test_client().post(f"/api/v1/admin/organizations/{org['id']}/api-keys",
                                          json={"name": "ci"}, headers=headers)
        return response.status_code, response.json

    answers = _together(6, issue)
    assert {status for status, _ in answers} <= {201, 409}
    assert len({body["key"] for status, body in answers if status == 201}) == 1
    assert key_count(app, org["id"]) == before + 1


def test_a_running_request_holds_the_key_and_an_abandoned_one_releases_it(client, admin, app, new_org):
    org, _ = new_org()
    headers = idem(admin)
    path = f"/api/v1/admin/organizations/{org['id']}/api-keys"
    first = client.post(path, json={}, headers=headers).json["key"]

    def pretend_in_progress(since):  # a worker that claimed the key and has not answered
        with app.app_context():
            db.session.execute(sa.update(IdempotencyKey).values(
                response_status=None, response=None, owner="0" * 32, locked_at=since))
            db.session.commit()

    pretend_in_progress(utcnow())
    busy = client.post(path, json={}, headers=headers)
    assert busy.status_code == 409 and busy.json["code"] == "idempotency_key_in_progress"
    assert busy.headers["Retry-After"] == "1"
    pretend_in_progress(utcnow() - timedelta(minutes=10))  # its process died
    taken_over = client.post(path, json={}, headers=headers)
    assert taken_over.status_code == 201 and taken_over.json["key"] != first
    assert client.post(path, json={}, headers=headers).json["key"] == taken_over.json["key"]


# --- expiry and storage -----------------------------------------------------------------------


def test_keys_expire_after_the_configured_ttl(make_app, admin, audit_rows):
    client = make_app(IDEMPOTENCY_KEY_TTL="1").test_client()
    headers = idem(admin)
    assert client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=headers).status_code == 201
    assert client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=headers).status_code == 201
    time.sleep(1.2)
    # Expired: the key is new again — a different body is not "reused", the same body runs again.
    assert client.post("/api/v1/admin/organizations", json={"slug": "beta"}, headers=headers).status_code == 201
    time.sleep(1.2)
    rerun = client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=headers)
    assert rerun.status_code == 409 and rerun.json["code"] == "slug_taken"
    assert len(audit_rows(action="org.created")) == 2


def test_the_stored_answer_holds_neither_the_issued_key_nor_the_idempotency_key(client, admin, app, new_org):
    org, _ = new_org()
    idempotency_key = f"issue-{uuid.uuid4()}"
    issued = client.post(f"/api/v1/admin/organizations/{org['id']}/api-keys", json={},
                         headers=idem(admin, idempotency_key)).json
    with app.app_context():
        rows = db.session.execute(sa.select(IdempotencyKey.__table__)).all()
    assert len(rows) == 1
    dump = repr(tuple(rows[0])).encode() + b"".join(v for v in rows[0] if isinstance(v, bytes))
    assert issued["key"].encode() not in dump
    assert issued["key"][-12:].encode() not in dump
    assert idempotency_key.encode() not in dump
    assert rows[0].response_status == 201 and rows[0].owner is None


def test_an_expired_row_is_swept_lazily(make_app, admin, app):
    client = make_app(IDEMPOTENCY_KEY_TTL="1").test_client()
    from app import idempotency

    assert client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=idem(admin)).status_code == 201
    time.sleep(1.2)
    idempotency._last_sweep = 0.0  # the once-a-minute sweep is due
    assert client.post("/api/v1/admin/organizations", json={"slug": "beta"}, headers=idem(admin)).status_code == 201
    with app.app_context():
        left = db.session.execute(sa.select(sa.func.count()).select_from(IdempotencyKey)).scalar_one()
    assert left == 1


# --- refusals before the provider did anything are not saved ----------------------------------

DRAFT = {"email": "ada.lovelace@example.com", "items": [{"variant_id": "46702301069587", "quantity": 1}]}


def _connected_client(make_app, **config):
    from tests.conftest import org_headers

    client = make_app(HTTP_MAX_RETRIES="0", **config).test_client()
    headers = org_headers(client)
    assert client.put("/api/v1/integrations/shopify", json=CONNECT, headers=headers).status_code == 201
    return client, headers


def test_a_write_paused_by_the_circuit_breaker_runs_when_retried_with_its_key(make_app, shopify):
    # 503 upstream_circuit_open means nothing was sent: replaying it for 24 h would turn a pause
    # of seconds into a day-long refusal of that key.
    client, headers = _connected_client(make_app, BREAKER_FAILURES="2", BREAKER_RESET="1")
    shopify.inject("http_500", times=2, shop="demo-store")
    assert [client.get("/api/v1/shopify/products/8915061031187", headers=headers).status_code
            for _ in range(2)] == [502, 502]
    headers = idem(headers)
    drafts = lambda: sum(1 for r in shopify.received if "draftOrderCreate" in str(r.get("json")))  # noqa: E731
    paused = client.post("/api/v1/shopify/draft-orders", json=DRAFT, headers=headers)
    assert paused.status_code == 503 and paused.json["code"] == "upstream_circuit_open"
    assert drafts() == 0
    time.sleep(float(paused.headers["Retry-After"]) + 0.1)
    created = client.post("/api/v1/shopify/draft-orders", json=DRAFT, headers=headers)
    assert created.status_code == 201 and "Idempotent-Replayed" not in created.headers
    again = client.post("/api/v1/shopify/draft-orders", json=DRAFT, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true" and again.json["id"] == created.json["id"]
    assert drafts() == 1


def test_a_write_the_provider_rate_limited_runs_when_retried_with_its_key(make_app, shopify):
    # A 429 from the provider (or from Switchboard's budget, before sending) means the write was
    # not done: the retry after Retry-After must do it, not replay the 429.
    client, headers = _connected_client(make_app)
    shopify.inject("http_429", times=1, shop="demo-store", endpoint="graphql", retry_after=1)
    headers = idem(headers)
    limited = client.post("/api/v1/shopify/draft-orders", json=DRAFT, headers=headers)
    assert limited.status_code == 429 and limited.json["code"] == "upstream_rate_limited"
    time.sleep(float(limited.headers["Retry-After"]) + 0.1)
    created = client.post("/api/v1/shopify/draft-orders", json=DRAFT, headers=headers)
    assert created.status_code == 201, created.json
    assert "Idempotent-Replayed" not in created.headers
