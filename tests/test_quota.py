"""A fair share of each provider account: the shared budget, the circuit breaker, credentials the
provider refuses, and writes whose outcome is unknown — through the API, against the Shopify
emulator (its bucket, its faults), on memory and on Redis alike."""

import json
import os
import threading
import time
import uuid

import pytest

from app.errors import UpstreamOutcomeUnknown
from app.outbound import Outbound, Target
from app.quota import IETF_RATELIMIT, Guard, MemoryStore, Reading, header_signals
from sandbox.server import serve
from sandbox.shopify import ShopifyEmulator
from tests.conftest import SHOPIFY_TOKENS, Clock, org_headers

MUG = "8915061031187"
PRODUCT = f"/api/v1/shopify/products/{MUG}"
OTHER_PRODUCT = "/api/v1/shopify/products/7712093847561"  # other-store's


@pytest.fixture
def small_bucket(request):
    """A Shopify emulator whose stores have a small bucket (100 points unless the test says)
    refilled at 1 point a second: a product lookup asks for 59 and costs 11, so the fifth in a
    row would be throttled."""
    size = getattr(request, "param", 100)
    emulator = ShopifyEmulator(access_tokens=dict(SHOPIFY_TOKENS), bucket_size=size, restore_rate=1)
    with serve(emulator.wsgi) as server:
        emulator.url = server.url
        yield emulator


def connect(client, headers, store):
    response = client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": store}},
                          headers=headers)
    assert response.status_code == 201, response.json


def graphql_calls(emulator, store):
    return len(emulator.requests_to(store, "graphql"))


# --- the budget -------------------------------------------------------------------------------


def test_a_call_shopify_would_surely_throttle_is_refused_before_it_is_sent(make_app, small_bucket):
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=small_bucket.url + "/shops/{shop}")
    client = app.test_client()
    headers = org_headers(client)
    connect(client, headers, "demo-store")
    statuses = [client.get(PRODUCT, headers=headers) for _ in range(7)]
    served = [r for r in statuses if r.status_code == 200]
    refused = [r for r in statuses if r.status_code == 429]
    assert served and refused and len(served) + len(refused) == 7
    assert refused[0].json["code"] == "upstream_rate_limited"
    assert int(refused[0].headers["Retry-After"]) >= 1
    # Only the calls that were served reached Shopify (plus the connect's shop check): no call
    # was sent into a bucket known to be empty, so Shopify never answered THROTTLED.
    assert graphql_calls(small_bucket, "demo-store") == 1 + len(served)


def test_a_throttled_answer_holds_the_next_calls_for_its_wait(client, connected, shopify):
    # THROTTLED (with the bucket's state) outlasts the retries of one call ...
    shopify.inject("throttled", times=3, shop="demo-store")
    first = client.get(PRODUCT, headers=connected)
    assert first.status_code == 429 and first.json["code"] == "upstream_rate_limited"
    sent = graphql_calls(shopify, "demo-store")
    # ... and the call right after is answered from the recorded wait, without a request.
    again = client.get(PRODUCT, headers=connected)
    assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1
    assert graphql_calls(shopify, "demo-store") == sent
    time.sleep(1.1)
    assert client.get(PRODUCT, headers=connected).status_code == 200


def test_a_flooding_org_does_not_starve_a_quiet_one(make_app, small_bucket):
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=small_bucket.url + "/shops/{shop}")
    client = app.test_client()
    flooder, quiet = org_headers(client, "flooder"), org_headers(client, "quiet")
    connect(client, flooder, "demo-store")
    connect(client, quiet, "other-store")
    flood = [client.get(PRODUCT, headers=flooder).status_code for _ in range(8)]
    assert 429 in flood
    # The quiet org's account has its own budget: the flood did not spend it.
    assert [client.get(OTHER_PRODUCT, headers=quiet).status_code for _ in range(2)] == [200, 200]


