"""Events that arrive while a claim is pending: kept unattributed, then the org's on approval.

The admin's approval (or assignment over the pending claim) proves control of the account; what
arrived for it *since the org asked for it* becomes the org's, delivered and listed, in the
approval's transaction — and the customer's message opens the 24-hour window. What arrived before
the org's claim (or during another org's rejected claim) stays admin-only. docs/decisions.md,
"Events of a pending claim".
"""

import hashlib
import hmac
import json
import time
import uuid

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Delivery, InboundEvent
from tests.conftest import MESSENGER_APP_SECRET, messenger_env
from sandbox.server import serve
from tests.webhooks_support import SIGNING_KEY, Receiver

PAGE, PSID = "104512345678901", "7001002003004005"
PAGE_IDENTIFIER = {"account_identifier": {"pageId": PAGE}}


@pytest.fixture
def app(make_app, messenger):
    messenger.reset()
    return make_app(**messenger_env(messenger), CONNECT_REQUIRES_APPROVAL="true",
                    WEBHOOK_SIGNING_KEY=SIGNING_KEY, WEBHOOK_DELIVERY_TIMEOUT="2", SANDBOX="true")


def customer_writes(client, text: str, psid: str = PSID):
    now_ms = int(time.time() * 1000)
    body = json.dumps({"object": "page", "entry": [{"id": PAGE, "time": now_ms, "messaging": [{
        "sender": {"id": psid}, "recipient": {"id": PAGE}, "timestamp": now_ms,
        "message": {"mid": f"m_{uuid.uuid4().hex}", "text": text}}]}]}).encode()
    signature = hmac.new(MESSENGER_APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = client.post("/webhooks/messenger", data=body, headers={
        "X-Hub-Signature-256": f"sha256={signature}", "Content-Type": "application/json"})
    assert response.status_code == 200
    return body


def texts(events: list[dict]) -> list[str]:
    return [e["data"]["entry"][0]["messaging"][0]["message"]["text"] for e in events]


def stored(app):
    with app.app_context():
        return {e.payload["entry"][0]["messaging"][0]["message"]["text"]: e
                for e in db.session.execute(sa.select(InboundEvent)).scalars()}


def pending_claim(client, headers) -> str:
    response = client.put("/api/v1/integrations/messenger", json=PAGE_IDENTIFIER, headers=headers)
    assert response.json["status"] == "pending", response.json
    return response.json["id"]


def test_approval_gives_the_org_what_arrived_while_its_claim_was_pending(app, client, org, admin, audit_rows,
                                                                        messenger):
    org_row, headers = org
    customer_writes(client, "before anyone asked for the Page")
    integration_id = pending_claim(client, headers)
    customer_writes(client, "where is my order?")
    # Pending: not the org's yet (naming the Page is not owning it).
    assert client.get("/api/v1/events", headers=headers).json["data"] == []
    receiver = Receiver()
    with serve(receiver.wsgi) as server:
        endpoint = client.put("/api/v1/webhook-endpoint", json={"url": server.url + "/hooks"}, headers=headers)
        assert endpoint.status_code in (200, 201)

        approved = client.post(f"/api/v1/admin/integrations/{integration_id}/approve", json=PAGE_IDENTIFIER,
                               headers=admin)
        assert approved.status_code == 200 and approved.json["status"] == "connected"

        # The pending-time message is the org's now, with its delivery queued in the same commit.
        listed = client.get("/api/v1/events", headers=headers).json["data"]
        assert texts(listed) == ["where is my order?"]
        assert listed[0]["delivery"]["status"] == "pending"
        assert client.post("/api/v1/admin/deliveries/run?limit=10", headers=admin).status_code == 200
        [delivered] = receiver.requests
        assert "where is my order?" in delivered["body"].decode()
    events = stored(app)
    assert events["where is my order?"].status == "attributed"
    assert str(events["where is my order?"].organization_id) == org_row["id"]
    # What came before the org's claim stays admin-only.
    assert events["before anyone asked for the Page"].organization_id is None
    unattributed = client.get("/api/v1/admin/events?status=unattributed", headers=admin).json["data"]
    assert texts(unattributed) == ["before anyone asked for the Page"]
    [row] = audit_rows(action="webhook.attributed")
    assert str(row.organization_id) == org_row["id"] and row.target == PAGE and row.detail["events"] == 1
    assert row.actor == "admin"

    # The customer's message opened the 24-hour window: the org can reply now.
    messenger.open_window(PAGE, PSID, 0)  # Meta's side of the same fact
    reply = client.post("/api/v1/messenger/messages", json={"recipient_id": PSID, "text": "It shipped."},
                        headers=headers)
    assert reply.status_code == 200, reply.json

    # A provider retry of the same delivery is still one event; later messages attribute at once.
    customer_writes(client, "thanks!")
    assert texts(client.get("/api/v1/events", headers=headers).json["data"]) == ["thanks!", "where is my order?"]
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Delivery)).scalar() == 2


