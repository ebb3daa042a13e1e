"""Cheap hostile input gets a 4xx problem naming what is wrong, and changes nothing (issue 5).

Each case here was a 500 with a traceback (or a silently wrong answer) before app/inbound.py and
the date validator in app/api/schemas.py. The body-size cases go through a real HTTP server, since
``Transfer-Encoding: chunked`` is de-chunked by the server, not by the test client.
"""

from __future__ import annotations

import http.client
import io
import json

import pytest

from sandbox.server import serve
from tests.conftest import ADMIN_KEY, org_headers

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
DEEP = "[" * 1000 + "]" * 1000  # 2 KB
HUGE = "1" * 5000


def _problem(response, status, code, field=None):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    assert response.json["code"] == code
    if field is not None:
        assert response.json["field"] == field
    return response.json


def _org_slugs(client):
    return sorted(o["slug"] for o in client.get("/api/v1/admin/organizations", headers=ADMIN).json["data"])


# --- dates that do not exist in UTC ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/audit-logs", "/api/v1/admin/audit-logs"])
@pytest.mark.parametrize("name, value", [
    ("since", "9999-12-31T23:59:59-14:00"),
    ("until", "9999-12-31T23:59:59-14:00"),
    ("since", "0001-01-01T00:00:00+14:00"),
    ("until", "0001-01-01T00:00:00+14:00"),
])
def test_dates_beyond_the_utc_range_are_422_on_the_parameter(client, org, path, name, value):
    _, headers = org
    response = client.get(path, query_string={name: value}, headers=ADMIN if "admin" in path else headers)
    _problem(response, 422, "validation_error", name)


def test_dates_at_the_edge_of_the_range_still_work(client, org):
    _, headers = org
    response = client.get("/api/v1/audit-logs", headers=headers,
                          query_string={"since": "0001-01-01T00:00:00+00:00", "until": "9999-12-31T23:59:59+00:00"})
    assert response.status_code == 200


# --- control characters in the URL -------------------------------------------------------------


@pytest.mark.parametrize("query, field", [
    ("provider=%00", "provider"),
    ("action=%00x", "action"),
    ("action=a%0Ab", "action"),
    ("since=2026-01-01T00:00:00%00", "since"),
    ("limit=5%7F", "limit"),
])
def test_control_characters_in_a_query_value_are_422_on_the_parameter(client, connected, query, field):
    response = client.get(f"/api/v1/audit-logs?{query}", headers=connected)
    _problem(response, 422, "validation_error", field)
    response = client.get(f"/api/v1/admin/audit-logs?{query}", headers=ADMIN)
    _problem(response, 422, "validation_error", field)


def test_nul_in_a_path_segment_is_422_and_changes_nothing(client, org, audit_rows):
    _, headers = org
    before = len(audit_rows())
    body = {"account_identifier": {"storeName": "demo-store"}}
    _problem(client.put("/api/v1/integrations/shopify%00", json=body, headers=headers), 422, "validation_error",
             "provider")
    _problem(client.get("/api/v1/admin/organizations/%00", headers=ADMIN), 422, "validation_error", "org_ref")
    _problem(client.patch("/api/v1/admin/organizations/acme%00", json={"status": "suspended"}, headers=ADMIN),
             422, "validation_error", "org_ref")
    _problem(client.get("/api/v1/shopify/orders/%231001%00", headers=headers), 422, "validation_error", "order_ref")
    _problem(client.get("/api/v1/nothing%01here", headers=headers), 422, "validation_error", "path")
    assert client.get("/api/v1/integrations", headers=headers).json["data"] == []
    assert client.get("/api/v1/admin/organizations/acme", headers=ADMIN).json["status"] == "active"
    assert len(audit_rows()) == before


def test_nul_in_an_unauthenticated_url_is_422_not_a_failed_audit_write(client):
    # The 401 path audits request.path: with a NUL in it, PostgreSQL refused the row.
    _problem(client.get("/api/v1/integrations/x%00", headers={"Authorization": "Bearer nope"}), 422,
             "validation_error", "provider")


