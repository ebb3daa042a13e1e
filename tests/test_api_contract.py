"""The OpenAPI document says what the server does; lists page one way; problems carry their id.

(The generated-request check is tests/test_contract.py; these pin the pieces it relies on.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.pagination import encode

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def spec(client):
    return client.get("/api/v1/openapi.json").json


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "patch", "delete"):
                yield path, method, operation


def test_every_operation_has_an_id_statuses_and_the_request_id_header(spec):
    ids = [op["operationId"] for _, _, op in operations(spec)]
    assert len(ids) == len(set(ids))
    assert spec["servers"]
    for path, method, operation in operations(spec):
        responses = operation["responses"]
        admin = operation.get("security") == [{"adminBearer": []}]
        assert {"401", "413", "503"} <= set(responses), (method, path)
        if not admin:
            assert {"403", "429"} <= set(responses), (method, path)
            assert "Retry-After" in responses["429"]["headers"]
            assert "X-RateLimit-Remaining" in responses["429"]["headers"]
        for status, response in responses.items():
            assert "X-Request-ID" in response["headers"], (method, path, status)
            if status.startswith(("4", "5")):
                assert response["content"] == {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert spec["components"]["headers"]["XRequestID"]["required"] is True


def test_upstream_operations_list_gateway_statuses(spec):
    products = spec["paths"]["/api/v1/shopify/products"]["get"]["responses"]
    assert {"409", "422", "429", "502", "503", "504"} <= set(products)
    connect = spec["paths"]["/api/v1/integrations/shopify"]["put"]["responses"]
    assert {"400", "409", "415", "422", "502", "504"} <= set(connect)
    assert "501" in spec["paths"]["/api/v1/integrations/{provider}/test"]["post"]["responses"]


def test_response_schemas_declare_required_and_problem_allows_extensions(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["Integration"]["required"] == sorted(schemas["Integration"]["properties"])
    assert "next_cursor" in schemas["AuditPage"]["required"]
    assert schemas["Product"]["required"]
    problem = schemas["Problem"]
    assert problem["additionalProperties"] is True
    assert {"type", "title", "status", "detail", "instance", "code", "request_id"} <= set(problem["required"])


def test_parameters_carry_the_patterns_the_server_enforces(spec):
    test = spec["paths"]["/api/v1/integrations/{provider}/test"]
    provider = next(p for p in test["parameters"] if p["name"] == "provider")
    assert set(provider["schema"]["enum"]) == {"shopify", "klaviyo", "kustomer", "messenger", "whatsapp",
                                               "stripe", "openai"}
    keys = spec["paths"]["/api/v1/admin/organizations/{org_ref}/api-keys/{key_id}"]["parameters"]
    assert {p["name"]: p["schema"].get("pattern") is not None for p in keys} == {"org_ref": True, "key_id": True}
    product = spec["paths"]["/api/v1/shopify/products/{product_id}"]["parameters"][0]
    assert re.fullmatch(product["schema"]["pattern"].strip("^$"), "8915061031187")
    audit = {p["name"]: p["schema"] for p in spec["paths"]["/api/v1/audit-logs"]["get"]["parameters"]}
    assert audit["limit"]["maximum"] == 200 and audit["cursor"]["pattern"]
    org_create = spec["components"]["schemas"]["OrgCreate"]["properties"]
    assert org_create["slug"]["pattern"] and org_create["rate_limit"]["pattern"]


def test_connect_body_is_typed_per_provider(spec):
    shopify = spec["paths"]["/api/v1/integrations/shopify"]["put"]["requestBody"]
    assert shopify["required"] is True
    body = shopify["content"]["application/json"]["schema"]
    assert body["required"] == ["account_identifier"] and body["additionalProperties"] is False
    stripe = spec["paths"]["/api/v1/integrations/stripe"]["put"]["requestBody"]
    assert stripe["required"] is False
    assert "{provider}" not in "".join(p for p in spec["paths"] if p.endswith("/integrations/{provider}"))


def test_optional_bodies_are_optional_in_the_document_and_the_server(client, spec, admin, org):
    org_data, _ = org
    for path, method in [("/api/v1/admin/organizations/{org_ref}", "patch"),
                         ("/api/v1/admin/organizations/{org_ref}/api-keys", "post")]:
        assert spec["paths"][path][method]["requestBody"]["required"] is False
    assert spec["paths"]["/api/v1/admin/organizations"]["post"]["requestBody"]["required"] is True
    assert client.patch(f"/api/v1/admin/organizations/{org_data['id']}", headers=admin).status_code == 200
    assert client.post(f"/api/v1/admin/organizations/{org_data['id']}/api-keys", headers=admin).status_code == 201
    # a platform service needs no body at all
    _, headers = org
    response = client.put("/api/v1/integrations/stripe", headers=headers)
    assert response.status_code == 503 and response.json["code"] == "provider_not_configured"


def test_problem_instance_is_the_request_id_and_fields_have_pointers(client, org):
    _, headers = org
    response = client.put("/api/v1/integrations/shopify", headers={**headers, "X-Request-ID": "req-abcdef-123"},
                          json={"account_identifier": {"storeName": "Not A Label!"}})
    assert response.status_code == 422
    problem = response.json
    assert problem["instance"] == "urn:request:req-abcdef-123" == f"urn:request:{response.headers['X-Request-ID']}"
    assert problem["field"] == "account_identifier.storeName"
    assert problem["pointer"] == "#/account_identifier/storeName"
    assert problem["errors"][0]["pointer"] == "#/account_identifier/storeName"
    webargs = client.post("/api/v1/admin/organizations", json={"slug": 5, "name": ""},
                          headers={"Authorization": "Bearer test-admin-key-0123456789abcdef"}).json
    assert {(e["field"], e["pointer"]) for e in webargs["errors"]} == {("slug", "#/slug"), ("name", "#/name")}


def test_titles_are_the_same_for_one_code(client, org):
    _, headers = org
    unknown_route = client.get("/api/v1/nothing-here", headers=headers).json
    unknown_provider = client.get("/api/v1/integrations/nope", headers=headers).json
    assert unknown_route["title"] == "Not found" == unknown_provider["title"]


def _listed(client, path, headers):
    seen, cursor = [], None
    while True:
        query = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = client.get(path, query_string=query, headers=headers).json
        assert set(page) == {"data", "next_cursor"}
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


def test_every_list_pages_with_one_convention(make_app, admin):
    app = make_app(KLAVIYO_PRIVATE_API_KEY="k-test", CONNECT_REQUIRES_APPROVAL="true")
    client = app.test_client()
    from tests.conftest import org_headers

    headers = org_headers(client, "acme")
    org_headers(client, "globex")
    acme = client.get("/api/v1/admin/organizations/acme", headers=admin).json
    client.post(f"/api/v1/admin/organizations/acme/api-keys", json={"name": "second"}, headers=admin)
    client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}}, headers=headers)
    client.put("/api/v1/integrations/klaviyo", json={"account_identifier": {"companyId": "AbC123"}}, headers=headers)

    assert [o["slug"] for o in _listed(client, "/api/v1/admin/organizations", admin)] == ["acme", "globex"]
    assert len(_listed(client, f"/api/v1/admin/organizations/{acme['id']}/api-keys", admin)) == 2
    assert [i["provider"] for i in _listed(client, "/api/v1/integrations", headers)] == ["klaviyo", "shopify"]
    assert len(_listed(client, "/api/v1/admin/integrations", admin)) == 2
    audit = _listed(client, "/api/v1/audit-logs", headers)
    assert [int(r["id"]) for r in audit] == sorted((int(r["id"]) for r in audit), reverse=True)
    assert client.get("/api/v1/providers", headers=headers).json["next_cursor"] is None
    # a cursor of another list, a forged one or junk: 422 invalid_cursor naming the field
    for bad in [encode("organizations", acme["id"]), "bm90LWpzb24", "!!", encode("audit", "x")]:
        response = client.get("/api/v1/audit-logs", query_string={"cursor": bad}, headers=headers)
        assert response.status_code == 422 and response.json["field"] == "cursor", bad
    assert client.get("/api/v1/admin/organizations?limit=201", headers=admin).status_code == 422


def test_product_pages_use_the_same_cursor(client, connected):
    first = client.get("/api/v1/shopify/products?limit=2", headers=connected).json
    assert len(first["data"]) == 2 and first["next_cursor"]
    second = client.get("/api/v1/shopify/products", query_string={"limit": 2, "cursor": first["next_cursor"]},
                        headers=connected).json
    assert not {p["id"] for p in first["data"]} & {p["id"] for p in second["data"]}
    # a cursor Shopify would refuse is our 422, not the provider's 502
    junk = client.get("/api/v1/shopify/products", query_string={"cursor": "0" * 40}, headers=connected)
    assert junk.status_code == 422 and junk.json["code"] == "invalid_cursor"


def test_docs_page_and_its_assets_are_served_locally(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(a.startswith("/api/v1/docs/assets/") for a in assets), assets
    assert "cdn" not in html and "https://" not in html
    for asset in assets:
        response = client.get(asset)
        assert response.status_code == 200 and len(response.data) > 1000, asset
    assert client.get("/api/v1/docs/assets/index.html").status_code == 404


def test_every_error_code_is_in_the_readme_with_its_status():
    source = "\n".join(p.read_text() for p in (ROOT / "app").rglob("*.py"))
    codes = set(re.findall(r'\bcode\s*=\s*"([a-z_]+)"', source)) | set(re.findall(r'^\s+\d{3}: "([a-z_]+)",$', source, re.M))
    codes -= {"http_error"}
    readme = (ROOT / "README.md").read_text()
    table = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", readme, re.M))
    assert codes - set(table) == set(), "codes missing from README's error table"
