"""Shopify's commerce actions (customers, inventory, draft orders, cart links), order names in any
form, 2026-10's FULFILLMENT_NOT_REQUIRED and partial answers — end to end through the emulator."""

import pytest

MUG_11, MUG_15, TEE_XL, BEANIE = "46702301069587", "46702301102355", "46702301233427", "46702301430035"
TAMPER = "43210987654321"  # other-store's


def calls(shopify):
    return [r for r in shopify.received if r["path"].endswith("/graphql.json")]


@pytest.fixture
def other(client, new_org):
    """A second org, with other-store connected."""
    _, headers = new_org()
    r = client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "other-store"}},
                   headers=headers)
    assert r.status_code == 201, r.json
    return headers


# --- customers ----------------------------------------------------------------------------------

def test_customer_by_email_with_recent_orders(client, connected):
    r = client.get("/api/v1/shopify/customers?email=Ada.Lovelace@example.com", headers=connected)
    assert r.status_code == 200, r.json
    assert r.json["display_name"] == "Ada Lovelace" and r.json["email"] == "ada.lovelace@example.com"
    assert [o["name"] for o in r.json["recent_orders"]] == ["EN1001", "#1001"]  # newest first
    assert r.json["number_of_orders"] == 2 and r.json["withheld"] == []


def test_customer_by_phone(client, connected):
    r = client.get("/api/v1/shopify/customers", query_string={"phone": "+14155550102"}, headers=connected)
    assert r.status_code == 200 and r.json["last_name"] == "Hopper"


def test_unknown_customer_is_404(client, connected):
    r = client.get("/api/v1/shopify/customers?email=nobody@example.com", headers=connected)
    assert r.status_code == 404 and r.json["code"] == "customer_not_found"


@pytest.mark.parametrize("args, field", [({}, "email"), ({"email": "a@b.co", "phone": "+14155550102"}, "email"),
                                         ({"email": "not-an-email"}, "email"), ({"phone": "4155550102"}, "phone"),
                                         ({"phone": "+1415555010２"}, "phone")])
def test_bad_customer_arguments_reach_no_provider(client, connected, shopify, args, field):
    before = len(shopify.received)
    r = client.get("/api/v1/shopify/customers", query_string=args, headers=connected)
    assert r.status_code == 422 and r.json["field"] == field
    assert len(shopify.received) == before


def test_withheld_customer_data_is_named_not_a_failure(client, connected, shopify):
    shopify.configure("demo-store", protected_customer_data=False)
    r = client.get("/api/v1/shopify/customers?phone=%2B14155550102", headers=connected)
    assert r.status_code == 200, r.json
    assert r.json["email"] is None and r.json["first_name"] is None
    assert set(r.json["withheld"]) >= {"email", "phone", "first_name", "last_name"}
    assert r.json["recent_orders"]  # what was granted still comes back


def test_missing_customer_scope_is_the_platforms_failure(client, connected, shopify):
    shopify.configure("demo-store", scopes="read_products,read_orders")
    r = client.get("/api/v1/shopify/customers?email=ada.lovelace@example.com", headers=connected)
    assert r.status_code == 502 and r.json["code"] == "upstream_auth_failed"


# --- inventory ----------------------------------------------------------------------------------

def test_inventory_by_sku_per_location(client, connected):
    r = client.get("/api/v1/shopify/inventory?sku=MUG-CLASSIC-11", headers=connected)
    assert r.status_code == 200, r.json
    assert r.json["variant_id"] == MUG_11 and r.json["available"] == 120
    assert {(loc["name"], loc["available"]) for loc in r.json["locations"]} == {
        ("Main Warehouse", 100), ("Downtown Store", 20)}


def test_inventory_sku_is_exact_although_shopify_search_is_not(client, connected):
    r = client.get("/api/v1/shopify/inventory?sku=MUG-CLASSIC", headers=connected)  # a prefix of two SKUs
    assert r.status_code == 404 and r.json["code"] == "variant_not_found"


def test_inventory_by_variant_id(client, connected):
    r = client.get(f"/api/v1/shopify/inventory?variant_id={TEE_XL}", headers=connected)
    assert r.status_code == 200 and r.json["available"] == 0 and r.json["sku"] == "TEE-ORG-XL"


@pytest.mark.parametrize("args, field", [({}, "sku"), ({"sku": "A", "variant_id": "1"}, "sku"),
                                         ({"sku": "x:y"}, "sku"), ({"sku": "A" * 65}, "sku"),
                                         ({"variant_id": "12/../3"}, "variant_id"),
                                         ({"variant_id": "18446744073709551616"}, "variant_id")])
