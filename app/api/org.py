"""What an org does with its key: providers, integrations, audit log. Handlers are three lines."""

from flask import g
from flask_smorest import Blueprint

from app import services
from app.api.schemas import (
    AuditPageSchema,
    AuditQuerySchema,
    ConnectSchema,
    IntegrationListSchema,
    IntegrationSchema,
    PageQuerySchema,
    ProviderListSchema,
    TestedIntegrationSchema,
    attributes,
)
from app.auth import org_required

blp = Blueprint("org", __name__, url_prefix="/api/v1", description="What an org's key can do.")


@blp.route("/providers")
@blp.response(200, ProviderListSchema)
@org_required
def list_providers():
    """Every provider, the identifier it needs, and whether the platform has enabled it (one page)."""
    from app.api.catalog import provider_rows

    return {"data": provider_rows(), "next_cursor": None}


@blp.route("/integrations")
@blp.response(200, IntegrationListSchema)
@org_required
@blp.arguments(PageQuerySchema, location="query", as_kwargs=True)
def list_integrations(**page):
    """This org's integrations by provider (disconnected ones included, as history)."""
    rows, next_cursor = services.integrations_page(g.org, **page)
    return {"data": rows, "next_cursor": next_cursor}


@blp.route("/integrations/<provider>", methods=["GET"])
@blp.response(200, IntegrationSchema)
@org_required
def get_integration(provider):
    """This org's integration with one provider."""
    return services.get_integration(g.org, provider)


@blp.route("/integrations/<provider>", methods=["PUT"])
@blp.response(200, IntegrationSchema)
@blp.alt_response(201, schema=IntegrationSchema, description="newly connected")
@org_required
@blp.arguments(ConnectSchema)
def connect(body, provider):
    """Connect an account by naming it; verified with the platform's credentials."""
    integration, created = services.connect(g.org, provider, body["account_identifier"], actor=g.actor)
    return integration, 201 if created else 200


@blp.route("/integrations/<provider>", methods=["DELETE"])
@blp.response(204)
@org_required
def disconnect(provider):
    """Disconnect and release the account for other orgs."""
    services.disconnect(g.org, provider, actor=g.actor)


@blp.route("/integrations/<provider>/test", methods=["POST"])
@blp.response(200, TestedIntegrationSchema)
@org_required
def test(provider):
    """Check the account with the platform's credentials; records connected or error."""
    integration, result = services.check_integration(g.org, provider, actor=g.actor)
    return {**attributes(integration, IntegrationSchema), "test": result}


@blp.route("/audit-logs")
@blp.response(200, AuditPageSchema)
@org_required
@blp.arguments(AuditQuerySchema, location="query", as_kwargs=True)
def audit_logs(**filters):
    """This org's audit trail, newest first."""
    rows, next_cursor = services.audit_page(g.org.id, **filters)
    return {"data": rows, "next_cursor": next_cursor}
