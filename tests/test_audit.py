"""The audit log: one writer, org-scoped reads, newest first, paginated, filterable."""

from datetime import datetime, timedelta, timezone

MUG = "8915061031187"


def test_proxy_calls_connects_and_tests_are_audited(client, connected, audit_rows):
    client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    client.get("/api/v1/shopify/products/999", headers=connected)
    client.post("/api/v1/integrations/shopify/test", headers=connected)
    page = client.get("/api/v1/audit-logs", headers=connected).json["data"]
    assert [e["action"] for e in page][:4] == ["integration.tested", "proxy.request", "proxy.request",
                                               "integration.connected"]
    not_found, found = page[1], page[2]
    assert found["status_code"] == 200 and found["outcome"] == "success"
    assert found["provider"] == "shopify" and found["target"] == "demo-store"
    assert found["detail"]["operation"] == "products.get"
    assert found["detail"]["upstream_status"] == 200
    assert found["latency_ms"] > 0 and found["request_id"]
    assert not_found["status_code"] == 404 and not_found["outcome"] == "failure"
    assert not_found["detail"]["error"] == "product_not_found"


def test_audit_rows_carry_no_bodies(client, connected, audit_rows):
    client.get("/api/v1/shopify/orders/%231001", headers=connected)
    row = audit_rows(action="proxy.request")[-1]
    text = str(row.detail)
    assert "1Z999AA10123456784" not in text and "ada.lovelace" not in text
    assert set(row.detail) <= {"operation", "upstream_status", "attempts", "query_cost", "error"}


def test_audit_log_is_paginated_newest_first(client, connected):
    for _ in range(5):
        client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    first = client.get("/api/v1/audit-logs?limit=2", headers=connected).json
    second = client.get(f"/api/v1/audit-logs?limit=2&cursor={first['next_cursor']}", headers=connected).json
    ids = [int(e["id"]) for e in first["data"] + second["data"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 4


def test_audit_log_filters(client, connected):
    client.get(f"/api/v1/shopify/products/{MUG}", headers=connected)
    by_action = client.get("/api/v1/audit-logs?action=proxy.request", headers=connected).json["data"]
    assert {e["action"] for e in by_action} == {"proxy.request"}
    by_provider = client.get("/api/v1/audit-logs?provider=klaviyo", headers=connected).json["data"]
    assert by_provider == []
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert client.get("/api/v1/audit-logs", query_string={"since": future}, headers=connected).json["data"] == []
    assert client.get("/api/v1/audit-logs", query_string={"until": future}, headers=connected).json["data"]


def test_time_filters_respect_the_offset(client, connected):
    now = datetime.now(timezone.utc)
    same_instant_elsewhere = now.astimezone(timezone(timedelta(hours=5)))
    earlier = (same_instant_elsewhere - timedelta(minutes=5)).isoformat()
    assert client.get("/api/v1/audit-logs", query_string={"since": earlier}, headers=connected).json["data"]
    later = (same_instant_elsewhere + timedelta(minutes=5)).isoformat()
    assert client.get("/api/v1/audit-logs", query_string={"since": later}, headers=connected).json["data"] == []


def test_bad_audit_filters_are_422(client, connected):
    response = client.get("/api/v1/audit-logs?since=yesterday", headers=connected)
    assert response.status_code == 422
    assert response.json["field"] == "since"
    assert client.get("/api/v1/audit-logs?limit=1000", headers=connected).json["field"] == "limit"
    huge = client.get("/api/v1/audit-logs?cursor=999999999999999999999999", headers=connected)
    assert huge.status_code == 422 and huge.json["field"] == "cursor"
