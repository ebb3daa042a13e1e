"""Request and response schemas. The OpenAPI document is generated from these same classes."""

from datetime import timezone

from marshmallow import INCLUDE, Schema, ValidationError, fields, validate

from app.pagination import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT

# What the server enforces, in the document's words (services.SLUG, config.is_rate_limit).
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"
RATE_LIMIT_PATTERN = r"^[1-9][0-9]{0,8} ?(/|per) ?(second|minute|hour|day)$"


def attributes(obj, schema: type[Schema]) -> dict:
    """The attributes of ``obj`` that ``schema`` dumps, to extend with extra keys before dumping."""
    return {name: getattr(obj, name) for name in schema._declared_fields}


class FieldErrorSchema(Schema):
    field = fields.String(required=True, metadata={"description": "dotted name, e.g. `account_identifier.storeName`"})
    pointer = fields.String(required=True, metadata={
        "description": "RFC 6901 JSON Pointer into the request (RFC 9457 §3: `#/account_identifier/storeName`)"})
    message = fields.String(required=True)


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error is rendered. Extension members may be added."""

    class Meta:
        unknown = INCLUDE  # documented as additionalProperties: true (RFC 9457 §3.2)

    type = fields.String(required=True)
    title = fields.String(required=True, metadata={"description": "the same for every response with this `code`"})
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    instance = fields.String(required=True, metadata={
        "description": "`urn:request:<request_id>`: this occurrence, as the X-Request-ID header names it"})
    code = fields.String(required=True, metadata={"description": "stable snake_case error code (README)"})
    request_id = fields.String(required=True)
    field = fields.String(metadata={"description": "the (first) offending field (validation errors)"})
    pointer = fields.String(metadata={"description": "JSON Pointer of `field` (validation errors)"})
    errors = fields.List(fields.Nested(FieldErrorSchema), metadata={"description": "every offending field"})
    provider = fields.String(metadata={"description": "the provider concerned (upstream errors)"})


class PageQuerySchema(Schema):
    """The one pagination convention (app/pagination.py)."""

    limit = fields.Integer(load_default=DEFAULT_LIMIT, validate=validate.Range(min=1, max=MAX_LIMIT),
                           metadata={"description": f"page size, 1–{MAX_LIMIT}"})
    cursor = fields.String(load_default=None, validate=validate.Regexp(CURSOR_PATTERN), metadata={
        "description": "`next_cursor` of the previous page (opaque)", "pattern": CURSOR_PATTERN})


def _next_cursor():
    return fields.String(required=True, allow_none=True, metadata={
        "description": "pass as `cursor` for the next page; null on the last page"})


class IdentifierSchema(Schema):
    field = fields.String()
    description = fields.String()
    example = fields.String()
    pattern = fields.String()


class ProviderSchema(Schema):
    name = fields.String()
    title = fields.String()
    kind = fields.String(metadata={"description": "'account' (org names an account) or 'platform'"})
    identifier = fields.Nested(IdentifierSchema, allow_none=True)
    configured = fields.Boolean(metadata={"description": "whether the platform has enabled it"})
    actions = fields.List(fields.String())
    docs_url = fields.String()


class ProviderListSchema(Schema):
    data = fields.List(fields.Nested(ProviderSchema))
    next_cursor = _next_cursor()


class AdminProviderSchema(ProviderSchema):
    missing_variables = fields.List(fields.String(), metadata={
        "description": "environment variables the operator must set (empty when configured)"})
    hint = fields.String(allow_none=True, metadata={"description": "what to set, for the operator"})


class AdminProviderListSchema(Schema):
    data = fields.List(fields.Nested(AdminProviderSchema))
    next_cursor = _next_cursor()


class IntegrationSchema(Schema):
    id = fields.UUID()
    organization_id = fields.UUID()
    provider = fields.String()
    status = fields.String(metadata={"description": "connected, disconnected, error or pending"})
    account_identifier = fields.Dict(allow_none=True)
    connected_at = fields.DateTime(allow_none=True)
    last_synced_at = fields.DateTime(allow_none=True)
    sync_status = fields.String(allow_none=True)
    error_message = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class IntegrationListSchema(Schema):
    data = fields.List(fields.Nested(IntegrationSchema))
    next_cursor = _next_cursor()


class ConnectSchema(Schema):
    account_identifier = fields.Raw(
        load_default=None,
        metadata={"description": "the provider's identifier object, e.g. {\"storeName\": \"mystore\"}; "
                                 "{} or absent for platform services (stripe, openai)",
                  "type": "object"},
    )


class TestResultSchema(Schema):
    ok = fields.Boolean()
    message = fields.String(allow_none=True)


class TestedIntegrationSchema(IntegrationSchema):
    test = fields.Nested(TestResultSchema)


class AuditLogSchema(Schema):
    id = fields.String()
    at = fields.DateTime()
    organization_id = fields.UUID(allow_none=True)
    actor = fields.String()
    action = fields.String()
    provider = fields.String(allow_none=True)
    target = fields.String(allow_none=True)
    outcome = fields.String()
    status_code = fields.Integer(allow_none=True)
    latency_ms = fields.Float(allow_none=True)
    request_id = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    detail = fields.Dict(allow_none=True)


class AuditPageSchema(Schema):
    data = fields.List(fields.Nested(AuditLogSchema))
    next_cursor = _next_cursor()


def _utc_representable(value) -> None:
    """An instant must exist in UTC (how it is stored and compared): 9999-12-31T23:59:59-14:00
    does not, and used to overflow in the database layer (500)."""
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        raise ValidationError("Date out of range.") from None


class AuditQuerySchema(PageQuerySchema):
    provider = fields.String(load_default=None, validate=validate.Length(max=50))
    action = fields.String(load_default=None, validate=validate.Length(max=64))
    since = fields.AwareDateTime(load_default=None, default_timezone=None, validate=_utc_representable,
                                 metadata={"description": "ISO 8601 with offset, inclusive"})
    until = fields.AwareDateTime(load_default=None, validate=_utc_representable,
                                 metadata={"description": "ISO 8601 with offset, exclusive"})


class OrgCreateSchema(Schema):
    slug = fields.String(required=True, metadata={"pattern": SLUG_PATTERN})
    name = fields.String(load_default=None, validate=validate.Length(min=1, max=200))
    rate_limit = fields.String(load_default=None, metadata={"description": "e.g. 600/minute", "pattern": RATE_LIMIT_PATTERN})


class OrgUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    status = fields.String(validate=validate.OneOf(["active", "suspended"]))
    rate_limit = fields.String(allow_none=True, metadata={"description": "null restores the default",
                                                          "pattern": RATE_LIMIT_PATTERN})


class OrgSchema(Schema):
    id = fields.UUID()
    slug = fields.String()
    name = fields.String()
    status = fields.String()
    rate_limit = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class OrgListSchema(Schema):
    data = fields.List(fields.Nested(OrgSchema))
    next_cursor = _next_cursor()


class KeyCreateSchema(Schema):
    name = fields.String(load_default=None, validate=validate.Length(min=1, max=100))


class ApiKeySchema(Schema):
    id = fields.UUID()
    organization_id = fields.UUID()
    name = fields.String()
    prefix = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)


class IssuedKeySchema(ApiKeySchema):
    key = fields.String(metadata={"description": "shown once; only its hash is stored"})


class ApiKeyListSchema(Schema):
    data = fields.List(fields.Nested(ApiKeySchema))
    next_cursor = _next_cursor()


class PendingQuerySchema(PageQuerySchema):
    status = fields.String(load_default="pending",
                           validate=validate.OneOf(["connected", "disconnected", "error", "pending"]))


class ApproveSchema(Schema):
    account_identifier = fields.Dict(
        required=True,
        metadata={"description": "the account the admin reviewed, as listed (e.g. {\"storeName\": \"mystore\"}; "
                                 "{} for platform services); 409 `account_changed` if the connection now "
                                 "names another"},
    )


class ReviewSchema(Schema):
    account_identifier = fields.Dict(
        load_default=None,
        metadata={"description": "optional: the account the admin reviewed; 409 `account_changed` if the "
                                 "connection now names another"},
    )
