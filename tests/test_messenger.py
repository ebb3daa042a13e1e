"""Messenger sends: through the app's test client in front and the Graph emulator behind.

The 24-hour window is opened with ``app.messaging.record_inbound`` called directly: the webhook
route that calls it in production is built on another branch (see docs/decisions.md).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from app import messaging
from app.extensions import db
from tests.conftest import MESSENGER_APP_SECRET, MESSENGER_PAGES, messenger_env

PAGE, OTHER_PAGE = "104512345678901", "204512345678902"
PSID = "7712345678901234"


@pytest.fixture
def app(make_app, messenger):
    return make_app(**messenger_env(messenger))


def connect(client, headers, page=PAGE):
    return client.put("/api/v1/integrations/messenger", json={"account_identifier": {"pageId": page}},
                      headers=headers)


@pytest.fixture
def page(client, org):
    org_dict, headers = org
    assert connect(client, headers).status_code == 201
    return org_dict, headers


def window(app, org_id, psid=PSID, hours_ago=0.0, channel="messenger"):
    """Open the window as the webhook side will (record_inbound), hours_ago hours ago."""
    import uuid
    with app.app_context():
        messaging.record_inbound(uuid.UUID(org_id), channel, psid,
                                 datetime.now(timezone.utc) - timedelta(hours=hours_ago))
        db.session.commit()


def customer_wrote(app, messenger, org_id, psid=PSID, hours_ago=0.0):
    window(app, org_id, psid, hours_ago)
    messenger.open_window(PAGE, psid, hours_ago)


def test_connect_verifies_the_token_belongs_to_the_page(client, org, messenger):
    _, headers = org
    response = connect(client, headers)
    assert response.status_code == 201, response.json
    me = [r for r in messenger.received if r["endpoint"] == "me"]
    assert len(me) == 1
    assert me[0]["headers"]["authorization"] == f"Bearer {MESSENGER_PAGES[PAGE]}"
    assert "access_token" not in me[0]["query"]  # the token never travels in a URL
    assert len(me[0]["query"]["appsecret_proof"]) == 64


def test_connect_refuses_a_page_the_platform_holds_no_token_for(make_app, messenger, new_org):
    env = messenger_env(messenger)
    env.pop("MESSENGER_PAGE_ACCESS_TOKENS")
    env["MESSENGER_PAGE_ACCESS_TOKEN"] = MESSENGER_PAGES[OTHER_PAGE]  # one token: it is another Page's
    client = make_app(**env).test_client()
    _, headers = new_org()
    response = connect(client, headers)
    assert response.status_code == 422, response.json
    assert response.json["code"] == "account_not_reachable"
    assert "another Page" in response.json["detail"]


def test_connect_with_a_wrong_app_secret_is_refused(make_app, messenger, new_org):
    client = make_app(**{**messenger_env(messenger), "MESSENGER_APP_SECRET": "not-the-secret"}).test_client()
    _, headers = new_org()
    response = connect(client, headers)
    assert response.status_code == 422
    assert response.json["code"] == "account_not_reachable"


def test_send_text_inside_the_window(app, client, page, messenger, audit_rows):
    org_dict, headers = page
    customer_wrote(app, messenger, org_dict["id"])
    response = client.post("/api/v1/messenger/messages", json={"recipient_id": PSID, "text": "Your order shipped"},
                           headers=headers)
    assert response.status_code == 200, response.json
    assert response.json["recipient_id"] == PSID and response.json["message_id"].startswith("m_")
    sent = messenger.sends(PAGE)
    assert len(sent) == 1
    assert sent[0]["json"] == {"recipient": {"id": PSID}, "message": {"text": "Your order shipped"},
                               "messaging_type": "RESPONSE"}
    row = audit_rows(action="proxy.request")[-1]
    assert row.provider == "messenger" and row.target == PAGE and row.outcome == "success"
    assert row.detail["operation"] == "messages.send"
    assert "Your order" not in json.dumps(row.detail) and MESSENGER_PAGES[PAGE] not in json.dumps(row.detail)


def test_quick_replies_buttons_and_attachments_take_graph_shapes(app, client, page, messenger):
    org_dict, headers = page
    customer_wrote(app, messenger, org_dict["id"])
    bodies = [
        {"recipient_id": PSID, "text": "Pick one", "quick_replies": [{"title": "Yes", "payload": "Y"}]},
        {"recipient_id": PSID, "text": "Track it", "buttons": [
            {"type": "web_url", "title": "Track", "url": "https://example.com/t/1"},
            {"type": "postback", "title": "Help", "payload": "HELP"}]},
        {"recipient_id": PSID, "attachment": {"type": "image", "url": "https://example.com/a.png"}},
        {"recipient_id": PSID, "attachment": {"type": "file", "url": "https://example.com/invoice.pdf"}},
    ]
    for body in bodies:
        response = client.post("/api/v1/messenger/messages", json=body, headers=headers)
        assert response.status_code == 200, response.json
    sent = [r["json"]["message"] for r in messenger.sends(PAGE)]
    assert sent[0]["quick_replies"] == [{"content_type": "text", "title": "Yes", "payload": "Y"}]
    assert sent[1]["attachment"]["payload"]["template_type"] == "button"
    assert sent[1]["attachment"]["payload"]["buttons"][1] == {"type": "postback", "title": "Help", "payload": "HELP"}
    assert sent[2]["attachment"] == {"type": "image", "payload": {"url": "https://example.com/a.png", "is_reusable": False}}
    assert sent[3]["attachment"]["type"] == "file"


@pytest.mark.parametrize("action", ["mark_seen", "typing_on", "typing_off"])
def test_sender_actions(app, client, page, messenger, action):
    org_dict, headers = page
    customer_wrote(app, messenger, org_dict["id"])
    response = client.post("/api/v1/messenger/sender-actions", json={"recipient_id": PSID, "action": action},
                           headers=headers)
    assert response.status_code == 200, response.json
    assert messenger.sends(PAGE)[-1]["json"] == {"recipient": {"id": PSID}, "sender_action": action}


def test_free_form_outside_the_window_is_refused_before_anything_is_sent(app, client, page, messenger):
    org_dict, headers = page
    window(app, org_dict["id"], hours_ago=25)
    response = client.post("/api/v1/messenger/messages", json={"recipient_id": PSID, "text": "hi"}, headers=headers)
    assert response.status_code == 422
    assert response.json["code"] == "outside_messaging_window"
    never = client.post("/api/v1/messenger/messages", json={"recipient_id": "7799999999999999", "text": "hi"},
                        headers=headers)
    assert never.status_code == 422 and never.json["code"] == "outside_messaging_window"
    action = client.post("/api/v1/messenger/sender-actions", json={"recipient_id": PSID, "action": "typing_on"},
                         headers=headers)
    assert action.status_code == 422 and action.json["code"] == "outside_messaging_window"
    assert messenger.sends() == []


def test_a_tagged_message_may_go_outside_the_window(app, client, page, messenger):
    org_dict, headers = page
    messenger.open_window(PAGE, PSID, hours_ago=30)
    response = client.post("/api/v1/messenger/messages",
                           json={"recipient_id": PSID, "text": "Your order shipped", "tag": "POST_PURCHASE_UPDATE"},
                           headers=headers)
    assert response.status_code == 200, response.json
    sent = messenger.sends(PAGE)[0]["json"]
    assert sent["messaging_type"] == "MESSAGE_TAG" and sent["tag"] == "POST_PURCHASE_UPDATE"


def test_metas_own_window_verdict_is_the_same_422(app, client, page, messenger):
    """Our record says inside, Meta says outside (code 10 / 2018278): the caller gets one answer."""
    org_dict, headers = page
    window(app, org_dict["id"])
    messenger.open_window(PAGE, PSID, hours_ago=48)
    response = client.post("/api/v1/messenger/messages", json={"recipient_id": PSID, "text": "hi"}, headers=headers)
    assert response.status_code == 422 and response.json["code"] == "outside_messaging_window"
    assert len(messenger.sends()) == 1


@pytest.mark.parametrize("body, field", [
    ({"recipient_id": "12ab", "text": "hi"}, "recipient_id"),
    ({"recipient_id": "0123456789", "text": "hi"}, "recipient_id"),
    ({"recipient_id": PSID + "/../../me", "text": "hi"}, "recipient_id"),
    ({"recipient_id": 7712345678901234, "text": "hi"}, "recipient_id"),
    ({"recipient_id": PSID, "text": "x" * 2001}, "text"),
    ({"recipient_id": PSID, "text": ""}, "text"),
    ({"recipient_id": PSID}, "text"),
    ({"recipient_id": PSID, "text": "a", "attachment": {"type": "image", "url": "https://e.com/a.png"}}, "text"),
    ({"recipient_id": PSID, "attachment": {"type": "image", "url": "ftp://e.com/a.png"}}, "attachment.url"),
    ({"recipient_id": PSID, "attachment": {"type": "image", "url": "https://"}}, "attachment.url"),
    ({"recipient_id": PSID, "attachment": {"type": "image", "url": "https://e.com/a b.png"}}, "attachment.url"),
    ({"recipient_id": PSID, "attachment": {"type": "video", "url": "https://e.com/a.mp4"}}, "attachment.type"),
    ({"recipient_id": PSID, "text": "x" * 641, "buttons": [{"type": "postback", "title": "A", "payload": "A"}]},
     "text"),
    ({"recipient_id": PSID, "text": "a", "buttons": [{"type": "web_url", "title": "A"}]}, "buttons.0.url"),
    ({"recipient_id": PSID, "text": "a", "quick_replies": [{"title": "x" * 21, "payload": "p"}]},
     "quick_replies.0.title"),
    ({"recipient_id": PSID, "text": "a", "tag": "PROMOTION"}, "tag"),
])
def test_bad_input_names_the_field_and_reaches_no_provider(app, client, page, messenger, body, field):
    org_dict, headers = page
    customer_wrote(app, messenger, org_dict["id"])
    response = client.post("/api/v1/messenger/messages", json=body, headers=headers)
    assert response.status_code == 422, response.json
    assert response.json["code"] == "validation_error"
    assert response.json["field"] == field, response.json
    assert messenger.sends() == []


def test_bad_sender_action_is_refused(client, page, messenger):
    _, headers = page
    response = client.post("/api/v1/messenger/sender-actions", json={"recipient_id": PSID, "action": "typing"},
                           headers=headers)
    assert response.status_code == 422 and response.json["field"] == "action"
    assert messenger.sends() == []
