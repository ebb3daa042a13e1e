"""The admin's review of claims: approval bound to what was reviewed, reject, release, slugs that
can never be read as ids, and failed admin keys audited under the same cap as org keys."""

import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import org_headers

DEMO = {"account_identifier": {"storeName": "demo-store"}}
OTHER = {"account_identifier": {"storeName": "other-store"}}


@pytest.fixture
def review_app(make_app):
    return make_app(CONNECT_REQUIRES_APPROVAL="true")


def _pending(client, headers, body=DEMO):
    response = client.put("/api/v1/integrations/shopify", json=body, headers=headers)
    assert response.json["status"] == "pending", response.json
    return response.json


# --- approval is bound to the account reviewed --------------------------------------------------------


def test_switching_the_pending_store_after_review_does_not_get_the_other_store_approved(review_app, admin):
    client = review_app.test_client()
    headers = org_headers(client, "acme")
    listed = _pending(client, headers, DEMO)  # the admin reviews: demo-store
    _pending(client, headers, OTHER)  # the org switches its pending connection
    approved = client.post(f"/api/v1/admin/integrations/{listed['id']}/approve", json=DEMO, headers=admin)
    assert approved.status_code == 409 and approved.json["code"] == "account_changed"
    assert client.get("/api/v1/integrations/shopify", headers=headers).json["status"] == "pending"
    assert client.get("/api/v1/shopify/orders/%231001", headers=headers).status_code == 409


def test_approval_must_name_the_account(review_app, admin):
    client = review_app.test_client()
    pending = _pending(client, org_headers(client, "acme"))
    missing = client.post(f"/api/v1/admin/integrations/{pending['id']}/approve", json={}, headers=admin)
    assert missing.status_code == 422 and missing.json["field"] == "account_identifier"
    # Not this store's shape (nor any store's): not the account under review.
    bad = client.post(f"/api/v1/admin/integrations/{pending['id']}/approve",
                      json={"account_identifier": {"storeName": "evil.com#"}}, headers=admin)
    assert bad.status_code == 409 and bad.json["code"] == "account_changed"
    other_kind = client.post(f"/api/v1/admin/integrations/{pending['id']}/approve",
                             json={"account_identifier": {"subdomain": "demo-store"}}, headers=admin)
    assert other_kind.status_code == 409 and other_kind.json["code"] == "account_changed"
    same = client.post(f"/api/v1/admin/integrations/{pending['id']}/approve",
                       json={"account_identifier": {"storeName": "DEMO-STORE"}}, headers=admin)
    assert same.status_code == 200 and same.json["status"] == "connected"


def test_cli_approval_names_the_account_too(review_app):
    client = review_app.test_client()
    headers = org_headers(client, "acme")
    pending = _pending(client, headers, DEMO)
    _pending(client, headers, OTHER)
    runner = review_app.test_cli_runner()
    listed = runner.invoke(args=["integrations", "list"])
    assert listed.output.split() == [pending["id"], "acme", "shopify", "other-store"]
    assert runner.invoke(args=["integrations", "approve", pending["id"]]).exit_code != 0
    refused = runner.invoke(args=["integrations", "approve", pending["id"], "demo-store"])
    assert refused.exit_code != 0 and "another account" in refused.output
    ok = runner.invoke(args=["integrations", "approve", pending["id"], "other-store"])
    assert ok.exit_code == 0 and ok.output.strip().endswith("connected")


# --- reject and release -----------------------------------------------------------------------------


