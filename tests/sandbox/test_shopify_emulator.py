"""The Shopify emulator speaks Shopify: real HTTP in front, the demo data behind.

Self-contained: fixtures are defined here, not in a shared conftest.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import shopify

from sandbox.server import serve
from sandbox.shopify import ShopifyEmulator

TOKEN = "shpat_test_demo_store_token"
OTHER_TOKEN = "shpat_test_other_store_token"
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
VERSION = "2026-10"
INVALID_TOKEN = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}

MUG = "gid://shopify/Product/8915061031187"
BEANIE = "gid://shopify/Product/8915061195027"
ORDER_1001 = "gid://shopify/Order/6301845209363"

# The documents Switchboard sends, verbatim.
PRODUCT_FIELDS = """
fragment ProductFields on Product {
  id legacyResourceId title handle status vendor productType tags totalInventory onlineStoreUrl
  priceRangeV2 { minVariantPrice { amount currencyCode } maxVariantPrice { amount currencyCode } }
  featuredMedia { preview { image { url altText } } }
  variants(first: 50) { nodes { id legacyResourceId title sku price availableForSale inventoryQuantity } } }
"""
ORDER_FIELDS = """
fragment OrderFields on Order {
  id legacyResourceId name email createdAt processedAt cancelledAt closedAt
  displayFinancialStatus displayFulfillmentStatus
  totalPriceSet { shopMoney { amount currencyCode } }
  fulfillments(first: 20) { status displayStatus createdAt trackingInfo(first: 10) { company number url } }
  lineItems(first: 100) { nodes { title quantity sku variant { id legacyResourceId } } } }
