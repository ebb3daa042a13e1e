"""Operations shared by the API and the CLI: orgs, keys, integrations.

Org-facing operations take the caller's ``OrgContext`` (resolved from its key in app/auth.py)
and scope every query by its id; admin operations take ``Organization`` rows.

Each function validates, changes rows, writes its audit row and commits once — so a failure leaves
nothing half-written. Handlers and CLI commands only parse input and render output.
"""

from __future__ import annotations

import re
import uuid

import sqlalchemy as sa
from flask import current_app

from app import keys, pagination
from app.audit import Action, record
from app.auth import OrgContext
from app.errors import Conflict, NotFound, SwitchboardError, UpstreamError, ValidationFailed
from app.extensions import db
from app.models import ApiKey, AuditLog, Integration, Organization
from app.models.base import utcnow
from app.providers import get_provider
from app.providers.base import AccountCheckFailed
from app.proxy import credentials_for
from config import is_rate_limit

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
ORG_STATUSES = ("active", "suspended")


# --- organizations and keys -------------------------------------------------------------------


def _check_rate_limit(value):
    if value is not None and not (isinstance(value, str) and is_rate_limit(value)):
        raise ValidationFailed("rate_limit", "must look like '60/minute' (per second, minute, hour or day)")


def create_org(slug: str, name: str | None = None, rate_limit: str | None = None, *, actor: str) -> Organization:
    if not isinstance(slug, str) or not slug.isascii() or not SLUG.fullmatch(slug):
        raise ValidationFailed("slug", "must be one lower-case DNS label (a-z, 0-9, inner hyphens)")
    _check_rate_limit(rate_limit)
    if db.session.execute(sa.select(Organization.id).where(Organization.slug == slug)).first():
        raise Conflict(f"An organization with slug '{slug}' exists.", code="slug_taken")
    org = Organization(id=uuid.uuid4(), slug=slug, name=(name or slug)[:200], rate_limit=rate_limit)
    try:
        db.session.add(org)
        record(Action.ORG_CREATED, organization_id=org.id, actor=actor, target=slug)
        db.session.commit()
    except sa.exc.IntegrityError:  # a concurrent create won the slug
        db.session.rollback()
        raise Conflict(f"An organization with slug '{slug}' exists.", code="slug_taken") from None
    return org


def update_org(org: Organization, changes: dict, *, actor: str) -> Organization:
    if "rate_limit" in changes:
        _check_rate_limit(changes["rate_limit"])
    if "status" in changes and changes["status"] not in ORG_STATUSES:
        raise ValidationFailed("status", "must be 'active' or 'suspended'")
    for name in ("name", "status", "rate_limit"):
        if name in changes:
            setattr(org, name, changes[name])
    record(Action.ORG_UPDATED, organization_id=org.id, actor=actor, target=org.slug,
           detail={"fields": sorted(changes)})
    db.session.commit()
    return org


def find_org(ref: str) -> Organization:
    """By id or slug (the CLI takes either)."""
    org = None
    try:
        org = db.session.get(Organization, uuid.UUID(ref))
    except (ValueError, TypeError):
        pass
    if org is None:  # a slug may itself look like a UUID
        org = db.session.execute(sa.select(Organization).where(Organization.slug == ref)).scalar_one_or_none()
    if org is None:
        raise NotFound("No such organization.", code="organization_not_found")
    return org


def issue_key(org: Organization, name: str | None = None, *, actor: str) -> tuple[ApiKey, str]:
    plaintext = keys.generate()
    api_key = ApiKey(organization_id=org.id, name=(name or "default")[:100],
                     prefix=keys.display_prefix(plaintext), key_hash=keys.digest(plaintext), scopes=[])
    db.session.add(api_key)
    db.session.flush()
    record(Action.KEY_ISSUED, organization_id=org.id, actor=actor, target=str(api_key.id),
           detail={"prefix": api_key.prefix})
    db.session.commit()
    return api_key, plaintext


def revoke_key(key_id: str, *, actor: str, org: Organization | None = None) -> ApiKey:
    try:
        query = sa.select(ApiKey).where(ApiKey.id == uuid.UUID(str(key_id)))
    except ValueError:
        raise NotFound("No such API key.", code="api_key_not_found") from None
    if org is not None:
        query = query.where(ApiKey.organization_id == org.id)
    api_key = db.session.execute(query).scalar_one_or_none()
    if api_key is None:
        raise NotFound("No such API key.", code="api_key_not_found")
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        record(Action.KEY_REVOKED, organization_id=api_key.organization_id, actor=actor,
               target=str(api_key.id), detail={"prefix": api_key.prefix})
        db.session.commit()
    return api_key


