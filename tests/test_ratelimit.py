"""Per-org rate limits: problem details with Retry-After and X-RateLimit-*, one bucket per org."""

from tests.conftest import org_headers


def test_limit_gives_429_problem_with_headers(client, admin, new_org):
    org, headers = new_org("acme", rate_limit="3/minute")
    statuses = [client.get("/api/v1/integrations", headers=headers) for _ in range(4)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in statuses[:3]] == ["2", "1", "0"]
    limited = statuses[3]
    assert limited.mimetype == "application/problem+json"
    assert limited.json["code"] == "rate_limited"
    assert limited.headers["X-RateLimit-Limit"] == "3"
    assert 1 <= int(limited.headers["Retry-After"]) <= 61  # a one-minute window, rounded up
    assert int(limited.headers["X-RateLimit-Reset"]) > 0


def test_limit_is_shared_across_endpoints_and_separate_per_org(client, new_org):
    _, acme = new_org("acme", rate_limit="2/minute")
    _, globex = new_org("globex", rate_limit="2/minute")
    assert client.get("/api/v1/integrations", headers=acme).status_code == 200
    assert client.get("/api/v1/providers", headers=acme).status_code == 200
    assert client.get("/api/v1/audit-logs", headers=acme).status_code == 429
    assert client.get("/api/v1/integrations", headers=globex).status_code == 200


def test_admin_override_replaces_the_default(client, admin, new_org):
    org, headers = new_org("acme", rate_limit="1/minute")
    assert client.get("/api/v1/integrations", headers=headers).status_code == 200
    assert client.get("/api/v1/integrations", headers=headers).status_code == 429
    client.patch(f"/api/v1/admin/organizations/{org['id']}", json={"rate_limit": "100/minute"}, headers=admin)
    response = client.get("/api/v1/integrations", headers=headers)
    assert response.status_code == 200
    assert response.headers["X-RateLimit-Limit"] == "100"


def test_default_limit_comes_from_config(make_app, admin):
    client = make_app(ORG_RATE_LIMIT="2/minute").test_client()
    headers = org_headers(client)
    assert [client.get("/api/v1/integrations", headers=headers).status_code for _ in range(3)] == [200, 200, 429]

