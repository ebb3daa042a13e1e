"""Shopify's answers that should never come, stale platform tokens, and the caller's own bad input.

Odd answers are served by the emulator's ``respond`` fault: the exact text a hostile or broken
upstream could send. Everything goes through the app's HTTP API with the emulator on loopback.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3

from app.providers.shopify import GET_PRODUCT, SEARCH_PRODUCTS
from tests.conftest import SHOPIFY_CLIENT_ID, SHOPIFY_CLIENT_SECRET, SHOPIFY_TOKENS, org_headers

MUG = "8915061031187"
ORDER_1001 = "6301845209363"
CONNECT = {"account_identifier": {"storeName": "demo-store"}}


def real_answer(shopify, document, variables):
    """What the emulator answers for ``document`` (fetched directly, not through Switchboard)."""
    response = urllib3.request(
        "POST", f"{shopify.url}/shops/demo-store/admin/api/2026-10/graphql.json",
        json={"query": document, "variables": variables},
        headers={"X-Shopify-Access-Token": SHOPIFY_TOKENS["demo-store"]},
    )
    assert response.status == 200
    return response.json()


def graphql_calls(shopify):
    return [r for r in shopify.received if r["endpoint"] == "graphql"]


# --- a stale platform token -------------------------------------------------------------------


@pytest.fixture
def grant_client(make_app):
    app = make_app(SHOPIFY_ADMIN_ACCESS_TOKENS=None, SHOPIFY_ADMIN_API_KEY=SHOPIFY_CLIENT_ID,
                   SHOPIFY_ADMIN_API_SECRET=SHOPIFY_CLIENT_SECRET)
    client = app.test_client()
    headers = org_headers(client)
    assert client.put("/api/v1/integrations/shopify", json=CONNECT, headers=headers).status_code == 201
    return client, headers


def test_a_revoked_platform_token_is_replaced_and_the_call_succeeds(grant_client, shopify):
    client, headers = grant_client
    shopify.expire_tokens("demo-store")  # Shopify revoked the cached token early
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=headers)
    assert response.status_code == 200, response.json
    assert shopify.grants["demo-store"] == 2  # minted once more, then the query retried once


def test_a_revoked_platform_token_does_not_mark_the_integration_error(grant_client, shopify):
    client, headers = grant_client
    shopify.expire_tokens("demo-store")
    tested = client.post("/api/v1/integrations/shopify/test", headers=headers)
    assert tested.status_code == 200, tested.json
    assert client.get("/api/v1/integrations/shopify", headers=headers).json["status"] == "connected"
    assert client.get(f"/api/v1/shopify/products/{MUG}", headers=headers).status_code == 200


def test_callers_refused_with_the_same_stale_token_cause_one_new_grant(grant_client, shopify):
    client, headers = grant_client
    shopify.expire_tokens("demo-store")
    barrier = threading.Barrier(4)

    def call(_):
        barrier.wait()
        return client.get(f"/api/v1/shopify/products/{MUG}", headers=headers).status_code

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(call, range(4))) == [200] * 4
    # Each refused caller drops the token only if it is still the stale one: one new grant
    # (two at most, when a caller reads the stale token after the new one was minted).
    assert shopify.grants["demo-store"] in (2, 3)


# --- unexpected shapes are 502, never 500 -----------------------------------------------------

DEEP = "[" * 100_000 + "]" * 100_000


def product_with(shopify, **changes):
    answer = real_answer(shopify, GET_PRODUCT, {"id": f"gid://shopify/Product/{MUG}"})
    answer["data"]["product"].update(changes)
    return json.dumps(answer)


ODD_PRODUCT_ANSWERS = {
    "cost is a string": lambda s: json.dumps({"data": {"product": None}, "extensions": {"cost": "12"}}),
    "extensions is a list": lambda s: json.dumps({"data": {"product": None}, "extensions": [1]}),
    "product is a number": lambda s: json.dumps({"data": {"product": 5}}),
    "title is an object": lambda s: product_with(s, title={"a": 1}),
    "variants nodes are numbers": lambda s: product_with(s, variants={"nodes": [1, 2]}),
    "inventory is NaN": lambda s: product_with(s, totalInventory="NaN").replace('"NaN"', "NaN"),
    "inventory is a string": lambda s: product_with(s, totalInventory="lots"),
    "id beyond 64 bits": lambda s: product_with(s, legacyResourceId="1" * 25),
    "tags nested deep": lambda s: product_with(s, tags=json.loads("[" * 500 + "]" * 500)),
    "the whole answer nested too deep to parse": lambda s: DEEP,
    "errors is an object": lambda s: json.dumps({"errors": {"x": 1}, "data": None}),
}


@pytest.mark.parametrize("make_body", ODD_PRODUCT_ANSWERS.values(), ids=ODD_PRODUCT_ANSWERS.keys())
def test_an_unexpected_product_answer_is_502(client, connected, shopify, make_body):
    shopify.inject("respond", body=make_body(shopify), endpoint="graphql")
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 502, response.json
    assert response.json["code"] == "upstream_bad_response"


ODD_SEARCH_ANSWERS = {
    "nodes are numbers": {"data": {"products": {"nodes": [1, 2], "pageInfo": {"hasNextPage": False}}}},
    "pageInfo is a string": {"data": {"products": {"nodes": [], "pageInfo": "next"}}},
    "products is a list": {"data": {"products": []}},
    "hasNextPage is a string": {"data": {"products": {"nodes": [], "pageInfo": {"hasNextPage": "yes",
                                                                                 "endCursor": "x"}}}},
}


@pytest.mark.parametrize("body", ODD_SEARCH_ANSWERS.values(), ids=ODD_SEARCH_ANSWERS.keys())
def test_an_unexpected_search_answer_is_502(client, connected, shopify, body):
    shopify.inject("respond", body=json.dumps(body), endpoint="graphql")
    response = client.get("/api/v1/shopify/products?query=mug", headers=connected)
    assert response.status_code == 502, response.json
    assert response.json["code"] == "upstream_bad_response"


@pytest.mark.parametrize("body", [
    {"data": {"orders": {"nodes": [7]}}},
    {"data": {"orders": {"nodes": [{"name": 1001}]}}},
    {"data": {"orders": "none"}},
], ids=["node is a number", "name is a number", "orders is a string"])
def test_an_unexpected_order_answer_is_502(client, connected, shopify, body):
    shopify.inject("respond", body=json.dumps(body), endpoint="graphql")
    response = client.get("/api/v1/shopify/orders/%231001", headers=connected)
    assert response.status_code == 502, response.json
    assert response.json["code"] == "upstream_bad_response"


def test_an_unexpected_shop_answer_refuses_the_connection_without_a_500(client, org, shopify):
    _, headers = org
    shopify.inject("respond", body=json.dumps({"data": {"shop": "demo-store"}}), endpoint="graphql")
    response = client.put("/api/v1/integrations/shopify", json=CONNECT, headers=headers)
    assert response.status_code == 502, response.json
    assert response.json["code"] == "upstream_bad_response"


def test_a_domain_with_control_characters_is_not_echoed(client, org, shopify):
    _, headers = org
    shopify.inject("respond", endpoint="graphql", body=json.dumps(
        {"data": {"shop": {"name": "x", "myshopifyDomain": "evil\u0000\u001b[2J.myshopify.com"}}}))
    response = client.put("/api/v1/integrations/shopify", json=CONNECT, headers=headers)
    assert response.status_code == 422
    assert "\u0000" not in response.json["detail"] and "\u001b" not in response.json["detail"]


# --- the audit detail holds only bounded, typed values ----------------------------------------


@pytest.mark.parametrize("cost", ['"' + "9" * 300_000 + '"', "NaN", '"\\u0000"', "1e400", str(10**30)],
                         ids=["300 KB string", "NaN", "NUL", "infinity", "huge integer"])
def test_an_absurd_query_cost_is_left_out_of_the_audit_row(client, connected, shopify, audit_rows, cost):
    answer = real_answer(shopify, GET_PRODUCT, {"id": f"gid://shopify/Product/{MUG}"})
    answer["extensions"]["cost"]["actualQueryCost"] = "COST"
    shopify.inject("respond", endpoint="graphql", body=json.dumps(answer).replace('"COST"', cost))
    response = client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    assert response.status_code == 200, response.json  # Shopify's success stays a success
    row = audit_rows(action="proxy.request")[-1]
    assert row.status_code == 200
    assert "query_cost" not in row.detail
    assert len(json.dumps(row.detail)) < 500


def test_a_sane_query_cost_is_recorded(client, connected, audit_rows):
    assert client.get(f"/api/v1/shopify/products/{MUG}", headers=connected).status_code == 200
    row = audit_rows(action="proxy.request")[-1]
    assert isinstance(row.detail["query_cost"], int)


# --- the caller's own bad input ----------------------------------------------------------------


def test_a_cursor_shopify_refuses_is_the_callers_422_and_not_retried(client, connected, shopify, audit_rows):
    from app import pagination

    shopify.reset()  # forget the connect's own call
    # A cursor of the right kind, wrapping one Shopify no longer accepts (expired, another sort).
    stale = pagination.encode("shopify-products", "0000")
    response = client.get(f"/api/v1/shopify/products?cursor={stale}", headers=connected)
    assert response.status_code == 422, response.json
    assert response.json["code"] == "validation_error"
    assert response.json["field"] == "cursor"
    assert len(graphql_calls(shopify)) == 1
    assert audit_rows(action="proxy.request")[-1].status_code == 422


def test_a_cursor_switchboard_never_issued_is_refused_before_shopify(client, connected, shopify):
    shopify.reset()
    response = client.get("/api/v1/shopify/products?after=0000", headers=connected)
    assert response.status_code == 422, response.json
    assert (response.json["code"], response.json["field"]) == ("invalid_cursor", "after")
    assert graphql_calls(shopify) == []


def test_the_emulator_refuses_a_bad_cursor_as_shopify_does(shopify):
    answer = real_answer(shopify, SEARCH_PRODUCTS, {"first": 2, "after": "0000"})
    assert answer["data"] is None
    assert answer["errors"][0]["message"] == "Invalid cursor for current pagination sort."
    assert answer["errors"][0]["path"] == ["products"]


def test_a_valid_cursor_still_pages(client, connected):
    first = client.get("/api/v1/shopify/products?first=1", headers=connected)
    assert first.status_code == 200 and first.json["next_cursor"]
    second = client.get(f"/api/v1/shopify/products?first=1&after={first.json['next_cursor']}", headers=connected)
    assert second.status_code == 200
    assert second.json["data"][0]["id"] != first.json["data"][0]["id"]


@pytest.mark.parametrize("path, field", [
    ("/api/v1/shopify/products/18446744073709551616", "product_id"),
    ("/api/v1/shopify/products/99999999999999999999", "product_id"),
    ("/api/v1/shopify/orders/18446744073709551616", "order_ref"),
])
def test_an_id_beyond_64_bits_is_422_and_never_sent(client, connected, shopify, path, field):
    shopify.reset()
    response = client.get(path, headers=connected)
    assert response.status_code == 422, response.json
    assert response.json["field"] == field
    assert graphql_calls(shopify) == []


def test_the_largest_64_bit_id_is_asked_for(client, connected, shopify):
    shopify.reset()
    response = client.get("/api/v1/shopify/products/18446744073709551615", headers=connected)
    assert response.status_code == 404
    assert len(graphql_calls(shopify)) == 1
