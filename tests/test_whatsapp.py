"""WhatsApp sends through Twilio: the app's test client in front, the Twilio emulator behind.

The 24-hour window is opened with ``app.messaging.record_inbound`` called directly: the webhook
route that calls it in production is built on another branch (see docs/decisions.md).
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from app import messaging
from app.extensions import db
from tests.conftest import TWILIO_SID, TWILIO_TOKEN, twilio_env

NUMBER, OTHER_NUMBER, OFFLINE = "+14155550100", "+14155550101", "+14155550199"
CUSTOMER = "+447700900123"
TEMPLATE = "HX" + "0" * 31 + "1"


@pytest.fixture
def app(make_app, twilio):
    return make_app(**twilio_env(twilio))


def connect(client, headers, number=NUMBER):
    return client.put("/api/v1/integrations/whatsapp", json={"account_identifier": {"phoneNumber": number}},
                      headers=headers)


@pytest.fixture
def number(client, org):
    org_dict, headers = org
    assert connect(client, headers).status_code == 201
    return org_dict, headers


def window(app, org_id, customer=CUSTOMER, hours_ago=0.0):
    """Open the window as the webhook side will (record_inbound with Twilio's ``whatsapp:`` From)."""
    with app.app_context():
        messaging.record_inbound(uuid.UUID(org_id), "whatsapp", f"whatsapp:{customer}",
                                 datetime.now(timezone.utc) - timedelta(hours=hours_ago))
        db.session.commit()


def customer_wrote(app, twilio, org_id, customer=CUSTOMER, hours_ago=0.0):
    window(app, org_id, customer, hours_ago)
    twilio.open_window(NUMBER, customer, hours_ago)


def test_connect_checks_the_number_is_an_online_whatsapp_sender(client, org, new_org, twilio):
    _, headers = org
    assert connect(client, headers).status_code == 201
    call = [r for r in twilio.received if r["endpoint"] == "senders"][0]
    assert call["query"]["Channel"] == "whatsapp"
    assert call["headers"]["authorization"] == "Basic " + base64.b64encode(
        f"{TWILIO_SID}:{TWILIO_TOKEN}".encode()).decode()
    _, other = new_org()
    offline = connect(client, other, OFFLINE)
    assert offline.status_code == 422 and "not ONLINE" in offline.json["detail"]
    unknown = connect(client, other, "+14155550777")
    assert unknown.status_code == 422 and unknown.json["code"] == "account_not_reachable"


def test_connect_follows_the_senders_pages(make_app, twilio, new_org):
    from sandbox.server import serve
    from sandbox.twilio import TwilioEmulator

    many = {f"+1415555{i:04d}": "ONLINE" for i in range(250)}
    big = TwilioEmulator(TWILIO_SID, TWILIO_TOKEN, many)
    with serve(big.wsgi) as server:
        big.url = server.url
        client = make_app(**twilio_env(big)).test_client()
        _, headers = new_org()
        response = connect(client, headers, "+14155550249")  # on the third page of 100
    assert response.status_code == 201, response.json
    assert len([r for r in big.received if r["endpoint"] == "senders"]) == 3


def test_wrong_twilio_credentials_refuse_the_connection(make_app, twilio, new_org):
    client = make_app(**{**twilio_env(twilio), "TWILIO_AUTH_TOKEN": "not-the-token-0123"}).test_client()
    _, headers = new_org()
    response = connect(client, headers)
    assert response.status_code == 422 and response.json["code"] == "account_not_reachable"
    assert "not-the-token" not in response.get_data(as_text=True)


def test_send_text_inside_the_window(app, client, number, twilio, audit_rows):
    org_dict, headers = number
    customer_wrote(app, twilio, org_dict["id"])
    response = client.post("/api/v1/whatsapp/messages", json={"to": CUSTOMER, "body": "Your order shipped"},
                           headers=headers)
    assert response.status_code == 201, response.json
    assert response.json["sid"].startswith("SM") and response.json["status"] == "queued"
    form = twilio.sends()[0]["form"]
    assert form == {"From": f"whatsapp:{NUMBER}", "To": f"whatsapp:{CUSTOMER}", "Body": "Your order shipped",
                    "StatusCallback": "http://127.0.0.1:9/webhooks/twilio/status"}
    row = audit_rows(action="proxy.request")[-1]
    assert row.provider == "whatsapp" and row.target == NUMBER and row.outcome == "success"
    assert row.detail["message_sid"] == response.json["sid"]
    assert "Your order" not in json.dumps(row.detail) and CUSTOMER not in json.dumps(row.detail)


def test_send_media_by_url(app, client, number, twilio):
    org_dict, headers = number
    customer_wrote(app, twilio, org_dict["id"])
    response = client.post("/api/v1/whatsapp/messages",
                           json={"to": CUSTOMER, "media_url": "https://example.com/receipt.pdf", "body": "Receipt"},
                           headers=headers)
    assert response.status_code == 201, response.json
    assert response.json["sid"].startswith("MM")
    assert twilio.sends()[0]["form"]["MediaUrl"] == "https://example.com/receipt.pdf"


def test_a_template_may_go_outside_the_window(app, client, number, twilio):
    _, headers = number
    response = client.post("/api/v1/whatsapp/messages",
                           json={"to": CUSTOMER, "content_sid": TEMPLATE, "content_variables": {"1": "#1001"}},
                           headers=headers)
    assert response.status_code == 201, response.json
    form = twilio.sends()[0]["form"]
    assert form["ContentSid"] == TEMPLATE and json.loads(form["ContentVariables"]) == {"1": "#1001"}
    assert "Body" not in form


def test_free_form_outside_the_window_is_refused_before_anything_is_sent(app, client, number, twilio):
    org_dict, headers = number
    window(app, org_dict["id"], hours_ago=24.5)
    for body in ({"to": CUSTOMER, "body": "hi"}, {"to": "+447700900999", "body": "hi"},
                 {"to": CUSTOMER, "media_url": "https://example.com/a.png"}):
        response = client.post("/api/v1/whatsapp/messages", json=body, headers=headers)
        assert response.status_code == 422, response.json
        assert response.json["code"] == "outside_messaging_window"
    assert twilio.sends() == []


def test_the_window_keeps_the_latest_inbound_time(app, client, number, twilio):
    org_dict, headers = number
    window(app, org_dict["id"])
    window(app, org_dict["id"], hours_ago=48)  # a late, older event does not close the window
    twilio.open_window(NUMBER, CUSTOMER)
    response = client.post("/api/v1/whatsapp/messages", json={"to": CUSTOMER, "body": "hi"}, headers=headers)
    assert response.status_code == 201, response.json


@pytest.mark.parametrize("body, field", [
    ({"to": "4477009001", "body": "hi"}, "to"),
    ({"to": "+0447700900123", "body": "hi"}, "to"),
    ({"to": "whatsapp:+447700900123", "body": "hi"}, "to"),
    ({"to": "+44 7700 900123", "body": "hi"}, "to"),
    ({"to": "+4477009001231234567", "body": "hi"}, "to"),
    ({"to": 447700900123, "body": "hi"}, "to"),
    ({"to": CUSTOMER}, "body"),
    ({"to": CUSTOMER, "body": "x" * 1601}, "body"),
    ({"to": CUSTOMER, "body": ""}, "body"),
    ({"to": CUSTOMER, "media_url": "http://example.com/a.png"}, "media_url"),  # https only outside the sandbox
    ({"to": CUSTOMER, "media_url": "https://user:pw@example.com/a.png"}, "media_url"),
    ({"to": CUSTOMER, "media_url": "javascript:alert(1)"}, "media_url"),
    ({"to": CUSTOMER, "content_sid": "HX123"}, "content_sid"),
    ({"to": CUSTOMER, "content_sid": TEMPLATE, "body": "hi"}, "body"),
    ({"to": CUSTOMER, "content_variables": {"1": "x"}, "body": "hi"}, "content_variables"),
    ({"to": CUSTOMER, "content_sid": TEMPLATE, "content_variables": {"1": 5}}, "content_variables.1.value"),
])
def test_bad_input_names_the_field_and_reaches_no_provider(make_app, twilio, body, field):
    app = make_app(**twilio_env(twilio), SANDBOX="false", CONNECT_REQUIRES_APPROVAL="false")
    client = app.test_client()
    org_dict, headers = _org(client)
    assert connect(client, headers).status_code == 201
    customer_wrote(app, twilio, org_dict["id"])
    response = client.post("/api/v1/whatsapp/messages", json=body, headers=headers)
    assert response.status_code == 422, response.json
    assert response.json["code"] == "validation_error"
    assert response.json["field"].startswith(field.split(".")[0]), response.json
    assert twilio.sends() == []


def _org(client):
    from tests.conftest import ADMIN_KEY
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    org = client.post("/api/v1/admin/organizations", json={"slug": f"org-{uuid.uuid4().hex[:8]}"}, headers=admin).json
    key = client.post(f"/api/v1/admin/organizations/{org['id']}/api-keys", json={}, headers=admin).json["key"]
    return org, {"Authorization": f"Bearer {key}"}
