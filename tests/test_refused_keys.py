"""A key the shared budget just refused is answered before the app (app/proxy.py ``RefusedKeys``,
app/quota.py ``Guard.note_key``): the same 429 problem with ``Retry-After``, nothing sent, and
only that key, only that provider, only for a moment — through the API, the emulators behind.

The guard's clock is the test's (``frozen``): the moment a note lasts is moved by hand, not waited.
"""


import pytest

from app.keys import digest, generate
from app.providers import PROVIDERS
from app.quota import KEY_NOTE_FOR, MAX_NOTED_KEYS, BudgetRefusal, Guard, MemoryStore, Reading
from tests.conftest import org_headers
from tests.test_quota import PRODUCT, _shared_bucket, connect, graphql_calls, small_bucket  # noqa: F401

REFUSED = "upstream_rate_limited"


def _flood_until_refused(client, headers, limit=10):
    """Call the product lookup until the budget refuses it; that first 429 (full path)."""
    for _ in range(limit):
        response = client.get(PRODUCT, headers=headers)
        if response.status_code == 429:
            return response
        assert response.status_code == 200, response.json
    raise AssertionError("the budget never refused the flood")


def _key(headers):
    return headers["Authorization"].split(" ", 1)[1]


def test_a_refused_key_gets_its_next_429s_before_the_app(make_app, small_bucket, frozen, audit_rows):
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=small_bucket.url + "/shops/{shop}")
    app.extensions["upstream_guard"].clock = frozen
    client = app.test_client()
    headers = org_headers(client)
    connect(client, headers, "demo-store")
    first = _flood_until_refused(client, headers)
    # The first refusal took the whole path: the org's limit headers, an audit row.
    assert first.json["code"] == REFUSED and "X-RateLimit-Limit" in first.headers
    sent = graphql_calls(small_bucket, "demo-store")
    audited = len(audit_rows(status_code=429))
    assert audited == 1
    again = [client.get(PRODUCT, headers={**headers, "X-Request-ID": f"flood-{n:04d}"}) for n in range(3)]
    for n, response in enumerate(again):
        assert response.status_code == 429
        assert response.mimetype == "application/problem+json"
        assert response.headers["Retry-After"] == first.headers["Retry-After"]
        assert response.headers["X-Request-ID"] == f"flood-{n:04d}"
        assert response.json == {
            "type": "https://switchboard.dev/problems/upstream_rate_limited", "title": first.json["title"],
            "status": 429, "detail": first.json["detail"], "code": REFUSED, "provider": "shopify",
            "request_id": f"flood-{n:04d}", "instance": f"urn:request:flood-{n:04d}",
        }
        # Answered before the app: no limiter headers, nothing sent, no audit row.
        assert not any(name.startswith("X-RateLimit") for name in response.headers.keys())
    assert graphql_calls(small_bucket, "demo-store") == sent
    assert len(audit_rows(status_code=429)) == audited
    # A request id that is not one of ours is replaced, as the app does.
    odd = client.get(PRODUCT, headers={**headers, "X-Request-ID": "bad id"})
    assert odd.status_code == 429 and odd.json["request_id"] != "bad id" and len(odd.json["request_id"]) == 32


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
@pytest.mark.parametrize("small_bucket", [1000], indirect=True)
def test_the_other_org_on_the_same_bucket_is_not_refused_by_the_note(make_app, small_bucket, store_kind, frozen):
    app, flooder, quiet = _shared_bucket(make_app, small_bucket, store_kind)
    app.extensions["upstream_guard"].clock = frozen
    client = app.test_client()
    assert client.get(PRODUCT, headers=quiet).status_code == 200  # two orgs use the account
    _flood_until_refused(client, flooder, limit=80)  # refused once the bucket is below half
    for _ in range(5):
        before = graphql_calls(small_bucket, "demo-store")
        assert client.get(PRODUCT, headers=flooder).status_code == 429
        assert graphql_calls(small_bucket, "demo-store") == before  # the flood's call: not sent
        served = client.get(PRODUCT, headers=quiet)
        assert served.status_code == 200, served.json
        assert graphql_calls(small_bucket, "demo-store") == before + 1  # the quiet org's: sent
    assert app.extensions["upstream_guard"].noted(digest(_key(flooder)))
    assert not app.extensions["upstream_guard"].noted(digest(_key(quiet)))


def test_a_note_ends_after_a_moment_and_the_app_answers_again(make_app, small_bucket, frozen):
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=small_bucket.url + "/shops/{shop}")
    guard = app.extensions["upstream_guard"]
    guard.clock = frozen
    client = app.test_client()
    headers = org_headers(client)
    connect(client, headers, "demo-store")
    _flood_until_refused(client, headers)
    assert "X-RateLimit-Limit" not in client.get(PRODUCT, headers=headers).headers  # the note answered
    frozen.now += KEY_NOTE_FOR + 0.01
    # The note is over: the app answers (still 429, the bucket has not refilled enough) ...
    later = client.get(PRODUCT, headers=headers)
    assert later.status_code == 429 and "X-RateLimit-Limit" in later.headers
    # ... and that refusal notes the key again.
    assert "X-RateLimit-Limit" not in client.get(PRODUCT, headers=headers).headers


