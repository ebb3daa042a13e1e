"""A key its org's limit just refused is answered before the app (app/ratelimit.py ``LimitNotes``,
app/proxy.py ``RefusedKeys``): the same 429 ``rate_limited`` with the limit's headers, no
database or limiter work — and only that key, only org endpoints, only until the window ends or
a moment passes, and never after the admin changed the org or revoked the key.

The notes' clock is the test's where a note's end is checked (``frozen``): moved by hand, not waited.
"""


import pytest
import sqlalchemy as sa

from app.extensions import db
from app.keys import digest
from app.ratelimit import MAX_NOTES, NOTE_FOR, LimitNotes

INTEGRATIONS = "/api/v1/integrations"


@pytest.fixture
def statements(app):
    """Every SQL statement the app sends from now on (the app's path always looks the key up)."""
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    with app.app_context():
        engines = (db.engine, app.extensions["autocommit_engine"])
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", count)
    yield seen
    for engine in engines:
        sa.event.remove(engine, "before_cursor_execute", count)


def _over_the_limit(client, headers, path=INTEGRATIONS):
    """Call until the org's limit refuses; that first 429 (from the note the call that emptied the
    allowance left)."""
    for _ in range(10):
        response = client.get(path, headers=headers)
        if response.status_code == 429:
            return response
        assert response.status_code == 200, response.json
    raise AssertionError("the org's limit never refused")


def _key(headers):
    return headers["Authorization"].split(" ", 1)[1]


def test_a_key_over_its_org_limit_gets_its_next_429s_before_the_app(app, client, new_org, statements):
    _, headers = new_org(rate_limit="2/minute")
    _over_the_limit(client, headers)
    statements.clear()
    assert client.get(INTEGRATIONS, headers=headers).status_code == 429
    assert statements == []  # the call that emptied the org's allowance noted the key already
    app.extensions["limit_notes"].forget(digest=digest(_key(headers)))
    first = client.get(INTEGRATIONS, headers=headers)  # the app's own refusal, which notes the key again
    assert first.status_code == 429
    assert first.json["code"] == "rate_limited" and first.headers["X-RateLimit-Remaining"] == "0"
    assert statements  # the app's answer looked the key up
    statements.clear()
    for n in range(3):
        response = client.get(INTEGRATIONS, headers={**headers, "X-Request-ID": f"flood-{n:04d}"})
        assert response.status_code == 429
        assert response.mimetype == "application/problem+json"
        assert response.json == {**first.json, "request_id": f"flood-{n:04d}", "instance": f"urn:request:flood-{n:04d}"}
        assert response.headers["X-Request-ID"] == f"flood-{n:04d}"
        for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            assert response.headers[name] == first.headers[name], name
        assert 1 <= int(response.headers["Retry-After"]) <= int(first.headers["Retry-After"])
        assert set(response.headers.keys()) == set(first.headers.keys())  # nothing missing
    assert statements == []  # answered before the app: no key lookup, nothing written
    # The same key in the other header is the same key.
    assert client.get(INTEGRATIONS, headers={"X-API-Key": _key(headers)}).status_code == 429
    assert statements == []


def test_only_the_refused_key_is_answered_from_its_note(app, client, admin, new_org, statements):
    org, headers = new_org(rate_limit="2/minute")
    _, other_org = new_org(rate_limit="2/minute")
    _over_the_limit(client, headers)
    assert client.get(INTEGRATIONS, headers=other_org).status_code == 200  # another org: its own limit
    issued = client.post(f"/api/v1/admin/organizations/{org['id']}/api-keys", json={}, headers=admin)
    second = {"Authorization": f"Bearer {issued.json['key']}"}
    statements.clear()
    refused = client.get(INTEGRATIONS, headers=second)  # the same org, over its limit: the app says so
    assert refused.status_code == 429 and refused.json["code"] == "rate_limited"
    assert statements  # through the app
    assert set(app.extensions["limit_notes"].keys) == {digest(_key(headers)), digest(issued.json["key"])}
    # Unknown and malformed keys are refused by authentication each time, never by a note.
    key = _key(headers)
    malformed = key[:-1] + ("y" if key.endswith("x") else "x")  # never the key itself
    for presented in ({"Authorization": f"Bearer {malformed}"}, {}):
        assert client.get(INTEGRATIONS, headers=presented).status_code == 401


def test_a_note_ends_after_a_moment_and_the_app_answers_again(app, client, new_org, statements, frozen):
    app.extensions["limit_notes"].clock = frozen
    _, headers = new_org(rate_limit="2/minute")
    _over_the_limit(client, headers)
    statements.clear()
    assert client.get(INTEGRATIONS, headers=headers).status_code == 429
    assert statements == []  # the note answered
    frozen.now += NOTE_FOR + 0.01
    later = client.get(INTEGRATIONS, headers=headers)  # the minute is not over: the app refuses ...
    assert later.status_code == 429 and statements
    statements.clear()
    assert client.get(INTEGRATIONS, headers=headers).status_code == 429
    assert statements == []  # ... and notes the key again


