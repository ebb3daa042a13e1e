"""Every endpoint, every method, a table of cheap hostile inputs: never a 5xx, every 4xx a problem.

The routes come from ``app.url_map`` (a new endpoint is covered without touching this file); org
endpoints get a key of a connected org, admin ones the admin key. Deterministic and a few seconds
long; property-based fuzzing (Schemathesis) against the OpenAPI document is a separate CI job.

A 5xx is allowed only when it is the provider's verdict (``upstream_*``): the emulator behind the
Shopify endpoints may refuse what reaches it. ``internal_error`` is never allowed.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from tests.conftest import ADMIN_KEY, SHOPIFY_TOKENS, org_headers

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
HUGE = "7" * 5000
DEEP = "[" * 1000 + "]" * 1000

# Appended to / substituted for a path segment, already percent-encoded as a client sends them.
SEGMENT_SUFFIXES = ["%00", "%01x", "%0A", "%7F", "%FF%FE", "%C0%80", "%ED%A0%80"]
# Raw query-string values (percent-encoded where a client must encode).
QUERY_VALUES = [
    "%00", "%00x", "a%1Fb", "%7F", "%FF", "%ED%A0%80",
    quote("9999-12-31T23:59:59-14:00"), quote("0001-01-01T00:00:00+14:00"), quote("10000-01-01T00:00:00Z"),
    HUGE, "-" + HUGE, "1e999", "NaN", "-1", "0", "a" * 5000, quote("#1001"), quote("'; DROP TABLE x; --"),
]
# (Content-Type, body) sent to every route and method.
BODIES = [
    ("application/json", DEEP),
    ("application/json", '{"a": ' + HUGE + "}"),
    ("application/json", '{"a": 1e' + HUGE + "}"),
    ("application/json", '{"a": NaN}'),
    ("application/json", "[1, 2]"), ("application/json", '"x"'), ("application/json", "null"),
    ("application/json", "1"), ("application/json", "true"), ("application/json", "{}"),
    ("application/json", "{not json"), ("application/json", "   "),
    ("application/json", b"\xff\xfe{}"), ("application/json", b'{"a": "\xc0\x80"}'),
    ("application/json", '{"a": "x\\u0000"}'), ("application/json", '{"\\u0000": 1}'),
    ("application/json", '{"a": "\\udc00"}'),
    ("application/merge-patch+json", "{}"),
    ("text/plain", '{"name": "x"}'), ("application/x-www-form-urlencoded", "name=x&status=suspended"),
    ("multipart/form-data; boundary=b", "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b--\r\n"),
    (None, '{"name": "x"}'),
]
# Values put into each field a JSON body declares, one at a time.
FIELD_VALUES = [
    "x\u0000", "\ud800", "\x01", "", "x" * 10000, None, True, -1, 2**70, 1e308, [], {}, [[[[[[[[[[["deep"]]]]]]]]]]],
    {"a": {"b": {"c": {"d": {"e": {}}}}}}, {"storeName": "\u0000"}, {"storeName": "x" * 1000},
    {"storeName": ["demo-store"]}, {"storeName": "other-store", "extra": 1}, "9999-12-31T23:59:59-14:00",
]

# Benign values for path variables: the route is reached, then one thing at a time is made hostile.
SKIP_METHODS = {"HEAD", "OPTIONS"}


def _setup(make_app):
    from tests.webhooks_support import ENV as WEBHOOK_ENV  # webhooks and endpoints configured (not 503)

    app = make_app(ORG_RATE_LIMIT="1000000/minute", HTTP_MAX_RETRIES="0",  # upstream verdicts, not retries
                   **WEBHOOK_ENV)
    client = app.test_client()
    headers = org_headers(client, "acme")
    connected = client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                           headers=headers)
    assert connected.status_code == 201, connected.json
    spare = client.post("/api/v1/admin/organizations/acme/api-keys", json={"name": "spare"}, headers=ADMIN).json
    benign = {
        "provider": "shopify", "product_id": "1", "order_ref": "1001", "org_ref": "acme",
        "key_id": spare["id"], "integration_id": connected.json["id"], "filename": "x.txt", "list_id": "LAbC01",
        "customer_id": "0" * 24, "conversation_id": "0" * 24,
        "event_id": "00000000-0000-4000-8000-000000000000", "source": "shopify",
        "draft_order_id": "1",
    }
    return app, client, headers, benign


def _auth(rule: str, org: dict) -> dict:
    if rule.startswith("/api/v1/admin"):
        return ADMIN
    if rule.startswith("/api/v1/") and rule not in ("/api/v1/openapi.json", "/api/v1/docs"):
        return org
    return {}


def _fields(view, location: str) -> list[str]:
    names = []
    for parameter in getattr(view, "_apidoc", {}).get("arguments", {}).get("parameters", []):
        if parameter.get("in") == location:
            schema = parameter["schema"]
            names += list((schema if isinstance(schema, type) else type(schema))._declared_fields)
    return names


def _requests(app, benign):
    """(method, url, auth rule, content type, body) for every route and method, DELETEs last."""
    routes = []
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - SKIP_METHODS):
            routes.append((method == "DELETE", rule, method))
    routes.sort(key=lambda r: (r[0], r[1].rule, r[2]))
    for _, rule, method in routes:
        view = app.view_functions[rule.endpoint]
        segments = re.split(r"(<[^>]+>)", rule.rule)
        url = "".join(quote(benign[s[1:-1].split(":")[-1]], safe="") if s.startswith("<") else s for s in segments)
        yield method, url, rule.rule, None, None
        parts, variables = url.split("/"), {quote(v, safe="") for v in benign.values()}
        for index in range(1, len(parts)):
            # A variable gets the whole table; a fixed segment (routing then fails) one case.
            suffixes = SEGMENT_SUFFIXES if parts[index] in variables else SEGMENT_SUFFIXES[:1]
            for suffix in suffixes:
                for hostile in (parts[index] + suffix, suffix):
                    yield method, "/".join(parts[:index] + [hostile] + parts[index + 1:]), rule.rule, None, None
        for name in _fields(view, "query") + ["x", "%00"]:
            for value in QUERY_VALUES:
                yield method, f"{url}?{name}={value}", rule.rule, None, None
        for content_type, body in BODIES:
            yield method, url, rule.rule, content_type, body
        for name in _fields(view, "json"):
            for value in FIELD_VALUES:
                yield method, url, rule.rule, "application/json", json.dumps({name: value})


def test_no_endpoint_answers_5xx_or_a_non_problem_4xx_to_hostile_input(make_app, shopify):
    app, client, org, benign = _setup(make_app)
    failures, seen, count = [], set(), 0
    for method, url, rule, content_type, body in _requests(app, benign):
        count += 1
        seen.add((rule, method))
        headers = dict(_auth(rule, org))
        if content_type:
            headers["Content-Type"] = content_type
        response = client.open(url, method=method, data=body, headers=headers)
        status = response.status_code
        problem = response.mimetype == "application/problem+json" and isinstance(response.json, dict)
        code = response.json.get("code") if problem else None
        upstream = 502 <= status <= 504 and problem and str(code).startswith("upstream_")
        if (status >= 500 and not upstream) or (400 <= status < 500 and not (problem and code)):
            failures.append(f"{method} {url[:120]} [{content_type}] {str(body)[:60]!r} -> {status} {code}")
    expected = {(r.rule, m) for r in app.url_map.iter_rules() for m in r.methods - SKIP_METHODS}
    assert seen == expected
    assert count > 1000, count
    assert not failures, f"{len(failures)} of {count}:\n" + "\n".join(failures[:40])
    # The org key still works and the org is untouched: hostile input changed nothing it reached.
    assert client.get("/api/v1/admin/organizations/acme", headers=ADMIN).json["status"] == "active"
    assert set(SHOPIFY_TOKENS) >= {"demo-store"}
