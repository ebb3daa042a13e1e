"""Make the generated OpenAPI document exact, in one pass every endpoint gets for free.

flask-smorest writes what the decorators say: the success schema, webargs' 422 and a ``default``
error. This pass adds what the server's shared machinery does to *every* operation of a kind,
so a new route is documented correctly without repeating itself:

* each status an operation can answer, with the problem schema and the codes behind it —
  401 (every operation is authenticated), 403 / 429 for org keys (suspended org, the org's
  limit), 404 where a path names something, 400 / 415 / 422 where a body or query is read,
  409 / 422 for POST and PUT (idempotency keys), 409 / 429 / 502 / 503 / 504 for operations
  that call a provider, 413 and 503 everywhere (body limit; database, Redis, audit);
* response headers: ``X-Request-ID`` on every response, ``X-RateLimit-*`` on org operations,
  ``Retry-After`` on every 429, ``WWW-Authenticate`` on 401;
* ``required`` on every response schema (every field we dump is always present, maybe null);
* an ``operationId`` (the Flask endpoint, e.g. ``org_connect``) and ``servers``;
* the patterns the server enforces on path parameters (``provider`` is an enum);
* the connect body typed per provider: ``PUT /api/v1/integrations/{provider}`` becomes one
  operation per provider, each with its own identifier schema — the provider in the path decides
  the body, so a request valid by the document is never refused for its shape;
* a request body is ``required`` exactly when its schema has required fields (a missing JSON body
  is read as ``{}``, which the server accepts unless a field is required).
"""

from __future__ import annotations

import copy

from apispec import BasePlugin

PROBLEM = {"$ref": "#/components/schemas/Problem"}
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"

# What each status means here, and the codes a client may see with it (README lists them all).
STATUS_CODES = {
    400: ("Bad request", ["bad_request"]),
    401: ("Unauthorized", ["unauthorized"]),
    403: ("Forbidden", ["organization_suspended", "forbidden"]),
    404: ("Not found", ["not_found", "organization_not_found", "api_key_not_found", "integration_not_found",
                        "unknown_provider", "product_not_found", "order_not_found", "customer_not_found",
                        "conversation_not_found", "webhook_endpoint_not_set", "event_not_found",
                        "variant_not_found", "draft_order_not_found", "list_not_found"]),
    409: ("Conflict", ["conflict", "slug_taken", "account_claimed", "integration_not_connected", "not_pending",
                          "delivery_in_progress"]),
    413: ("Payload too large", ["payload_too_large"]),
    415: ("Unsupported media type", ["unsupported_media_type"]),
    422: ("Invalid request", ["validation_error", "invalid_cursor", "account_not_reachable",
                              "unsafe_webhook_url", "outside_messaging_window"]),
    429: ("Too many requests", ["rate_limited", "upstream_rate_limited"]),
    501: ("Not implemented", ["check_unavailable"]),
    502: ("Bad gateway", ["upstream_bad_response", "upstream_unreachable", "upstream_auth_failed"]),
    503: ("Unavailable", ["database_unavailable", "shared_state_unavailable", "audit_unavailable",
                          "admin_not_configured", "provider_not_configured", "webhooks_not_configured",
                          "upstream_circuit_open"]),
    504: ("Gateway timeout", ["upstream_timeout", "upstream_outcome_unknown"]),
}

HEADERS = {
    "X-Request-ID": {"description": "this request's id (the caller's `X-Request-ID` when it is 8–64 of "
                                    "`[A-Za-z0-9._-]`, else a new one); problem details carry it as `instance`",
                     "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._-]{8,64}$"}, "required": True},
    "X-RateLimit-Limit": {"description": "the org's limit: calls per its period (a token bucket of that size, "
                                         "refilled evenly over the period)",
                          "schema": {"type": "integer", "minimum": 1}},
    "X-RateLimit-Remaining": {"description": "calls the org could send right now", "schema": {"type": "integer", "minimum": 0}},
    "X-RateLimit-Reset": {"description": "when the org's whole allowance is back (Unix time, seconds)",
                          "schema": {"type": "integer", "minimum": 0}},
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer", "minimum": 1},
                    "required": True},
    "Idempotent-Replayed": {"description": "`true` when this is the saved answer of an earlier request "
                                           "with the same `Idempotency-Key`", "schema": {"type": "string", "enum": ["true"]}},
    "WWW-Authenticate": {"description": "`Bearer realm=\"switchboard\"`", "schema": {"type": "string"},
                         "required": True},
}
_COMPONENT = {name: name.replace("-", "") for name in HEADERS}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

