"""Shopify product lookup and order tracking, end to end through the Shopify emulator."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox.server import serve
from sandbox.shopify import ShopifyEmulator
from tests.conftest import SHOPIFY_CLIENT_ID, SHOPIFY_CLIENT_SECRET, org_headers

MUG = "8915061031187"
ORDER_1001 = "6301845209363"
OTHER_STORE_TAMPER = "7712093847561"


def graphql_calls(shopify):
    return [r for r in shopify.received if r["path"].endswith("/graphql.json")]


def test_search_products_finds_by_free_text(client, connected, shopify):
    response = client.get("/api/v1/shopify/products?query=mug", headers=connected)
    assert response.status_code == 200, response.json
    titles = [p["title"] for p in response.json["data"]]
    assert titles == ["Classic Coffee Mug"]
    mug = response.json["data"][0]
    assert mug["id"] == MUG
    assert mug["status"] == "active"
    assert [v["sku"] for v in mug["variants"]] == ["MUG-CLASSIC-11", "MUG-CLASSIC-15"]
    assert mug["price_range"]["min"]["currency"] == "USD"
    assert response.json["next_cursor"] is None


def test_largest_search_page_stays_within_shopifys_query_cost(client, connected, shopify):
    response = client.get("/api/v1/shopify/products?first=25", headers=connected)
    assert response.status_code == 200, response.json
    assert len(response.json["data"]) == 6  # every product of demo-store, drafts included


def test_search_products_pages_with_cursor(client, connected):
    first = client.get("/api/v1/shopify/products?first=2", headers=connected)
    assert first.status_code == 200
    assert len(first.json["data"]) == 2
    cursor = first.json["next_cursor"]
    assert cursor
    second = client.get("/api/v1/shopify/products", query_string={"first": 2, "after": cursor}, headers=connected)
    assert second.status_code == 200
    assert {p["id"] for p in first.json["data"]}.isdisjoint({p["id"] for p in second.json["data"]})


@pytest.mark.parametrize("args, field", [({"first": 0}, "first"), ({"first": 26}, "first"),
                                         ({"first": "ten"}, "first"), ({"query": "x" * 201}, "query")])
def test_search_arguments_are_validated(client, connected, shopify, args, field):
    before = len(shopify.received)
    response = client.get("/api/v1/shopify/products", query_string=args, headers=connected)
    assert response.status_code == 422
    assert response.json["field"] == field
    assert len(shopify.received) == before


def test_get_product_by_id(client, connected, shopify):
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 200
    assert response.json["title"] == "Classic Coffee Mug"
    assert response.json["gid"] == f"gid://shopify/Product/{MUG}"
    sent = graphql_calls(shopify)[-1]
    assert sent["json"]["variables"] == {"id": f"gid://shopify/Product/{MUG}"}
    assert "/admin/api/2026-10/graphql.json" in sent["path"]


def test_product_of_another_store_is_not_found(client, connected):
    response = client.get(f"/api/v1/shopify/products/{OTHER_STORE_TAMPER}", headers=connected)
    assert response.status_code == 404
    assert response.json["code"] == "product_not_found"


@pytest.mark.parametrize("bad", ["abc", "0123", "1" * 21])
def test_bad_product_id_is_422_without_upstream_call(client, connected, shopify, bad):
    before = len(shopify.received)
    response = client.get(f"/api/v1/shopify/products/{bad}", headers=connected)
    assert response.status_code == 422
    assert response.json["field"] == "product_id"
    assert len(shopify.received) == before


def test_track_order_by_name(client, connected):
    response = client.get("/api/v1/shopify/orders/%231001", headers=connected)
    assert response.status_code == 200, response.json
    order = response.json
    assert order["name"] == "#1001"
    assert order["id"] == ORDER_1001
    assert order["fulfillment_status"] == "FULFILLED"
    assert order["tracking_numbers"] == ["1Z999AA10123456784", "1Z999AA10123456795"]
    assert all(url.startswith("http") for url in order["tracking_urls"])
    assert order["fulfillments"][0]["tracking"][0]["company"] == "UPS"
    assert order["line_items"] and all(li["quantity"] >= 1 for li in order["line_items"])
    assert "email" not in order


def test_track_order_by_id_and_unfulfilled_order(client, connected):
    by_id = client.get(f"/api/v1/shopify/orders/{ORDER_1001}", headers=connected)
    assert by_id.status_code == 200
    assert by_id.json["name"] == "#1001"
    unfulfilled = client.get("/api/v1/shopify/orders/%231002", headers=connected)
    assert unfulfilled.json["fulfillment_status"] == "UNFULFILLED"
    assert unfulfilled.json["tracking_numbers"] == []


def test_order_email_check_hides_orders_of_other_customers(client, connected):
    ok = client.get("/api/v1/shopify/orders/%231001?email=Ada.Lovelace@example.com", headers=connected)
    assert ok.status_code == 200
    hidden = client.get("/api/v1/shopify/orders/%231001?email=mallory@example.com", headers=connected)
    assert hidden.status_code == 404
    assert hidden.json["code"] == "order_not_found"


def test_unknown_order_is_404_and_bad_ref_is_422(client, connected):
    assert client.get("/api/v1/shopify/orders/%239999", headers=connected).status_code == 404
    bad = client.get("/api/v1/shopify/orders/1001%20OR%201", headers=connected)
    assert bad.status_code == 422
    assert bad.json["field"] == "order_ref"


def test_proxy_without_connected_store_is_409(client, org):
    _, headers = org
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=headers)
    assert response.status_code == 409
    assert response.json["code"] == "integration_not_connected"


def test_proxy_when_shopify_not_configured_is_503(make_app, admin):
    app = make_app(SHOPIFY_ADMIN_ACCESS_TOKENS=None)
    client = app.test_client()
    headers = org_headers(client, "acme")
    response = client.get("/api/v1/shopify/products", headers=headers)
    assert response.status_code == 503
    assert response.json["code"] == "provider_not_configured"
    assert "SHOPIFY_" not in response.get_data(as_text=True)  # the operator's variables: admin API only


# --- upstream failures ------------------------------------------------------------------------


def test_throttled_query_is_retried_after_the_bucket_refills(client, connected, shopify):
    shopify.inject("throttled", times=1)
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 200
    assert len(graphql_calls(shopify)) == 3  # connect + throttled + retry


def test_persistent_throttling_becomes_429_with_retry_after(client, connected, shopify):
    shopify.inject("throttled", times=10)
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 429
    assert response.json["code"] == "upstream_rate_limited"
    assert response.json["provider"] == "shopify"
    assert int(response.headers["Retry-After"]) >= 1


def test_http_429_from_shopify_becomes_429_with_retry_after(client, connected, shopify):
    shopify.inject("http_429", times=10, retry_after=30)
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "30"
    # A 30 s hint does not fit the 3 s deadline: no retry was attempted.
    assert len(graphql_calls(shopify)) == 2


def test_an_absurd_retry_after_from_shopify_is_not_passed_on(client, connected, shopify):
    shopify.inject("http_429", times=10, retry_after="inf")
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 3600


def test_http_429_without_retry_after_is_429_with_a_short_wait(client, connected, shopify):
    shopify.inject("http_429", times=10, retry_after=None)
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 429 and response.json["code"] == "upstream_rate_limited"
    assert 1 <= int(response.headers["Retry-After"]) <= 3


def test_a_gateways_502_is_retried_then_502(client, connected, shopify):
    shopify.inject("http_502", times=10)
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 502 and response.json["code"] == "upstream_bad_response"
    assert len(graphql_calls(shopify)) == 1 + 3


def test_server_error_is_retried_then_502(client, connected, shopify):
    shopify.inject("http_500", times=10)
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 502
    assert response.json["code"] == "upstream_bad_response"
    assert len(graphql_calls(shopify)) == 1 + 3  # connect + first try + 2 retries


def test_one_server_error_is_absorbed_by_a_retry(client, connected, shopify):
    shopify.inject("http_503", times=1)
    assert client.get(f"/api/v1/shopify/products/{MUG}", headers=connected).status_code == 200


def test_slow_shopify_is_504(client, connected, shopify):
    shopify.inject("slow", times=10, seconds=2)
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 504
    assert response.json["code"] == "upstream_timeout"


def test_redirect_is_never_followed(client, connected, shopify):
    shopify.inject("redirect", times=1, location=shopify.url + "/shops/other-store/admin/api/2026-10/graphql.json")
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 502
    assert "redirect" in response.json["detail"]
    assert [r["shop"] for r in graphql_calls(shopify)] == ["demo-store", "demo-store"]


def test_garbage_answer_is_502(client, connected, shopify):
    shopify.inject("garbage", times=1)
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 502
    assert response.json["code"] == "upstream_bad_response"


def test_unreachable_shopify_is_502(make_app, new_org, admin):
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE="http://127.0.0.1:9/shops/{shop}")
    client = app.test_client()
    headers = org_headers(client, "acme")
    response = client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                          headers=headers)
    assert response.status_code == 502
    assert response.json["code"] == "upstream_unreachable"
    assert client.get("/api/v1/integrations", headers=headers).json["data"] == []


# --- credentials: one token, and the client-credentials grant --------------------------------


def grant_app(make_app):
    return make_app(SHOPIFY_ADMIN_ACCESS_TOKENS=None, SHOPIFY_ADMIN_API_KEY=SHOPIFY_CLIENT_ID,
                    SHOPIFY_ADMIN_API_SECRET=SHOPIFY_CLIENT_SECRET)


def test_single_token_reaches_only_its_store(make_app, admin):
    app = make_app(SHOPIFY_ADMIN_ACCESS_TOKENS=None, SHOPIFY_ADMIN_ACCESS_TOKEN="shpat_test_demo_store_token")
    client = app.test_client()
    headers = org_headers(client, "acme")
    other = client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "other-store"}},
                       headers=headers)
    assert other.status_code == 422
    assert other.json["code"] == "account_not_reachable"
    ok = client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                    headers=headers)
    assert ok.status_code == 201


def test_grant_mints_one_token_per_store_and_caches_it(make_app, admin, shopify):
    app = grant_app(make_app)
    client = app.test_client()
    headers = org_headers(client, "acme")
    assert client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                      headers=headers).status_code == 201
    for _ in range(3):
        assert client.get(f"/api/v1/shopify/products/{MUG}", headers=headers).status_code == 200
    assert shopify.grants["demo-store"] == 1
    grant = [r for r in shopify.received if r["path"].endswith("/oauth/access_token")][0]
    assert grant["form"]["grant_type"] == "client_credentials"
    assert grant["form"]["client_id"] == SHOPIFY_CLIENT_ID


def test_concurrent_first_calls_trigger_one_grant(make_app, admin, shopify):
    # Connect through a token-map app, then call through a second app (another process, in
    # production) that uses the grant: its token cache is cold and six callers race for it.
    mapped = make_app().test_client()
    headers = org_headers(mapped)
    assert mapped.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                      headers=headers).status_code == 201
    app = grant_app(make_app)
    shopify.inject("slow", times=1, seconds=0.3, endpoint="token")
    barrier = threading.Barrier(6)

    def call(_):
        barrier.wait()
        return app.test_client().get(f"/api/v1/shopify/products/{MUG}", headers=headers).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = list(pool.map(call, range(6)))
    assert statuses == [200] * 6
    assert shopify.grants["demo-store"] == 1


def test_a_token_the_store_refuses_is_dropped_and_minted_anew(make_app, admin, shopify):
    app = grant_app(make_app)
    client = app.test_client()
    headers = org_headers(client)
    assert client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                      headers=headers).status_code == 201
    shopify.expire_tokens("demo-store")  # Shopify revoked it early
    # The stale token is dropped, a new one minted and the call retried once (tests/test_shopify_hardening.py).
    assert client.get(f"/api/v1/shopify/products/{MUG}", headers=headers).status_code == 200
    assert shopify.grants["demo-store"] == 2


def test_a_short_lived_token_is_refreshed_before_it_expires(make_app, admin):
    emulator = ShopifyEmulator(client_id=SHOPIFY_CLIENT_ID, client_secret=SHOPIFY_CLIENT_SECRET, token_ttl=2)
    with serve(emulator.wsgi) as server:
        app = make_app(SHOPIFY_ADMIN_ACCESS_TOKENS=None, SHOPIFY_ADMIN_API_KEY=SHOPIFY_CLIENT_ID,
                       SHOPIFY_ADMIN_API_SECRET=SHOPIFY_CLIENT_SECRET,
                       SHOPIFY_SHOP_URL_TEMPLATE=server.url + "/shops/{shop}")
        client = app.test_client()
        headers = org_headers(client)
        assert client.put("/api/v1/integrations/shopify",
                          json={"account_identifier": {"storeName": "demo-store"}}, headers=headers).status_code == 201
        assert client.get(f"/api/v1/shopify/products/{MUG}", headers=headers).status_code == 200
        assert emulator.grants["demo-store"] == 1  # cached for half its two-second life
        time.sleep(1.2)
        assert client.get(f"/api/v1/shopify/products/{MUG}", headers=headers).status_code == 200
        assert emulator.grants["demo-store"] == 2  # refreshed before Shopify would refuse it


def test_wrong_client_secret_refuses_connect(make_app, admin, shopify):
    app = make_app(SHOPIFY_ADMIN_ACCESS_TOKENS=None, SHOPIFY_ADMIN_API_KEY=SHOPIFY_CLIENT_ID,
                   SHOPIFY_ADMIN_API_SECRET="wrong-secret-value")
    client = app.test_client()
    headers = org_headers(client, "acme")
    response = client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                          headers=headers)
    assert response.status_code == 422
    assert response.json["code"] == "account_not_reachable"
    assert "wrong-secret-value" not in json.dumps(response.json)
