"""Receiving provider webhooks: verified over the raw body, attributed by signed content, stored once."""

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Delivery, InboundEvent
from config import ConfigError
from tests.webhooks_support import (
    ENV, MESSENGER_SECRET, PAGE_A, PAGE_B, PUBLIC_BASE_URL, SHOPIFY_SECRET, VERIFY_TOKEN, claim, messenger_body,
    messenger_headers, shopify_headers, twilio_post,
)
from webhooks import dispatch


@pytest.fixture
def app(make_app):
    return make_app(**ENV)


@pytest.fixture
def client(app):
    return app.test_client()


def events(app):
    with app.app_context():
        return list(db.session.execute(sa.select(InboundEvent).order_by(InboundEvent.received_at)).scalars())


def deliveries(app):
    with app.app_context():
        return list(db.session.execute(sa.select(Delivery)).scalars())


# --- Messenger -----------------------------------------------------------------------------------


def test_handshake_echoes_the_challenge_only_with_the_verify_token(client):
    ok = client.get(f"/webhooks/messenger?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=abc123")
    assert ok.status_code == 200 and ok.data == b"abc123"
    wrong = client.get("/webhooks/messenger?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=abc123")
    assert wrong.status_code == 403 and wrong.json["code"] == "invalid_verify_token"


def test_a_signed_message_is_stored_attributed_audited_and_queued(app, client, org, audit_rows):
    org_row, _ = org
    claim(app, org_row["id"], "messenger", PAGE_A)
    body = messenger_body()
    response = client.post("/webhooks/messenger", data=body, headers=messenger_headers(body))
    assert response.status_code == 200
    [event] = events(app)
    assert str(event.organization_id) == org_row["id"] and event.account_key == PAGE_A
    assert event.body == body and event.topic == "message" and event.status == "attributed"
    [delivery] = deliveries(app)
    assert delivery.event_id == event.id and delivery.status == "pending"
    [row] = audit_rows(action="webhook.received")
    assert row.actor == "provider" and str(row.organization_id) == org_row["id"]
    assert "hello" not in json.dumps(row.detail)  # no bodies in the audit trail


def _tamper(body: bytes):
    return body.replace(b"hello", b"HELLO")


@pytest.mark.parametrize("case", ["missing", "garbage", "other_secret", "truncated", "tampered", "sha1",
                                  "truncated_signature"])
def test_forged_webhooks_are_refused_and_store_nothing(app, client, org, audit_rows, case):
    claim(app, org[0]["id"], "messenger", PAGE_A)
    body = messenger_body()
    headers = messenger_headers(body)
    sent = body
    if case == "missing":
        headers.pop("X-Hub-Signature-256")
    elif case == "garbage":
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    elif case == "other_secret":
        headers = messenger_headers(body, secret="another-app-secret")
    elif case == "truncated":
        sent = body[:-5]
    elif case == "tampered":
        sent = _tamper(body)
    elif case == "sha1":
        headers["X-Hub-Signature-256"] = headers["X-Hub-Signature-256"].replace("sha256=", "sha1=")
    elif case == "truncated_signature":
        headers["X-Hub-Signature-256"] = headers["X-Hub-Signature-256"][:-8]
    response = client.post("/webhooks/messenger", data=sent, headers=headers)
    assert response.status_code == 401 and response.json["code"] == "invalid_signature"
    assert events(app) == [] and deliveries(app) == []
    assert audit_rows(action="webhook.received") == []


def test_a_replayed_delivery_is_acknowledged_and_stored_once(app, client, org):
    claim(app, org[0]["id"], "messenger", PAGE_A)
    body = messenger_body()
    for _ in range(3):
        assert client.post("/webhooks/messenger", data=body, headers=messenger_headers(body)).status_code == 200
    assert len(events(app)) == 1 and len(deliveries(app)) == 1


def test_five_concurrent_copies_of_one_delivery_store_exactly_one_event(app, org):
    claim(app, org[0]["id"], "messenger", PAGE_A)
    body = messenger_body()
    headers = messenger_headers(body)
    barrier = threading.Barrier(5)

    def send(_):
        client = app.test_client()
        barrier.wait()
        return client.post("/webhooks/messenger", data=body, headers=headers).status_code

    with ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(send, range(5)))
    assert statuses == [200] * 5
    assert len(events(app)) == 1 and len(deliveries(app)) == 1