def test_bad_inventory_arguments_reach_no_provider(client, connected, shopify, args, field):
    before = len(shopify.received)
    r = client.get("/api/v1/shopify/inventory", query_string=args, headers=connected)
    assert r.status_code == 422 and r.json["field"] == field
    assert len(shopify.received) == before


# --- draft orders -------------------------------------------------------------------------------

def draft(client, headers, key="k-1", **body):
    body = body or {"email": "ada.lovelace@example.com", "items": [{"variant_id": MUG_11, "quantity": 2}]}
    return client.post("/api/v1/shopify/draft-orders", json=body, headers={**headers, "Idempotency-Key": key})


def test_create_read_and_invoice_a_draft_order(client, connected, shopify):
    created = draft(client, connected)
    assert created.status_code == 201, created.json
    assert created.json["status"] == "OPEN" and created.json["total"]["amount"] == "28.00"
    assert created.json["invoice_url"].startswith("https://demo-store.myshopify.com/")
    sent = calls(shopify)[-1]["json"]
    assert sent["query"].startswith("mutation CreateDraftOrder")
    assert sent["variables"]["input"]["lineItems"] == [
        {"variantId": f"gid://shopify/ProductVariant/{MUG_11}", "quantity": 2}]
    read = client.get(f"/api/v1/shopify/draft-orders/{created.json['id']}", headers=connected)
    assert read.status_code == 200 and read.json["line_items"][0]["variant_id"] == MUG_11
    invoice = client.get(f"/api/v1/shopify/draft-orders/{created.json['id']}/invoice-url", headers=connected)
    assert invoice.json["invoice_url"] == created.json["invoice_url"]


def test_a_retried_draft_order_is_created_once(client, connected, shopify):
    first, again = draft(client, connected, key="same"), draft(client, connected, key="same")
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json["id"] == first.json["id"]
    assert sum(1 for c in calls(shopify) if "draftOrderCreate" in c["json"]["query"]) == 1


def test_draft_order_timeout_is_never_resent(client, make_app, shopify, connected):
    shopify.inject("slow", seconds=3, endpoint="graphql")
    app = make_app(HTTP_READ_TIMEOUT="1")
    # the app fixture's client uses its own settings; use a fresh app sharing the database
    with app.test_client() as c:
        r = draft(c, connected, key="slow-1")
    assert r.status_code == 504, r.json
    assert sum(1 for x in calls(shopify) if "draftOrderCreate" in x["json"]["query"]) == 1


def test_shopify_user_errors_name_the_item(client, connected, shopify):
    r = draft(client, connected, email="a@example.com", items=[{"variant_id": MUG_11, "quantity": 1},
                                                                {"variant_id": "1234567", "quantity": 1}])
    assert r.status_code == 422 and r.json["field"] == "items.1.variant_id"


@pytest.mark.parametrize("body, field", [
    ({"items": [{"variant_id": MUG_11, "quantity": 1}]}, "email"),
    ({"email": "a@example.com", "items": []}, "items"),
    ({"email": "a@example.com", "items": [{"variant_id": MUG_11, "quantity": 0}]}, "items"),
    ({"email": "a@example.com", "items": [{"variant_id": "abc", "quantity": 1}]}, "items"),
    ({"email": "a@example.com", "items": [{"variant_id": MUG_11, "quantity": 1}] * 2}, "items.1.variant_id"),
])
def test_bad_draft_orders_reach_no_provider(client, connected, shopify, body, field):
    before = len(shopify.received)
    r = draft(client, connected, key=f"bad-{field}-{len(str(body))}", **body)
    assert r.status_code == 422 and r.json["field"].startswith(field)
    assert len(shopify.received) == before


@pytest.mark.parametrize("bad", ["abc", "12%2F..", "0", "1" * 21])
def test_bad_draft_order_ids_reach_no_provider(client, connected, shopify, bad):
    before = len(shopify.received)
    r = client.get(f"/api/v1/shopify/draft-orders/{bad}", headers=connected)
    assert r.status_code in (404, 422)
    assert len(shopify.received) == before


def test_unknown_draft_order_is_404(client, connected):
    r = client.get("/api/v1/shopify/draft-orders/999", headers=connected)
    assert r.status_code == 404 and r.json["code"] == "draft_order_not_found"


