"""The platform admin (``Authorization: Bearer $ADMIN_API_KEY``): orgs, keys, approvals, audit."""

import sqlalchemy as sa
from flask import g
from flask_smorest import Blueprint

from app import services
from app.api.schemas import (
    ApiKeySchema,
    ApproveSchema,
    ConnectSchema,
    ApiKeyListSchema,
    AuditPageSchema,
    AuditQuerySchema,
    IntegrationListSchema,
    IntegrationSchema,
    IssuedKeySchema,
    KeyCreateSchema,
    OrgCreateSchema,
    OrgListSchema,
    OrgSchema,
    OrgUpdateSchema,
    PageQuerySchema,
    PendingQuerySchema,
    ReviewSchema,
    attributes,
)
from app.auth import admin_required
from app.extensions import db
from app.models import ApiKey, Integration, Organization

blp = Blueprint("admin", __name__, url_prefix="/api/v1/admin", description="Platform administration.")
# Every admin operation takes the admin key, not an org key.
admin_auth = blp.doc(security=[{"adminBearer": []}])


@blp.route("/organizations", methods=["POST"])
@blp.response(201, OrgSchema)
@admin_auth
@admin_required
@blp.arguments(OrgCreateSchema)
def create_org(body):
    """Create an organization."""
    return services.create_org(body["slug"], body["name"], body["rate_limit"], actor=g.actor)


@blp.route("/organizations", methods=["GET"])
@blp.response(200, OrgListSchema)
@admin_auth
@admin_required
@blp.arguments(PageQuerySchema, location="query", as_kwargs=True)
def list_orgs(**page):
    """Every organization, by slug."""
    rows, next_cursor = services.orgs_page(**page)
    return {"data": rows, "next_cursor": next_cursor}


@blp.route("/organizations/<org_ref>", methods=["GET"])
@blp.response(200, OrgSchema)
@admin_auth
@admin_required
def get_org(org_ref):
    """One organization, by id or slug."""
    return services.find_org(org_ref)


@blp.route("/organizations/<org_ref>", methods=["PATCH"])
@blp.response(200, OrgSchema)
@admin_auth
@admin_required
@blp.arguments(OrgUpdateSchema)
def update_org(body, org_ref):
    """Rename, suspend/reactivate, or set the org's rate limit (null restores the default)."""
    return services.update_org(services.find_org(org_ref), body, actor=g.actor)


@blp.route("/organizations/<org_ref>/api-keys", methods=["POST"])
@blp.response(201, IssuedKeySchema)
@admin_auth
@admin_required
@blp.arguments(KeyCreateSchema)
def issue_key(body, org_ref):
    """Issue an API key. The key is in this response only."""
    api_key, plaintext = services.issue_key(services.find_org(org_ref), body["name"], actor=g.actor)
    return {**attributes(api_key, ApiKeySchema), "key": plaintext}


@blp.route("/organizations/<org_ref>/api-keys", methods=["GET"])
@blp.response(200, ApiKeyListSchema)
@admin_auth
@admin_required
@blp.arguments(PageQuerySchema, location="query", as_kwargs=True)
def list_keys(org_ref, **page):
    """The org's keys (prefixes only), oldest first."""
    rows, next_cursor = services.keys_page(services.find_org(org_ref), **page)
    return {"data": rows, "next_cursor": next_cursor}


@blp.route("/organizations/<org_ref>/api-keys/<key_id>", methods=["DELETE"])
@blp.response(204)
@admin_auth
@admin_required
def revoke_key(org_ref, key_id):
    """Revoke a key; it stops working at once."""
    services.revoke_key(key_id, actor=g.actor, org=services.find_org(org_ref))


@blp.route("/integrations", methods=["GET"])
@blp.response(200, IntegrationListSchema)
@admin_auth
@admin_required
@blp.arguments(PendingQuerySchema, location="query", as_kwargs=True)
def list_integrations(status, **page):
    """Integrations of every org in one status (default: pending approval), oldest first."""
    rows, next_cursor = services.integrations_by_status_page(status, **page)
    return {"data": rows, "next_cursor": next_cursor}


@blp.route("/integrations/<integration_id>/approve", methods=["POST"])
@blp.response(200, IntegrationSchema)
@admin_auth
@admin_required
@blp.arguments(ApproveSchema)
def approve(body, integration_id):
    """Approve a pending connection — the one naming the account you reviewed (else 409)."""
    return services.approve(integration_id, body["account_identifier"], actor=g.actor)


@blp.route("/integrations/<integration_id>/reject", methods=["POST"])
@blp.response(200, IntegrationSchema)
@admin_auth
@admin_required
@blp.arguments(ReviewSchema)
def reject(body, integration_id):
    """Reject a pending connection; the account is free for its owner."""
    return services.reject(integration_id, body["account_identifier"], actor=g.actor)


@blp.route("/integrations/<integration_id>/release", methods=["POST"])
@blp.response(200, IntegrationSchema)
@admin_auth
@admin_required
@blp.arguments(ReviewSchema)
def release(body, integration_id):
    """Release the claim of any org (connected, pending or error); the account is free again."""
    return services.release(integration_id, body["account_identifier"], actor=g.actor)


@blp.route("/organizations/<org_ref>/integrations", methods=["GET"])
@blp.response(200, IntegrationListSchema)
@admin_auth
@admin_required
@blp.arguments(PageQuerySchema, location="query", as_kwargs=True)
def list_org_integrations(org_ref, **page):
    """One org's integrations by provider (disconnected ones included, as history)."""
    rows, next_cursor = services.integrations_page(services.find_org(org_ref), **page)
    return {"data": rows, "next_cursor": next_cursor}


@blp.route("/organizations/<org_ref>/integrations/<provider>", methods=["PUT"])
@blp.response(200, IntegrationSchema)
@blp.alt_response(201, schema=IntegrationSchema, description="newly assigned")
@admin_auth
@admin_required
@blp.arguments(ConnectSchema)
def assign(body, org_ref, provider):
    """Assign an account to an org: verified, connected at once; any other org's connect gets 409."""
    integration, created = services.assign(services.find_org(org_ref), provider, body["account_identifier"],
                                           actor=g.actor)
    return integration, 201 if created else 200


@blp.route("/audit-logs", methods=["GET"])
@blp.response(200, AuditPageSchema)
@admin_auth
@admin_required
@blp.arguments(AuditQuerySchema, location="query", as_kwargs=True)
def audit_logs(**filters):
    """The whole platform's audit trail, newest first."""
    rows, next_cursor = services.audit_page(None, **filters)
    return {"data": rows, "next_cursor": next_cursor}