@pytest.mark.parametrize("provider", ["whatsapp", "shopify"])
def test_five_concurrent_copies_of_a_twilio_or_shopify_delivery_store_exactly_one_event(app, org, provider):
    from urllib.parse import urlencode

    from twilio.request_validator import RequestValidator

    if provider == "whatsapp":
        claim(app, org[0]["id"], "whatsapp", "+14155550123")
        params = {"MessageSid": "SM" + uuid.uuid4().hex, "From": "whatsapp:+447700900123",
                  "To": "whatsapp:+14155550123", "Body": "hi"}
        path, body = "/webhooks/twilio/whatsapp", urlencode(params).encode()
        headers = {"X-Twilio-Signature": RequestValidator(ENV["TWILIO_AUTH_TOKEN"]).compute_signature(
            PUBLIC_BASE_URL + path, params), "Content-Type": "application/x-www-form-urlencoded"}
    else:
        claim(app, org[0]["id"], "shopify", "demo-store")
        path, body = "/webhooks/shopify", json.dumps({"id": 1, "note": uuid.uuid4().hex}).encode()
        headers = shopify_headers(body)
    barrier = threading.Barrier(5)

    def send(_):
        client = app.test_client()
        barrier.wait()
        return client.post(path, data=body, headers=headers).status_code

    with ThreadPoolExecutor(5) as pool:
        statuses = list(pool.map(send, range(5)))
    assert statuses == [200] * 5
    assert len(events(app)) == 1 and len(deliveries(app)) == 1


def test_another_orgs_page_in_an_unsigned_place_changes_nothing(app, client, new_org):
    (org_a, _), (org_b, headers_b) = new_org("org-a"), new_org("org-b")
    claim(app, org_a["id"], "messenger", PAGE_A)
    claim(app, org_b["id"], "messenger", PAGE_B)
    body = messenger_body(PAGE_A)
    headers = {**messenger_headers(body), "X-Page-Id": PAGE_B}
    response = client.post(f"/webhooks/messenger?page_id={PAGE_B}&entry.id={PAGE_B}", data=body, headers=headers)
    assert response.status_code == 200
    [event] = events(app)
    assert str(event.organization_id) == org_a["id"]
    assert client.get("/api/v1/events", headers=headers_b).json["data"] == []


def test_a_batch_naming_two_pages_is_split_between_their_orgs(app, client, new_org):
    (org_a, headers_a), (org_b, headers_b) = new_org("org-a"), new_org("org-b")
    claim(app, org_a["id"], "messenger", PAGE_A)
    claim(app, org_b["id"], "messenger", PAGE_B)
    a, b = json.loads(messenger_body(PAGE_A, "for a")), json.loads(messenger_body(PAGE_B, "for b"))
    body = json.dumps({"object": "page", "entry": a["entry"] + b["entry"]}).encode()
    assert client.post("/webhooks/messenger", data=body, headers=messenger_headers(body)).status_code == 200
    seen_a = client.get("/api/v1/events", headers=headers_a).json["data"]
    seen_b = client.get("/api/v1/events", headers=headers_b).json["data"]
    assert [e["data"]["entry"][0]["id"] for e in seen_a] == [PAGE_A]
    assert [e["data"]["entry"][0]["id"] for e in seen_b] == [PAGE_B]
    assert "for b" not in json.dumps(seen_a)


def test_an_unclaimed_or_pending_account_is_kept_unattributed_and_admin_visible(app, client, org, admin):
    claim(app, org[0]["id"], "messenger", PAGE_B, status="pending")  # not approved: not the owner yet
    for page in (PAGE_A, PAGE_B):
        body = messenger_body(page)
        assert client.post("/webhooks/messenger", data=body, headers=messenger_headers(body)).status_code == 200
    assert {e.status for e in events(app)} == {"unattributed"} and deliveries(app) == []
    listed = client.get("/api/v1/admin/events?status=unattributed", headers=admin)
    assert listed.status_code == 200 and len(listed.json["data"]) == 2
    assert all(e["organization_id"] is None for e in listed.json["data"])
    assert client.get("/api/v1/events", headers=org[1]).json["data"] == []