@pytest.mark.parametrize("small_bucket", [400], indirect=True)
def test_orgs_sharing_one_budget_the_one_above_its_share_is_refused_first(make_app, small_bucket):
    # Two orgs on one provider bucket, as every org is on a platform service's one key. Shopify's
    # buckets are per store and a store has one org, so the rig is: the orgs connect two stores,
    # then a second app sends both stores' calls to demo-store (a URL template without {shop},
    # demo-store's token) and declares one quota scope for them — one real bucket, one record.
    setup = make_app(SHOPIFY_SHOP_URL_TEMPLATE=small_bucket.url + "/shops/{shop}").test_client()
    flooder, quiet = org_headers(setup, "flooder"), org_headers(setup, "quiet")
    connect(setup, flooder, "demo-store")
    connect(setup, quiet, "other-store")
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=small_bucket.url + "/shops/demo-store",
                   SHOPIFY_ADMIN_ACCESS_TOKENS=None, SHOPIFY_ADMIN_ACCESS_TOKEN=SHOPIFY_TOKENS["demo-store"])
    app.extensions["outbound"].scopes["shopify"] = lambda account: "shared"
    client = app.test_client()
    results = []
    for _ in range(8):
        results.append(("flooder", [client.get(PRODUCT, headers=flooder).status_code for _ in range(3)]))
        results.append(("quiet", [client.get(PRODUCT, headers=quiet).status_code]))
    assert any(429 in codes for who, codes in results if who == "flooder")
    assert all(codes == [200] for who, codes in results if who == "quiet"), results


