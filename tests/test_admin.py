"""The platform admin over HTTP and the same operations from the CLI."""

import pytest

from app import keys
from tests.conftest import org_headers


def test_admin_creates_lists_and_updates_orgs(client, admin):
    created = client.post("/api/v1/admin/organizations", json={"slug": "acme", "name": "Acme Inc."}, headers=admin)
    assert created.status_code == 201
    assert created.json["slug"] == "acme" and created.json["status"] == "active"
    assert created.json["rate_limit"] is None
    listed = client.get("/api/v1/admin/organizations", headers=admin).json["data"]
    assert [o["slug"] for o in listed] == ["acme"]
    patched = client.patch(f"/api/v1/admin/organizations/{created.json['id']}", json={"rate_limit": "5/minute"},
                           headers=admin)
    assert patched.status_code == 200 and patched.json["rate_limit"] == "5/minute"
    by_slug = client.get("/api/v1/admin/organizations/acme", headers=admin)
    assert by_slug.json["id"] == created.json["id"]


@pytest.mark.parametrize("body, field", [
    ({}, "slug"),
    ({"slug": "Acme"}, "slug"),
    ({"slug": "acme.com"}, "slug"),
    ({"slug": "acme", "rate_limit": "lots"}, "rate_limit"),
    ({"slug": "acme", "plan": "gold"}, "plan"),
])
def test_bad_org_input_is_422_and_creates_nothing(client, admin, body, field):
    response = client.post("/api/v1/admin/organizations", json=body, headers=admin)
    assert response.status_code == 422
    assert response.json["field"] == field
    assert client.get("/api/v1/admin/organizations", headers=admin).json["data"] == []


def test_a_slug_that_looks_like_a_uuid_is_refused(client, admin):
    slug = "deadbeefdeadbeefdeadbeefdeadbeef"  # more in tests/test_admin_review.py
    created = client.post("/api/v1/admin/organizations", json={"slug": slug}, headers=admin)
    assert created.status_code == 422 and created.json["field"] == "slug"


def test_duplicate_slug_is_409(client, admin):
    assert client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=admin).status_code == 201
    again = client.post("/api/v1/admin/organizations", json={"slug": "acme"}, headers=admin)
    assert again.status_code == 409
    assert again.json["code"] == "slug_taken"


def test_revoking_a_key_of_another_org_through_the_wrong_org_is_404(client, admin, new_org):
    acme, _ = new_org("acme")
    globex, _ = new_org("globex")
    key_id = client.get(f"/api/v1/admin/organizations/{acme['id']}/api-keys", headers=admin).json["data"][0]["id"]
    response = client.delete(f"/api/v1/admin/organizations/{globex['id']}/api-keys/{key_id}", headers=admin)
    assert response.status_code == 404


def test_admin_actions_are_audited(client, admin, new_org, audit_rows):
    acme, _ = new_org("acme")
    actions = [(r.action, r.actor) for r in audit_rows(organization_id=__import__("uuid").UUID(acme["id"]))]
    assert actions == [("org.created", "admin"), ("key.issued", "admin")]


def test_cli_creates_org_issues_and_revokes_key(app, client):
    runner = app.test_cli_runner()
    created = runner.invoke(args=["orgs", "create", "acme", "--name", "Acme"])
    assert created.exit_code == 0, created.output
    issued = runner.invoke(args=["keys", "issue", "acme", "--name", "bot"])
    assert issued.exit_code == 0, issued.output
    key = issued.stdout.strip().splitlines()[-1]
    assert keys.well_formed(key)
    assert client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    key_id = issued.stderr.split("key id:")[1].split()[0]
    revoked = runner.invoke(args=["keys", "revoke", key_id])
    assert revoked.exit_code == 0, revoked.output
    assert client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {key}"}).status_code == 401
    listed = runner.invoke(args=["orgs", "list"])
    assert "acme" in listed.output


def test_cli_refuses_bad_slug_and_unknown_org(app):
    runner = app.test_cli_runner()
    bad = runner.invoke(args=["orgs", "create", "Not A Slug"])
    assert bad.exit_code != 0
    assert "slug" in bad.output
    missing = runner.invoke(args=["keys", "issue", "nobody"])
    assert missing.exit_code != 0
    assert "No such organization" in missing.output


def test_cli_lists_providers_with_their_configuration(app):
    result = app.test_cli_runner().invoke(args=["providers", "list"])
    assert result.exit_code == 0
    lines = dict(line.split("\t", 1) for line in result.stdout.strip().splitlines())
    assert list(lines) == ["shopify", "klaviyo", "kustomer", "messenger", "whatsapp", "stripe", "openai"]
    assert lines["shopify"] == "storeName\tconfigured"
    assert lines["openai"].startswith("-\tnot configured (set OPENAI_API_KEY")


def test_cli_approves_a_pending_integration(make_app, admin):
    app = make_app(CONNECT_REQUIRES_APPROVAL="true")
    client = app.test_client()
    headers = org_headers(client, "acme")
    pending = client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                         headers=headers).json
    assert pending["status"] == "pending"
    result = app.test_cli_runner().invoke(args=["integrations", "approve", pending["id"], "demo-store"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("connected")
    assert client.get("/api/v1/integrations/shopify", headers=headers).json["status"] == "connected"
