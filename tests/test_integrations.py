"""Connecting accounts: validation, claims, verification against the emulator, approval, status."""

import pytest
from tests.conftest import org_headers

BAD_STORE_NAMES = [
    "evil.com#",
    "evil.com/",
    "x@evil.com",
    "x.myshopify.com.evil.com",
    "..",
    "%2e%2e",
    "127.0.0.1",
    "acme\n",
    "-acme",
    "a" * 64,
    "",
    "dеmo-store",  # Cyrillic "е"
    "ｄemo",  # full-width "d"
    "\u212aelvin",  # Kelvin sign lower-cases to an ASCII "k"
    "acme-",
    "ac me",
    "demo-store.myshopify.com",
    "http://demo-store",
]


def put(client, provider, identifier, headers):
    return client.put(f"/api/v1/integrations/{provider}", json={"account_identifier": identifier}, headers=headers)


@pytest.mark.parametrize("name", BAD_STORE_NAMES)
def test_bad_store_name_is_422_naming_the_field_and_sends_nothing(client, org, shopify, name):
    _, headers = org
    response = put(client, "shopify", {"storeName": name}, headers)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["field"] == "account_identifier.storeName"
    assert response.json["code"] == "validation_error"
    assert shopify.received == []
    assert client.get("/api/v1/integrations/shopify", headers=headers).status_code == 404


def test_store_name_is_lower_cased_and_reconnecting_is_200(client, org, shopify):
    _, headers = org
    response = put(client, "shopify", {"storeName": "Demo-Store"}, headers)
    assert response.status_code == 201, response.json
    assert response.json["account_identifier"] == {"storeName": "demo-store"}
    assert response.json["status"] == "connected"
    again = put(client, "shopify", {"storeName": "demo-store"}, headers)
    assert again.status_code == 200
    assert again.json["id"] == response.json["id"]
    assert again.json["connected_at"] == response.json["connected_at"]


@pytest.mark.parametrize(
    "provider, identifier, field",
    [
        ("shopify", {}, "account_identifier.storeName"),
        ("shopify", {"storeName": 42}, "account_identifier.storeName"),
        ("shopify", {"storeName": "demo-store", "token": "x"}, "account_identifier.token"),
        ("klaviyo", {"companyId": "ABC12"}, "account_identifier.companyId"),
        ("klaviyo", {"companyId": "ABC12!"}, "account_identifier.companyId"),
        ("klaviyo", {"storeName": "x"}, "account_identifier.storeName"),
        ("kustomer", {"subdomain": "my.company"}, "account_identifier.subdomain"),
        ("kustomer", {"subdomain": "evil.com/"}, "account_identifier.subdomain"),
        ("messenger", {"pageId": "12ab"}, "account_identifier.pageId"),
        ("messenger", {"pageId": "１２３４５６"}, "account_identifier.pageId"),
        ("whatsapp", {"phoneNumber": "14155550123"}, "account_identifier.phoneNumber"),
        ("whatsapp", {"phoneNumber": "+1 415 555 0123"}, "account_identifier.phoneNumber"),
        ("whatsapp", {"phoneNumber": "whatsapp:+14155550123"}, "account_identifier.phoneNumber"),
        ("stripe", {"customer": "cus_123"}, "account_identifier.customer"),
        ("openai", {"key": "sk-x"}, "account_identifier.key"),
    ],
)
def test_every_provider_validates_its_identifier(client, org, provider, identifier, field):
    _, headers = org
    response = put(client, provider, identifier, headers)
    assert response.status_code == 422, response.json
    assert response.json["field"] == field


