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
    past = (datetime.now(timezone.utc) - timedelta(hours=1)).isoformat()
    assert client.get("/api/v1/audit-logs", query_string={"since": future}, headers=connected).json["data"] == []
    assert client.get("/api/v1/audit-logs", query_string={"since": past}, headers=connected).json["data"]
    assert client.get("/api/v1/audit-logs", query_string={"until": past}, headers=connected).json["data"] == []
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


def test_every_admin_action_disconnect_and_failed_admin_login_is_audited(make_app, admin, audit_rows):
    app = make_app(CONNECT_REQUIRES_APPROVAL="true")
    client = app.test_client()
    org = client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=admin).json
    issued = client.post(f"/api/v1/admin/organizations/{org['id']}/api-keys", json={}, headers=admin).json
    headers = {"X-API-Key": issued["key"]}
    client.patch(f"/api/v1/admin/organizations/{org['id']}", json={"rate_limit": "100/minute"}, headers=admin)
    pending = client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                         headers=headers).json
    client.post(f"/api/v1/admin/integrations/{pending['id']}/approve",
                json={"account_identifier": {"storeName": "demo-store"}}, headers=admin)
    client.delete("/api/v1/integrations/shopify", headers=headers)
    client.delete(f"/api/v1/admin/organizations/{org['id']}/api-keys/{issued['id']}", headers=admin)
    client.get("/api/v1/admin/organizations", headers={"Authorization": "Bearer not-the-admin-key-at-all"})
    rows = audit_rows()
    assert [(r.action, r.actor.split(":")[0]) for r in rows] == [
        ("org.created", "admin"), ("key.issued", "admin"), ("org.updated", "admin"),
        ("integration.pending", "key"), ("integration.approved", "admin"),
        ("integration.disconnected", "key"), ("key.revoked", "admin"), ("auth.failed", "anonymous"),
    ]
    assert rows[-1].detail["reason"] == "admin_key_mismatch"
    assert all("not-the-admin-key" not in str(r.detail) for r in rows)


def test_a_proxy_call_is_refused_when_its_audit_row_cannot_be_written(client, connected, app):
    from app.extensions import db
    import sqlalchemy as sa

    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text("ALTER TABLE audit_logs RENAME TO audit_logs_away"))
    try:
        response = client.get("/api/v1/shopify/products/8915061031187", headers=connected)
    finally:
        with app.app_context():
            with db.engine.begin() as conn:
                conn.execute(sa.text("ALTER TABLE audit_logs_away RENAME TO audit_logs"))
    assert response.status_code == 503
    assert response.json["code"] == "audit_unavailable"
    assert "Classic Coffee Mug" not in response.get_data(as_text=True)