def test_the_window_hook_hears_each_new_inbound_message_once(app, client, org):
    claim(app, org[0]["id"], "messenger", PAGE_A)
    heard = []
    listener = dispatch.on_inbound_message(lambda *args: heard.append(args))
    try:
        body = messenger_body(psid="900100")
        for _ in range(2):
            client.post("/webhooks/messenger", data=body, headers=messenger_headers(body))
    finally:
        dispatch.remove_listener(listener)
    [(org_id, channel, customer, at)] = heard
    assert (str(org_id), channel, customer) == (org[0]["id"], "messenger", "900100") and at.tzinfo


def test_the_window_is_written_in_the_events_transaction_or_nothing_is(app, client, org):
    from app.models import MessagingWindow

    claim(app, org[0]["id"], "messenger", PAGE_A)
    body = messenger_body(psid="900200")

    def broken(connection, *args):
        raise RuntimeError("the window write failed")

    dispatch.on_inbound_message_stored(broken)
    try:
        failed = client.post("/webhooks/messenger", data=body, headers=messenger_headers(body))
    finally:
        dispatch.remove_listener(broken)
    assert failed.status_code == 500  # no 2xx: the provider retries
    assert events(app) == [] and deliveries(app) == []
    assert client.post("/webhooks/messenger", data=body, headers=messenger_headers(body)).status_code == 200
    with app.app_context():
        [window] = db.session.execute(sa.select(MessagingWindow)).scalars()
    assert (window.customer, len(events(app)), len(deliveries(app))) == ("900200", 1, 1)


# --- Twilio ---------------------------------------------------------------------------------------

NUMBER = "+14155550123"


def _inbound(sid=None, to=NUMBER):
    return {"MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": "AC" + "0" * 32,
            "From": "whatsapp:+447700900123", "To": f"whatsapp:{to}", "Body": "hi there", "NumMedia": "0",
            "ProfileName": "Ann", "WaId": "447700900123"}


def test_twilio_inbound_and_status_are_verified_over_the_public_url_and_attributed(app, client, org):
    claim(app, org[0]["id"], "whatsapp", NUMBER)
    params = _inbound()
    assert twilio_post(client, "/webhooks/twilio/whatsapp", params).status_code == 200
    status = {"MessageSid": "SM" + uuid.uuid4().hex, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32,
              "From": f"whatsapp:{NUMBER}", "To": "whatsapp:+447700900123"}
    for _ in range(2):
        assert twilio_post(client, "/webhooks/twilio/status", status).status_code == 200
    stored = events(app)
    assert [e.topic for e in stored] == ["message", "message.status"]
    assert all(str(e.organization_id) == org[0]["id"] for e in stored)


@pytest.mark.parametrize("case", ["other_token", "other_url", "missing", "added_param", "truncated",
                                  "truncated_signature", "query_names_another_number"])
def test_twilio_forgeries_are_refused(app, client, org, case):
    claim(app, org[0]["id"], "whatsapp", NUMBER)
    params = _inbound()
    path = "/webhooks/twilio/whatsapp"
    if case == "other_token":
        response = twilio_post(client, path, params, token="another-token")
    elif case == "other_url":
        response = twilio_post(client, path, params, url="http://localhost" + path)
    elif case == "missing":
        from urllib.parse import urlencode
        response = client.post(path, data=urlencode(params), content_type="application/x-www-form-urlencoded")
    elif case in ("truncated", "truncated_signature", "query_names_another_number"):
        from urllib.parse import urlencode
        from twilio.request_validator import RequestValidator
        signature = RequestValidator(ENV["TWILIO_AUTH_TOKEN"]).compute_signature(PUBLIC_BASE_URL + path, params)
        data, target = urlencode(params), path
        if case == "truncated":
            data = data[:-10]
        elif case == "truncated_signature":
            signature = signature[:-6]
        else:  # an unsigned place naming another org's number: the URL Twilio signed has no query
            target = path + "?To=whatsapp%3A%2B14155550199"
        response = client.post(target, data=data, headers={"X-Twilio-Signature": signature},
                               content_type="application/x-www-form-urlencoded")
    else:
        from urllib.parse import urlencode
        from twilio.request_validator import RequestValidator
        signature = RequestValidator(ENV["TWILIO_AUTH_TOKEN"]).compute_signature(PUBLIC_BASE_URL + path, params)
        response = client.post(path, data=urlencode({**params, "To": "whatsapp:+14155550199"}),
                               headers={"X-Twilio-Signature": signature},
                               content_type="application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert events(app) == []


def test_a_replayed_twilio_message_is_acknowledged_and_stored_once(app, client, org):
    claim(app, org[0]["id"], "whatsapp", NUMBER)
    params = _inbound()
    for _ in range(3):
        assert twilio_post(client, "/webhooks/twilio/whatsapp", params).status_code == 200
    assert len(events(app)) == 1 and len(deliveries(app)) == 1


# --- Shopify --------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["missing", "garbage", "truncated_signature", "truncated_body", "tampered",
                                  "hex_not_base64"])
