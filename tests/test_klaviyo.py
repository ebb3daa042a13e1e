"""Klaviyo actions end to end: the app's test client in front, the Klaviyo emulator behind."""

import json
import time

import pytest

from tests.conftest import KLAVIYO_KEYS, org_headers

EVENTS, SUBSCRIBE, IMPORT = "/api/events", "/api/profile-subscription-bulk-create-jobs", "/api/profile-import"
LIST = "LAbC01"


def connect(client, headers, company="AbC123"):
    return client.put("/api/v1/integrations/klaviyo", json={"account_identifier": {"companyId": company}},
                      headers=headers)


@pytest.fixture
def kl(client, org, klaviyo):
    """``acme`` with Klaviyo account AbC123 connected (verified against the emulator)."""
    _, headers = org
    response = connect(client, headers)
    assert response.status_code == 201, response.json
    assert response.json["status"] == "connected"
    klaviyo.reset()
    return headers


def event_body(**extra):
    return {"metric": "Viewed Product", "email": "ada@example.com", "properties": {"sku": "MUG-1"}, **extra}


# --- connecting verifies ----------------------------------------------------------------------


def test_connect_checks_the_keys_account_is_the_named_company(client, org, klaviyo):
    _, headers = org
    assert connect(client, headers).status_code == 201
    call = klaviyo.calls("/api/accounts")[0]
    assert call["headers"]["authorization"] == f"Klaviyo-API-Key {KLAVIYO_KEYS['AbC123']}"
    assert call["headers"]["revision"] == "2026-07-15"


def test_connect_with_a_key_of_another_account_is_422_account_not_reachable(make_app, klaviyo):
    # The single key belongs to XyZ789, but the org names AbC123.
    client = make_app(KLAVIYO_PRIVATE_API_KEYS=None, KLAVIYO_PRIVATE_API_KEY=KLAVIYO_KEYS["XyZ789"]).test_client()
    response = connect(client, org_headers(client, "kl"))
    assert response.status_code == 422
    assert response.json["code"] == "account_not_reachable"
    assert "XyZ789" in response.json["detail"]


def test_connect_with_a_wrong_key_is_422_and_the_key_is_never_shown(make_app, klaviyo):
    client = make_app(KLAVIYO_PRIVATE_API_KEYS=json.dumps({"AbC123": "pk_wrong_value_123456"})).test_client()
    response = connect(client, org_headers(client, "kl"))
    assert response.status_code == 422
    assert response.json["code"] == "account_not_reachable"
    assert "pk_wrong" not in response.get_data(as_text=True)


def test_unconfigured_klaviyo_is_503_provider_not_configured(make_app, klaviyo):
    client = make_app(KLAVIYO_PRIVATE_API_KEYS=None).test_client()
    response = connect(client, org_headers(client, "kl"))
    assert response.status_code == 503
    assert response.json["code"] == "provider_not_configured"
    assert klaviyo.received == []


# --- actions ------------------------------------------------------------------------------------


def test_subscribe_sends_explicit_consent_for_each_channel(client, kl, klaviyo):
    response = client.post(f"/api/v1/klaviyo/lists/{LIST}/subscriptions", headers=kl,
                           json={"email": "ada@example.com", "phone_number": "+15005550006", "consent": True})
    assert response.status_code == 202, response.json
    assert response.json == {"status": "accepted", "list_id": LIST, "email": "ada@example.com",
                             "phone_number": "+15005550006"}
    sent = klaviyo.calls(SUBSCRIBE)[0]
    assert sent["headers"]["content-type"] == "application/vnd.api+json"
    profile = sent["json"]["data"]["attributes"]["profiles"]["data"][0]["attributes"]
    assert profile["subscriptions"] == {"email": {"marketing": {"consent": "SUBSCRIBED"}},
                                        "sms": {"marketing": {"consent": "SUBSCRIBED"}}}
    assert klaviyo.subscriptions["AbC123"][0]["list"] == LIST


def test_subscribe_without_consent_is_422_and_nothing_is_sent(client, kl, klaviyo):
    for body, field in [({"email": "ada@example.com"}, "consent"), ({"email": "ada@example.com", "consent": False},
                                                                     "consent"), ({"consent": True}, "email")]:
        response = client.post(f"/api/v1/klaviyo/lists/{LIST}/subscriptions", headers=kl, json=body)
        assert response.status_code == 422, body
        assert response.json["field"] == field
    assert klaviyo.received == []


