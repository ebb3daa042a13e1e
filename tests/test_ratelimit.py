"""Per-org rate limits: problem details with Retry-After and X-RateLimit-*, one bucket per org."""

import pytest

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



@pytest.fixture
def limit_clock(app, frozen):
    """The org limit's clock and the limit notes' clock, moved by hand (memory or Redis alike)."""
    app.extensions["org_cells"].clock = frozen
    app.extensions["limit_notes"].clock = frozen
    return frozen


@pytest.mark.parametrize("limit, amount, retry_after", [("7/second", 7, 1), ("3/minute", 3, 20), ("2/hour", 2, 1800)])
def test_an_idle_org_may_spend_its_whole_allowance_at_once_then_waits_one_interval(
        client, new_org, limit_clock, limit, amount, retry_after):
    _, headers = new_org(rate_limit=limit)
    answers = [client.get("/api/v1/integrations", headers=headers) for _ in range(amount + 1)]
    assert [a.status_code for a in answers] == [200] * amount + [429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == [str(n) for n in range(amount - 1, -1, -1)] + ["0"]
    # The next call is admitted one interval (period / amount) after the burst, not a period later.
    assert answers[-1].headers["Retry-After"] == str(retry_after)
    period = {"second": 1, "minute": 60, "hour": 3600}[limit.split("/")[1]]
    assert int(answers[-1].headers["X-RateLimit-Reset"]) in {int(limit_clock.now) + period, int(limit_clock.now) + period + 1}
    limit_clock.now += period / amount - 0.001
    assert client.get("/api/v1/integrations", headers=headers).status_code == 429
    limit_clock.now += 0.002
    admitted = client.get("/api/v1/integrations", headers=headers)
    assert admitted.status_code == 200 and admitted.headers["X-RateLimit-Remaining"] == "0"


def test_an_org_that_keeps_asking_is_admitted_evenly_not_in_a_burst_per_window(client, new_org, limit_clock):
    """10/second against 100 calls a second: 10 at once (the idle org's allowance), then one every
    tenth of a second — a fixed window would admit 10 at the start of each second instead."""
    _, headers = new_org(rate_limit="10/second")
    start = limit_clock.now = float(int(limit_clock.now))  # whole microseconds at every step below
    admitted = []
    for n in range(300):  # three seconds, one call every 10 ms
        limit_clock.now = start + n / 100
        response = client.get("/api/v1/integrations", headers=headers)
        assert response.status_code in (200, 429), response.json
        if response.status_code == 200:
            admitted.append(n)
    assert admitted[:10] == list(range(10))
    assert admitted[10:] == list(range(10, 300, 10))  # then exactly every tenth of a second
    limit_clock.now += 1.0  # an org that stops regains its allowance
    assert [client.get("/api/v1/integrations", headers=headers).status_code for _ in range(11)] == [200] * 10 + [429]