def test_shopify_forgeries_are_refused_and_store_nothing(app, client, new_org, case):
    org_a, _ = new_org("org-a")
    claim(app, org_a["id"], "shopify", "demo-store")
    body = json.dumps({"id": 820982911946154508, "email": "jon@example.com"}).encode()
    headers, sent = shopify_headers(body), body
    if case == "missing":
        headers.pop("X-Shopify-Hmac-Sha256")
    elif case == "garbage":
        headers["X-Shopify-Hmac-Sha256"] = "A" * 44
    elif case == "truncated_signature":
        headers["X-Shopify-Hmac-Sha256"] = headers["X-Shopify-Hmac-Sha256"][:-5]
    elif case == "truncated_body":
        sent = body[:-3]
    elif case == "tampered":
        sent = body.replace(b"jon@", b"eve@")
    else:
        import base64
        headers["X-Shopify-Hmac-Sha256"] = base64.b64decode(headers["X-Shopify-Hmac-Sha256"]).hex()
    response = client.post("/webhooks/shopify", data=sent, headers=headers)
    assert response.status_code == 401 and response.json["code"] == "invalid_signature"
    assert events(app) == [] and deliveries(app) == []


def test_shopify_delivery_resent_with_another_shops_header_is_a_duplicate(app, client, new_org):
    (org_a, _), (org_b, headers_b) = new_org("org-a"), new_org("org-b")
    claim(app, org_a["id"], "shopify", "demo-store")
    claim(app, org_b["id"], "shopify", "other-store")
    body = json.dumps({"id": 820982911946154508, "email": "jon@example.com"}).encode()
    headers = shopify_headers(body, shop="demo-store")
    assert client.post("/webhooks/shopify", data=body, headers=headers).status_code == 200
    same_id = {**headers, "X-Shopify-Shop-Domain": "other-store.myshopify.com"}
    assert client.post("/webhooks/shopify", data=body, headers=same_id).status_code == 200
    new_id = shopify_headers(body, shop="other-store")
    assert client.post("/webhooks/shopify", data=body, headers=new_id).status_code == 200
    [event] = events(app)
    assert str(event.organization_id) == org_a["id"] and event.account_key == "demo-store"
    assert client.get("/api/v1/events", headers=headers_b).json["data"] == []


def test_shopify_signature_with_another_secret_is_refused(app, client):
    body = b'{"id": 1}'
    response = client.post("/webhooks/shopify", data=body, headers=shopify_headers(body, secret="not-the-secret"))
    assert response.status_code == 401 and events(app) == []


# --- faults and configuration ---------------------------------------------------------------------


def test_database_unavailable_during_a_webhook_is_503_never_2xx(database_url):
    from app import create_app
    from tests.conftest import base_env

    # Nothing listens on port 1: every connection is refused (make_app's teardown would need it).
    env = {**base_env(database_url, None), **ENV, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere",
           "DATABASE_TIMEOUT": "1"}
    app = create_app(env, TESTING=True)
    body = messenger_body()
    response = app.test_client().post("/webhooks/messenger", data=body, headers=messenger_headers(body))
    assert response.status_code == 503 and response.json["code"] == "database_unavailable"


def test_webhooks_do_not_need_redis(make_app, org):
    app = make_app(**ENV, REDIS_URL="redis://127.0.0.1:1/0", REDIS_TIMEOUT="0.2")
    body = messenger_body()
    assert app.test_client().post("/webhooks/messenger", data=body, headers=messenger_headers(body)).status_code == 200