def test_draft_order_upstream_failure_is_not_retried(client, connected, shopify):
    shopify.inject("http_503", times=3, endpoint="graphql")
    r = draft(client, connected, key="fail-1")
    assert r.status_code == 502
    assert sum(1 for c in calls(shopify) if "draftOrderCreate" in c["json"]["query"]) == 1  # a mutation: one attempt


# --- cart links ---------------------------------------------------------------------------------

def cart(client, headers, items, key="c-1"):
    return client.post("/api/v1/shopify/cart-links", json={"items": items}, headers={**headers, "Idempotency-Key": key})


def test_cart_link_for_real_variants(client, connected):
    r = cart(client, connected, [{"variant_id": MUG_11, "quantity": 2}, {"variant_id": MUG_15, "quantity": 1}])
    assert r.status_code == 200, r.json
    assert r.json["url"] == f"https://demo-store.myshopify.com/cart/{MUG_11}:2,{MUG_15}:1"


@pytest.mark.parametrize("items, field", [
    ([{"variant_id": MUG_11, "quantity": 1}, {"variant_id": TAMPER, "quantity": 1}], "items.1.variant_id"),
    ([{"variant_id": TEE_XL, "quantity": 1}], "items.0.variant_id"),       # out of stock
    ([{"variant_id": BEANIE, "quantity": 1}], "items.0.variant_id"),       # a draft product
    ([{"variant_id": MUG_15, "quantity": 46}], "items.0.quantity"),        # more than in stock
])
def test_cart_link_refuses_unknown_or_unavailable_items(client, connected, items, field):
    r = cart(client, connected, items, key=f"c-{field}-{items[-1]['variant_id']}")
    assert r.status_code == 422 and r.json["field"] == field


def test_bad_cart_items_reach_no_provider(client, connected, shopify):
    for i, items in enumerate(([], [{"variant_id": "12/../3", "quantity": 1}], [{"variant_id": MUG_11}],
                               [{"variant_id": MUG_11, "quantity": "2"}])):
        before = len(shopify.received)
        assert cart(client, connected, items, key=f"bad-{i}").status_code == 422
        assert len(shopify.received) == before


# --- orders as Shopify really answers -----------------------------------------------------------

@pytest.mark.parametrize("ref, name", [("EN1001", "EN1001"), ("1001-A", "1001-A"), ("1001-a", "1001-A"),
                                       ("%231001", "#1001")])
def test_order_names_in_any_form(client, connected, ref, name):
    r = client.get(f"/api/v1/shopify/orders/{ref}", headers=connected)
    assert r.status_code == 200, r.json
    assert r.json["name"] == name


def test_exact_name_is_found_even_when_shopify_lists_another_first(client, connected, shopify):
    r = client.get("/api/v1/shopify/orders/1001-A", headers=connected)
    assert r.status_code == 200 and r.json["name"] == "1001-A"
    search = next(c for c in calls(shopify) if "FindOrderNames" in c["json"]["query"])
    assert search["json"]["variables"] == {"query": 'name:"1001-A"'}


def test_order_not_fulfilment_required_in_2026_10(client, connected):
    r = client.get("/api/v1/shopify/orders/%231004", headers=connected)
    assert r.status_code == 200
    assert r.json["fulfillment_status"] == "FULFILLMENT_NOT_REQUIRED" and r.json["fulfillment_required"] is False
    assert client.get("/api/v1/shopify/orders/%231002", headers=connected).json["fulfillment_required"] is True


def test_order_with_withheld_email_still_answers(client, connected, shopify):
    shopify.configure("demo-store", protected_customer_data=False)
    r = client.get("/api/v1/shopify/orders/%231001", headers=connected)
    assert r.status_code == 200, r.json
    assert r.json["withheld"] == ["email"] and r.json["tracking_numbers"]


def test_email_check_fails_closed_when_email_is_withheld(client, connected, shopify):
    shopify.configure("demo-store", protected_customer_data=False)
    r = client.get("/api/v1/shopify/orders/%231001?email=ada.lovelace@example.com", headers=connected)
    assert r.status_code == 502 and r.json["code"] == "upstream_auth_failed"
    assert "email" in r.json["detail"]


def test_other_graphql_errors_still_fail(client, connected, shopify):
    shopify.inject("respond", endpoint="graphql", body='{"data":{"order":null},"errors":[{"message":"Internal error",'
                                                        '"path":["order"]}]}')
    r = client.get("/api/v1/shopify/orders/6301845209363", headers=connected)
    assert r.status_code == 502 and r.json["code"] == "upstream_bad_response"


