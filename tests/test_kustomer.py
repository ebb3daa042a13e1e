"""Kustomer through Switchboard, against the Kustomer emulator on loopback."""

from __future__ import annotations

import json

import pytest

from sandbox.kustomer import make_key

def _connect(client, headers, subdomain="demo"):
    return client.put("/api/v1/integrations/kustomer", json={"account_identifier": {"subdomain": subdomain}},
                      headers=headers)


@pytest.fixture
def kz(client, org, kustomer):
    """``acme`` with the Kustomer org ``demo`` connected; the emulator's log emptied."""
    _, headers = org
    response = _connect(client, headers)
    assert response.status_code == 201, response.json
    kustomer.received.clear()
    return headers


def _sent(kustomer):
    return [r for r in kustomer.received]


# --- connecting -------------------------------------------------------------------------------


def test_connect_verifies_the_key_and_its_org(client, org, kustomer):
    _, headers = org
    response = _connect(client, headers)
    assert response.status_code == 201, response.json
    calls = _sent(kustomer)
    assert [c["path"] for c in calls] == ["/v1/auth/tokens/current"]
    assert calls[0]["headers"]["authorization"] == f"Bearer {kustomer.keys['demo']}"


def test_connect_refuses_a_subdomain_the_key_does_not_belong_to(make_app, kustomer):
    # One key for every subdomain: its payload names the org 'demo', so 'other-co' is refused.
    app = make_app(KUSTOMER_API_KEYS=None, KUSTOMER_API_KEY=kustomer.keys["demo"])
    client = app.test_client()
    from tests.conftest import org_headers

    headers = org_headers(client)
    response = _connect(client, headers, "other-co")
    assert response.status_code == 422 and response.json["code"] == "account_not_reachable"
    assert "demo" in response.json["detail"]
    assert kustomer.keys["demo"] not in json.dumps(response.json)
    assert _connect(client, headers, "demo").status_code == 201


def test_connect_refuses_a_key_kustomer_rejects(make_app, kustomer):
    app = make_app(KUSTOMER_API_KEYS=json.dumps({"demo": make_key("f" * 24, "demo", "forged")}))
    client = app.test_client()
    from tests.conftest import org_headers

    response = _connect(client, org_headers(client))
    assert response.status_code == 422 and response.json["code"] == "account_not_reachable"


def test_connect_refuses_a_key_whose_payload_names_another_org(make_app, kustomer):
    # The map says 'other' but the key Kustomer accepts is demo's: its payload says so.
    app = make_app(KUSTOMER_API_KEYS=json.dumps({"other": kustomer.keys["demo"]}))
    client = app.test_client()
    from tests.conftest import org_headers

    response = _connect(client, org_headers(client), "other")
    assert response.status_code == 422 and response.json["code"] == "account_not_reachable"


def test_a_second_org_cannot_claim_a_connected_subdomain(client, kz, new_org):
    _, other = new_org("beta")
    response = _connect(client, other)
    assert response.status_code == 409 and response.json["code"] == "account_claimed"


# --- actions: success -------------------------------------------------------------------------


def test_customer_lookup_by_email_and_phone(client, kz, kustomer):
    ada = kustomer.customer("demo")
    by_email = client.get("/api/v1/kustomer/customers?email=ADA@example.com", headers=kz)
    assert by_email.status_code == 200, by_email.json
    assert by_email.json["id"] == ada["id"] and by_email.json["emails"] == ["ada@example.com"]
    by_phone = client.get("/api/v1/kustomer/customers?phone=%2B14155550101", headers=kz)
    assert by_phone.status_code == 200 and by_phone.json["id"] == ada["id"]
    raw = [r["raw_path"] for r in kustomer.received]
    assert any("email=ADA%40example.com" in (p or "") for p in raw), raw
    assert any("phone=%2B14155550101" in (p or "") for p in raw), raw
    missing = client.get("/api/v1/kustomer/customers?email=nobody@example.com", headers=kz)
    assert missing.status_code == 404 and missing.json["code"] == "customer_not_found"