@pytest.mark.parametrize("name", ["MESSENGER_APP_SECRET", "TWILIO_AUTH_TOKEN", "SHOPIFY_ADMIN_API_SECRET",
                                  "MESSENGER_VERIFY_TOKEN", "WEBHOOK_SIGNING_KEY"])
def test_an_empty_signing_secret_refuses_start_up(make_app, name):
    with pytest.raises(ConfigError, match=name):
        make_app(**{**ENV, name: ""})


def test_unknown_webhook_path_is_404(client):
    assert client.post("/webhooks/stripe-ish", data=b"{}").status_code == 404


# --- Shopify client-secret rotation ---------------------------------------------------------------

OLD_SHOPIFY_SECRET = "test-shopify-old-client-secret-5e7a"


def test_during_a_rotation_the_previous_shopify_secret_is_accepted_too(make_app, org, caplog):
    """Shopify: accept webhooks signed with the new and the old client secret until the old one is
    revoked (docs/decisions.md, "Signing-secret rotation")."""
    app = make_app(**ENV, SHOPIFY_ADMIN_API_SECRET_PREVIOUS=OLD_SHOPIFY_SECRET)
    client = app.test_client()
    caplog.set_level("INFO", logger="switchboard.webhooks")
    new = b'{"id": 1}'
    assert client.post("/webhooks/shopify", data=new, headers=shopify_headers(new)).status_code == 200
    assert "PREVIOUS" not in caplog.text
    old = b'{"id": 2}'
    assert client.post("/webhooks/shopify", data=old,
                       headers=shopify_headers(old, secret=OLD_SHOPIFY_SECRET)).status_code == 200
    assert "verified with SHOPIFY_ADMIN_API_SECRET_PREVIOUS" in caplog.text
    assert OLD_SHOPIFY_SECRET not in caplog.text and SHOPIFY_SECRET not in caplog.text
    # A third secret, a truncated signature and a body changed under the old signature still fail.
    third = b'{"id": 3}'
    assert client.post("/webhooks/shopify", data=third,
                       headers=shopify_headers(third, secret="yet-another-secret-0000")).status_code == 401
    truncated = shopify_headers(third, secret=OLD_SHOPIFY_SECRET)
    truncated["X-Shopify-Hmac-Sha256"] = truncated["X-Shopify-Hmac-Sha256"][:-4]
    assert client.post("/webhooks/shopify", data=third, headers=truncated).status_code == 401
    assert client.post("/webhooks/shopify", data=b'{"id": 4}',
                       headers=shopify_headers(third, secret=OLD_SHOPIFY_SECRET)).status_code == 401
    assert len(events(app)) == 2


def test_once_the_previous_secret_is_removed_its_signatures_are_refused(app, client):
    old = b'{"id": 2}'
    assert client.post("/webhooks/shopify", data=old,
                       headers=shopify_headers(old, secret=OLD_SHOPIFY_SECRET)).status_code == 401
    assert events(app) == []


def test_a_previous_secret_without_the_current_one_or_empty_refuses_start_up(make_app):
    with pytest.raises(ConfigError, match="SHOPIFY_ADMIN_API_SECRET_PREVIOUS is set but SHOPIFY_ADMIN_API_SECRET is not"):
        make_app(**{**ENV, "SHOPIFY_ADMIN_API_SECRET": None}, SHOPIFY_ADMIN_API_SECRET_PREVIOUS=OLD_SHOPIFY_SECRET)
    with pytest.raises(ConfigError, match="SHOPIFY_ADMIN_API_SECRET_PREVIOUS is set but empty"):
        make_app(**ENV, SHOPIFY_ADMIN_API_SECRET_PREVIOUS=" ")


def test_the_previous_secret_is_redacted_from_logs(make_app, caplog):
    import logging

    app = make_app(**ENV, SHOPIFY_ADMIN_API_SECRET_PREVIOUS=OLD_SHOPIFY_SECRET)
    caplog.set_level(logging.INFO)
    with app.test_request_context("/"):
        logging.getLogger("switchboard.test").warning("a library printed %s", OLD_SHOPIFY_SECRET)
    assert OLD_SHOPIFY_SECRET not in caplog.text and "a library printed ***" in caplog.text