def test_a_rejected_squatter_never_sees_the_events_and_the_owner_gets_only_its_own_claims(app, client, new_org,
                                                                                      admin):
    (squatter, squatter_headers), (owner, owner_headers) = new_org("squatter"), new_org("owner")
    squatter_claim = pending_claim(client, squatter_headers)
    customer_writes(client, "during the squatter's claim")
    assert client.post(f"/api/v1/admin/integrations/{squatter_claim}/reject", json={}, headers=admin).status_code == 200
    owner_claim = pending_claim(client, owner_headers)
    customer_writes(client, "during the owner's claim")
    assert client.post(f"/api/v1/admin/integrations/{owner_claim}/approve", json=PAGE_IDENTIFIER,
                       headers=admin).status_code == 200
    assert texts(client.get("/api/v1/events", headers=owner_headers).json["data"]) == ["during the owner's claim"]
    assert client.get("/api/v1/events", headers=squatter_headers).json["data"] == []
    assert stored(app)["during the squatter's claim"].organization_id is None


def test_switching_the_pending_claim_to_another_page_and_back_restarts_it(app, client, org, admin):
    _, headers = org
    pending_claim(client, headers)
    customer_writes(client, "while the claim named this Page")
    other = client.put("/api/v1/integrations/messenger", json={"account_identifier": {"pageId": "204512345678902"}},
                       headers=headers)
    assert other.json["status"] == "pending"
    customer_writes(client, "while the claim named another Page")
    integration_id = pending_claim(client, headers)
    customer_writes(client, "after it named this Page again")
    assert client.post(f"/api/v1/admin/integrations/{integration_id}/approve", json=PAGE_IDENTIFIER,
                       headers=admin).status_code == 200
    assert texts(client.get("/api/v1/events", headers=headers).json["data"]) == ["after it named this Page again"]


def test_assigning_the_account_over_the_orgs_pending_claim_counts_as_approval(app, client, org, admin):
    org_row, headers = org
    pending_claim(client, headers)
    customer_writes(client, "hello?")
    assigned = client.put(f"/api/v1/admin/organizations/{org_row['id']}/integrations/messenger",
                          json=PAGE_IDENTIFIER, headers=admin)
    assert assigned.status_code == 200 and assigned.json["status"] == "connected", assigned.json
    [event] = client.get("/api/v1/events", headers=headers).json["data"]
    assert texts([event]) == ["hello?"] and event["delivery"] is not None


def test_an_assignment_without_a_pending_claim_gives_no_earlier_events(app, client, org, admin):
    org_row, headers = org
    customer_writes(client, "to an unclaimed Page")
    assigned = client.put(f"/api/v1/admin/organizations/{org_row['id']}/integrations/messenger",
                          json=PAGE_IDENTIFIER, headers=admin)
    assert assigned.status_code == 201
    assert client.get("/api/v1/events", headers=headers).json["data"] == []
