"""The 24-hour window end to end: a signed inbound Messenger webhook opens it, a reply goes out.

No direct call to ``record_inbound``: the customer's message arrives as Meta sends it (signed
with the app secret, to /webhooks/messenger), and the send goes to the Messenger emulator.
"""

import hashlib
import hmac
import json
import time
import uuid

import pytest

from tests.conftest import MESSENGER_APP_SECRET, messenger_env

PAGE, PSID = "104512345678901", "7001002003004005"


@pytest.fixture
def app(make_app, messenger):
    return make_app(**messenger_env(messenger), MESSENGER_VERIFY_TOKEN="round-trip-verify-token")


def _inbound(client, text="where is my order?"):
    now_ms = int(time.time() * 1000)
    body = json.dumps({"object": "page", "entry": [{"id": PAGE, "time": now_ms, "messaging": [{
        "sender": {"id": PSID}, "recipient": {"id": PAGE}, "timestamp": now_ms,
        "message": {"mid": f"m_{uuid.uuid4().hex}", "text": text}}]}]}).encode()
    signature = hmac.new(MESSENGER_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return client.post("/webhooks/messenger", data=body, headers={
        "X-Hub-Signature-256": f"sha256={signature}", "Content-Type": "application/json"})


def test_a_customer_message_opens_the_window_for_the_orgs_reply(client, org, messenger):
    _, headers = org
    assert client.put("/api/v1/integrations/messenger", json={"account_identifier": {"pageId": PAGE}},
                      headers=headers).status_code == 201
    reply = {"recipient_id": PSID, "text": "It shipped yesterday."}
    before = client.post("/api/v1/messenger/messages", json=reply, headers=headers)
    assert before.status_code == 422 and before.json["code"] == "outside_messaging_window"
    assert messenger.sends() == []

    assert _inbound(client).status_code == 200
    messenger.open_window(PAGE, PSID, 0)  # Meta's side of the same fact: the customer wrote

    after = client.post("/api/v1/messenger/messages", json=reply, headers=headers)
    assert after.status_code == 200, after.json
    assert len(messenger.sends()) == 1


def test_another_orgs_customer_writing_opens_no_window_here(client, new_org, messenger):
    _, owner = new_org()
    _, other = new_org()
    assert client.put("/api/v1/integrations/messenger", json={"account_identifier": {"pageId": PAGE}},
                      headers=owner).status_code == 201
    assert _inbound(client).status_code == 200
    # The other org has no Page connected at all: the owner's customer is not its customer.
    refused = client.post("/api/v1/messenger/messages", json={"recipient_id": PSID, "text": "hi"}, headers=other)
    assert refused.status_code == 409