@pytest.mark.parametrize("ref", ["-1001", "EN 1001", "1001%3F", "A" * 40, "ÉN1001"])
def test_bad_order_names_reach_no_provider(client, connected, shopify, ref):
    before = len(shopify.received)
    r = client.get(f"/api/v1/shopify/orders/{ref}", headers=connected)
    assert r.status_code in (404, 422)
    assert len(shopify.received) == before


# --- org isolation ------------------------------------------------------------------------------

def test_other_org_cannot_reach_demo_store_by_any_id(client, connected, other, shopify):
    created = draft(client, connected, key="iso-1")
    draft_id = created.json["id"]
    assert client.get(f"/api/v1/shopify/draft-orders/{draft_id}", headers=other).status_code == 404
    assert client.get(f"/api/v1/shopify/draft-orders/{draft_id}/invoice-url", headers=other).status_code == 404
    assert client.get("/api/v1/shopify/customers?email=ada.lovelace@example.com", headers=other).status_code == 404
    assert client.get(f"/api/v1/shopify/inventory?variant_id={MUG_11}", headers=other).status_code == 404
    assert cart(client, other, [{"variant_id": MUG_11, "quantity": 1}], key="iso-2").status_code == 422
    r = draft(client, other, key="iso-3")
    assert r.status_code == 422  # demo-store's variant is not other-store's
    assert all(c["shop"] == "other-store" for c in calls(shopify)[-6:] if c is not None)


def test_unconnected_org_gets_409_on_every_new_action(client, new_org, shopify):
    _, headers = new_org()
    before = len(shopify.received)
    for r in (client.get("/api/v1/shopify/customers?email=a@example.com", headers=headers),
              client.get("/api/v1/shopify/inventory?sku=MUG-CLASSIC-11", headers=headers),
              client.get("/api/v1/shopify/draft-orders/1", headers=headers),
              client.get("/api/v1/shopify/draft-orders/1/invoice-url", headers=headers),
              draft(client, headers, key="u-1"),
              cart(client, headers, [{"variant_id": MUG_11, "quantity": 1}], key="u-2")):
        assert r.status_code == 409, r.json
    assert len(shopify.received) == before


# --- issue 7's bad path and query values, on every new action (none reaches Shopify) ------------

BAD_PATH_VALUES = ["123/../customers", "123%2F..", "123%3Fx=", "1" * 300, "%D9%A1%D9%A2%D9%A3", "12%20"]


@pytest.mark.parametrize("template", ["/api/v1/shopify/draft-orders/{}", "/api/v1/shopify/draft-orders/{}/invoice-url",
                                      "/api/v1/shopify/products/{}"])
@pytest.mark.parametrize("bad", BAD_PATH_VALUES)
def test_bad_path_values_reach_no_provider(client, connected, shopify, template, bad):
    before = len(shopify.received)
    r = client.get(template.format(bad), headers=connected)
    assert r.status_code in (404, 422), r.json
    assert len(shopify.received) == before


@pytest.mark.parametrize("query, field", [
    ("sku=%C3%89-MUG", "sku"), ("sku=" + "A" * 300, "sku"), ("variant_id=%D9%A1%D9%A2", "variant_id"),
    ("variant_id=12%2F..", "variant_id"), ("variant_id=1%3Fx%3D", "variant_id"),
])
def test_bad_inventory_queries_reach_no_provider(client, connected, shopify, query, field):
    before = len(shopify.received)
    r = client.get(f"/api/v1/shopify/inventory?{query}", headers=connected)
    assert r.status_code == 422 and r.json["field"] == field
    assert len(shopify.received) == before


@pytest.mark.parametrize("query, field", [
    ("email=%C3%A9@example.com", "email"), ("email=" + "a" * 250 + "@example.com", "email"),
    ("email=ada@example.com%2F..%2Forders", "email"), ("phone=14155550101", "phone"),
    ("phone=%2B1415555010%2F..", "phone"), ("phone=%2B%D9%A1%D9%A2%D9%A3%D9%A4%D9%A5%D9%A6%D9%A7", "phone"),
])
def test_bad_customer_queries_reach_no_provider(client, connected, shopify, query, field):
    before = len(shopify.received)
    r = client.get(f"/api/v1/shopify/customers?{query}", headers=connected)
    assert r.status_code == 422 and r.json["field"] == field, r.json
    assert len(shopify.received) == before
