"""Health, the OpenAPI document, body limits, unknown routes: the contract's edges."""

import pytest

from config import ConfigError
from tests.conftest import org_headers


def test_health_and_readiness(client):
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"]["database"] == "ok"


def test_openapi_document_describes_the_api(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json
    assert spec["openapi"].startswith("3.")
    for path in ["/api/v1/providers", "/api/v1/integrations/shopify", "/api/v1/integrations/{provider}/test",
                 "/api/v1/audit-logs", "/api/v1/shopify/products", "/api/v1/shopify/products/{product_id}",
                 "/api/v1/shopify/orders/{order_ref}", "/api/v1/admin/organizations"]:
        assert path in spec["paths"], path
    put = spec["paths"]["/api/v1/integrations/shopify"]["put"]
    assert "requestBody" in put
    search = spec["paths"]["/api/v1/shopify/products"]["get"]
    assert {p["name"] for p in search["parameters"]} >= {"query", "limit", "cursor"}
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    assert "application/problem+json" in put["responses"]["default"]["content"]
    assert spec["paths"]["/api/v1/admin/organizations"]["post"]["security"] == [{"adminBearer": []}]
    shopify_identifier = spec["components"]["schemas"]["ShopifyIdentifier"]
    assert shopify_identifier["required"] == ["storeName"]
    assert shopify_identifier["properties"]["storeName"]["example"] == "mystore"
    connect = spec["paths"]["/api/v1/integrations/shopify"]["put"]["requestBody"]
    identifier = connect["content"]["application/json"]["schema"]["properties"]["account_identifier"]
    assert identifier == {"$ref": "#/components/schemas/ShopifyIdentifier"}
    assert client.get("/api/v1/docs").status_code == 200


def test_body_over_the_limit_is_413_problem(make_app):
    app = make_app(MAX_CONTENT_LENGTH="2048")
    client = app.test_client()
    headers = org_headers(client)
    response = client.put("/api/v1/integrations/shopify", headers=headers,
                          json={"account_identifier": {"storeName": "demo-store"}, "pad": "x" * 5000})
    assert response.status_code == 413
    assert response.json["code"] == "payload_too_large"
    assert client.get("/api/v1/integrations", headers=headers).json["data"] == []


def test_oversized_body_is_413_even_where_the_body_is_not_read(client, connected, app):
    app.config["MAX_CONTENT_LENGTH"] = 2048
    response = client.delete("/api/v1/integrations/shopify", data="x" * 5000, headers=connected)
    assert response.status_code == 413
    assert client.get("/api/v1/integrations/shopify", headers=connected).json["status"] == "connected"


def test_redis_down_is_503_not_a_crash(make_app):
    app = make_app(REDIS_URL="redis://127.0.0.1:9/0")
    client = app.test_client()
    headers = org_headers(client)
    response = client.get("/api/v1/integrations", headers=headers)
    assert response.status_code == 503
    assert response.json["code"] == "shared_state_unavailable"
    assert client.get("/readyz").status_code == 503


def test_unknown_route_and_wrong_method_are_problems(client, org):
    _, headers = org
    missing = client.get("/api/v1/nothing-here", headers=headers)
    assert missing.status_code == 404 and missing.json["code"] == "not_found"
    wrong = client.post("/api/v1/providers", headers=headers)
    assert wrong.status_code == 405 and wrong.json["code"] == "method_not_allowed"


def test_malformed_json_is_a_problem_not_a_crash(client, org):
    _, headers = org
    response = client.put("/api/v1/integrations/shopify", data="{not json", headers={**headers,
                          "Content-Type": "application/json"})
    assert response.status_code in (400, 422)
    assert response.mimetype == "application/problem+json"


def test_request_id_is_echoed_or_made(client):
    assert client.get("/healthz", headers={"X-Request-ID": "abc12345-req"}).headers["X-Request-ID"] == "abc12345-req"
    made = client.get("/healthz", headers={"X-Request-ID": "bad id; drop"}).headers["X-Request-ID"]
    assert len(made) == 32


@pytest.mark.parametrize("env, name", [
    ({"CONNECT_REQUIRES_APPROVAL": "maybe"}, "CONNECT_REQUIRES_APPROVAL"),
    ({"SHOPIFY_ADMIN_ACCESS_TOKENS": "{not json"}, "SHOPIFY_ADMIN_ACCESS_TOKENS"),
    ({"SHOPIFY_ADMIN_ACCESS_TOKENS": '["a"]'}, "SHOPIFY_ADMIN_ACCESS_TOKENS"),
    ({"ADMIN_API_KEY": "short"}, "ADMIN_API_KEY"),
    ({"ORG_RATE_LIMIT": "fast"}, "ORG_RATE_LIMIT"),
    ({"HTTP_READ_TIMEOUT": "soon"}, "HTTP_READ_TIMEOUT"),
    ({"SHOPIFY_API_VERSION": "latest"}, "SHOPIFY_API_VERSION"),
    ({"SHOPIFY_ADMIN_ACCESS_TOKEN": "shpat_with a_space"}, "SHOPIFY_ADMIN_ACCESS_TOKEN"),
    ({"SHOPIFY_ADMIN_ACCESS_TOKENS": '{"demo-store": "line\\nbreak"}'}, "SHOPIFY_ADMIN_ACCESS_TOKENS"),
    ({"SHOPIFY_ADMIN_ACCESS_TOKENS": "{}"}, "SHOPIFY_ADMIN_ACCESS_TOKENS"),
    ({"SHOPIFY_ADMIN_ACCESS_TOKENS": '{"Demo-Store": "tok_a", "demo-store": "tok_b"}'}, "SHOPIFY_ADMIN_ACCESS_TOKENS"),
    ({"SHOPIFY_ADMIN_ACCESS_TOKENS": '{"evil.com": "tok_a"}'}, "SHOPIFY_ADMIN_ACCESS_TOKENS"),
    ({"KLAVIYO_PRIVATE_API_KEYS": '{"ABC": "pk_a"}'}, "KLAVIYO_PRIVATE_API_KEYS"),
])
def test_junk_configuration_refuses_start_up_naming_the_variable(make_app, env, name):
    with pytest.raises(ConfigError) as raised:
        make_app(**env)
    assert name in str(raised.value)
    for value in env.values():
        assert value not in str(raised.value)