def test_the_note_is_for_one_provider_and_its_routes_only(make_app, small_bucket, klaviyo, frozen):
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=small_bucket.url + "/shops/{shop}")
    app.extensions["upstream_guard"].clock = frozen
    client = app.test_client()
    headers = org_headers(client)
    connect(client, headers, "demo-store")
    response = client.put("/api/v1/integrations/klaviyo", json={"account_identifier": {"companyId": "AbC123"}},
                          headers=headers)
    assert response.status_code == 201, response.json
    _flood_until_refused(client, headers)
    assert client.get(PRODUCT, headers=headers).status_code == 429
    klaviyo.reset()
    lists = client.get("/api/v1/klaviyo/lists", headers=headers)
    assert lists.status_code == 200, lists.json
    assert klaviyo.received  # the call reached Klaviyo
    assert client.get("/api/v1/integrations", headers=headers).status_code == 200  # not a provider action


def test_only_a_key_that_authenticated_and_was_refused_is_noted(make_app, small_bucket, frozen):
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=small_bucket.url + "/shops/{shop}")
    guard = app.extensions["upstream_guard"]
    guard.clock = frozen
    client = app.test_client()
    headers = org_headers(client)
    connect(client, headers, "demo-store")
    _flood_until_refused(client, headers)
    assert list(guard.noted_keys) == [digest(_key(headers))]
    key = _key(headers)
    unknown, malformed = generate(test=True), key[:-1] + ("y" if key.endswith("x") else "x")  # never the key itself
    for presented in ({"Authorization": f"Bearer {unknown}"}, {"X-API-Key": malformed}, {}):
        for _ in range(2):  # refused by authentication each time, never by a note
            assert client.get(PRODUCT, headers=presented).status_code == 401
    # The noted key in the other header is the same key: X-API-Key is read as the app reads it.
    assert client.get(PRODUCT, headers={"X-API-Key": _key(headers)}).status_code == 429
    assert list(guard.noted_keys) == [digest(_key(headers))]


# --- the guard's notes, directly -----------------------------------------------------------------


def _refused_guard(clock, wait_reset=30):
    """A guard that has just refused org ``busy`` on klaviyo:AbC123 (the bucket is spent)."""
    guard = Guard(MemoryStore(), clock=clock)
    guard.record(guard.admit("klaviyo", "AbC123", "busy"), Reading(limit=100, remaining=0, reset=wait_reset), False)
    with pytest.raises(BudgetRefusal) as refused:
        guard.admit("klaviyo", "AbC123", "busy")
    return guard, refused.value


def test_a_note_lasts_until_the_retry_after_the_key_was_given(frozen):
    guard, refused = _refused_guard(frozen, wait_reset=0.3)
    assert 0 < refused.wait <= 0.3 and refused.headers["Retry-After"] == "1"
    guard.note_key("d" * 64, "klaviyo", "busy", refused.wait)
    assert guard.refused_key("d" * 64, "klaviyo") == 1
    assert guard.refused_key("d" * 64, "shopify") is None
    frozen.now += 0.5  # past the exact wait, within the second the caller was told to wait
    assert guard.refused_key("d" * 64, "klaviyo") == 1
    frozen.now += 0.501
    assert guard.refused_key("d" * 64, "klaviyo") is None
    assert not guard.noted("d" * 64)  # the expired note is dropped


def test_a_key_is_noted_only_for_an_org_the_budget_refused(frozen):
    guard, refused = _refused_guard(frozen)
    guard.note_key("e" * 64, "klaviyo", "another-org", refused.wait)  # not the refused org
    guard.note_key("e" * 64, "shopify", "busy", refused.wait)  # not the refused provider
    assert not guard.noted("e" * 64)


def test_noted_keys_are_bounded_oldest_forgotten_first(frozen):
    guard, refused = _refused_guard(frozen)
    digests = [f"{n:064x}" for n in range(MAX_NOTED_KEYS + 1)]
    for key in digests:
        guard.note_key(key, "klaviyo", "busy", refused.wait)
    assert len(guard.noted_keys) == MAX_NOTED_KEYS
    assert not guard.noted(digests[0]) and guard.noted(digests[1]) and guard.noted(digests[-1])
    guard.note_key(digests[1], "klaviyo", "busy", refused.wait)  # noted again: now the newest
    guard.note_key("f" * 64, "klaviyo", "busy", refused.wait)
    assert guard.noted(digests[1]) and not guard.noted(digests[2])


def test_only_provider_actions_can_be_answered_from_a_note(app):
    """Every route under /api/v1/<provider>/ is a ``proxy_action`` of that provider (and so may be
    answered by RefusedKeys); no other route is."""
    tagged = {}
    for rule in app.url_map.iter_rules():
        tagged[rule.rule] = getattr(app.view_functions[rule.endpoint], "proxy_provider", None)
    for path, provider in tagged.items():
        parts = path.split("/")
        expected = parts[3] if len(parts) > 4 and path.startswith("/api/v1/") and parts[3] in PROVIDERS else None
        assert provider == expected, path
    assert {provider for provider in tagged.values() if provider} >= {"shopify", "klaviyo", "kustomer"}
