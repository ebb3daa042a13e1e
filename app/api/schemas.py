"""Request and response schemas. The OpenAPI document is generated from these same classes."""

from datetime import timezone

from marshmallow import Schema, ValidationError, fields, validate


def attributes(obj, schema: type[Schema]) -> dict:
    """The attributes of ``obj`` that ``schema`` dumps, to extend with extra keys before dumping."""
    return {name: getattr(obj, name) for name in schema._declared_fields}


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error is rendered."""

    type = fields.String()
    title = fields.String()
    status = fields.Integer()
    detail = fields.String()
    code = fields.String(metadata={"description": "stable snake_case error code"})
    request_id = fields.String()
    field = fields.String(metadata={"description": "the offending field (validation errors)"})
    errors = fields.List(fields.Dict())
    provider = fields.String(metadata={"description": "the provider concerned (upstream errors)"})
    missing = fields.List(fields.String(), metadata={"description": "variables the operator must set"})


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
    configured = fields.Boolean(metadata={"description": "whether the platform holds credentials"})
    missing_variables = fields.List(fields.String())
    actions = fields.List(fields.String())
    docs_url = fields.String()


class ProviderListSchema(Schema):
    data = fields.List(fields.Nested(ProviderSchema))


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
    next_cursor = fields.String(allow_none=True)


def _utc_representable(value) -> None:
    """An instant must exist in UTC (how it is stored and compared): 9999-12-31T23:59:59-14:00
    does not, and used to overflow in the database layer (500)."""
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        raise ValidationError("Date out of range.") from None


class AuditQuerySchema(Schema):
    provider = fields.String(load_default=None, validate=validate.Length(max=50))
    action = fields.String(load_default=None, validate=validate.Length(max=64))
    since = fields.AwareDateTime(load_default=None, default_timezone=None, validate=_utc_representable,
                                 metadata={"description": "ISO 8601 with offset, inclusive"})
    until = fields.AwareDateTime(load_default=None, validate=_utc_representable,
                                 metadata={"description": "ISO 8601 with offset, exclusive"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=200))
    cursor = fields.Integer(load_default=None, validate=validate.Range(min=1, max=2**63 - 1),
                            metadata={"description": "`next_cursor` from the previous page"})


class OrgCreateSchema(Schema):
    slug = fields.String(required=True)
    name = fields.String(load_default=None, validate=validate.Length(min=1, max=200))
    rate_limit = fields.String(load_default=None, metadata={"description": "e.g. 600/minute"})


class OrgUpdateSchema(Schema):
    name = fields.String(validate=validate.Length(min=1, max=200))
    status = fields.String(validate=validate.OneOf(["active", "suspended"]))
    rate_limit = fields.String(allow_none=True, metadata={"description": "null restores the default"})


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


class PendingQuerySchema(Schema):
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
