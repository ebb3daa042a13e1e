"""Claims that prove more than reachability, and claim changes that happen once under races.

Everything goes through the real app (the Flask test client, one per thread) and the Shopify
emulator; the races run real threads against the configured database (SQLite or PostgreSQL).
"""

import threading
import uuid

from tests.conftest import org_headers

STORE = {"account_identifier": {"storeName": "demo-store"}}


def _parallel(count, call):
    """Run ``call(i)`` in ``count`` threads released together; return the results in order."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(i):
        barrier.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


# --- the claim policy -------------------------------------------------------------------------------


def test_outside_the_sandbox_a_fresh_org_cannot_take_a_store_by_naming_it(make_app, admin, shopify):
    app = make_app(SANDBOX=None)  # production defaults: CONNECT_REQUIRES_APPROVAL follows SANDBOX
    assert app.config["CONNECT_REQUIRES_APPROVAL"] is True
    client = app.test_client()
    headers = org_headers(client, "squatter")
    named = client.put("/api/v1/integrations/shopify", json=STORE, headers=headers)
    assert named.status_code == 201 and named.json["status"] == "pending"
    orders = client.get("/api/v1/shopify/orders/%231001", headers=headers)
    assert orders.status_code == 409 and orders.json["code"] == "integration_not_connected"


def test_the_sandbox_keeps_its_one_step_connect_and_an_explicit_setting_wins(make_app):
    assert make_app(SANDBOX="true").config["CONNECT_REQUIRES_APPROVAL"] is False
    assert make_app(SANDBOX="true", CONNECT_REQUIRES_APPROVAL="true").config["CONNECT_REQUIRES_APPROVAL"] is True
    assert make_app(SANDBOX=None, CONNECT_REQUIRES_APPROVAL="false").config["CONNECT_REQUIRES_APPROVAL"] is False


def test_an_assigned_account_connects_at_once_for_its_org_and_nobody_else(make_app, admin, audit_rows):
    app = make_app(SANDBOX=None)
    client = app.test_client()
    owner = org_headers(client, "owner")
    squatter = org_headers(client, "squatter")
    assigned = client.put("/api/v1/admin/organizations/owner/integrations/shopify",
                          json={"account_identifier": {"storeName": "Demo-Store"}}, headers=admin)
    assert assigned.status_code == 201, assigned.json
    assert assigned.json["status"] == "connected"
    taken = client.put("/api/v1/integrations/shopify", json=STORE, headers=squatter)
    assert taken.status_code == 409 and taken.json["code"] == "account_claimed"
    mine = client.put("/api/v1/integrations/shopify", json=STORE, headers=owner)
    assert mine.status_code == 200 and mine.json["status"] == "connected"
    assert client.get("/api/v1/shopify/orders/%231001", headers=owner).status_code == 200
    rows = [(r.action, r.actor) for r in audit_rows(provider="shopify")]
    assert rows[0] == ("integration.assigned", "admin")
    listed = client.get("/api/v1/admin/organizations/owner/integrations", headers=admin).json["data"]
    assert [(i["provider"], i["status"]) for i in listed] == [("shopify", "connected")]


def test_assigning_an_account_another_org_holds_is_409_until_released(make_app, admin):
    app = make_app(SANDBOX=None)
    client = app.test_client()
    org_headers(client, "owner")
    squatter = org_headers(client, "squatter")
    pending = client.put("/api/v1/integrations/shopify", json=STORE, headers=squatter).json
    refused = client.put("/api/v1/admin/organizations/owner/integrations/shopify", json=STORE, headers=admin)
    assert refused.status_code == 409 and refused.json["code"] == "account_claimed"
    assert client.post(f"/api/v1/admin/integrations/{pending['id']}/release", headers=admin).status_code == 200
    assigned = client.put("/api/v1/admin/organizations/owner/integrations/shopify", json=STORE, headers=admin)
    assert assigned.status_code == 201 and assigned.json["status"] == "connected"


def test_an_approved_account_that_errored_reconnects_without_a_new_approval(make_app, admin, shopify):
    app = make_app(SANDBOX=None)
    client = app.test_client()
    headers = org_headers(client, "owner")
    client.put("/api/v1/admin/organizations/owner/integrations/shopify", json=STORE, headers=admin)
    original = shopify.access_tokens["demo-store"]
    shopify.access_tokens["demo-store"] = "shpat_rotated"
    try:
        assert client.post("/api/v1/integrations/shopify/test", headers=headers).json["status"] == "error"
    finally:
        shopify.access_tokens["demo-store"] = original
    again = client.put("/api/v1/integrations/shopify", json=STORE, headers=headers)
    assert again.status_code == 200 and again.json["status"] == "connected"


# --- races: each change happens once ----------------------------------------------------------------


def test_one_org_racing_itself_to_connect_never_hears_another_org_has_it(app, org, audit_rows):
    _, headers = org
    results = _parallel(8, lambda i: app.test_client().put("/api/v1/integrations/shopify", json=STORE,
                                                          headers=headers))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] * 7 + [201], [r.json for r in results if r.status_code >= 300]
    org_id = uuid.UUID(org[0]["id"])
    assert len(audit_rows(organization_id=org_id, action="integration.connect_failed")) == 0
    assert app.test_client().get("/api/v1/integrations", headers=headers).json["data"][0]["status"] == "connected"


def test_ten_parallel_disconnects_change_the_row_once_and_write_one_audit_row(app, connected, audit_rows):
    results = _parallel(10, lambda i: app.test_client().delete("/api/v1/integrations/shopify", headers=connected))
    codes = sorted(r.status_code for r in results)
    assert codes == [204] + [404] * 9, codes
    assert len(audit_rows(action="integration.disconnected")) == 1


def test_parallel_admin_releases_release_once(make_app, admin, audit_rows):
    app = make_app(SANDBOX=None)
    client = app.test_client()
    headers = org_headers(client, "squatter")
    pending = client.put("/api/v1/integrations/shopify", json=STORE, headers=headers).json
    results = _parallel(6, lambda i: app.test_client().post(f"/api/v1/admin/integrations/{pending['id']}/release",
                                                           headers=admin))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * 5, codes
    assert {r.json["code"] for r in results if r.status_code == 409} == {"not_claimed"}
    assert len(audit_rows(action="integration.released")) == 1


def test_two_orgs_racing_for_one_store_still_have_exactly_one_winner(app, new_org):
    heads = [new_org(f"racer-{i}")[1] for i in range(6)]
    results = _parallel(6, lambda i: app.test_client().put("/api/v1/integrations/shopify", json=STORE,
                                                          headers=heads[i]))
    codes = sorted(r.status_code for r in results)
    assert codes == [201] + [409] * 5, codes
    assert {r.json["code"] for r in results if r.status_code == 409} == {"account_claimed"}


def test_a_test_that_overlaps_a_release_never_brings_the_account_back(make_app, admin, shopify):
    app = make_app(HTTP_READ_TIMEOUT="5", HTTP_DEADLINE="10")
    client = app.test_client()
    headers = org_headers(client, "acme")
    integration = client.put("/api/v1/integrations/shopify", json=STORE, headers=headers).json
    original = shopify.access_tokens["demo-store"]
    shopify.access_tokens["demo-store"] = "shpat_rotated"
    try:
        assert client.post("/api/v1/integrations/shopify/test", headers=headers).json["status"] == "error"
    finally:
        shopify.access_tokens["demo-store"] = original
    shopify.inject("slow", seconds=1.5, endpoint="graphql")  # the next check passes, slowly
    tested, seen = {}, len(shopify.received)
    thread = threading.Thread(target=lambda: tested.update(
        response=app.test_client().post("/api/v1/integrations/shopify/test", headers=headers)))
    thread.start()
    while len(shopify.received) == seen:  # the check is at Shopify
        threading.Event().wait(0.02)
    released = client.post(f"/api/v1/admin/integrations/{integration['id']}/release", headers=admin)
    thread.join(30)
    assert released.status_code == 200
    assert tested["response"].status_code == 409 and tested["response"].json["code"] == "integration_busy"
    listed = client.get("/api/v1/admin/organizations/acme/integrations", headers=admin).json["data"]
    assert [i["status"] for i in listed] == ["disconnected"]
