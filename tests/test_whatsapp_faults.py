"""WhatsApp sends when things go wrong, Twilio's asynchronous window failure, org isolation, and
the official ``twilio`` client against the emulator.

Windows are opened with ``app.messaging.record_inbound`` directly (the webhook route that calls
it is built on another branch).
"""

from __future__ import annotations

import time
import uuid

import pytest
from flask import Flask, request
from twilio.request_validator import RequestValidator

from sandbox.server import serve
from tests.conftest import TWILIO_SID, TWILIO_TOKEN, twilio_env
from tests.test_whatsapp import CUSTOMER, NUMBER, OTHER_NUMBER, TEMPLATE, connect, customer_wrote, window

TEXT = {"to": CUSTOMER, "body": "Your order shipped"}


@pytest.fixture
def app(make_app, twilio):
    return make_app(**twilio_env(twilio))


@pytest.fixture
def headers(app, client, org, twilio):
    org_dict, headers = org
    assert connect(client, headers).status_code == 201
    customer_wrote(app, twilio, org_dict["id"])
    return headers


@pytest.mark.parametrize("kind, status, code", [
    ("rate_limited", 429, "upstream_rate_limited"),
    ("http_500", 502, "upstream_bad_response"),
    ("http_503", 502, "upstream_bad_response"),
    ("drop", 504, "upstream_outcome_unknown"),  # the connection broke after the send: it may have gone out
])
def test_a_failed_send_is_not_sent_again(client, headers, twilio, kind, status, code):
    twilio.inject(kind, times=3)
    response = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=headers)
    assert response.status_code == status, response.json
    assert response.json["code"] == code
    assert len(twilio.sends()) == 1


def test_a_send_that_times_out_is_504_and_not_sent_again(client, headers, twilio):
    twilio.inject("slow", seconds=2.5)  # HTTP_READ_TIMEOUT is 1 s in the tests
    keyed = {**headers, "Idempotency-Key": "wa-send-0001-abc"}
    assert client.post("/api/v1/whatsapp/messages", json=TEXT, headers=keyed).status_code == 504
    again = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=keyed)
    assert again.status_code == 504 and again.headers.get("Idempotent-Replayed") == "true"
    assert len(twilio.sends()) == 1


def test_a_retried_send_with_the_same_idempotency_key_is_sent_once(client, headers, twilio):
    keyed = {**headers, "Idempotency-Key": "wa-send-0002-abc"}
    first = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=keyed)
    again = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=keyed)
    assert first.status_code == again.status_code == 201
    assert again.json["sid"] == first.json["sid"] and again.headers.get("Idempotent-Replayed") == "true"
    assert len(twilio.sends()) == 1


def test_a_credential_twilio_refuses_at_send_time_is_502_auth(make_app, twilio, headers):
    wrong = make_app(**{**twilio_env(twilio), "TWILIO_AUTH_TOKEN": "rotated-token-0123456"}).test_client()
    response = wrong.post("/api/v1/whatsapp/messages", json=TEXT, headers=headers)
    assert response.status_code == 502 and response.json["code"] == "upstream_auth_failed"
    assert "rotated-token" not in response.get_data(as_text=True)


def test_a_number_that_went_offline_is_502_not_the_callers_fault(client, headers, twilio):
    twilio.senders[NUMBER] = "OFFLINE"
    try:
        response = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=headers)
    finally:
        twilio.senders[NUMBER] = "ONLINE"
    assert response.status_code == 502 and response.json["code"] == "upstream_auth_failed"


def test_an_unknown_template_is_twilios_422_on_content_sid(client, headers, twilio):
    response = client.post("/api/v1/whatsapp/messages", json={"to": CUSTOMER, "content_sid": "HX" + "f" * 32},
                           headers=headers)
    assert response.status_code == 422 and response.json["field"] == "content_sid"


def test_twilio_fails_an_outside_window_message_later_with_63016_in_a_signed_callback(make_app, twilio, org):
    """Our record says inside; Twilio's says outside: 201 now, then a `failed` 63016 status callback."""
    received = []
    receiver = Flask("receiver")

    @receiver.post("/webhooks/twilio/status")
    def status():
        received.append((dict(request.form), request.headers.get("X-Twilio-Signature"), request.url))
        return "", 204

    with serve(receiver) as server:
        app = make_app(**{**twilio_env(twilio), "PUBLIC_BASE_URL": server.url})
        client = app.test_client()
        org_dict, headers = org
        assert connect(client, headers).status_code == 201
        window(app, org_dict["id"])  # Switchboard thinks the customer wrote; Twilio never saw it
        response = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=headers)
        assert response.status_code == 201 and response.json["status"] == "queued"
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    form, signature, url = received[0]
    assert form["MessageSid"] == response.json["sid"]
    assert form["MessageStatus"] == "failed" and form["ErrorCode"] == "63016"
    assert RequestValidator(TWILIO_TOKEN).validate(f"{server.url}/webhooks/twilio/status", form, signature)


def test_fire_inbound_signs_as_twilio_does(twilio):
    got = []
    receiver = Flask("receiver")

    @receiver.post("/webhooks/twilio/whatsapp")
    def inbound():
        got.append((dict(request.form), request.headers["X-Twilio-Signature"]))
        return "<Response/>", 200

    with serve(receiver) as server:
        url = f"{server.url}/webhooks/twilio/whatsapp"
        result = twilio.fire_inbound(url, NUMBER, CUSTOMER, "Where is my order?")
    assert result["status"] == 200
    form, signature = got[0]
    assert form["From"] == f"whatsapp:{CUSTOMER}" and form["To"] == f"whatsapp:{NUMBER}"
    assert form["Body"] == "Where is my order?" and form["AccountSid"] == TWILIO_SID
    assert RequestValidator(TWILIO_TOKEN).validate(url, form, signature)
    assert not RequestValidator("another-token").validate(url, form, signature)


