"""Org A can never read or change org B's integrations, audit entries or proxy data."""

import uuid

MUG = "8915061031187"


def test_integrations_of_another_org_are_invisible(client, connected, new_org):
    _, globex = new_org("globex")
    assert client.get("/api/v1/integrations", headers=globex).json["data"] == []
    assert client.get("/api/v1/integrations/shopify", headers=globex).status_code == 404
    assert client.delete("/api/v1/integrations/shopify", headers=globex).status_code == 404
    assert client.post("/api/v1/integrations/shopify/test", headers=globex).status_code == 404
    assert client.get("/api/v1/integrations/shopify", headers=connected).json["status"] == "connected"


def test_proxy_uses_only_the_callers_own_store(client, connected, new_org, shopify):
    _, globex = new_org("globex")
    assert client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "other-store"}},
                      headers=globex).status_code == 201
    shopify.reset()
    assert client.get(f"/api/v1/shopify/products/{MUG}", headers=globex).status_code == 404
    assert client.get(f"/api/v1/shopify/products/{MUG}", headers=connected).status_code == 200
    assert [r["shop"] for r in shopify.received] == ["other-store", "demo-store"]
    theirs = client.get("/api/v1/shopify/products?query=mug", headers=globex).json["data"]
    assert theirs == []  # demo-store's mug is not in other-store
    ours = client.get("/api/v1/shopify/orders/%231001", headers=connected).json
    their_order = client.get("/api/v1/shopify/orders/%231001", headers=globex).json
    assert ours["id"] != their_order["id"]  # the same order name, each org's own store
    assert client.get(f"/api/v1/shopify/orders/{ours['id']}", headers=globex).status_code == 404


def test_organization_id_in_query_is_ignored(client, connected, new_org):
    globex, globex_headers = new_org("globex")
    listed = client.get(f"/api/v1/integrations?organization_id={uuid.uuid4()}", headers=connected).json["data"]
    assert [i["provider"] for i in listed] == ["shopify"]
    acme_id = listed[0]["organization_id"]
    theirs = client.get(f"/api/v1/integrations?organization_id={acme_id}", headers=globex_headers).json["data"]
    assert theirs == []
    logs = client.get(f"/api/v1/audit-logs?organization_id={acme_id}", headers=globex_headers).json["data"]
    assert all(e["organization_id"] == globex["id"] for e in logs)
    proxied = client.get(f"/api/v1/shopify/products/{MUG}?organization_id={acme_id}", headers=globex_headers)
    assert proxied.status_code == 409


def test_audit_entries_of_another_org_are_invisible(client, connected, new_org):
    client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    globex, globex_headers = new_org("globex")
    entries = client.get("/api/v1/audit-logs", headers=globex_headers).json["data"]
    assert entries and {e["organization_id"] for e in entries} == {globex["id"]}
    assert "demo-store" not in str(entries)


def test_disconnect_by_another_org_changes_nothing(client, connected, new_org):
    _, globex = new_org("globex")
    client.delete("/api/v1/integrations/shopify", headers=globex)
    client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}}, headers=globex)
    assert client.get("/api/v1/integrations/shopify", headers=connected).json["status"] == "connected"
    assert client.get(f"/api/v1/shopify/products/{MUG}", headers=connected).status_code == 200