# --- integrations -----------------------------------------------------------------------------


def _own_integration(org: OrgContext, provider_name: str) -> Integration | None:
    return db.session.execute(
        Integration.for_org(org.id).where(Integration.provider == provider_name)
    ).scalar_one_or_none()


def get_integration(org: OrgContext, provider_name: str) -> Integration:
    get_provider(provider_name)
    integration = _own_integration(org, provider_name)
    if integration is None or integration.status == "disconnected":
        raise NotFound(f"{provider_name} is not connected for this organization.",
                       code="integration_not_found")
    return integration


def list_integrations(org: OrgContext) -> list[Integration]:
    return list(db.session.execute(
        Integration.for_org(org.id).order_by(Integration.provider)).scalars())


def connect(org: OrgContext, provider_name: str, raw_identifier, *, actor: str) -> tuple[Integration, bool]:
    """Validate → claim check → verify upstream → one commit. Returns (integration, created).

    A refused attempt changes nothing but is audited (``integration.connect_failed`` with the
    error code): an org probing for other orgs' accounts shows up in the trail.
    """
    try:
        return _connect(org, provider_name, raw_identifier, actor=actor)
    except SwitchboardError as exc:
        db.session.rollback()
        record(Action.INTEGRATION_CONNECT_FAILED, outcome="failure", provider=provider_name[:50],
               organization_id=org.id, actor=actor, status_code=exc.status,
               detail={"error": exc.code}, commit=True)
        raise


def _connect(org: OrgContext, provider_name: str, raw_identifier, *, actor: str) -> tuple[Integration, bool]:
    provider = get_provider(provider_name)
    identifier, account_key = provider.parse_identifier(raw_identifier)
    credentials_for(provider.name)
    if account_key is not None and _claimed_elsewhere(provider.name, account_key, org.id):
        raise _claimed(provider.name)
    db.session.rollback()  # nothing written yet; hold no transaction open across the upstream call
    if provider.verify is not None:
        try:
            provider.verify(account_key)
        except AccountCheckFailed as exc:
            raise ValidationFailed(f"account_identifier.{provider.identifier.name}", exc.message,
                                   code="account_not_reachable") from None
        needs_approval = current_app.config["CONNECT_REQUIRES_APPROVAL"]
    else:
        needs_approval = True  # no automatic check for this provider yet: an admin approves
    integration = _own_integration(org, provider.name)
    created = integration is None
    if created:
        integration = Integration(organization_id=org.id, provider=provider.name)
        db.session.add(integration)
    same_account = not created and integration.account_key == account_key and integration.status != "disconnected"
    if not (same_account and integration.status == "connected"):
        integration.status = "pending" if needs_approval else "connected"
    integration.account_identifier = identifier
    integration.account_key = account_key
    integration.error_message = None
    integration.sync_status = "verified" if provider.verify else "unverified"
    integration.last_synced_at = utcnow()
    if integration.status == "connected" and not same_account:
        integration.connected_at = utcnow()
    action = Action.INTEGRATION_PENDING if integration.status == "pending" else Action.INTEGRATION_CONNECTED
    try:
        db.session.flush()  # the claim is decided here, by UNIQUE(provider, account_key)
        record(action, provider=provider.name, target=account_key, organization_id=org.id, actor=actor)
        db.session.commit()
    except sa.exc.IntegrityError:
        db.session.rollback()
        # Two orgs raced for the same account (or one org raced itself): the database decided.
        raise _claimed(provider.name) from None
    return integration, created


def _claimed_elsewhere(provider_name: str, account_key: str, org_id) -> bool:
    return db.session.execute(
        sa.select(Integration.id).where(
            Integration.provider == provider_name,
            Integration.account_key == account_key,
            Integration.organization_id != org_id,
        )
    ).first() is not None


def _claimed(provider_name: str) -> Conflict:
    return Conflict(f"This {provider_name} account is already connected to another organization.",
                    code="account_claimed")