def test_conversations_are_paginated_with_opaque_cursors(client, kz, kustomer):
    ada = kustomer.customer("demo")
    url = f"/api/v1/kustomer/customers/{ada['id']}/conversations"
    first = client.get(url + "?limit=2", headers=kz)
    assert first.status_code == 200, first.json
    assert len(first.json["data"]) == 2 and first.json["next_cursor"]
    second = client.get(url + f"?cursor={first.json['next_cursor']}", headers=kz)
    assert second.status_code == 200 and len(second.json["data"]) == 1 and second.json["next_cursor"] is None
    ids = [c["id"] for c in first.json["data"] + second.json["data"]]
    assert len(set(ids)) == 3
    assert all(c["customer_id"] == ada["id"] for c in first.json["data"])
    # A cursor of another customer's list is refused before any call.
    grace = kustomer.customer("demo", 1)
    kustomer.received.clear()
    other = client.get(f"/api/v1/kustomer/customers/{grace['id']}/conversations?cursor={first.json['next_cursor']}",
                       headers=kz)
    assert other.status_code == 422 and other.json["code"] == "invalid_cursor"
    assert kustomer.received == []


def test_create_ticket_with_first_message_and_add_a_note(client, kz, kustomer):
    ada = kustomer.customer("demo")
    created = client.post("/api/v1/kustomer/conversations", headers=kz, json={
        "customer_id": ada["id"], "subject": "Where is my order?", "message": "Order 1001 has not arrived."})
    assert created.status_code == 201, created.json
    body = created.json
    assert body["first_message_status"] == "recorded" and body["first_message"]["direction"] == "in"
    assert body["conversation"]["subject"] == "Where is my order?" and body["conversation"]["status"] == "open"
    conversation_id = body["conversation"]["id"]
    posts = [r for r in kustomer.received if r["method"] == "POST"]
    assert [p["path"] for p in posts] == ["/v1/conversations", f"/v1/conversations/{conversation_id}/messages"]
    assert posts[0]["json"] == {"customer": ada["id"], "name": "Where is my order?", "status": "open",
                                "externalId": posts[0]["json"]["externalId"]}
    assert posts[0]["json"]["externalId"].startswith("sb-") and posts[1]["json"]["externalId"].startswith("sb-")
    assert posts[1]["json"]["channel"] == "chat" and posts[1]["json"]["direction"] == "in"

    noted = client.post(f"/api/v1/kustomer/conversations/{conversation_id}/notes", headers=kz,
                        json={"body": "VIP customer, refund approved."})
    assert noted.status_code == 201, noted.json
    assert noted.json["conversation_id"] == conversation_id and noted.json["body"] == "VIP customer, refund approved."


def test_every_call_is_audited(client, kz, kustomer, audit_rows):
    ada = kustomer.customer("demo")
    client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz)
    kustomer.inject("http_503", times=5)
    client.get(f"/api/v1/kustomer/customers/{ada['id']}/conversations", headers=kz)
    client.get("/api/v1/kustomer/customers/zz/conversations", headers=kz)
    rows = [r for r in audit_rows(action="proxy.request") if r.provider == "kustomer"]
    assert [(r.detail["operation"], r.status_code) for r in rows] == [
        ("customers.lookup", 200), ("conversations.list", 502), ("conversations.list", 422)]
    assert rows[0].target == "demo" and rows[0].detail["upstream_status"] == 200
    assert len(kustomer.received) == 1 + 3  # the failing read was tried three times (retries: 2)
    for row in rows:
        assert kustomer.keys["demo"] not in json.dumps(row.detail)


# --- bad input never reaches Kustomer ---------------------------------------------------------