def test_admin_rejects_a_squatters_pending_claim_and_the_owner_connects(review_app, admin, audit_rows):
    client = review_app.test_client()
    squatter = org_headers(client, "squatter")
    owner = org_headers(client, "owner")
    pending = _pending(client, squatter)
    blocked = client.put("/api/v1/integrations/shopify", json=DEMO, headers=owner)
    assert blocked.status_code == 409 and blocked.json["code"] == "account_claimed"
    rejected = client.post(f"/api/v1/admin/integrations/{pending['id']}/reject", json=DEMO, headers=admin)
    assert rejected.status_code == 200 and rejected.json["status"] == "disconnected"
    assert client.get("/api/v1/integrations/shopify", headers=squatter).status_code == 404
    again = client.post(f"/api/v1/admin/integrations/{pending['id']}/reject", headers=admin)
    assert again.status_code == 409 and again.json["code"] == "not_pending"
    assert client.put("/api/v1/integrations/shopify", json=DEMO, headers=owner).status_code == 201
    row = audit_rows(action="integration.rejected")[0]
    assert (row.actor, row.target, row.provider, row.detail) == ("admin", "demo-store", "shopify", {"from": "pending"})


def test_admin_releases_a_connected_claim_held_by_a_suspended_squatter(client, connected, admin, new_org,
                                                                       audit_rows):
    squatter_id = client.get("/api/v1/admin/organizations/acme", headers=admin).json["id"]
    integration_id = client.get("/api/v1/integrations/shopify", headers=connected).json["id"]
    client.patch(f"/api/v1/admin/organizations/{squatter_id}", json={"status": "suspended"}, headers=admin)
    _, owner = new_org("owner")
    # Suspension does not free the claim (it is reversible, and about access, not ownership)...
    assert client.put("/api/v1/integrations/shopify", json=DEMO, headers=owner).status_code == 409
    wrong = client.post(f"/api/v1/admin/integrations/{integration_id}/release", json=OTHER, headers=admin)
    assert wrong.status_code == 409 and wrong.json["code"] == "account_changed"
    # ...release does.
    released = client.post(f"/api/v1/admin/integrations/{integration_id}/release", json=DEMO, headers=admin)
    assert released.status_code == 200 and released.json["status"] == "disconnected"
    assert released.json["error_message"] == "Released by the platform administrator."
    assert client.put("/api/v1/integrations/shopify", json=DEMO, headers=owner).status_code == 201
    row = audit_rows(action="integration.released")[0]
    assert (row.actor, row.target, row.organization_id, row.detail) == (
        "admin", "demo-store", uuid.UUID(squatter_id), {"from": "connected"})


def test_release_and_reject_of_unknown_ids_are_404(client, admin):
    for verb in ("approve", "reject", "release"):
        response = client.post(f"/api/v1/admin/integrations/{uuid.uuid4()}/{verb}", json=DEMO, headers=admin)
        assert response.status_code == 404 and response.json["code"] == "integration_not_found"
        assert client.post(f"/api/v1/admin/integrations/nope/{verb}", json=DEMO, headers=admin).status_code == 404


def test_cli_rejects_and_releases(review_app):
    client = review_app.test_client()
    pending = _pending(client, org_headers(client, "acme"))
    runner = review_app.test_cli_runner()
    wrong = runner.invoke(args=["integrations", "reject", pending["id"], "other-store"])
    assert wrong.exit_code != 0 and "another account" in wrong.output
    assert runner.invoke(args=["integrations", "release", pending["id"], "demo-store"]).exit_code == 0
    again = runner.invoke(args=["integrations", "release", pending["id"]])
    assert again.exit_code != 0 and "disconnected" in again.output
    assigned = runner.invoke(args=["integrations", "assign", "acme", "shopify", "demo-store"])
    assert assigned.exit_code == 0 and assigned.output.strip().endswith("connected"), assigned.output


# --- slugs and ids are never confusable -------------------------------------------------------------


@pytest.mark.parametrize("shape", [
    lambda u: u.hex,  # 32 hex
    lambda u: str(u),  # canonical
    lambda u: u.hex[:8] + "-" + u.hex[8:],  # stray hyphens
    lambda u: "-".join(u.hex[i:i + 4] for i in range(0, 32, 4)),  # PostgreSQL's groups of four
])
def test_no_slug_may_parse_as_a_uuid(client, admin, shape):
    response = client.post("/api/v1/admin/organizations", json={"slug": shape(uuid.uuid4())}, headers=admin)
    assert response.status_code == 422 and response.json["field"] == "slug"