# --- JSON bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    DEEP,
    '{"account_identifier": ' + HUGE + "}",
    '{"account_identifier": {"storeName": "demo-store"}, "x": -' + HUGE + "}",
    '{"account_identifier": 1e' + HUGE + "}",
    '{"account_identifier": 1e999}',
    '{"account_identifier": NaN}',
    '{"account_identifier": -Infinity}',
    '{"account_identifier": ' + "{\"a\": " * 40 + "1" + "}" * 40 + "}",
    b'{"account_identifier": {"storeName": "demo-store\xff"}}',
    "{not json",
])
def test_unreadable_json_is_400_on_the_body_and_changes_nothing(client, org, body):
    _, headers = org
    response = client.put("/api/v1/integrations/shopify", data=body, content_type="application/json",
                          headers=headers)
    _problem(response, 400, "bad_request", "body")
    assert client.get("/api/v1/integrations", headers=headers).json["data"] == []


@pytest.mark.parametrize("path, method", [
    ("/api/v1/admin/organizations", "POST"),
    ("/api/v1/admin/organizations/acme", "PATCH"),
    ("/api/v1/admin/organizations/acme/api-keys", "POST"),
])
def test_deep_json_and_huge_numbers_are_400_on_every_body(client, org, path, method):
    for body in (DEEP, '{"name": ' + HUGE + "}", '{"slug": "zz", "name": "x", "rate_limit": ' + HUGE + "}"):
        response = client.open(path, method=method, data=body, content_type="application/json", headers=ADMIN)
        _problem(response, 400, "bad_request", "body")
    assert _org_slugs(client) == ["acme"]
    assert client.get("/api/v1/admin/organizations/acme/api-keys", headers=ADMIN).json["data"].__len__() == 1


@pytest.mark.parametrize("text, field", [
    ("x\u0000y", "name"),
    ("\ud800", "name"),
])
def test_unstorable_strings_in_a_body_are_422_on_the_field(client, org, text, field):
    response = client.patch("/api/v1/admin/organizations/acme", data=json.dumps({"name": text}),
                            content_type="application/json", headers=ADMIN)
    _problem(response, 422, "validation_error", field)
    response = client.post("/api/v1/admin/organizations", data=json.dumps({"slug": "zz", "name": text}),
                           content_type="application/json", headers=ADMIN)
    _problem(response, 422, "validation_error", field)
    _, headers = org
    response = client.put("/api/v1/integrations/shopify", data=json.dumps({"account_identifier": {"storeName": text}}),
                          content_type="application/json", headers=headers)
    _problem(response, 422, "validation_error", "account_identifier.storeName")
    assert client.get("/api/v1/admin/organizations/acme", headers=ADMIN).json["name"] == "acme"
    assert _org_slugs(client) == ["acme"]


def test_ordinary_json_still_works(client, org):
    _, headers = org
    response = client.put("/api/v1/integrations/shopify", headers=headers,
                          data=json.dumps({"account_identifier": {"storeName": "demo-store"}}),
                          content_type="application/json; charset=utf-8")
    assert response.status_code == 201, response.json
    response = client.patch("/api/v1/admin/organizations/acme", json={"name": "Acme \u00e9\U0001F600\ttab"}, headers=ADMIN)
    assert response.status_code == 200 and response.json["name"] == "Acme \u00e9\U0001F600\ttab"
    vendor = client.patch("/api/v1/admin/organizations/acme", data=json.dumps({"name": "Acme 2"}),
                          content_type="application/vnd.switchboard+json", headers=ADMIN)
    assert vendor.status_code == 200 and vendor.json["name"] == "Acme 2"


# --- 415 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "application/jsonx"])
def test_a_body_not_declared_json_is_415_and_changes_nothing(client, org, content_type):
    _, headers = org
    extra = {"Content-Type": content_type} if content_type else {}
    # Before: read as an empty body — a misleading 422, or a PATCH that answered 200 and did nothing.
    response = client.patch("/api/v1/admin/organizations/acme", data=json.dumps({"status": "suspended"}),
                            headers={**ADMIN, **extra})
    _problem(response, 415, "unsupported_media_type")
    response = client.put("/api/v1/integrations/shopify", data=json.dumps({"account_identifier": {"storeName": "demo-store"}}),
                          headers={**headers, **extra})
    _problem(response, 415, "unsupported_media_type")
    assert client.get("/api/v1/admin/organizations/acme", headers=ADMIN).json["status"] == "active"
    assert client.get("/api/v1/integrations", headers=headers).json["data"] == []