def test_subscribe_to_an_unknown_list_is_404_list_not_found(client, kl):
    response = client.post("/api/v1/klaviyo/lists/Nope12/subscriptions", headers=kl,
                           json={"email": "ada@example.com", "consent": True})
    assert response.status_code == 404
    assert response.json["code"] == "list_not_found"


def test_track_event_sends_metric_profile_and_a_unique_id(client, kl, klaviyo):
    response = client.post("/api/v1/klaviyo/events", headers=kl, json=event_body(value=9.5, value_currency="USD"))
    assert response.status_code == 202, response.json
    sent = klaviyo.calls(EVENTS)[0]["json"]["data"]["attributes"]
    assert sent["metric"]["data"]["attributes"]["name"] == "Viewed Product"
    assert sent["profile"]["data"]["attributes"] == {"email": "ada@example.com"}
    assert sent["unique_id"] == response.json["unique_id"]
    assert len(klaviyo.events["AbC123"]) == 1


def test_same_idempotency_key_counts_once_at_klaviyo_even_when_resent(make_app, klaviyo):
    client = make_app(IDEMPOTENCY_KEY_TTL="1").test_client()
    headers = org_headers(client, "acme")
    assert connect(client, headers).status_code == 201
    keyed = {**headers, "Idempotency-Key": "4b0c3f7e-9f55-4a4e-8d0a-1f6f3c2b9a10"}
    first = client.post("/api/v1/klaviyo/events", headers=keyed, json=event_body())
    assert first.status_code == 202
    time.sleep(1.2)  # the saved answer expires: the same request runs again and reaches Klaviyo
    again = client.post("/api/v1/klaviyo/events", headers=keyed, json=event_body())
    assert again.status_code == 202
    assert again.headers.get("Idempotent-Replayed") is None
    assert len(klaviyo.calls(EVENTS)) == 2
    assert len(klaviyo.events["AbC123"]) == 1  # Klaviyo dropped the repeat by unique_id
    assert first.json["unique_id"] == again.json["unique_id"]


def test_an_event_whose_answer_was_lost_is_retried_and_counts_once(client, kl, klaviyo):
    klaviyo.inject("http_503", path=EVENTS, after=True)  # recorded, then the answer fails
    response = client.post("/api/v1/klaviyo/events", headers=kl, json=event_body())
    assert response.status_code == 202
    assert len(klaviyo.calls(EVENTS)) == 2
    assert len(klaviyo.events["AbC123"]) == 1


def test_two_orgs_same_idempotency_key_are_two_events(client, kl, new_org, klaviyo):
    _, other = new_org("globex")
    klaviyo_key = {"Idempotency-Key": "same-key-0001"}
    assert client.put("/api/v1/integrations/klaviyo", json={"account_identifier": {"companyId": "XyZ789"}},
                      headers=other).status_code == 201
    a = client.post("/api/v1/klaviyo/events", headers={**kl, **klaviyo_key}, json=event_body())
    b = client.post("/api/v1/klaviyo/events", headers={**other, **klaviyo_key}, json=event_body())
    assert a.json["unique_id"] != b.json["unique_id"]


def test_profile_upsert_creates_then_updates(client, kl, klaviyo):
    created = client.post("/api/v1/klaviyo/profiles", headers=kl, json={"email": "ada@example.com", "first_name": "Ada"})
    assert created.status_code == 201, created.json
    assert created.json["created"] is True and created.json["first_name"] == "Ada"
    updated = client.post("/api/v1/klaviyo/profiles", headers=kl, json={"email": "ada@example.com", "last_name": "L"})
    assert updated.status_code == 200
    assert updated.json["id"] == created.json["id"] and updated.json["created"] is False


def test_lists_page_with_the_one_cursor_convention(client, kl, klaviyo):
    first = client.get("/api/v1/klaviyo/lists?limit=10", headers=kl)
    assert first.status_code == 200, first.json
    assert len(first.json["data"]) == 10 and first.json["next_cursor"]
    second = client.get("/api/v1/klaviyo/lists", query_string={"cursor": first.json["next_cursor"]}, headers=kl)
    assert [row["name"] for row in second.json["data"]] == ["Referrals", "Holiday"]
    assert second.json["next_cursor"] is None