BAD_IDS = ["123", "123/../customers", "123%2F..", "123?x=", "a" * 500, "é" * 24, "0123456789ABCDEF01234567",
           "%2e%2e", "0123456789abcdef0123456/"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_bad_path_ids_are_422_and_send_nothing(client, kz, kustomer, bad):
    listed = client.get(f"/api/v1/kustomer/customers/{bad}/conversations", headers=kz)
    noted = client.post(f"/api/v1/kustomer/conversations/{bad}/notes", headers=kz, json={"body": "x"})
    for response in (listed, noted):
        assert response.status_code in (404, 422), response.json
        if response.status_code == 422:
            assert response.json["errors"][0]["field"] in ("customer_id", "conversation_id")
    if "?" not in bad:  # '?' ends the path: /customers/123 is then no route at all (404)
        assert listed.status_code == noted.status_code == 422
    assert kustomer.received == []


@pytest.mark.parametrize("query", [
    "", "email=a@example.com&phone=%2B14155550101", "email=not-an-email", "email=" + "a" * 250 + "@example.com",
    "email=%C3%A9@example.com", "phone=14155550101", "phone=%2B0123", "phone=%2B1415555010%2F..",
    "email=ada@example.com%2F..%2Fconversations",
])
def test_bad_lookup_queries_are_422_and_send_nothing(client, kz, kustomer, query):
    response = client.get(f"/api/v1/kustomer/customers?{query}", headers=kz)
    assert response.status_code == 422, (query, response.json)
    assert kustomer.received == []


@pytest.mark.parametrize("body", [
    {}, {"customer_id": "123", "subject": "s", "message": "m"},
    {"customer_id": "0" * 24, "subject": "", "message": "m"},
    {"customer_id": "0" * 24, "subject": "s", "message": "m" * 10_001},
    {"customer_id": "0" * 24, "subject": "s", "message": "m", "channel": "pigeon"},
    {"customer_id": "0" * 24, "subject": "s", "message": "m", "priority": 9},
    {"customer_id": "0" * 24, "subject": "s", "message": "m", "extra": 1},
])
def test_bad_ticket_bodies_are_422_and_send_nothing(client, kz, kustomer, body):
    response = client.post("/api/v1/kustomer/conversations", headers=kz, json=body)
    assert response.status_code == 422, (body, response.json)
    assert kustomer.received == []


def test_bad_cursor_and_limit_are_422(client, kz, kustomer):
    ada = kustomer.customer("demo")
    for query in ("cursor=forged", "cursor=" + "a" * 600, "limit=0", "limit=101", "cursor=%C3%A9"):
        response = client.get(f"/api/v1/kustomer/customers/{ada['id']}/conversations?{query}", headers=kz)
        assert response.status_code == 422, (query, response.json)
    assert kustomer.received == []


# --- upstream failures --------------------------------------------------------------------------


def test_429_with_retry_after_is_passed_on(client, kz, kustomer):
    kustomer.inject("http_429", times=10, retry_after=30)
    response = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz)
    assert response.status_code == 429 and response.json["code"] == "upstream_rate_limited"
    assert response.headers["Retry-After"] == "30"
    assert len(kustomer.received) == 1  # a wait past the deadline is not slept through


def test_429_without_retry_after_is_retried_then_passed_on(client, kz, kustomer):
    kustomer.inject("http_429", times=1)
    ok = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz)
    assert ok.status_code == 200 and len(kustomer.received) == 2
    kustomer.inject("http_429", times=10)
    response = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) >= 1


def test_the_emulators_own_window_answers_429(make_app, kustomer):
    import requests

    from sandbox.kustomer import KustomerEmulator
    from sandbox.server import serve

    emulator = KustomerEmulator(rate_limit=2)
    with serve(emulator.wsgi) as server:
        url = server.url + "/v1/customers/email=ada@example.com"
        auth = {"Authorization": f"Bearer {emulator.keys['demo']}"}
        answers = [requests.get(url, headers=auth, timeout=5) for _ in range(3)]
        assert [a.status_code for a in answers] == [200, 200, 429]
        assert answers[1].headers["x-ratelimit-remaining"] == "0" and int(answers[2].headers["Retry-After"]) >= 1

        emulator.reset()
        app = make_app(KUSTOMER_API_KEYS=json.dumps(emulator.keys), KUSTOMER_URL_TEMPLATE=server.url,
                       HTTP_MAX_RETRIES="0")
        client = app.test_client()
        from tests.conftest import org_headers

        headers = org_headers(client)
        assert _connect(client, headers).status_code == 201
        first = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=headers)
        assert first.status_code == 200
        sent = len(emulator.received)
        second = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=headers)
        assert second.status_code == 429 and int(second.headers["Retry-After"]) >= 1
        # x-ratelimit-remaining said 0: the account's budget refused it before sending (app/quota.py).
        assert len(emulator.received) == sent


@pytest.mark.parametrize("kind", ["http_500", "http_502", "http_503"])
def test_server_errors_are_retried_then_502(client, kz, kustomer, kind):
    kustomer.inject(kind, times=1)
    assert client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz).status_code == 200
    kustomer.inject(kind, times=10)
    response = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz)
    assert response.status_code == 502 and response.json["code"] == "upstream_bad_response"