def test_another_orgs_window_does_not_open_mine(app, client, headers, new_org, twilio, audit_rows):
    other, other_headers = new_org()
    assert connect(client, other_headers, OTHER_NUMBER).status_code == 201
    assert connect(client, other_headers, NUMBER).status_code == 409  # acme holds that number
    response = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=other_headers)
    assert response.status_code == 422 and response.json["code"] == "outside_messaging_window"
    assert twilio.sends() == []
    row = audit_rows(action="proxy.request", organization_id=uuid.UUID(other["id"]))[-1]
    assert row.target == OTHER_NUMBER and row.detail["error"] == "outside_messaging_window"


def test_a_template_is_sent_without_a_window(client, headers, twilio):
    response = client.post("/api/v1/whatsapp/messages",
                           json={"to": "+447700900555", "content_sid": TEMPLATE, "content_variables": {"1": "#7"}},
                           headers=headers)
    assert response.status_code == 201


# --- the official client against the emulator ----------------------------------------------------


def test_the_official_twilio_client_parses_the_emulators_answers(twilio):
    from twilio.base.exceptions import TwilioRestException
    from twilio.rest import Client

    client = Client(TWILIO_SID, TWILIO_TOKEN)
    client.api.base_url = twilio.url
    client.messaging.base_url = twilio.url
    twilio.open_window(NUMBER, CUSTOMER)
    message = client.messages.create(from_=f"whatsapp:{NUMBER}", to=f"whatsapp:{CUSTOMER}", body="Hello")
    assert message.sid.startswith("SM") and message.status == "queued"
    assert message.date_created is not None and message.num_media == "0"
    fetched = client.messages(message.sid).fetch()
    assert fetched.sid == message.sid and fetched.to == f"whatsapp:{CUSTOMER}"
    template = client.messages.create(from_=f"whatsapp:{NUMBER}", to=f"whatsapp:{CUSTOMER}",
                                      content_sid=TEMPLATE, content_variables='{"1": "#1001"}')
    assert template.body == "Your order #1001 has shipped."
    senders = client.messaging.v2.channels_senders.list(channel="whatsapp")
    assert {s.sender_id for s in senders} >= {f"whatsapp:{NUMBER}", f"whatsapp:{OTHER_NUMBER}"}
    assert {s.status for s in senders} == {"ONLINE", "OFFLINE"}
    with pytest.raises(TwilioRestException) as bad_to:
        client.messages.create(from_=f"whatsapp:{NUMBER}", to="whatsapp:12", body="x")
    assert bad_to.value.code == 21211 and bad_to.value.status == 400
    with pytest.raises(TwilioRestException) as denied:
        wrong = Client(TWILIO_SID, "wrong-token")
        wrong.api.base_url = twilio.url
        wrong.messages.create(from_=f"whatsapp:{NUMBER}", to=f"whatsapp:{CUSTOMER}", body="x")
    assert denied.value.status == 401 and denied.value.code == 20003
    twilio.inject("rate_limited")
    with pytest.raises(TwilioRestException) as limited:
        client.messages.create(from_=f"whatsapp:{NUMBER}", to=f"whatsapp:{CUSTOMER}", body="x")
    assert limited.value.status == 429 and limited.value.code == 20429


# --- the Twilio account's shared budget and circuit breaker (app/quota.py) -----------------------


@pytest.mark.parametrize("kind", ["http_502", "redirect", "garbage"])
def test_more_upstream_failures_are_502_and_never_followed(client, headers, twilio, kind):
    twilio.inject(kind)
    response = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=headers)
    assert response.status_code == 502 and response.json["code"] == "upstream_bad_response"
    assert len(twilio.sends()) == 1


def test_twilios_429_with_retry_after_is_passed_on_and_holds_the_account_back(client, headers, twilio):
    twilio.inject("rate_limited", retry_after=7)
    first = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=headers)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    again = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=headers)
    assert again.status_code == 429 and 1 <= int(again.headers["Retry-After"]) <= 7
    assert len(twilio.sends()) == 1  # refused before it was sent: Twilio said wait


def test_twilios_429_without_retry_after_is_429_with_a_short_wait(client, headers, twilio):
    twilio.inject("rate_limited")
    response = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=headers)
    assert response.status_code == 429 and response.headers["Retry-After"] == "1"


def test_repeated_twilio_failures_open_the_accounts_circuit(make_app, twilio, org):
    app = make_app(**twilio_env(twilio), BREAKER_FAILURES="2", BREAKER_RESET="30")
    c = app.test_client()
    org_dict, headers = org
    assert connect(c, headers).status_code == 201
    customer_wrote(app, twilio, org_dict["id"])
    twilio.inject("http_503", times=2)
    assert [c.post("/api/v1/whatsapp/messages", json=TEXT, headers=headers).status_code for _ in range(2)] == [502, 502]
    fast = c.post("/api/v1/whatsapp/messages", json=TEXT, headers=headers)
    assert fast.status_code == 503 and fast.json["code"] == "upstream_circuit_open"
    assert len(twilio.sends()) == 2


def test_org_b_can_neither_send_through_nor_claim_org_as_number(client, headers, new_org, twilio):
    _, other = new_org("globex")
    response = client.post("/api/v1/whatsapp/messages", json=TEXT, headers=other)
    assert response.status_code == 409 and response.json["code"] == "integration_not_connected"
    claimed = connect(client, other)  # naming A's number: the claim policy refuses it
    assert claimed.status_code == 409 and claimed.json["code"] == "account_claimed"
    assert twilio.sends() == []