def test_segments_and_campaigns_by_channel(client, kl, klaviyo):
    segments = client.get("/api/v1/klaviyo/segments", headers=kl)
    assert [s["name"] for s in segments.json["data"]] == ["Repeat purchasers", "Engaged 30 days", "Lapsed"]
    sms = client.get("/api/v1/klaviyo/campaigns?channel=sms", headers=kl)
    assert sms.status_code == 200, sms.json
    assert [(c["name"], c["channel"]) for c in sms.json["data"]] == [("Flash sale text", "sms")]
    assert "filter=equals%28messages.channel%2C%27sms%27%29" in klaviyo.calls("/api/campaigns")[0]["query"]
    assert client.get("/api/v1/klaviyo/campaigns", headers=kl).json["field"] == "channel"


# --- bad input: 422, nothing reaches Klaviyo ----------------------------------------------------


@pytest.mark.parametrize("list_id", ["123/../x", "123%2F..", "a" * 65, "Lé123", "123?x=", "..", "L 1"])
def test_bad_list_ids_are_422_and_reach_nothing(client, kl, klaviyo, list_id):
    response = client.post(f"/api/v1/klaviyo/lists/{list_id}/subscriptions", headers=kl,
                           json={"email": "ada@example.com", "consent": True})
    assert response.status_code in (404, 422) if "?" in list_id else response.status_code == 422
    assert klaviyo.received == []


@pytest.mark.parametrize("body, field", [
    ({"metric": "M", "email": "not-an-email"}, "email"),
    ({"metric": "M", "email": "adá@example.com"}, "email"),
    ({"metric": "M", "email": "a" * 250 + "@example.com"}, "email"),
    ({"metric": "M", "phone_number": "5550006"}, "phone_number"),
    ({"metric": "M", "phone_number": "+1555０006"}, "phone_number"),
    ({"metric": "", "email": "ada@example.com"}, "metric"),
    ({"metric": "x" * 129, "email": "ada@example.com"}, "metric"),
    ({"metric": "Bought\n", "email": "ada@example.com"}, "metric"),
    ({"metric": "M"}, "email"),
    ({"metric": "M", "email": "ada@example.com", "value": "NaN"}, "value"),
    ({"metric": "M", "email": "ada@example.com", "time": "2026-01-01T00:00:00"}, "time"),
])
def test_bad_event_input_is_422_naming_the_field(client, kl, klaviyo, body, field):
    response = client.post("/api/v1/klaviyo/events", headers=kl, json=body)
    assert response.status_code == 422, response.json
    assert response.json["field"] == field
    assert klaviyo.received == []


@pytest.mark.parametrize("query, field", [
    ({"cursor": "!!"}, "cursor"), ({"cursor": "x" * 600}, "cursor"), ({"cursor": "bm90LWpzb24"}, "cursor"),
    ({"limit": 11}, "limit"), ({"limit": 0}, "limit"), ({"cursor": "é"}, "cursor"),
])
def test_bad_list_arguments_are_422(client, kl, klaviyo, query, field):
    response = client.get("/api/v1/klaviyo/lists", query_string=query, headers=kl)
    assert response.status_code == 422
    assert response.json["field"] == field
    assert klaviyo.received == []


# --- upstream failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("fault, params, status, code", [
    ("http_429", {"retry_after": 7}, 429, "upstream_rate_limited"),
    ("http_429", {}, 429, "upstream_rate_limited"),
    ("http_500", {}, 502, "upstream_bad_response"),
    ("http_502", {}, 502, "upstream_bad_response"),
    ("http_503", {}, 502, "upstream_bad_response"),
    ("redirect", {"location": "http://evil.example/steal"}, 502, "upstream_bad_response"),
    ("garbage", {}, 502, "upstream_bad_response"),
    ("respond", {"body": '{"data": [{"type": "list", "id": 5}]}'}, 502, "upstream_bad_response"),
    ("respond", {"body": "[1, 2"}, 502, "upstream_bad_response"),
])
def test_upstream_failures_map_to_documented_errors_and_are_audited(client, kl, klaviyo, audit_rows,
                                                                    fault, params, status, code):
    klaviyo.inject(fault, times=5, **params)
    response = client.get("/api/v1/klaviyo/lists", headers=kl)
    assert response.status_code == status, response.json
    assert response.json["code"] == code
    if status == 429:
        assert int(response.headers["Retry-After"]) >= 1
        if params:
            assert response.headers["Retry-After"] == "7"
    rows = [r for r in audit_rows(action="proxy.request") if r.provider == "klaviyo"]
    assert rows[-1].outcome == "failure" and rows[-1].detail["error"] == code
    assert KLAVIYO_KEYS["AbC123"] not in json.dumps([r.detail for r in rows])