def test_slow_answer_past_the_read_timeout_is_504(client, kz, kustomer):
    kustomer.inject("slow", times=10, seconds=1.5)
    response = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz)
    assert response.status_code == 504 and response.json["code"] == "upstream_timeout"


def test_redirect_is_never_followed_and_no_key_leaves(client, kz, kustomer):
    from sandbox.kustomer import KustomerEmulator
    from sandbox.server import serve

    foreign = KustomerEmulator(keys={})
    with serve(foreign.wsgi) as elsewhere:
        kustomer.inject("redirect", times=5, location=elsewhere.url + "/v1/customers/email=ada@example.com")
        response = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz)
        assert response.status_code == 502 and response.json["code"] == "upstream_bad_response"
        assert foreign.received == []


def test_malformed_json_is_502(client, kz, kustomer):
    kustomer.inject("garbage", times=1)
    response = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz)
    assert response.status_code == 502 and response.json["code"] == "upstream_bad_response"
    for body in ('{"data": {"id": "../../x", "attributes": {}}}', '{"data": [1]}', '[]', '{"data": {"id": 5}}'):
        kustomer.inject("respond", times=1, body=body)
        response = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz)
        assert response.status_code == 502, body


def test_wrong_key_after_connecting_is_502_auth_failed(client, kz, kustomer):
    kustomer.keys["demo"], real = "rotated", kustomer.keys["demo"]
    try:
        response = client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=kz)
    finally:
        kustomer.keys["demo"] = real
    assert response.status_code == 502 and response.json["code"] == "upstream_auth_failed"
    assert real not in response.get_data(as_text=True)
    assert len(kustomer.received) == 1  # a 401 is not retried


# --- writes are never re-sent blindly; Idempotency-Key --------------------------------------


def _conversations_of(kustomer, customer_id):
    return [c for c in kustomer.orgs["demo"]["conversations"].values() if c["customer"] == customer_id]


@pytest.mark.parametrize("fault", [
    {"kind": "http_503"},  # refused before anything was created
    {"kind": "http_500", "after": True},  # created, then the answer was lost
    {"kind": "slow", "seconds": 1.5},  # past the read timeout; Kustomer created it meanwhile
])
def test_a_re_sent_ticket_create_counts_once_at_kustomer(client, kz, kustomer, fault):
    ada = kustomer.customer("demo")
    before = len(_conversations_of(kustomer, ada["id"]))
    kustomer.inject(times=1, path="/v1/conversations", **fault)
    response = client.post("/api/v1/kustomer/conversations", headers=kz,
                           json={"customer_id": ada["id"], "subject": "s", "message": "m"})
    assert response.status_code == 201, response.json
    creates = [r for r in kustomer.received if r["path"] == "/v1/conversations"]
    assert len(creates) == 2  # re-sent once, with the same externalId
    assert creates[0]["json"]["externalId"] == creates[1]["json"]["externalId"]
    mine = _conversations_of(kustomer, ada["id"])
    assert len(mine) == before + 1  # counted once
    assert response.json["conversation"]["id"] == next(c["id"] for c in mine if c.get("externalId"))
    assert response.json["first_message_status"] == "recorded"


def test_the_external_id_comes_from_the_idempotency_key_and_the_org(client, kz, kustomer, new_org):
    from app.providers.kustomer.shapes import external_id

    ada = kustomer.customer("demo")
    ticket = {"customer_id": ada["id"], "subject": "s", "message": "m"}
    assert client.post("/api/v1/kustomer/conversations", headers={**kz, "Idempotency-Key": "ticket-key-0001"},
                       json=ticket).status_code == 201
    sent = [r["json"]["externalId"] for r in kustomer.received if r["method"] == "POST"]
    assert len(set(sent)) == 2 and all(x.startswith("sb-") and "ticket-key" not in x for x in sent)
    assert external_id("org-a", "k", "conversation") == external_id("org-a", "k", "conversation")
    assert external_id("org-a", "k", "conversation") not in (external_id("org-b", "k", "conversation"),
                                                             external_id("org-a", "k", "message"))