def test_the_admin_changing_the_org_or_revoking_the_key_applies_at_once(client, admin, new_org):
    org, headers = new_org(rate_limit="2/minute")
    _over_the_limit(client, headers)
    raised = client.patch(f"/api/v1/admin/organizations/{org['id']}", json={"rate_limit": "100/minute"}, headers=admin)
    assert raised.status_code == 200
    assert client.get(INTEGRATIONS, headers=headers).status_code == 200
    client.patch(f"/api/v1/admin/organizations/{org['id']}", json={"rate_limit": "3/minute"}, headers=admin)
    _over_the_limit(client, headers)
    suspended = client.patch(f"/api/v1/admin/organizations/{org['id']}", json={"status": "suspended"}, headers=admin)
    assert suspended.status_code == 200
    assert client.get(INTEGRATIONS, headers=headers).json["code"] == "organization_suspended"
    client.patch(f"/api/v1/admin/organizations/{org['id']}", json={"status": "active"}, headers=admin)
    _over_the_limit(client, headers)
    keys = client.get(f"/api/v1/admin/organizations/{org['id']}/api-keys", headers=admin).json
    key_id = keys["data"][0]["id"]
    assert client.delete(f"/api/v1/admin/organizations/{org['id']}/api-keys/{key_id}", headers=admin).status_code == 204
    revoked = client.get(INTEGRATIONS, headers=headers)
    assert revoked.status_code == 401, revoked.json


def test_a_note_is_for_org_endpoints_only(app, client, new_org):
    _, headers = new_org(rate_limit="2/minute")
    _over_the_limit(client, headers)
    assert client.get("/healthz", headers=headers).status_code == 200
    assert client.get("/api/v1/openapi.json", headers=headers).status_code == 200
    assert client.get("/api/v1/no-such-route", headers=headers).status_code == 404
    assert client.get("/api/v1/admin/organizations", headers=headers).status_code == 401  # not the admin key


def test_only_org_endpoints_are_tagged(app):
    """``org_required`` tags its views; those are the only routes RefusedKeys may answer from a
    limit note — all under /api/v1/, none of the admin's, including every provider action."""
    tagged = {rule.rule for rule in app.url_map.iter_rules()
              if getattr(app.view_functions[rule.endpoint], "org_limited", False)}
    assert INTEGRATIONS in tagged and "/api/v1/shopify/products/<product_id>" in tagged
    for path in tagged:
        assert path.startswith("/api/v1/") and not path.startswith("/api/v1/admin/"), path
    for rule in app.url_map.iter_rules():
        if getattr(app.view_functions[rule.endpoint], "proxy_provider", None):
            assert rule.rule in tagged, rule.rule


# --- the notes, directly -------------------------------------------------------------------------


def test_a_note_never_outlasts_the_moment_the_limit_admits_the_key_again(frozen):
    notes = LimitNotes(clock=frozen)
    notes.note("a" * 64, frozen.now + 0.3, int(frozen.now) + 1, 2, "2 per 1 second", "org")
    headers, limit = notes.refused("a" * 64)
    assert limit == "2 per 1 second" and headers["X-RateLimit-Remaining"] == "0" and headers["Retry-After"] == "1"
    frozen.now += 0.31
    assert notes.refused("a" * 64) is None and "a" * 64 not in notes.keys  # the limit admits a call again
    notes.note("b" * 64, frozen.now + 50, int(frozen.now + 51), 2, "2 per 1 minute", "org")
    frozen.now += NOTE_FOR - 0.01
    assert notes.refused("b" * 64)[0]["Retry-After"] in {"50", "51"}
    frozen.now += 0.02
    assert notes.refused("b" * 64) is None  # a moment at most, though the minute goes on
    notes.note("c" * 64, frozen.now - 0.1, int(frozen.now), 2, "2 per 1 second", "org")  # already over
    assert "c" * 64 not in notes.keys


def test_notes_are_bounded_and_forgotten_by_org_or_key(frozen):
    notes = LimitNotes(clock=frozen)
    digests = [f"{n:064x}" for n in range(MAX_NOTES + 1)]
    for n, key in enumerate(digests):
        notes.note(key, frozen.now + 30, int(frozen.now + 31), 2, "2 per 1 minute", "even" if n % 2 else "odd")
    assert len(notes.keys) == MAX_NOTES and digests[0] not in notes.keys and digests[-1] in notes.keys
    notes.forget(org="even")
    assert all(note[5] == "odd" for note in notes.keys.values()) and digests[2] in notes.keys
    notes.forget(digest=digests[2])
    assert digests[2] not in notes.keys and digests[4] in notes.keys