# Path parameters, by name: the patterns the server enforces (ids, slugs, provider names).
PATH_PATTERNS = {
    "org_ref": {"type": "string", "pattern": r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$",
                "description": "the organization's id or slug"},
    "key_id": {"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
    "integration_id": {"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
    "event_id": {"type": "string", "format": "uuid", "pattern": UUID_PATTERN},
    "product_id": {"type": "string", "pattern": r"^[1-9][0-9]{0,19}$", "description": "numeric product id"},
    "list_id": {"type": "string", "pattern": r"^[A-Za-z0-9]{1,64}$", "description": "Klaviyo list id"},
    "order_ref": {"type": "string", "pattern": r"^(?:[1-9][0-9]{0,19}|#?[A-Za-z0-9][A-Za-z0-9-]{0,31})$",
                  "description": "numeric order id, or the order name in any form: `#1001` (sent as `%231001`), "
                                 "`EN1001`, `1001-A`"},
    "draft_order_id": {"type": "string", "pattern": r"^[1-9][0-9]{0,19}$", "description": "numeric draft order id"},
    "customer_id": {"type": "string", "pattern": r"^[0-9a-f]{24}$", "description": "a Kustomer customer id"},
    "conversation_id": {"type": "string", "pattern": r"^[0-9a-f]{24}$", "description": "a Kustomer conversation id"},
}

# Operations that call a provider besides the provider blueprints' own (/api/v1/<provider>/…).
CONNECT_TEMPLATES = ("/api/v1/integrations/{provider}", "/api/v1/admin/organizations/{org_ref}/integrations/{provider}")
CALLS_PROVIDER = {("put", template) for template in CONNECT_TEMPLATES} | {
    ("post", "/api/v1/integrations/{provider}/test")}
# Statuses particular to one operation.
EXTRA_STATUSES = {("post", "/api/v1/integrations/{provider}/test"): {501},
                  ("get", "/api/v1/kustomer/customers"): {404},  # customer_not_found
                  ("get", "/api/v1/shopify/customers"): {404},  # customer_not_found
                  ("get", "/api/v1/shopify/inventory"): {404},  # variant_not_found
                  # no endpoint set yet (webhook_endpoint_not_set)
                  ("get", "/api/v1/webhook-endpoint"): {404}, ("delete", "/api/v1/webhook-endpoint"): {404}}


class OperationIds(BasePlugin):
    """``operationId`` = the Flask endpoint (``admin.list_orgs`` → ``admin_list_orgs``)."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        rule = kwargs.get("rule")
        if rule is None:
            return
        for method, operation in operations.items():
            if isinstance(operation, dict):
                operation.setdefault("operationId", rule.endpoint.replace(".", "_"))


def finish(document: dict) -> dict:
    """The exact document, from flask-smorest's (a deep copy is changed, never the original)."""
    from app.providers import PROVIDERS

    doc = copy.deepcopy(document)
    components = doc.setdefault("components", {})
    components.setdefault("headers", {}).update({_COMPONENT[name]: header for name, header in HEADERS.items()})
    schemas = components.get("schemas", {})
    doc["servers"] = [{"url": "/", "description": "this Switchboard (every path carries /api/v1)"}]
    for template in CONNECT_TEMPLATES:
        _split_connect(doc, PROVIDERS, template)
    providers = set(PROVIDERS)
    for path, item in doc.get("paths", {}).items():
        for parameter in item.get("parameters", []):
            _constrain(parameter, providers)
        for method, operation in item.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            for parameter in operation.get("parameters", []):
                _constrain(parameter, providers)
            _document_operation(path, method, item, operation, providers, schemas)
    _require_response_fields(doc)
    components.get("responses", {}).pop("UNPROCESSABLE_ENTITY", None)
    return doc


# app/inbound.py refuses a control character in any query value (422): say so on every free-text one.
NO_CONTROL_CHARACTERS = r"^[^\u0000-\u001f\u007f]*$"


def _constrain(parameter: dict, providers: set) -> None:
    if parameter.get("in") == "query":
        schema = parameter.get("schema", {})
        if schema.get("type") == "string" and not ({"pattern", "enum", "format"} & set(schema)):
            schema["pattern"] = NO_CONTROL_CHARACTERS
        return
    if parameter.get("in") != "path":
        return
    name = parameter["name"]
    if name == "provider":
        parameter["schema"] = {"type": "string", "enum": sorted(providers)}
    elif name in PATH_PATTERNS:
        parameter["schema"] = dict(PATH_PATTERNS[name])


def _statuses(path: str, method: str, item: dict, operation: dict, providers: set) -> tuple[set, bool]:
    admin = operation.get("security") == [{"adminBearer": []}]
    statuses = {401, 413, 503}
    if not admin:
        statuses |= {403, 429}
    params = item.get("parameters", []) + operation.get("parameters", [])
    template = operation.get("x-template", path)
    if any(p.get("in") == "path" for p in params) or "{" in template:
        statuses.add(404)
    if any(p.get("in") == "query" for p in params):
        statuses.add(422)
    if "requestBody" in operation:
        statuses |= {400, 415, 422}
    if method in ("post", "put"):
        statuses |= {409, 422}  # idempotency keys: in progress / reused with another body
    segment = path.split("/")[3] if path.count("/") >= 3 else ""
    if (method, template) in CALLS_PROVIDER or segment in providers:
        statuses |= {409, 429, 502, 503, 504}
        if (method, template) != ("post", "/api/v1/integrations/{provider}/test"):
            statuses.add(422)  # account_not_reachable on connect; bad ids and arguments on actions
    statuses |= EXTRA_STATUSES.get((method, template), set())
    return statuses, admin


def _headers(names) -> dict:
    return {name: {"$ref": f"#/components/headers/{_COMPONENT[name]}"} for name in names}


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "retry this request safely: the same key with the same request within 24 h gets the "
                   "first answer again, without doing the work twice (Stripe's semantics; a V4 UUID)",
    "schema": {"type": "string", "pattern": r"^[\x21-\x7e]{1,255}$", "maxLength": 255},
}


def _document_operation(path, method, item, operation, providers, schemas) -> None:
    statuses, admin = _statuses(path, method, item, operation, providers)
    if method in ("post", "put"):  # app/idempotency.py: every POST and PUT behind a key
        operation.setdefault("parameters", []).append(dict(IDEMPOTENCY_KEY))
    responses = operation.setdefault("responses", {})
    common = ["X-Request-ID"] + ([] if admin else list(RATE_HEADERS))
    for status in sorted(statuses):
        title, codes = STATUS_CODES[status]
        names = common + (["Retry-After"] if status == 429 else []) + (["WWW-Authenticate"] if status == 401 else [])
        responses[str(status)] = {
            "description": f"{title}: problem details with `code` " + ", ".join(f"`{c}`" for c in codes),
            "headers": _headers(names),
            "content": {"application/problem+json": {"schema": PROBLEM}},
        }
    for status, response in responses.items():
        if status == "default":
            responses["default"] = {
                "description": "Unexpected error (500 `internal_error`), as problem details",
                "headers": _headers(["X-Request-ID"]),
                "content": {"application/problem+json": {"schema": PROBLEM}},
            }
        elif status.startswith(("2", "3")):
            response.setdefault("headers", {}).update(
                _headers(common + (["Idempotent-Replayed"] if method in ("post", "put") else [])))
    body = operation.get("requestBody")
    if body is not None and "x-body-required" not in operation:
        schema = body.get("content", {}).get("application/json", {}).get("schema", {})
        if "$ref" in schema:
            schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
        body["required"] = bool(schema.get("required"))
    operation.pop("x-template", None)
    operation.pop("x-body-required", None)


def _split_connect(doc: dict, providers: dict, template: str) -> None:
    """``…/integrations/{provider}`` → one path per provider, its PUT typed by its identifier
    (the org's connect, and the admin's assignment of an account to an org).

    The server routes one template, but the body depends on the provider; as one path per
    provider the document says exactly which body each accepts (and what OPTIONS allows there).
    """
    item = doc.get("paths", {}).pop(template, None)
    if item is None:
        return
    for name, provider in providers.items():
        concrete = {}
        for method, operation in item.items():
            if method not in ("get", "put", "delete"):
                continue
            operation = copy.deepcopy(operation)
            # The provider is now in the path itself: drop its parameter.
            operation["parameters"] = [p for p in operation.get("parameters", [])
                                       if not (p.get("in") == "path" and p.get("name") == "provider")]
            operation["operationId"] = f"{operation.get('operationId', method)}_{name}"
            operation["x-template"] = template
            if method == "put":
                operation["summary"] = f"Connect {provider.title}: " + (
                    f"name the account by `{provider.identifier.name}`" if provider.identifier
                    else "a platform service, nothing to name")
                identifier = {"$ref": f"#/components/schemas/{name.capitalize()}Identifier"}
                schema = {"type": "object", "additionalProperties": False,
                          "properties": {"account_identifier": identifier}}
                if provider.identifier:
                    schema["required"] = ["account_identifier"]
                else:
                    schema["properties"]["account_identifier"] = {**identifier, "nullable": True}
                operation["requestBody"] = {"required": bool(provider.identifier),
                                            "content": {"application/json": {"schema": schema}}}
                operation["x-body-required"] = True
            concrete[method] = operation
        kept = [p for p in item.get("parameters", []) if not (p.get("in") == "path" and p.get("name") == "provider")]
        if kept:
            concrete["parameters"] = copy.deepcopy(kept)
        doc["paths"][template.replace("{provider}", name)] = concrete


def _require_response_fields(doc: dict) -> None:
    """Every property of a schema reachable from a success response is always present."""
    schemas = doc.get("components", {}).get("schemas", {})
    seen: set[str] = set()

    def visit(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[-1]
                if name not in seen and name != "Problem" and name in schemas:
                    seen.add(name)
                    target = schemas[name]
                    if target.get("properties"):
                        target["required"] = sorted(target["properties"])
                    visit(target)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    for item in doc.get("paths", {}).values():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                for status, response in operation["responses"].items():
                    if status.startswith("2"):
                        visit(response.get("content", {}))