def test_a_duplicate_external_id_is_kustomers_409_and_reads_back_the_ticket(client, kz, kustomer):
    ada = kustomer.customer("demo")
    ticket = {"customer_id": ada["id"], "subject": "s", "message": "m"}
    first = client.post("/api/v1/kustomer/conversations", headers=kz, json=ticket)
    xid = next(r["json"]["externalId"] for r in kustomer.received if r["path"] == "/v1/conversations")
    import requests
    again = requests.post(kustomer.url + "/v1/conversations", timeout=5, json={"customer": ada["id"], "externalId": xid},
                          headers={"Authorization": f"Bearer {kustomer.keys['demo']}"})
    assert again.status_code == 409 and again.json()["errors"][0]["source"] == {"pointer": "/externalId"}
    assert first.status_code == 201 and len([c for c in _conversations_of(kustomer, ada["id"]) if c.get("externalId") == xid]) == 1


def test_message_failure_after_the_conversation_exists_is_still_201(client, kz, kustomer):
    ada = kustomer.customer("demo")
    kustomer.inject("http_503", times=5, path="/v1/conversations/*/messages")  # every attempt refused
    response = client.post("/api/v1/kustomer/conversations", headers=kz,
                           json={"customer_id": ada["id"], "subject": "s", "message": "m"})
    assert response.status_code == 201, response.json
    assert response.json["first_message_status"] == "not_recorded" and response.json["first_message"] is None
    assert len([r for r in kustomer.received if r["path"] == "/v1/conversations"]) == 1


def test_a_lost_answer_to_the_first_message_is_recorded_once(client, kz, kustomer):
    ada = kustomer.customer("demo")
    kustomer.inject("http_500", after=True, path="/v1/conversations/*/messages")
    response = client.post("/api/v1/kustomer/conversations", headers=kz,
                           json={"customer_id": ada["id"], "subject": "s", "message": "m"})
    assert response.status_code == 201 and response.json["first_message_status"] == "recorded"
    messages = list(kustomer.orgs["demo"]["messages"].values())
    assert len(messages) == 1 and messages[0]["externalId"].startswith("sb-")


def test_idempotency_key_replays_the_ticket_without_a_second_conversation(client, kz, kustomer):
    ada = kustomer.customer("demo")
    headers = {**kz, "Idempotency-Key": "7d1c6a0e-5a0e-4c7b-9a53-0f3f2b1c9d11"}
    ticket = {"customer_id": ada["id"], "subject": "s", "message": "m"}
    first = client.post("/api/v1/kustomer/conversations", headers=headers, json=ticket)
    again = client.post("/api/v1/kustomer/conversations", headers=headers, json=ticket)
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json == first.json
    assert len([r for r in kustomer.received if r["path"] == "/v1/conversations"]) == 1


# --- org isolation ------------------------------------------------------------------------------


def test_org_b_cannot_reach_org_a_account_by_any_id(client, kz, kustomer, new_org):
    ada = kustomer.customer("demo")
    _, beta = new_org("beta")
    paths = [("GET", "/api/v1/kustomer/customers?email=ada@example.com", None),
             ("GET", f"/api/v1/kustomer/customers/{ada['id']}/conversations", None),
             ("POST", "/api/v1/kustomer/conversations", {"customer_id": ada["id"], "subject": "s", "message": "m"}),
             ("POST", f"/api/v1/kustomer/conversations/{'a' * 24}/notes", {"body": "x"})]
    for method, path, body in paths:
        response = client.open(path, method=method, headers=beta, json=body)
        assert response.status_code == 409 and response.json["code"] == "integration_not_connected", path
    assert kustomer.received == []
    # Beta connects its own Kustomer org: A's ids are unknown there, and every call uses B's key.
    assert _connect(client, beta, "other").status_code == 201
    demo_conversation = next(iter(kustomer.orgs["demo"]["conversations"]))
    kustomer.received.clear()
    assert client.get("/api/v1/kustomer/customers?email=ada@example.com", headers=beta).status_code == 404
    assert client.get(f"/api/v1/kustomer/customers/{ada['id']}/conversations", headers=beta).status_code == 404
    assert client.post("/api/v1/kustomer/conversations", headers=beta,
                       json={"customer_id": ada["id"], "subject": "s", "message": "m"}).status_code in (404, 502)
    assert client.post(f"/api/v1/kustomer/conversations/{demo_conversation}/notes", headers=beta,
                       json={"body": "x"}).status_code == 404
    assert {r["org"] for r in kustomer.received} == {"other"}
    assert kustomer.orgs["demo"]["notes"] == {} and all(
        c["customer"] != ada["id"] for c in kustomer.orgs["other"]["conversations"].values())
