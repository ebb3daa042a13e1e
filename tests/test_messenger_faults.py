"""Messenger sends when things go wrong: upstream failures are never re-sent blindly; orgs are apart.

Windows are opened with ``app.messaging.record_inbound`` directly (the webhook route that calls
it is built on another branch).
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import MESSENGER_PAGES, messenger_env
from tests.test_messenger import PAGE, PSID, connect, customer_wrote, window

TEXT = {"recipient_id": PSID, "text": "Your order shipped"}


@pytest.fixture
def app(make_app, messenger):
    return make_app(**messenger_env(messenger))


@pytest.fixture
def headers(app, client, org, messenger):
    org_dict, headers = org
    assert connect(client, headers).status_code == 201
    customer_wrote(app, messenger, org_dict["id"])
    return headers


@pytest.mark.parametrize("kind, status, code", [
    ("http_500", 502, "upstream_bad_response"),
    ("http_503", 502, "upstream_bad_response"),
    ("drop", 504, "upstream_outcome_unknown"),  # the connection broke after the send: it may have gone out
    ("garbage", 502, "upstream_bad_response"),
])
def test_a_failed_send_is_not_sent_again(client, headers, messenger, kind, status, code):
    messenger.inject(kind, times=3)
    response = client.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
    assert response.status_code == status, response.json
    assert response.json["code"] == code
    assert len(messenger.sends()) == 1  # the outcome of a send is unknown: never re-sent blindly


def test_a_send_that_times_out_is_504_and_not_sent_again(client, headers, messenger):
    messenger.inject("slow", seconds=2.5)  # HTTP_READ_TIMEOUT is 1 s in the tests
    response = client.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
    assert response.status_code == 504 and response.json["code"] == "upstream_outcome_unknown"
    assert len(messenger.sends()) == 1


def test_metas_rate_limit_is_429_with_retry_after(client, headers, messenger):
    messenger.inject("rate_limited")
    response = client.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
    assert response.status_code == 429 and response.json["code"] == "upstream_rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    assert len(messenger.sends()) == 1


def test_the_emulators_per_page_rate_limit_answers_code_4(make_app, messenger, org, client):
    from sandbox.messenger import MessengerEmulator
    from sandbox.server import serve

    strict = MessengerEmulator(page_tokens=MESSENGER_PAGES, app_secret=messenger.app_secret, send_rate=1)
    with serve(strict.wsgi) as server:
        strict.url = server.url
        strict.open_window(PAGE, PSID)
        app = make_app(**messenger_env(strict))
        c = app.test_client()
        org_dict, headers = org
        assert connect(c, headers).status_code == 201
        window(app, org_dict["id"])
        answers = [c.post("/api/v1/messenger/messages", json=TEXT, headers=headers).status_code for _ in range(3)]
    assert answers[0] == 200 and 429 in answers[1:]


def test_a_retried_send_with_the_same_idempotency_key_is_sent_once(client, headers, messenger):
    keyed = {**headers, "Idempotency-Key": "send-0001-abcdef"}
    first = client.post("/api/v1/messenger/messages", json=TEXT, headers=keyed)
    again = client.post("/api/v1/messenger/messages", json=TEXT, headers=keyed)
    assert first.status_code == again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.json["message_id"] == first.json["message_id"]
    assert len(messenger.sends()) == 1


def test_a_timed_out_send_is_not_repeated_by_its_retry(client, headers, messenger):
    messenger.inject("slow", seconds=2.5)
    keyed = {**headers, "Idempotency-Key": "send-0002-abcdef"}
    assert client.post("/api/v1/messenger/messages", json=TEXT, headers=keyed).status_code == 504
    again = client.post("/api/v1/messenger/messages", json=TEXT, headers=keyed)
    assert again.status_code == 504 and again.headers.get("Idempotent-Replayed") == "true"
    assert len(messenger.sends()) == 1


def test_a_token_meta_refuses_at_send_time_is_502_auth(make_app, messenger, org, headers, client):
    wrong = make_app(**{**messenger_env(messenger), "MESSENGER_PAGE_ACCESS_TOKENS": json.dumps(
        {PAGE: "EAAG-revoked-token", "204512345678902": MESSENGER_PAGES["204512345678902"]})}).test_client()
    response = wrong.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
    assert response.status_code == 502 and response.json["code"] == "upstream_auth_failed"
    assert "EAAG" not in response.get_data(as_text=True)


def test_an_unknown_psid_is_metas_422_on_recipient_id(app, client, headers, messenger):
    window(app, _org_id(client, headers), psid="7700000000000001")  # Meta has never seen this PSID
    response = client.post("/api/v1/messenger/messages", json={"recipient_id": "7700000000000001", "text": "hi"},
                           headers=headers)
    assert response.status_code == 422 and response.json["field"] == "recipient_id"


def _org_id(client, headers):
    return client.get("/api/v1/integrations", headers=headers).json["data"][0]["organization_id"]


def test_another_orgs_window_does_not_open_mine(app, client, headers, new_org, messenger, audit_rows):
    other, other_headers = new_org()
    # The other org has not connected Messenger: nothing to send from.
    refused = client.post("/api/v1/messenger/messages", json=TEXT, headers=other_headers)
    assert refused.status_code == 409 and refused.json["code"] == "integration_not_connected"
    assert connect(client, other_headers, page="204512345678902").status_code == 201
    # acme's customer wrote to acme; the same PSID has not written to the other org.
    response = client.post("/api/v1/messenger/messages", json=TEXT, headers=other_headers)
    assert response.status_code == 422 and response.json["code"] == "outside_messaging_window"
    assert messenger.sends() == []
    rows = audit_rows(action="proxy.request", organization_id=uuid.UUID(other["id"]))
    assert rows[-1].target == "204512345678902"
    assert rows[-1].outcome == "failure" and rows[-1].detail["error"] == "outside_messaging_window"


def test_without_credentials_messenger_is_503(make_app, org, messenger):
    client = make_app().test_client()
    _, headers = org
    response = client.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
    assert response.status_code == 503 and response.json["code"] == "provider_not_configured"


def test_fire_inbound_signs_as_meta_does_and_opens_the_emulators_window(messenger):
    import hashlib
    import hmac

    from flask import Flask, request

    from sandbox.server import serve
    from tests.conftest import MESSENGER_APP_SECRET

    got = []
    receiver = Flask("receiver")

    @receiver.post("/webhooks/messenger")
    def inbound():
        got.append((request.get_data(), request.headers["X-Hub-Signature-256"]))
        return "EVENT_RECEIVED", 200

    with serve(receiver) as server:
        result = messenger.fire_inbound(f"{server.url}/webhooks/messenger", PAGE, PSID, "Where is my order?")
        delivery = messenger.fire_delivery(f"{server.url}/webhooks/messenger", PAGE, PSID, [result["mid"]])
    assert result["status"] == delivery["status"] == 200
    raw, signature = got[0]
    assert signature == "sha256=" + hmac.new(MESSENGER_APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    event = json.loads(raw)["entry"][0]
    assert event["id"] == PAGE and event["messaging"][0]["message"]["text"] == "Where is my order?"
    assert json.loads(got[1][0])["entry"][0]["messaging"][0]["delivery"]["mids"] == [result["mid"]]


# --- the Page's shared budget and circuit breaker (app/quota.py) --------------------------------


@pytest.mark.parametrize("kind, status, code", [
    ("http_502", 502, "upstream_bad_response"),
    ("redirect", 502, "upstream_bad_response"),  # never followed: the token stays with Graph
    ("respond", 502, "upstream_bad_response"),
])
def test_more_upstream_failures_are_mapped_and_never_followed(client, headers, messenger, kind, status, code):
    params = {"body": "{not json", "status": 200} if kind == "respond" else {}
    messenger.inject(kind, **params)
    response = client.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
    assert response.status_code == status and response.json["code"] == code
    assert len(messenger.sends()) == 1


@pytest.mark.parametrize("code", [4, 17, 32, 613, 80006])
def test_each_graph_throttling_code_is_429_and_holds_the_page_back(client, headers, messenger, audit_rows, code):
    messenger.inject("rate_limited", code=code)  # no usage header: Graph's limits reset within the hour
    first = client.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
    assert first.status_code == 429 and first.json["code"] == "upstream_rate_limited"
    assert first.headers["Retry-After"] == "60"
    again = client.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
    assert again.status_code == 429 and 1 <= int(again.headers["Retry-After"]) <= 60
    assert len(messenger.sends()) == 1  # the second was refused before it was sent
    rows = audit_rows(action="proxy.request")
    assert [r.detail.get("error") for r in rows[-2:]] == ["upstream_rate_limited"] * 2  # both attempts audited


def test_graphs_estimated_time_to_regain_access_is_the_retry_after(client, headers, messenger):
    messenger.inject("rate_limited", code=613, regain_minutes=3)
    response = client.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
    assert response.status_code == 429 and response.headers["Retry-After"] == "180"


def test_a_page_graph_reports_at_full_usage_is_not_sent_to(make_app, messenger, org):
    from sandbox.messenger import MessengerEmulator
    from sandbox.server import serve

    strict = MessengerEmulator(page_tokens=MESSENGER_PAGES, app_secret=messenger.app_secret, send_rate=1)
    with serve(strict.wsgi) as server:
        strict.url = server.url
        strict.open_window(PAGE, PSID)
        app = make_app(**messenger_env(strict))
        c = app.test_client()
        org_dict, headers = org
        assert connect(c, headers).status_code == 201
        window(app, org_dict["id"])
        sent = c.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
        assert "X-Business-Use-Case-Usage" not in sent.headers  # read, not passed on
        held = c.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
        assert sent.status_code == 200 and held.status_code == 429
        assert len(strict.sends()) == 1  # X-Business-Use-Case-Usage said 100 %: the second never left


def test_repeated_graph_failures_open_the_pages_circuit(make_app, messenger, org):
    app = make_app(**messenger_env(messenger), BREAKER_FAILURES="2", BREAKER_RESET="30")
    c = app.test_client()
    org_dict, headers = org
    assert connect(c, headers).status_code == 201
    customer_wrote(app, messenger, org_dict["id"])
    messenger.inject("http_500", times=2)
    assert [c.post("/api/v1/messenger/messages", json=TEXT, headers=headers).status_code for _ in range(2)] == [502, 502]
    fast = c.post("/api/v1/messenger/messages", json=TEXT, headers=headers)
    assert fast.status_code == 503 and fast.json["code"] == "upstream_circuit_open" and fast.headers["Retry-After"]
    assert len(messenger.sends()) == 2


def test_org_b_can_neither_send_through_nor_claim_org_as_page(client, headers, new_org, messenger):
    _, other = new_org("globex")
    messenger.received.clear()
    for path, body in (("/api/v1/messenger/messages", TEXT),
                       ("/api/v1/messenger/sender-actions", {"recipient_id": PSID, "action": "typing_on"})):
        response = client.post(path, json=body, headers=other)
        assert response.status_code == 409 and response.json["code"] == "integration_not_connected"
    claimed = connect(client, other)  # naming A's Page: the claim policy refuses it
    assert claimed.status_code == 409 and claimed.json["code"] == "account_claimed"
    assert messenger.sends() == []