def test_an_empty_optional_body_needs_no_content_type(client, org):
    issued = client.post("/api/v1/admin/organizations/acme/api-keys", headers=ADMIN)
    assert issued.status_code == 201, issued.json
    issued = client.post("/api/v1/admin/organizations/acme/api-keys", headers={**ADMIN, "Content-Type": "text/plain"})
    assert issued.status_code == 201, issued.json


def test_a_body_where_none_is_read_is_ignored_whatever_its_type(client, connected):
    response = client.post("/api/v1/integrations/shopify/test", data="hello", headers={**connected,
                           "Content-Type": "text/plain"})
    assert response.status_code == 200, response.json


# --- body size on the bytes read ---------------------------------------------------------------


def _send(url, method, path, headers, chunks):
    """A real HTTP/1.1 request; ``chunks`` go out with Transfer-Encoding: chunked."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=iter(chunks), headers={**headers, "Transfer-Encoding": "chunked"},
                     encode_chunked=True)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), json.loads(response.read() or b"null")
    finally:
        conn.close()


def test_a_chunked_body_over_the_limit_is_413_and_changes_nothing(make_app):
    app = make_app(MAX_CONTENT_LENGTH="2048")
    client = app.test_client()
    headers = org_headers(client)
    json_headers = {**headers, "Content-Type": "application/json"}
    padded = json.dumps({"account_identifier": {"storeName": "demo-store"}, "pad": "x" * 5000}).encode()
    with serve(app) as server:
        # Before: werkzeug's bounded stream stopped silently at the limit, so this was read as
        # truncated JSON (400) — and a body the view ignores was not looked at at all (204).
        status, content_type, body = _send(server.url, "PUT", "/api/v1/integrations/shopify", json_headers,
                                           [padded[i:i + 500] for i in range(0, len(padded), 500)])
        assert (status, body["code"]) == (413, "payload_too_large")
        assert content_type == "application/problem+json"
        small = json.dumps({"account_identifier": {"storeName": "demo-store"}}).encode()
        status, _, body = _send(server.url, "PUT", "/api/v1/integrations/shopify", json_headers,
                                [small[:10], small[10:]])
        assert status == 201, body
        status, _, body = _send(server.url, "DELETE", "/api/v1/integrations/shopify", headers, [b"x" * 1000] * 5)
        assert (status, body["code"]) == (413, "payload_too_large")
        exact = b'{"name": "Acme"' + b" " * (2048 - 16) + b"}"
        assert len(exact) == 2048
        status, _, body = _send(server.url, "PATCH", "/api/v1/admin/organizations/acme",
                                {**ADMIN, "Content-Type": "application/json"}, [exact])
        assert status == 200, body  # exactly the limit is within it
    assert client.get("/api/v1/integrations/shopify", headers=headers).json["status"] == "connected"


def test_a_terminated_stream_over_the_limit_is_413_as_under_gunicorn(make_app):
    # gunicorn de-chunks, marks the stream wsgi.input_terminated and sends no Content-Length.
    app = make_app(MAX_CONTENT_LENGTH="2048")
    client = app.test_client()
    headers = org_headers(client)
    response = client.delete("/api/v1/integrations/shopify", headers={**headers, "Transfer-Encoding": "chunked"},
                             input_stream=io.BytesIO(b"x" * 5000),
                             environ_overrides={"wsgi.input_terminated": True})
    _problem(response, 413, "payload_too_large")


def test_the_guard_knows_which_endpoints_read_json(app):
    # Read from flask-smorest's @blp.arguments declarations: if that ever stops working, the 415
    # and the bounded parse would silently apply nowhere.
    assert app.extensions["json_body_endpoints"] >= {"org.connect", "admin.create_org", "admin.update_org",
                                                     "admin.issue_key"}
    assert "org.audit_logs" not in app.extensions["json_body_endpoints"]  # query arguments only
