"""Behind a load balancer: X-Forwarded-For counts only from TRUSTED_PROXIES proxies, so audit rows
and the per-address cap on audited auth failures see the client, not the balancer."""

import pytest

from config import ConfigError

BAD_KEY = {"Authorization": "Bearer not-a-key"}


def _fail_auth(client, forwarded_for: str, balancer: str = "10.0.0.2"):
    response = client.get("/api/v1/integrations", headers={**BAD_KEY, "X-Forwarded-For": forwarded_for},
                          environ_base={"REMOTE_ADDR": balancer})
    assert response.status_code == 401


def _ips(audit_rows):
    return [row.ip for row in audit_rows(action="auth.failed")]


def test_by_default_a_client_sent_x_forwarded_for_is_ignored(make_app, audit_rows):
    client = make_app().test_client()
    _fail_auth(client, "203.0.113.7")
    assert _ips(audit_rows) == ["10.0.0.2"]


def test_with_one_trusted_proxy_the_client_address_comes_from_the_header(make_app, audit_rows):
    client = make_app(TRUSTED_PROXIES="1").test_client()
    # The client prepended a forged address; the balancer appended the one it saw.
    _fail_auth(client, "198.51.100.99, 203.0.113.7")
    assert _ips(audit_rows) == ["203.0.113.7"]


def test_behind_a_balancer_each_client_has_its_own_audit_budget(make_app, audit_rows):
    client = make_app(TRUSTED_PROXIES="1", AUTH_FAILURE_AUDIT_LIMIT="2/minute").test_client()
    for _ in range(4):
        _fail_auth(client, "203.0.113.7")
    _fail_auth(client, "203.0.113.8")
    assert _ips(audit_rows) == ["203.0.113.7", "203.0.113.7", "203.0.113.8"]


def test_trusted_proxies_must_be_a_whole_number(make_app):
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        make_app(TRUSTED_PROXIES="yes")