"""
SHOP_IDENTITY = "query ShopIdentity { shop { name myshopifyDomain } }"
SEARCH_PRODUCTS = (
    "query SearchProducts($first: Int!, $query: String, $after: String) {\n"
    "  products(first: $first, query: $query, after: $after) {\n"
    "    nodes { ...ProductFields } pageInfo { hasNextPage endCursor } } }"
    + PRODUCT_FIELDS
)
GET_PRODUCT = "query GetProduct($id: ID!) { product(id: $id) { ...ProductFields } }" + PRODUCT_FIELDS
GET_ORDER = "query GetOrder($id: ID!) { order(id: $id) { ...OrderFields } }" + ORDER_FIELDS
FIND_ORDER = (
    "query FindOrderByName($query: String!) { orders(first: 1, query: $query) { nodes { ...OrderFields } } }"
    + ORDER_FIELDS
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def emulator():
    return ShopifyEmulator(
        access_tokens={"demo-store": TOKEN, "other-store": OTHER_TOKEN},
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
    )


@pytest.fixture(scope="module")
def server(emulator):
    with serve(emulator.wsgi) as running:
        yield running


@pytest.fixture(autouse=True)
def clean(request):
    if "emulator" in request.fixturenames:
        request.getfixturevalue("emulator").reset()
    yield


@pytest.fixture
def http():
    with requests.Session() as session:
        yield session


@pytest.fixture
def make_server():
    """Serve a differently configured emulator for one test."""
    started = []

    def factory(**kwargs):
        kwargs.setdefault("access_tokens", {"demo-store": TOKEN, "other-store": OTHER_TOKEN})
        kwargs.setdefault("client_id", CLIENT_ID)
        kwargs.setdefault("client_secret", CLIENT_SECRET)
        emu = ShopifyEmulator(**kwargs)
        running = serve(emu.wsgi)
        started.append(running)
        return emu, running

    yield factory
    for running in started:
        running.stop()


def graphql_url(server, shop="demo-store", version=VERSION):
    return f"{server.url}/shops/{shop}/admin/api/{version}/graphql.json"


def token_url(server, shop="demo-store"):
    return f"{server.url}/shops/{shop}/admin/oauth/access_token"


def gql(http, server, query, variables=None, token=TOKEN, shop="demo-store", **kwargs):
    headers = {"X-Shopify-Access-Token": token} if token is not None else {}
    payload = {"query": query, "variables": variables}
    return http.post(graphql_url(server, shop), json=payload, headers=headers, **kwargs)


def grant(http, server, shop="demo-store", secret=CLIENT_SECRET, as_json=False, **extra):
    params = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": secret, **extra}
    if as_json:
        return http.post(token_url(server, shop), json=params)
    return http.post(token_url(server, shop), data=params)


def search(http, server, query, first=10, after=None):
    response = gql(http, server, SEARCH_PRODUCTS, {"first": first, "query": query, "after": after})
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    return body["data"]["products"]


# --------------------------------------------------------------------------- server


def test_serve_refuses_a_non_loopback_address():
    with pytest.raises(ValueError, match="loopback"):
        serve(ShopifyEmulator().wsgi, host="0.0.0.0")


def test_serve_keeps_connections_alive_over_http_1_1(http):
    def app(environ, start_response):
        body = str(environ["REMOTE_PORT"]).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    with serve(app) as running:
        assert running.url == f"http://127.0.0.1:{running.port}"
        first = http.get(running.url)
        assert first.raw.version == 11
        assert "close" not in first.headers.get("Connection", "")
        # The app never reads these bodies; the server drains them and keeps the connection.
        second = http.post(running.url, data=b"x" * 100_000)
        third = http.post(running.url, data={"a": "b"})
        assert first.text == second.text == third.text  # one client socket served all three


def test_a_stopped_server_is_gone_for_pooled_connections_too(http):
    running = serve(ShopifyEmulator().wsgi)
    assert http.get(running.url).status_code == 404
    running.stop()
    with pytest.raises(requests.ConnectionError):
        http.get(running.url, timeout=2)


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "token",
    [None, "", "shpat_wrong", OTHER_TOKEN],
    ids=["missing", "empty", "wrong", "other-shops-token"],
)
def test_a_bad_token_gets_shopifys_401(http, server, token):
    response = gql(http, server, SHOP_IDENTITY, token=token)
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN


def test_an_unknown_shop_or_malformed_version_is_404(http, server):
    assert gql(http, server, SHOP_IDENTITY, shop="no-such-shop").status_code == 404
    response = http.post(graphql_url(server, version="latest"), json={"query": SHOP_IDENTITY},
                         headers={"X-Shopify-Access-Token": TOKEN})
    assert (response.status_code, response.json()) == (404, {"errors": "Not Found"})


def test_a_body_without_query_is_400(http, server):
    response = http.post(graphql_url(server), data="not json", headers={"X-Shopify-Access-Token": TOKEN,
                                                                         "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json() == {"errors": {"query": "Required parameter missing or invalid"}}


def test_application_graphql_bodies_are_accepted(http, server):
    response = http.post(graphql_url(server), data=SHOP_IDENTITY,
                         headers={"X-Shopify-Access-Token": TOKEN, "Content-Type": "application/graphql"})
    assert response.json()["data"]["shop"]["name"] == "Demo Store"


# --------------------------------------------------------------------------- client-credentials grant


@pytest.mark.parametrize("as_json", [False, True], ids=["form", "json"])
def test_the_grant_mints_a_token_that_works_for_that_shop_only(http, server, emulator, as_json):
    response = grant(http, server, as_json=as_json)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "scope", "expires_in"}
    assert body["expires_in"] == 86399
    assert body["access_token"].startswith("shpat_")
    assert emulator.grants["demo-store"] == 1

    assert gql(http, server, SHOP_IDENTITY, token=body["access_token"]).status_code == 200
    other = gql(http, server, SHOP_IDENTITY, token=body["access_token"], shop="other-store")
    assert (other.status_code, other.json()) == (401, INVALID_TOKEN)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"secret": "wrong-secret"}, "invalid_client"),
        ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
    ],
)
def test_a_bad_grant_gets_an_oauth_error(http, server, emulator, kwargs, error):
    response = grant(http, server, **kwargs)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert "error_description" in response.json()
    assert emulator.grants["demo-store"] == 0


def test_a_shop_outside_the_organization_is_not_permitted(http, make_server):
    _, running = make_server(grant_shops={"demo-store"})
    response = grant(http, running, shop="other-store")
    assert response.status_code == 400
    assert response.json() == {
        "error": "shop_not_permitted",
        "error_description": "Client credentials cannot be performed on this shop.",
    }


def test_a_minted_token_expires_after_token_ttl(http, make_server):
    clock = FakeClock()
    emu, running = make_server(token_ttl=60, clock=clock)
    token = grant(http, running).json()["access_token"]
    assert gql(http, running, SHOP_IDENTITY, token=token).status_code == 200
    clock.now += 61
    assert gql(http, running, SHOP_IDENTITY, token=token).status_code == 401

    fresh = grant(http, running).json()["access_token"]
    emu.expire_tokens("demo-store")
    assert gql(http, running, SHOP_IDENTITY, token=fresh).status_code == 401
    assert emu.grants["demo-store"] == 2


# --------------------------------------------------------------------------- queries


def test_shop_identity_and_cost_extension(http, server):
    response = gql(http, server, "{ shop { name myshopifyDomain primaryDomain { host url } } }")
    assert response.status_code == 200
    assert response.headers["X-Shopify-API-Version"] == VERSION
    body = response.json()
    assert body["data"]["shop"] == {
        "name": "Demo Store",
        "myshopifyDomain": "demo-store.myshopify.com",
        "primaryDomain": {"host": "shop.demo-store.example", "url": "https://shop.demo-store.example"},
    }
    cost = body["extensions"]["cost"]
    assert cost["requestedQueryCost"] == cost["actualQueryCost"] == 2  # shop + primaryDomain, scalars free
    assert cost["throttleStatus"] == {"maximumAvailable": 2000.0, "currentlyAvailable": 1998, "restoreRate": 100.0}


def test_get_product_returns_the_demo_product(http, server):
    body = gql(http, server, GET_PRODUCT, {"id": MUG}).json()
    product = body["data"]["product"]
    assert product["title"] == "Classic Coffee Mug"
    assert product["legacyResourceId"] == "8915061031187"  # UnsignedInt64 is a string
    assert product["status"] == "ACTIVE"
    assert product["priceRangeV2"] == {
        "minVariantPrice": {"amount": "14.00", "currencyCode": "USD"},
        "maxVariantPrice": {"amount": "17.00", "currencyCode": "USD"},
    }
    assert product["featuredMedia"]["preview"]["image"]["url"].startswith("https://cdn.shopify.com/")
    assert [v["sku"] for v in product["variants"]["nodes"]] == ["MUG-CLASSIC-11", "MUG-CLASSIC-15"]
    assert product["totalInventory"] == 165
    # 1 product + 3 priceRangeV2 + 3 featuredMedia + (2 + 50 × 1) variants
    assert body["extensions"]["cost"]["requestedQueryCost"] == 59
    assert body["extensions"]["cost"]["actualQueryCost"] == 11


def test_a_draft_product_is_not_on_the_online_store(http, server):
    product = gql(http, server, GET_PRODUCT, {"id": BEANIE}).json()["data"]["product"]
    assert product["status"] == "DRAFT"
    assert product["onlineStoreUrl"] is None
    assert product["variants"]["nodes"][0]["availableForSale"] is False


@pytest.mark.parametrize(
    "query, document",
    [
        ("gid://shopify/Product/1", GET_PRODUCT),
        ("gid://shopify/Order/1", GET_ORDER),
        (ORDER_1001, GET_PRODUCT),  # a well-formed GID of another type
    ],
)
def test_an_unknown_id_is_null_not_an_error(http, server, query, document):
    body = gql(http, server, document, {"id": query}).json()
    assert "errors" not in body
    assert list(body["data"].values()) == [None]


def test_a_malformed_gid_is_a_graphql_error(http, server):
    response = gql(http, server, GET_PRODUCT, {"id": "8915061031187"})
    assert response.status_code == 200
    error = response.json()["errors"][0]
    assert error["message"] == "Invalid global id '8915061031187'"
    assert error["extensions"]["code"] == "argumentLiteralsIncompatible"


@pytest.mark.parametrize(
    "query, titles",
    [
        ("mug", ["Classic Coffee Mug"]),
        ("MUG", ["Classic Coffee Mug"]),
        ("northwind", ["Organic Cotton T-Shirt", "Canvas Tote Bag", "Merino Wool Beanie"]),  # vendor
        ("outdoor", ["Trail Running Shoes", "Stainless Steel Water Bottle"]),  # tag
        ("shoe-trail-10", ["Trail Running Shoes"]),  # variant SKU
        ('title:"coffee mug"', ["Classic Coffee Mug"]),
        ("title:Tote*", ["Canvas Tote Bag"]),
        ("sku:TEE-ORG-M", ["Organic Cotton T-Shirt"]),
        ("sku:TEE-ORG", []),  # sku: is exact unless wildcarded
        ("status:draft", ["Merino Wool Beanie"]),
        ("tag:gift -mug", ["Canvas Tote Bag"]),
        ("mug OR tote", ["Classic Coffee Mug", "Canvas Tote Bag"]),
        ("nothing-matches-this", []),
    ],
)
def test_product_search_syntax(http, server, query, titles):
    assert [p["title"] for p in search(http, server, query)["nodes"]] == titles


def test_status_active_excludes_the_draft(http, server):
    titles = [p["title"] for p in search(http, server, "status:active")["nodes"]]
    assert len(titles) == 5 and "Merino Wool Beanie" not in titles


def test_products_paginate_with_opaque_cursors(http, server):
    seen, after, pages = [], None, 0
    while True:
        page = search(http, server, None, first=2, after=after)
        seen += [p["id"] for p in page["nodes"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
        assert isinstance(after, str) and not after.isdigit()
    assert pages == 3
    assert len(seen) == len(set(seen)) == 6
    assert seen == sorted(seen, key=lambda g: int(g.rsplit("/", 1)[1]))  # default sortKey: ID


def test_first_over_250_is_an_error(http, server):
    body = gql(http, server, "{ products(first: 251) { nodes { id } } }").json()
    assert body["data"] is None
    assert "250" in body["errors"][0]["message"]
    assert body["errors"][0]["path"] == ["products"]


@pytest.mark.parametrize("name", ["name:#1001", "name:1001", "#1001"])
def test_find_order_by_name(http, server, name):
    orders = gql(http, server, FIND_ORDER, {"query": name}).json()["data"]["orders"]["nodes"]
    assert [o["name"] for o in orders] == ["#1001"]
    order = orders[0]
    assert order["displayFulfillmentStatus"] == "FULFILLED"
    assert order["totalPriceSet"] == {"shopMoney": {"amount": "63.77", "currencyCode": "USD"}}
    tracking = order["fulfillments"][0]["trackingInfo"]
    assert [(t["company"], t["number"]) for t in tracking] == [
        ("UPS", "1Z999AA10123456784"),
        ("UPS", "1Z999AA10123456795"),
    ]
    assert all(t["url"].startswith("https://www.ups.com/") for t in tracking)


def test_find_order_by_email_and_the_order_states(http, server):
    by_email = gql(http, server, FIND_ORDER, {"query": "email:Grace.Hopper@example.com"}).json()
    assert by_email["data"]["orders"]["nodes"][0]["name"] == "#1002"

    states = {}
    for name in ("#1001", "#1002", "#1003", "#1004"):
        order = gql(http, server, FIND_ORDER, {"query": f"name:{name}"}).json()["data"]["orders"]["nodes"][0]
        states[name] = (
            order["displayFulfillmentStatus"], order["displayFinancialStatus"], order["cancelledAt"] is not None
        )
    assert states == {
        "#1001": ("FULFILLED", "PAID", False),
        "#1002": ("UNFULFILLED", "PAID", False),
        "#1003": ("PARTIALLY_FULFILLED", "PAID", False),
        "#1004": ("FULFILLMENT_NOT_REQUIRED", "REFUNDED", True),  # 2026-10: cancelled before any fulfillment
    }


def test_get_order_links_line_items_to_variants(http, server):
    order = gql(http, server, GET_ORDER, {"id": ORDER_1001}).json()["data"]["order"]
    assert order["lineItems"]["nodes"][0] == {
        "title": "Classic Coffee Mug",
        "quantity": 2,
        "sku": "MUG-CLASSIC-11",
        "variant": {"id": "gid://shopify/ProductVariant/46702301069587", "legacyResourceId": "46702301069587"},
    }


def test_shops_do_not_see_each_others_data(http, server):
    body = gql(http, server, FIND_ORDER, {"query": "name:#1001"}, token=OTHER_TOKEN, shop="other-store").json()
    order = body["data"]["orders"]["nodes"][0]
    assert order["email"] == "someone@other-store.example"
    assert order["totalPriceSet"]["shopMoney"]["currencyCode"] == "EUR"
    assert gql(http, server, GET_PRODUCT, {"id": MUG}, token=OTHER_TOKEN, shop="other-store").json()["data"] == {
        "product": None
    }


def test_validation_errors_are_200_with_graphql_ruby_codes(http, server):
    response = gql(http, server, "{ shop { name nope } }")
    assert response.status_code == 200
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"] == {"code": "undefinedField"}
    assert body["errors"][0]["locations"] == [{"line": 1, "column": 15}]
    assert body["extensions"]["cost"]["requestedQueryCost"] == 0


def test_a_query_over_1000_points_is_refused(http, server):
    body = gql(http, server, SEARCH_PRODUCTS, {"first": 20}).json()  # 2 + 20 × 59
    assert body["errors"][0]["extensions"]["code"] == "MAX_COST_EXCEEDED"
    assert body["errors"][0]["extensions"]["cost"] == 1182
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 2000  # nothing charged


# --------------------------------------------------------------------------- rate limits


def test_throttled_once_the_bucket_is_exhausted(http, make_server):
    clock = FakeClock()
    _, running = make_server(bucket_size=150, restore_rate=10, clock=clock)
    # GetProduct requests 59 and actually costs 11: each call leaves 11 fewer points.
    for expected_left in range(139, 50, -11):
        body = gql(http, running, GET_PRODUCT, {"id": MUG}).json()
        assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == expected_left

    response = gql(http, running, GET_PRODUCT, {"id": MUG})
    assert response.status_code == 200
    assert response.json() == {
        "errors": [
            {
                "message": "Throttled",
                "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
            }
        ],
        "extensions": {
            "cost": {
                "requestedQueryCost": 59,
                "actualQueryCost": None,
                "throttleStatus": {"maximumAvailable": 150.0, "currentlyAvailable": 51, "restoreRate": 10.0},
            }
        },
    }
    # Other stores (and other apps) have their own buckets; this one refills at restoreRate.
    assert "data" in gql(http, running, GET_PRODUCT, {"id": MUG}, token=OTHER_TOKEN, shop="other-store").json()
    clock.now += 1
    assert gql(http, running, GET_PRODUCT, {"id": MUG}).json()["data"]["product"]["title"] == "Classic Coffee Mug"


def test_tokens_minted_for_one_app_share_the_stores_bucket(http, make_server):
    _, running = make_server(bucket_size=100, restore_rate=1, clock=FakeClock())
    first, second = (grant(http, running).json()["access_token"] for _ in range(2))
    gql(http, running, GET_PRODUCT, {"id": MUG}, token=first)
    status = gql(http, running, SHOP_IDENTITY, token=second).json()["extensions"]["cost"]["throttleStatus"]
    assert status["currentlyAvailable"] == 100 - 11 - 1


# --------------------------------------------------------------------------- faults


def test_fault_throttled_answers_in_shopifys_shape(http, server, emulator):
    emulator.inject("throttled")
    body = gql(http, server, SHOP_IDENTITY).json()
    assert body["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert body["extensions"]["cost"]["actualQueryCost"] is None
    assert body["extensions"]["cost"]["requestedQueryCost"] == 1
    assert "data" in gql(http, server, SHOP_IDENTITY).json()  # served once only


@pytest.mark.parametrize(
    "kind, params, status",
    [("http_429", {"retry_after": 3}, 429), ("http_500", {}, 500), ("http_503", {}, 503)],
)
def test_fault_http_errors(http, server, emulator, kind, params, status):
    emulator.inject(kind, times=2, **params)
    for _ in range(2):
        response = gql(http, server, SHOP_IDENTITY)
        assert response.status_code == status
        assert isinstance(response.json()["errors"], str)
    if kind == "http_429":
        assert response.headers["Retry-After"] == "3"
    assert gql(http, server, SHOP_IDENTITY).status_code == 200


def test_fault_slow_delays_then_answers(http, server, emulator):
    emulator.inject("slow", seconds=0.3)
    started = time.monotonic()
    response = gql(http, server, SHOP_IDENTITY)
    assert time.monotonic() - started >= 0.3
    assert response.json()["data"]["shop"]["name"] == "Demo Store"
    emulator.inject("slow", seconds=0.5)
    with pytest.raises(requests.Timeout):
        gql(http, server, SHOP_IDENTITY, timeout=0.1)


def test_fault_redirect(http, server, emulator):
    emulator.inject("redirect", location="http://127.0.0.1:9/elsewhere")
    response = gql(http, server, SHOP_IDENTITY, allow_redirects=False)
    assert (response.status_code, response.headers["Location"]) == (302, "http://127.0.0.1:9/elsewhere")


def test_fault_garbage(http, server, emulator):
    emulator.inject("garbage")
    response = gql(http, server, SHOP_IDENTITY)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def test_fault_drop_closes_the_connection(http, server, emulator):
    emulator.inject("drop")
    with pytest.raises(requests.ConnectionError):
        gql(http, server, SHOP_IDENTITY)
    assert gql(http, server, SHOP_IDENTITY).status_code == 200


def test_faults_can_target_a_shop_and_an_endpoint(http, server, emulator):
    emulator.inject("http_500", shop="other-store")
    emulator.inject("http_503", endpoint="token")
    assert gql(http, server, SHOP_IDENTITY).status_code == 200
    assert grant(http, server).status_code == 503
    assert gql(http, server, SHOP_IDENTITY, token=OTHER_TOKEN, shop="other-store").status_code == 500


def test_inject_rejects_an_unknown_kind(emulator):
    with pytest.raises(ValueError):
        emulator.inject("explode")


# --------------------------------------------------------------------------- recording, reset, controls


def test_every_request_is_recorded(http, server, emulator):
    gql(http, server, SHOP_IDENTITY, {"unused": 1})
    grant(http, server)
    graphql_call, grant_call = emulator.received
    assert graphql_call["method"] == "POST"
    assert graphql_call["path"] == f"/shops/demo-store/admin/api/{VERSION}/graphql.json"
    assert graphql_call["shop"] == "demo-store"
    assert graphql_call["headers"]["x-shopify-access-token"] == TOKEN
    assert graphql_call["json"] == {"query": SHOP_IDENTITY, "variables": {"unused": 1}}
    assert graphql_call["form"] is None
    assert grant_call["form"] == {
        "grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET
    }
    assert grant_call["json"] is None
    assert abs(grant_call["at"] - time.time()) < 5
    assert emulator.requests_to("demo-store", "token") == [grant_call]


def test_concurrent_requests_are_all_recorded(server, emulator):
    def call(_):
        return grant(requests, server).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(call, range(24))) == {200}
    assert len(emulator.received) == 24
    assert emulator.grants["demo-store"] == 24


def test_reset_clears_received_grants_faults_and_buckets(http, server, emulator):
    grant(http, server)
    gql(http, server, GET_PRODUCT, {"id": MUG})
    emulator.inject("http_500", times=5)
    emulator.reset()
    assert emulator.received == [] and emulator.grants["demo-store"] == 0
    status = gql(http, server, SHOP_IDENTITY).json()["extensions"]["cost"]["throttleStatus"]
    assert status["currentlyAvailable"] == 1999  # a fresh bucket, and no queued fault


def test_controls_over_http(http, server, emulator):
    assert http.post(f"{server.url}/__sandbox__/faults", json={"kind": "http_429", "retry_after": 7}).status_code == 201
    assert http.post(f"{server.url}/__sandbox__/faults", json={"kind": "bogus"}).status_code == 400
    assert gql(http, server, SHOP_IDENTITY).headers["Retry-After"] == "7"
    grant(http, server)

    seen = http.get(f"{server.url}/__sandbox__/received").json()
    assert [r["path"] for r in seen["received"]] == [
        f"/shops/demo-store/admin/api/{VERSION}/graphql.json",
        "/shops/demo-store/admin/oauth/access_token",
    ]
    assert seen["grants"] == {"demo-store": 1}

    assert http.post(f"{server.url}/__sandbox__/reset").json() == {"ok": True}
    assert http.get(f"{server.url}/__sandbox__/received").json() == {"received": [], "grants": {}}


# --------------------------------------------------------------------------- the official client


def test_the_official_shopifyapi_client_understands_the_emulator(server, capsys):
    site = f"{server.url}/shops/demo-store/admin/api/{VERSION}"
    try:
        shopify.ShopifyResource.set_site(site)
        shopify.ShopifyResource.headers["X-Shopify-Access-Token"] = TOKEN
        result = json.loads(shopify.GraphQL().execute(FIND_ORDER, variables={"query": "name:#1003"},
                                                      operation_name="FindOrderByName"))
        order = result["data"]["orders"]["nodes"][0]
        assert order["displayFulfillmentStatus"] == "PARTIALLY_FULFILLED"
        assert order["fulfillments"][0]["trackingInfo"][0]["company"] == "USPS"
        assert result["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 2000.0

        shopify.ShopifyResource.headers["X-Shopify-Access-Token"] = "shpat_wrong"
        with pytest.raises(urllib.error.HTTPError) as failure:
            shopify.GraphQL().execute(SHOP_IDENTITY)
        assert failure.value.code == 401
        assert "Invalid API key or access token" in capsys.readouterr().out  # the client prints error bodies
    finally:
        shopify.ShopifyResource.clear_session()


# --------------------------------------------------------------------------- standalone


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_python_m_sandbox_shopify_runs_standalone():
    port = _free_port()
    env = {**os.environ, "SANDBOX_SHOPIFY_TOKENS": json.dumps({"demo-store": "shpat_cli"}),
           "SANDBOX_SHOPIFY_CLIENT_ID": "cli-id", "SANDBOX_SHOPIFY_CLIENT_SECRET": "cli-secret"}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "sandbox", "shopify", "--port", str(port)], cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}/shops/demo-store/admin/api/{VERSION}/graphql.json"
        deadline = time.monotonic() + 10
        while True:
            try:
                response = requests.post(url, json={"query": SHOP_IDENTITY},
                                         headers={"X-Shopify-Access-Token": "shpat_cli"}, timeout=1)
                break
            except requests.ConnectionError:
                assert proc.poll() is None and time.monotonic() < deadline, "emulator did not start"
                time.sleep(0.05)
        assert response.json()["data"]["shop"]["myshopifyDomain"] == "demo-store.myshopify.com"
        minted = requests.post(url.replace(f"api/{VERSION}/graphql.json", "oauth/access_token"),
                               data={"grant_type": "client_credentials", "client_id": "cli-id",
                                     "client_secret": "cli-secret"}, timeout=2)
        assert minted.status_code == 200
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=5)
    assert "cli-id" in stderr and "shpat_cli" in stderr  # the configuration is printed at start
