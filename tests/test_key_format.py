"""Key prefixes secret scanners can tell apart: swbd_live_, swbd_test_ (sandbox only), legacy sb_live_."""

from __future__ import annotations

import re
import secrets
import uuid
import zlib

import pytest

from app import keys
from app.extensions import db
from app.models import ApiKey
from tests.conftest import org_headers


def test_a_server_issues_live_keys_that_the_scanner_pattern_finds(make_app):
    client = make_app(SANDBOX="false").test_client()  # the suite's default app is a sandbox one
    headers = org_headers(client)
    key = headers["Authorization"].split()[1]
    assert key.startswith("swbd_live_")
    assert re.search(keys.SCAN_PATTERN, f"leaked: {key}.").group(0) == key
    assert client.get("/api/v1/integrations", headers=headers).status_code == 200


def test_a_sandbox_server_issues_test_keys_that_work_there(make_app):
    client = make_app(SANDBOX="true").test_client()
    headers = org_headers(client)
    key = headers["Authorization"].split()[1]
    assert key.startswith("swbd_test_") and keys.mode(key) == "test"
    assert re.search(keys.SCAN_PATTERN, key)
    assert client.get("/api/v1/integrations", headers=headers).status_code == 200


def test_a_test_key_is_refused_by_a_server_not_in_sandbox_mode(make_app, audit_rows):
    sandbox = make_app(SANDBOX="true").test_client()
    headers = org_headers(sandbox)  # issued, and stored, by the sandbox server
    live = make_app(SANDBOX="false").test_client()  # same database, not in sandbox mode
    response = live.get("/api/v1/integrations", headers=headers)
    assert response.status_code == 401
    assert response.json["detail"] == "A valid API key is required in the Authorization header."
    reasons = [row.detail["reason"] for row in audit_rows(action="auth.failed")]
    assert reasons == ["test_key_outside_sandbox"]


def _legacy_key() -> str:
    """A key in the format issued before the prefix changed (same checksum design)."""
    random_part = "".join(secrets.choice(keys.ALPHABET) for _ in range(32))
    checksum = keys._base62(zlib.crc32(("sb_live_" + random_part).encode()), 6)
    return f"sb_live_{random_part}_{checksum}"


def test_a_key_issued_in_the_old_format_still_authenticates(client, app, new_org):
    org, _ = new_org()
    old = _legacy_key()
    with app.app_context():  # as the old code stored it: the hash and the first 14 characters
        db.session.add(ApiKey(organization_id=uuid.UUID(org["id"]), name="old",
                              prefix=old[:14], key_hash=keys.digest(old), scopes=[]))
        db.session.commit()
    assert keys.mode(old) == "live"
    assert re.search(keys.SCAN_PATTERN, old)
    assert client.get("/api/v1/integrations", headers={"Authorization": f"Bearer {old}"}).status_code == 200
    assert client.get("/api/v1/integrations", headers={"X-API-Key": old}).status_code == 200


def _broken(key: str) -> str:
    return key[:-1] + ("A" if key[-1] != "A" else "B")


@pytest.mark.parametrize("key", [
    lambda: _broken(_legacy_key()),
    lambda: "sb_test_" + keys.generate()[len("swbd_live_"):],  # never a legacy test prefix
    lambda: "swbd_live_" + _legacy_key()[len("sb_live_"):],  # the checksum covers the prefix
], ids=["legacy-bad-checksum", "legacy-test-prefix", "prefix-swapped"])
def test_shapes_that_are_not_keys_are_malformed(key):
    assert keys.mode(key()) is None


@pytest.mark.parametrize("prefix", ["swbd_live_", "swbd_test_", "sb_live_"])
def test_any_key_prefix_in_the_query_string_is_refused(client, org, audit_rows, prefix):
    _, headers = org
    response = client.get(f"/api/v1/integrations?q={prefix}abc", headers=headers)
    assert response.status_code == 401
    assert audit_rows(action="auth.failed")[-1].detail["reason"] == "key_in_query_string"