@pytest.mark.parametrize(
    "provider, identifier, variables",
    [
        ("kustomer", {"subdomain": "mycompany"}, ["KUSTOMER_API_KEY"]),
        ("messenger", {"pageId": "104512345678901"}, ["MESSENGER_PAGE_ACCESS_TOKEN", "MESSENGER_APP_SECRET"]),
        ("whatsapp", {"phoneNumber": "+14155550123"}, ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"]),
        ("stripe", {}, ["STRIPE_SECRET_KEY"]),
        ("openai", {}, ["OPENAI_API_KEY"]),
    ],
)
def test_valid_identifier_for_unconfigured_provider_is_503_naming_variables_to_the_admin_only(
        make_app, admin, provider, identifier, variables, caplog):
    client = make_app(KUSTOMER_API_KEYS=None).test_client()  # the suite configures the emulator's keys
    headers = org_headers(client)
    response = put(client, provider, identifier, headers)
    assert response.status_code == 503
    assert response.json["code"] == "provider_not_configured"
    assert response.json["provider"] == provider
    assert "missing" not in response.json
    for name in variables:  # the operator's environment is not the org's business ...
        assert name not in response.get_data(as_text=True)
        assert name in caplog.text  # ... it is in the log
    listed = {p["name"]: p for p in client.get("/api/v1/admin/providers", headers=admin).json["data"]}
    assert listed[provider]["missing_variables"] == variables  # and in the admin API
    assert all(name in listed[provider]["hint"] for name in variables)


def test_configured_provider_without_automatic_check_waits_for_approval(make_app, new_org, admin):
    # Stripe's "connect" enables a platform service; there is no account to check yet.
    app = make_app(STRIPE_SECRET_KEY="sk_test_value_for_switchboard")
    client = app.test_client()
    headers = org_headers(client, "kl")
    connected = put(client, "stripe", {}, headers)
    assert connected.status_code == 201
    assert connected.json["status"] == "pending"
    assert connected.json["account_identifier"] == {}


def test_unknown_provider_is_404(client, org):
    _, headers = org
    response = put(client, "myspace", {"x": "y"}, headers)
    assert response.status_code == 404
    assert response.json["code"] == "unknown_provider"


def test_organization_id_in_body_is_refused_and_changes_nothing(client, org, new_org):
    other, _ = new_org("other")
    _, headers = org
    response = client.put("/api/v1/integrations/shopify", headers=headers, json={
        "account_identifier": {"storeName": "demo-store"}, "organization_id": other["id"]})
    assert response.status_code == 422
    assert response.json["field"] == "organization_id"
    assert client.get("/api/v1/integrations", headers=headers).json["data"] == []


def test_second_org_naming_a_claimed_store_gets_409(client, connected, new_org):
    _, other_headers = new_org("globex")
    response = put(client, "shopify", {"storeName": "DEMO-STORE"}, other_headers)
    assert response.status_code == 409
    assert response.json["code"] == "account_claimed"
    assert client.get("/api/v1/integrations/shopify", headers=other_headers).status_code == 404


def test_disconnect_releases_the_claim(client, connected, new_org):
    assert client.delete("/api/v1/integrations/shopify", headers=connected).status_code == 204
    listed = client.get("/api/v1/integrations", headers=connected).json["data"]
    assert [i["status"] for i in listed] == ["disconnected"]
    _, other_headers = new_org("globex")
    assert put(client, "shopify", {"storeName": "demo-store"}, other_headers).status_code == 201
    assert client.delete("/api/v1/integrations/shopify", headers=connected).status_code == 404


def test_connect_verifies_the_store_domain_matches(make_app, admin, shopify):
    # Every store name is routed to other-store, whose token the platform holds: the call
    # succeeds, but the store that answers is not the one named.
    app = make_app(SHOPIFY_ADMIN_ACCESS_TOKENS=None, SHOPIFY_ADMIN_ACCESS_TOKEN="shpat_test_other_store_token",
                   SHOPIFY_SHOP_URL_TEMPLATE=shopify.url + "/shops/other-store")
    client = app.test_client()
    headers = org_headers(client, "acme")
    response = put(client, "shopify", {"storeName": "demo-store"}, headers)
    assert response.status_code == 422
    assert response.json["code"] == "account_not_reachable"
    assert "other-store.myshopify.com" in response.json["detail"]
    assert client.get("/api/v1/integrations", headers=headers).json["data"] == []


def test_connect_refuses_a_store_the_platform_credentials_do_not_reach(client, org, shopify):
    _, headers = org
    response = put(client, "shopify", {"storeName": "unknown-store"}, headers)
    assert response.status_code == 422
    assert response.json["code"] == "account_not_reachable"
    assert response.json["field"] == "account_identifier.storeName"
    assert client.get("/api/v1/integrations", headers=headers).json["data"] == []


def test_connect_sends_the_store_token_to_that_store_only(client, connected, shopify):
    graphql = [r for r in shopify.received if r["path"].endswith("/graphql.json")]
    assert graphql and all(r["shop"] == "demo-store" for r in graphql)
    assert all(r["headers"]["x-shopify-access-token"] == "shpat_test_demo_store_token" for r in graphql)


def test_connect_with_approval_waits_as_pending_until_admin_approves(make_app, admin):
    app = make_app(CONNECT_REQUIRES_APPROVAL="true")
    client = app.test_client()
    headers = org_headers(client, "acme")
    pending = put(client, "shopify", {"storeName": "demo-store"}, headers)
    assert pending.status_code == 201
    assert pending.json["status"] == "pending"
    tested = client.post("/api/v1/integrations/shopify/test", headers=headers)
    assert tested.json["test"]["ok"] is True and tested.json["status"] == "pending"
    blocked = client.get("/api/v1/shopify/products/7001000000001", headers=headers)
    assert blocked.status_code == 409
    assert blocked.json["code"] == "integration_not_connected"
    queue = client.get("/api/v1/admin/integrations", headers=admin).json["data"]
    assert [i["id"] for i in queue] == [pending.json["id"]]
    reviewed = {"account_identifier": queue[0]["account_identifier"]}
    approved = client.post(f"/api/v1/admin/integrations/{pending.json['id']}/approve", json=reviewed, headers=admin)
    assert approved.status_code == 200
    assert approved.json["status"] == "connected"
    assert client.get("/api/v1/integrations/shopify", headers=headers).json["status"] == "connected"
    again = client.post(f"/api/v1/admin/integrations/{pending.json['id']}/approve", json=reviewed, headers=admin)
    assert again.status_code == 409


def test_test_records_error_when_the_store_refuses_then_connected_again(client, connected, shopify):
    original = shopify.access_tokens["demo-store"]
    shopify.access_tokens["demo-store"] = "shpat_rotated_by_the_merchant"
    try:
        failed = client.post("/api/v1/integrations/shopify/test", headers=connected)
    finally:
        shopify.access_tokens["demo-store"] = original
    assert failed.status_code == 200
    assert failed.json["status"] == "error"
    assert failed.json["test"]["ok"] is False
    assert "do not reach 'demo-store'" in failed.json["error_message"]
    assert client.get("/api/v1/shopify/products/8915061031187", headers=connected).status_code == 409
    passed = client.post("/api/v1/integrations/shopify/test", headers=connected)
    assert passed.json["status"] == "connected"
    assert passed.json["test"] == {"ok": True, "message": None}
    assert passed.json["error_message"] is None
    assert passed.json["sync_status"] == "ok"


def test_a_passing_upstream_failure_is_reported_but_keeps_the_integration_online(client, connected, shopify):
    shopify.inject("http_500", times=10)
    result = client.post("/api/v1/integrations/shopify/test", headers=connected)
    assert result.status_code == 200
    assert result.json["test"]["ok"] is False
    assert "HTTP 500" in result.json["error_message"]
    assert result.json["status"] == "connected"
    assert result.json["sync_status"] == "upstream_error"


def test_refused_connects_are_audited_without_changing_anything(client, connected, new_org, audit_rows):
    globex, headers = new_org("globex")
    assert put(client, "shopify", {"storeName": "demo-store"}, headers).status_code == 409
    assert put(client, "shopify", {"storeName": "evil.com#"}, headers).status_code == 422
    import uuid as _uuid

    rows = audit_rows(organization_id=_uuid.UUID(globex["id"]), action="integration.connect_failed")
    assert [(r.status_code, r.detail["error"]) for r in rows] == [(409, "account_claimed"), (422, "validation_error")]
    assert all(r.target is None for r in rows)
    assert client.get("/api/v1/integrations", headers=headers).json["data"] == []


def test_test_on_unconnected_provider_is_404(client, org):
    _, headers = org
    assert client.post("/api/v1/integrations/shopify/test", headers=headers).status_code == 404


def test_providers_lists_all_seven_with_identifier_and_configuration(client, org):
    _, headers = org
    response = client.get("/api/v1/providers", headers=headers)
    assert response.status_code == 200
    by_name = {p["name"]: p for p in response.json["data"]}
    assert list(by_name) == ["shopify", "klaviyo", "kustomer", "messenger", "whatsapp", "stripe", "openai"]
    fields = {name: (p["identifier"] or {}).get("field") for name, p in by_name.items()}
    assert fields == {"shopify": "storeName", "klaviyo": "companyId", "kustomer": "subdomain",
                      "messenger": "pageId", "whatsapp": "phoneNumber", "stripe": None, "openai": None}
    assert by_name["shopify"]["configured"] is True
    assert by_name["shopify"]["identifier"]["example"] == "mystore"
    assert by_name["openai"]["configured"] is False
    assert "missing_variables" not in by_name["openai"]
    assert response.json["next_cursor"] is None