def test_a_redirect_never_carries_the_key_to_another_host(client, kl, klaviyo):
    klaviyo.inject("redirect", location="http://127.0.0.1:9/api/lists")
    assert client.get("/api/v1/klaviyo/lists", headers=kl).status_code == 502
    assert len(klaviyo.received) == 1


def test_write_not_resent_on_5xx_but_reads_are_retried(client, kl, klaviyo):
    klaviyo.inject("http_503", path=SUBSCRIBE)
    response = client.post(f"/api/v1/klaviyo/lists/{LIST}/subscriptions", headers=kl,
                           json={"email": "ada@example.com", "consent": True})
    assert response.status_code == 502
    assert len(klaviyo.calls(SUBSCRIBE)) == 1
    klaviyo.inject("http_503", path="/api/lists")
    assert client.get("/api/v1/klaviyo/lists", headers=kl).status_code == 200
    assert len(klaviyo.calls("/api/lists")) == 2


def test_slow_answer_past_the_read_timeout_is_504(client, kl, klaviyo):
    klaviyo.inject("slow", times=5, seconds=1.5)
    started = time.monotonic()
    response = client.get("/api/v1/klaviyo/segments", headers=kl)
    assert response.status_code == 504
    assert time.monotonic() - started < 10


def test_a_key_klaviyo_refuses_later_is_502_upstream_auth_failed(client, kl, klaviyo):
    klaviyo.keys["AbC123"] = "pk_rotated_elsewhere_0000000"
    try:
        response = client.get("/api/v1/klaviyo/lists", headers=kl)
    finally:
        klaviyo.keys["AbC123"] = KLAVIYO_KEYS["AbC123"]
    assert response.status_code == 502 and response.json["code"] == "upstream_auth_failed"


def test_klaviyo_refusing_the_callers_phone_is_422_on_that_field(client, kl, klaviyo):
    body = ('{"errors": [{"id": "e1", "status": 400, "code": "invalid", "title": "Invalid input.", "detail": "x",'
            ' "source": {"pointer": "/data/attributes/phone_number"}}]}')
    klaviyo.inject("respond", body=body, status=400)
    response = client.post("/api/v1/klaviyo/profiles", headers=kl, json={"phone_number": "+15005550006"})
    assert response.status_code == 422 and response.json["field"] == "phone_number"


def test_every_attempt_is_audited_with_the_upstream_status(client, kl, klaviyo, audit_rows):
    client.get("/api/v1/klaviyo/lists", headers=kl)
    client.post("/api/v1/klaviyo/events", headers=kl, json=event_body())
    rows = [r for r in audit_rows(action="proxy.request") if r.provider == "klaviyo"]
    assert [(r.detail["operation"], r.status_code, r.target) for r in rows] == [
        ("lists.list", 200, "AbC123"), ("events.create", 202, "AbC123")]
    assert rows[0].detail["upstream_status"] == 200


# --- isolation -----------------------------------------------------------------------------------


def test_org_b_cannot_act_through_org_as_account(client, kl, new_org, klaviyo):
    _, other = new_org("globex")
    for method, path, body in [("get", "/api/v1/klaviyo/lists", None), ("get", "/api/v1/klaviyo/segments", None),
                               ("get", "/api/v1/klaviyo/campaigns?channel=email", None),
                               ("post", "/api/v1/klaviyo/events", event_body()),
                               ("post", f"/api/v1/klaviyo/lists/{LIST}/subscriptions",
                                {"email": "ada@example.com", "consent": True}),
                               ("post", "/api/v1/klaviyo/profiles", {"email": "ada@example.com"})]:
        response = getattr(client, method)(path, headers=other, json=body)
        assert response.status_code == 409 and response.json["code"] == "integration_not_connected"
    claimed = connect(client, other)  # naming A's account: the claim policy refuses it
    assert claimed.status_code == 409 and claimed.json["code"] == "account_claimed"
    assert klaviyo.received == []


def test_org_b_sees_only_its_own_account(client, kl, new_org, klaviyo):
    _, other = new_org("globex")
    assert connect(client, other, "XyZ789").status_code == 201
    names = {row["id"][:4] for row in client.get("/api/v1/klaviyo/lists", headers=other).json["data"]}
    assert names == {"LXyZ"}