def _store(make_app, store_kind):
    """A fresh memory store, or the app's Redis store (skipped without REDIS_URL)."""
    if store_kind == "memory":
        return MemoryStore()
    app = make_app()
    if app.extensions.get("redis") is None:
        pytest.skip("needs REDIS_URL")
    return app.extensions["upstream_guard"].store


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
def test_fair_share_policy(make_app, store_kind):
    guard = Guard(_store(make_app, store_kind))
    for left in range(49, 40, -1):  # below half the bucket: the account is contested
        guard.record(guard.admit("klaviyo", "AbC123", "busy"), Reading(limit=100, remaining=left, reset=30), False)
    # The org that made 9 of the window's 10 calls is refused first ...
    guard.record(guard.admit("klaviyo", "AbC123", "quiet"), Reading(limit=100, remaining=20, reset=30), False)
    from app.errors import UpstreamRateLimited

    with pytest.raises(UpstreamRateLimited) as refused:
        guard.admit("klaviyo", "AbC123", "busy")
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 31
    # ... the quiet one is still served, and an org alone on another account is never refused.
    # (A healthy record is trusted for a second without reading it: this one is low.)
    guard.admit("klaviyo", "AbC123", "quiet")
    guard.record(guard.admit("klaviyo", "XyZ789", "busy"), Reading(limit=100, remaining=20, reset=30), False)
    guard.admit("klaviyo", "XyZ789", "busy")
    # Exhausted: everyone waits.
    guard.record(guard.admit("klaviyo", "AbC123", "quiet"), Reading(limit=100, remaining=0, reset=30), False)
    with pytest.raises(UpstreamRateLimited):
        guard.admit("klaviyo", "AbC123", "quiet")


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
def test_calls_served_on_a_healthy_record_count_as_the_orgs_use(make_app, store_kind):
    """The busy org spent the bucket while the record was healthy (served without reading it);
    when it runs low, the busy org is the heavy one, not the quiet org whose few calls were
    counted while the account was contested a moment ago."""
    account = f"Acct{uuid.uuid4().hex[:8]}"
    clock = Clock((time.time() // 10) * 10 + 1.0)  # early in a window: the 6 s below stay in it
    guard = Guard(_store(make_app, store_kind), clock=clock)
    for left in (45, 44, 43):  # contested: the quiet org's three calls are counted
        guard.record(guard.admit("klaviyo", account, "quiet"), Reading(limit=100, remaining=left, refill=10), False)
    clock.now += 6  # refilled: healthy, and trusted by the process without reading it again
    for _ in range(12):
        guard.record(guard.admit("klaviyo", account, "busy"), Reading(limit=100, remaining=90, refill=10), False)
    guard.record(guard.admit("klaviyo", account, "busy"), Reading(limit=100, remaining=40, refill=10), False)
    guard.admit("klaviyo", account, "quiet")  # its 4th call against the busy org's 13: served
    from app.errors import UpstreamRateLimited

    with pytest.raises(UpstreamRateLimited):
        guard.admit("klaviyo", account, "busy")


def _shared_bucket(make_app, emulator, store_kind, **env):
    """Two orgs on one Shopify bucket (the rig described in the test above), on memory or Redis:
    (app, flooder headers, quiet headers)."""
    if store_kind == "redis" and not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL")
    memory = {"REDIS_URL": None} if store_kind == "memory" else {}
    setup = make_app(SHOPIFY_SHOP_URL_TEMPLATE=emulator.url + "/shops/{shop}", **memory).test_client()
    flooder, quiet = org_headers(setup, "flooder"), org_headers(setup, "quiet")
    connect(setup, flooder, "demo-store")
    connect(setup, quiet, "other-store")
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=emulator.url + "/shops/demo-store", SHOPIFY_ADMIN_ACCESS_TOKENS=None,
                   SHOPIFY_ADMIN_ACCESS_TOKEN=SHOPIFY_TOKENS["demo-store"], **memory, **env)
    app.extensions["outbound"].scopes["shopify"] = lambda account: "shared"
    assert (app.extensions.get("redis") is None) == (store_kind == "memory")
    return app, flooder, quiet


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
@pytest.mark.parametrize("small_bucket", [1000], indirect=True)
def test_a_flooding_org_cannot_take_the_quiet_orgs_share(make_app, small_bucket, store_kind, audit_rows):
    app, flooder, quiet = _shared_bucket(make_app, small_bucket, store_kind)
    client = app.test_client()
    before = graphql_calls(small_bucket, "demo-store")
    flood, served = [], []
    for _ in range(12):
        flood += [client.get(PRODUCT, headers=flooder) for _ in range(5)]
        served.append(client.get(PRODUCT, headers=quiet))
    refused = [r for r in flood if r.status_code == 429]
    # The flood spent the top half of the bucket, then was refused before being sent, each time
    # with a Retry-After; the quiet org's calls all went through.
    assert refused and all(r.json["code"] == "upstream_rate_limited" for r in refused)
    assert all(int(r.headers["Retry-After"]) >= 1 for r in refused)
    assert [r.status_code for r in served] == [200] * 12, [(r.status_code, r.json) for r in served if r.status_code != 200]
    admitted = sum(r.status_code == 200 for r in flood)
    assert graphql_calls(small_bucket, "demo-store") == before + admitted + 12, [(r.status_code, r.json) for r in flood if r.status_code not in (200, 429)]  # no refused call was sent
    # Only the first refusal of the burst took the full path (and its audit row); the rest
    # were answered before any database work — the same 429, Retry-After included.
    assert 1 <= len([row for row in audit_rows() if (row.detail or {}).get("error") == "upstream_rate_limited"]) < len(refused)


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
@pytest.mark.parametrize("small_bucket", [200], indirect=True)
def test_when_the_bucket_is_spent_both_orgs_are_refused_with_retry_after(make_app, small_bucket, store_kind):
    app, flooder, quiet = _shared_bucket(make_app, small_bucket, store_kind)
    client = app.test_client()
    before = graphql_calls(small_bucket, "demo-store")
    answers = {"flooder": [], "quiet": []}
    for _ in range(10):
        answers["flooder"].append(client.get(PRODUCT, headers=flooder))
        answers["quiet"].append(client.get(PRODUCT, headers=quiet))
    for who, responses in answers.items():
        refused = [r for r in responses if r.status_code == 429]
        assert refused, who
        assert all(r.json["code"] == "upstream_rate_limited" and int(r.headers["Retry-After"]) >= 1
                   for r in refused), who
    assert small_bucket.requests_to("demo-store", "graphql")  # served while there was budget
    # Shopify itself never had to answer THROTTLED: every refusal was ours, before sending.
    assert graphql_calls(small_bucket, "demo-store") == before + sum(
        r.status_code == 200 for responses in answers.values() for r in responses)


@pytest.mark.parametrize("store_kind", ["memory", "redis"])
def test_an_org_cannot_hold_more_than_its_share_of_calls_in_flight(make_app, shopify, store_kind):
    app, flooder, quiet = _shared_bucket(make_app, shopify, store_kind, UPSTREAM_ORG_CONCURRENCY="1")
    shopify.inject("slow", times=3, shop="demo-store", endpoint="graphql", seconds=0.8)
    before = graphql_calls(shopify, "demo-store")
    slow = []

    def call(headers):
        slow.append(app.test_client().get(PRODUCT, headers=headers).status_code)

    threads = [threading.Thread(target=call, args=(h,)) for h in (quiet, flooder, flooder)]
    for thread in threads:
        thread.start()
        while graphql_calls(shopify, "demo-store") < before + threads.index(thread) + 1:
            time.sleep(0.01)  # this one is waiting on Shopify now
    client = app.test_client()
    third = client.get(PRODUCT, headers=flooder)  # the flooder has 2 of the 3 calls in flight
    again = client.get(PRODUCT, headers=quiet)  # the quiet org has 1: under its share
    for thread in threads:
        thread.join()
    assert third.status_code == 429 and third.json["code"] == "upstream_rate_limited"
    assert third.headers["Retry-After"] == "1" and "in progress" in third.json["detail"]
    assert again.status_code == 200
    assert slow == [200, 200, 200]
    assert graphql_calls(shopify, "demo-store") == before + 4  # the refused call was not sent
    # Alone on an account, an org is never capped: its calls are answered one after the other.
    assert client.get(PRODUCT, headers=flooder).status_code == 200


class _Answer:
    def __init__(self, status, headers):
        self.status_code, self.headers = status, headers


def test_header_signals_read_declared_names():
    reading = IETF_RATELIMIT(_Answer(200, {"RateLimit-Limit": "75", "RateLimit-Remaining": "3", "RateLimit-Reset": "9"}))
    assert (reading.limit, reading.remaining, reading.reset, reading.wait) == (75, 3, 9, None)
    assert IETF_RATELIMIT(_Answer(429, {"Retry-After": "7"})).wait == 7
    kustomer = header_signals(limit="x-ratelimit-limit", remaining="x-ratelimit-remaining", reset="x-ratelimit-reset")
    reading = kustomer(_Answer(200, {"x-ratelimit-limit": "300", "x-ratelimit-remaining": "12",
                                     "x-ratelimit-reset": str(int(time.time()) + 20)}))
    assert reading.remaining == 12 and 15 <= reading.reset <= 21  # a Unix time becomes seconds from now
    assert kustomer(_Answer(200, {"x-ratelimit-remaining": "NaN"})) is None


# --- the circuit breaker ------------------------------------------------------------------------


def test_breaker_opens_after_repeated_failures_fails_fast_and_one_trial_closes_it(make_app, shopify):
    app = make_app(BREAKER_FAILURES="3", BREAKER_RESET="1", HTTP_MAX_RETRIES="0")
    client = app.test_client()
    headers = org_headers(client)
    connect(client, headers, "demo-store")
    shopify.inject("http_500", times=3, shop="demo-store")
    assert [client.get(PRODUCT, headers=headers).status_code for _ in range(3)] == [502, 502, 502]
    sent = graphql_calls(shopify, "demo-store")
    fast = client.get(PRODUCT, headers=headers)
    assert fast.status_code == 503 and fast.json["code"] == "upstream_circuit_open"
    assert fast.json["provider"] == "shopify" and 1 <= int(fast.headers["Retry-After"]) <= 2
    assert graphql_calls(shopify, "demo-store") == sent  # failing fast: nothing sent
    time.sleep(1.1)
    assert client.get(PRODUCT, headers=headers).status_code == 200  # the trial call closes it
    assert client.get(PRODUCT, headers=headers).status_code == 200
    assert graphql_calls(shopify, "demo-store") == sent + 2


def test_a_failed_trial_opens_the_breaker_again(make_app, shopify):
    app = make_app(BREAKER_FAILURES="2", BREAKER_RESET="1", HTTP_MAX_RETRIES="0")
    client = app.test_client()
    headers = org_headers(client)
    connect(client, headers, "demo-store")
    shopify.inject("http_503", times=3, shop="demo-store")
    assert [client.get(PRODUCT, headers=headers).status_code for _ in range(2)] == [502, 502]
    time.sleep(1.1)
    assert client.get(PRODUCT, headers=headers).status_code == 502  # the trial failed
    assert client.get(PRODUCT, headers=headers).json["code"] == "upstream_circuit_open"


def test_the_breaker_is_per_account(make_app, shopify):
    app = make_app(BREAKER_FAILURES="2", BREAKER_RESET="30", HTTP_MAX_RETRIES="0")
    client = app.test_client()
    one, two = org_headers(client, "one"), org_headers(client, "two")
    connect(client, one, "demo-store")
    connect(client, two, "other-store")
    shopify.inject("http_500", times=2, shop="demo-store")
    assert [client.get(PRODUCT, headers=one).status_code for _ in range(3)] == [502, 502, 503]
    assert client.get(PRODUCT, headers=two).status_code in (200, 404)  # other-store: its own breaker


def test_answers_that_are_not_failures_do_not_open_the_breaker(make_app, shopify):
    app = make_app(BREAKER_FAILURES="2", HTTP_MAX_RETRIES="0")
    client = app.test_client()
    headers = org_headers(client)
    connect(client, headers, "demo-store")
    shopify.inject("http_429", times=1, shop="demo-store", retry_after=1)
    assert client.get(PRODUCT, headers=headers).status_code == 429
    time.sleep(1.1)  # the 429's own wait
    shopify.inject("garbage", times=2, shop="demo-store")
    assert [client.get(PRODUCT, headers=headers).status_code for _ in range(2)] == [502, 502]
    assert client.get(PRODUCT, headers=headers).status_code == 200


# --- credentials the provider refuses -----------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_turn_the_integration_error_for_the_admin(make_app, shopify, admin, audit_rows, status):
    app = make_app()
    client = app.test_client()
    headers = org_headers(client)
    connect(client, headers, "demo-store")
    body = json.dumps({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"})
    shopify.inject("respond", times=1, shop="demo-store", status=status, body=body)
    before = graphql_calls(shopify, "demo-store")
    refused = client.get(PRODUCT, headers=headers)
    assert refused.status_code == 502 and refused.json["code"] == "upstream_auth_failed"
    assert graphql_calls(shopify, "demo-store") == before + 1  # not retried (a static token)
    listed = client.get("/api/v1/admin/integrations?status=error", headers=admin)
    assert listed.status_code == 200
    [row] = listed.json["data"]
    assert row["provider"] == "shopify" and "refused" in row["error_message"]
    assert "shpat_" not in json.dumps(listed.json)
    [audited] = audit_rows(action="integration.failed")
    assert audited.target == "demo-store" and audited.outcome == "failure"
    # The org sees it too, and the next call stops at the integration's state.
    assert client.get("/api/v1/integrations/shopify", headers=headers).json["status"] == "error"
    assert client.get(PRODUCT, headers=headers).json["code"] == "integration_not_connected"
    # A passing test brings it back.
    assert client.post("/api/v1/integrations/shopify/test", headers=headers).json["status"] == "connected"


def test_a_revoked_minted_token_is_replaced_and_the_integration_stays_connected(make_app, shopify, admin):
    from tests.conftest import SHOPIFY_CLIENT_ID, SHOPIFY_CLIENT_SECRET

    app = make_app(SHOPIFY_ADMIN_ACCESS_TOKENS=None, SHOPIFY_ADMIN_API_KEY=SHOPIFY_CLIENT_ID,
                   SHOPIFY_ADMIN_API_SECRET=SHOPIFY_CLIENT_SECRET)
    client = app.test_client()
    headers = org_headers(client)
    connect(client, headers, "demo-store")
    shopify.expire_tokens("demo-store")
    assert client.get(PRODUCT, headers=headers).status_code == 200
    assert client.get("/api/v1/admin/integrations?status=error", headers=admin).json["data"] == []


# --- writes whose outcome is unknown ------------------------------------------------------------


@pytest.fixture
def outbound():
    return Outbound(connect_timeout=1, read_timeout=0.5, deadline=3, max_retries=2, pool_size=2)


def _write(outbound, shopify):
    return outbound.call(
        "shopify", "POST", f"{shopify.url}/shops/demo-store/admin/api/2026-10/graphql.json",
        expected=Target.of(shopify.url), headers={"X-Shopify-Access-Token": SHOPIFY_TOKENS["demo-store"]},
        json={"query": "mutation { x }"}, idempotent=False,
    )


@pytest.mark.parametrize("fault", [{"kind": "slow", "seconds": 1.5}, {"kind": "drop"}])
def test_a_write_without_an_answer_is_outcome_unknown_and_not_resent(outbound, shopify, fault):
    shopify.inject(times=3, shop="demo-store", **fault)
    with pytest.raises(UpstreamOutcomeUnknown) as unknown:
        _write(outbound, shopify)
    assert unknown.value.status == 504 and unknown.value.code == "upstream_outcome_unknown"
    assert graphql_calls(shopify, "demo-store") == 1


def test_a_read_without_an_answer_is_still_retried(outbound, shopify):
    shopify.inject("drop", times=1, shop="demo-store")
    outcome = outbound.call(
        "shopify", "POST", f"{shopify.url}/shops/demo-store/admin/api/2026-10/graphql.json",
        expected=Target.of(shopify.url), headers={"X-Shopify-Access-Token": SHOPIFY_TOKENS["demo-store"]},
        json={"query": "query { shop { name } }"}, idempotent=True,
    )
    assert outcome.response.status_code == 200 and outcome.attempts == 2