def disconnect(org: OrgContext, provider_name: str, *, actor: str) -> None:
    integration = get_integration(org, provider_name)
    released = integration.account_key
    integration.status = "disconnected"
    integration.account_key = None  # release the claim; the identifier stays as history
    integration.connected_at = None
    record(Action.INTEGRATION_DISCONNECTED, provider=provider_name, target=released,
           organization_id=org.id, actor=actor)
    db.session.commit()


def check_integration(org: OrgContext, provider_name: str, *, actor: str) -> tuple[Integration, dict]:
    """Check the account with the platform's credentials; record connected or error."""
    provider = get_provider(provider_name)
    integration = get_integration(org, provider_name)
    credentials_for(provider.name)
    if provider.verify is None:
        error = SwitchboardError(f"Switchboard cannot check {provider_name} accounts yet.",
                                 code="check_unavailable")
        error.status, error.title = 501, "Not implemented"
        raise error
    account_failed = False
    try:
        provider.verify(integration.account_key)
        ok, message = True, None
    except AccountCheckFailed as exc:
        ok, message, account_failed = False, exc.message, True
    except UpstreamError as exc:
        # The provider had a bad moment (timeout, 5xx, rate limit): reported, but the integration
        # is not taken offline for it — only a failed account check marks it ``error``.
        ok, message = False, exc.detail
    integration.last_synced_at = utcnow()
    integration.sync_status = "ok" if ok else ("failed" if account_failed else "upstream_error")
    integration.error_message = message
    if ok and integration.status == "error":
        integration.status = "connected"
    elif account_failed and integration.status == "connected":
        integration.status = "error"
    record(Action.INTEGRATION_TESTED, provider=provider_name, target=integration.account_key,
           outcome="success" if ok else "failure", organization_id=org.id, actor=actor,
           detail={"ok": ok})
    db.session.commit()
    return integration, {"ok": ok, "message": message}


def approve(integration_id: str, *, actor: str) -> Integration:
    try:
        integration = db.session.get(Integration, uuid.UUID(str(integration_id)))
    except ValueError:
        integration = None
    if integration is None:
        raise NotFound("No such integration.", code="integration_not_found")
    if integration.status != "pending":
        raise Conflict(f"The integration is {integration.status}, not pending.", code="not_pending")
    integration.status = "connected"
    integration.connected_at = utcnow()
    record(Action.INTEGRATION_APPROVED, provider=integration.provider, target=integration.account_key,
           organization_id=integration.organization_id, actor=actor)
    db.session.commit()
    return integration


# --- audit log reads --------------------------------------------------------------------------


def audit_page(org_id, *, provider=None, action=None, since=None, until=None, limit=50, cursor=None):
    """Newest first, one page (app/pagination.py). ``org_id=None``: every org (admin only)."""
    query = sa.select(AuditLog)
    if org_id is not None:
        query = query.where(AuditLog.organization_id == org_id)
    if provider:
        query = query.where(AuditLog.provider == provider)
    if action:
        query = query.where(AuditLog.action == action)
    if since:
        query = query.where(AuditLog.at >= since)
    if until:
        query = query.where(AuditLog.at < until)
    return pagination.page(query, kind="audit", order=[AuditLog.id], limit=limit, cursor=cursor,
                           descending=True)


# --- lists (one page each; app/pagination.py) -------------------------------------------------


def integrations_page(org: OrgContext, *, limit=50, cursor=None):
    """This org's integrations by provider name (disconnected ones included, as history)."""
    return pagination.page(Integration.for_org(org.id), kind="integrations",
                           order=[Integration.provider, Integration.id], limit=limit, cursor=cursor)


def orgs_page(*, limit=50, cursor=None):
    return pagination.page(sa.select(Organization), kind="organizations",
                           order=[Organization.slug, Organization.id], limit=limit, cursor=cursor)


def keys_page(org: Organization, *, limit=50, cursor=None):
    return pagination.page(sa.select(ApiKey).where(ApiKey.organization_id == org.id), kind="api-keys",
                           order=[ApiKey.created_at, ApiKey.id], limit=limit, cursor=cursor)


def integrations_by_status_page(status: str, *, limit=50, cursor=None):
    return pagination.page(sa.select(Integration).where(Integration.status == status),
                           kind="admin-integrations",
                           order=[Integration.created_at, Integration.id], limit=limit, cursor=cursor)
