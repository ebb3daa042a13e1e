"""API keys and authentication: one uniform 401, checksum before database, admin vs org keys."""

import pytest
import sqlalchemy as sa

from app import keys
from app.extensions import db


def test_issued_key_has_the_documented_shape_and_is_stored_as_a_hash(make_app, admin):
    app = make_app(SANDBOX="false")  # a live server issues live keys (the suite's default is the sandbox)
    client = app.test_client()
    org_id = client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=admin).json["id"]
    issued = client.post(f"/api/v1/admin/organizations/{org_id}/api-keys", json={"name": "bot"}, headers=admin)
    assert issued.status_code == 201
    key = issued.json["key"]
    assert keys.well_formed(key)
    assert key.startswith("swbd_live_") and key.count("_") == 3
    assert issued.json["prefix"] == key[:16]
    with app.app_context():
        stored = db.session.execute(sa.text("SELECT key_hash, prefix FROM api_keys")).all()
    assert stored == [(keys.digest(key), key[:16])]
    listed = client.get(f"/api/v1/admin/organizations/{org_id}/api-keys", headers=admin).json["data"]
    assert [k["prefix"] for k in listed] == [key[:16]]
    assert "key" not in listed[0]


def test_key_works_as_bearer_and_as_x_api_key(client, org, admin):
    org_data, headers = org
    key = headers["Authorization"].split()[1]
    listed = client.get(f"/api/v1/admin/organizations/{org_data['id']}/api-keys", headers=admin).json["data"]
    assert listed[0]["last_used_at"] is None
    assert client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/api/v1/integrations", headers={"X-API-Key": key}).status_code == 200
    listed = client.get(f"/api/v1/admin/organizations/{org_data['id']}/api-keys", headers=admin).json["data"]
    assert listed[0]["last_used_at"] is not None


def _broken_checksum(key: str) -> str:
    last = key[-1]
    return key[:-1] + ("A" if last != "A" else "B")


@pytest.mark.parametrize("make_headers", [
    lambda key: {},
    lambda key: {"Authorization": "Bearer"},
    lambda key: {"Authorization": f"Basic {key}"},
    lambda key: {"Authorization": "Bearer sb_live_short_abc"},
    lambda key: {"Authorization": f"Bearer {_broken_checksum(key)}"},
    lambda key: {"Authorization": f"Bearer {keys.generate()}"},  # well formed, never issued
    lambda key: {"X-API-Key": key + "x"},
    lambda key: {"Authorization": "Bearer test-admin-key-0123456789abcdef"},  # the admin key
], ids=["missing", "empty", "basic", "malformed", "bad-checksum", "unknown", "suffix", "admin-key"])
def test_every_bad_key_gets_the_same_401(client, org, make_headers):
    _, headers = org
    key = headers["Authorization"].split()[1]
    response = client.get("/api/v1/integrations", headers=make_headers(key))
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == "unauthorized"
    assert response.json["detail"] == "A valid API key is required in the Authorization header."
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("query", ["api_key={key}", "key={key}", "token={key}", "x=1&x={key}"])
def test_key_in_query_string_is_refused_even_with_a_good_header(client, org, query):
    _, headers = org
    key = headers["Authorization"].split()[1]
    response = client.get("/api/v1/integrations?" + query.format(key=key), headers=headers)
    assert response.status_code == 401


def test_bad_checksum_is_rejected_before_any_database_lookup(client, org, app):
    _, headers = org
    key = headers["Authorization"].split()[1]
    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engines = [db.engine, app.extensions["autocommit_engine"]]
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", count)
    try:
        client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {_broken_checksum(key)}"})
        malformed = [s for s in statements if "api_keys" in s]
        statements.clear()
        client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {keys.generate()}"})
        unknown = [s for s in statements if "api_keys" in s]
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", count)
    assert malformed == []
    assert len(unknown) == 1  # the well-formed key *is* looked up: the check is not vacuous


def test_failed_authentication_is_audited_with_its_reason(client, org, audit_rows):
    _, headers = org
    key = headers["Authorization"].split()[1]
    client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {_broken_checksum(key)}"})
    client.get(f"/api/v1/integrations?api_key={key}")
    rows = audit_rows(action="auth.failed")
    assert [r.detail["reason"] for r in rows] == ["malformed", "key_in_query_string"]
    assert all(r.status_code == 401 and r.outcome == "denied" for r in rows)
    assert all(key not in str(r.detail) for r in rows)


def test_revoked_key_stops_working_at_once(client, admin, org):
    org_data, headers = org
    assert client.get("/api/v1/integrations", headers=headers).status_code == 200
    key_id = client.get(f"/api/v1/admin/organizations/{org_data['id']}/api-keys", headers=admin).json["data"][0]["id"]
    assert client.delete(f"/api/v1/admin/organizations/{org_data['id']}/api-keys/{key_id}",
                         headers=admin).status_code == 204
    response = client.get("/api/v1/integrations", headers=headers)
    assert response.status_code == 401
    assert response.json["detail"] == "A valid API key is required in the Authorization header."


def test_suspended_org_is_403(client, admin, org):
    org_data, headers = org
    client.patch(f"/api/v1/admin/organizations/{org_data['id']}", json={"status": "suspended"}, headers=admin)
    response = client.get("/api/v1/integrations", headers=headers)
    assert response.status_code == 403
    assert response.json["code"] == "organization_suspended"


def test_org_key_cannot_use_the_admin_api(client, org):
    _, headers = org
    response = client.get("/api/v1/admin/organizations", headers=headers)
    assert response.status_code == 401


def test_admin_api_is_disabled_without_admin_key(make_app):
    client = make_app(ADMIN_API_KEY=None).test_client()
    response = client.get("/api/v1/admin/organizations", headers={"Authorization": "Bearer anything-at-all-here"})
    assert response.status_code == 503
    assert response.json["code"] == "admin_not_configured"


def test_a_flood_of_bad_keys_gets_401s_but_a_bounded_number_of_audit_rows(make_app, audit_rows):
    client = make_app(AUTH_FAILURE_AUDIT_LIMIT="3/minute").test_client()
    statuses = [client.get("/api/v1/integrations", headers={"X-API-Key": "nope"}).status_code for _ in range(6)]
    assert statuses == [401] * 6
    assert len(audit_rows(action="auth.failed")) == 3