def test_a_crafted_slug_cannot_get_the_admin_to_issue_a_key_to_another_org(client, admin, new_org):
    victim, _ = new_org("victim")
    crafted = client.post("/api/v1/admin/organizations", json={"slug": victim["id"]}, headers=admin)
    assert crafted.status_code == 422
    keys_before = client.get(f"/api/v1/admin/organizations/{victim['id']}/api-keys", headers=admin).json["data"]
    # Any other spelling of the victim's id is a slug, which no org can have: 404, never the victim.
    for ref in (uuid.UUID(victim["id"]).hex, "{" + victim["id"] + "}", victim["id"].upper(),
                "urn:uuid:" + victim["id"]):
        issued = client.post(f"/api/v1/admin/organizations/{ref}/api-keys", json={}, headers=admin)
        assert issued.status_code == 404, ref
    assert client.get(f"/api/v1/admin/organizations/{victim['id']}/api-keys", headers=admin).json["data"] == keys_before


def test_patch_by_a_hex_string_suspends_the_org_with_that_slug_or_nobody(app, client, admin, new_org):
    victim, victim_headers = new_org("victim")
    # An org created before slugs were checked, whose slug is the victim's id in hex.
    from app.extensions import db
    from app.models import Organization

    hex_slug = uuid.UUID(victim["id"]).hex
    with app.app_context():
        legacy = Organization(id=uuid.uuid4(), slug=hex_slug, name="legacy")
        db.session.add(legacy)
        db.session.commit()
        legacy_id = str(legacy.id)
    patched = client.patch(f"/api/v1/admin/organizations/{hex_slug}", json={"status": "suspended"}, headers=admin)
    assert patched.status_code == 200 and patched.json["id"] == legacy_id
    assert client.get(f"/api/v1/admin/organizations/{victim['id']}", headers=admin).json["status"] == "active"
    assert client.get("/api/v1/integrations", headers=victim_headers).status_code == 200


def test_orgs_are_found_by_canonical_id_and_by_slug(client, admin, new_org):
    acme, _ = new_org("acme")
    assert client.get(f"/api/v1/admin/organizations/{acme['id']}", headers=admin).json["slug"] == "acme"
    assert client.get("/api/v1/admin/organizations/acme", headers=admin).json["id"] == acme["id"]


# --- failed admin keys share the org keys' audit cap ------------------------------------------------


def test_failed_admin_keys_are_audited_up_to_the_cap(make_app, audit_rows):
    app = make_app(AUTH_FAILURE_AUDIT_LIMIT="5/minute")
    client = app.test_client()
    codes = {client.get("/api/v1/admin/organizations", headers={"Authorization": f"Bearer wrong-{i}"}).status_code
             for i in range(30)}
    assert codes == {401}
    rows = audit_rows(action="auth.failed")
    assert len(rows) == 5
    assert {r.detail["reason"] for r in rows} == {"admin_key_mismatch"}
    # one mechanism: org-key failures from the same address spend the same budget
    assert client.get("/api/v1/integrations", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert len(audit_rows(action="auth.failed")) == 5


def test_everything_the_admin_does_to_claims_is_audited(review_app, admin, audit_rows):
    client = review_app.test_client()
    headers = org_headers(client, "acme")
    first = _pending(client, headers)
    client.post(f"/api/v1/admin/integrations/{first['id']}/approve", json=DEMO, headers=admin)
    client.post(f"/api/v1/admin/integrations/{first['id']}/release", headers=admin)
    client.put("/api/v1/admin/organizations/acme/integrations/shopify", json=OTHER, headers=admin)
    rows = [(r.action, r.actor, r.target) for r in audit_rows(provider="shopify")]
    assert rows == [
        ("integration.pending", rows[0][1], "demo-store"),
        ("integration.approved", "admin", "demo-store"),
        ("integration.released", "admin", "demo-store"),
        ("integration.assigned", "admin", "other-store"),
    ]
    with review_app.app_context():
        from app.extensions import db
        from app.models import Integration

        assert db.session.execute(sa.select(sa.func.count()).select_from(Integration)).scalar() == 1
