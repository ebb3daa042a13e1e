"""Operations shared by the API and the CLI: orgs, keys, integrations.

Org-facing operations take the caller's ``OrgContext`` (resolved from its key in app/auth.py)
and scope every query by its id; admin operations take ``Organization`` rows.

Each function validates, changes rows, writes its audit row and commits once — so a failure leaves
nothing half-written. Handlers and CLI commands only parse input and render output.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger("switchboard.services")

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
# The one spelling of an id in an admin path: the form the API itself returns. Anything else is a
# slug, and no slug may parse as a UUID in any form — so a reference names one org, never two.
CANONICAL_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
ORG_STATUSES = ("active", "suspended")


# --- organizations and keys -------------------------------------------------------------------


def _check_rate_limit(value):
    if value is not None and not (isinstance(value, str) and is_rate_limit(value)):
        raise ValidationFailed("rate_limit", "must look like '60/minute' (per second, minute, hour or day)")


def create_org(slug: str, name: str | None = None, rate_limit: str | None = None, *, actor: str) -> Organization:
    if not isinstance(slug, str) or not slug.isascii() or not SLUG.fullmatch(slug):
        raise ValidationFailed("slug", "must be one lower-case DNS label (a-z, 0-9, inner hyphens)")
    if _parses_as_uuid(slug):
        raise ValidationFailed("slug", "must not look like an id (it parses as a UUID)")
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
    current_app.extensions["limit_notes"].forget(org=org.id)  # a new limit or status applies at once
    return org


def _parses_as_uuid(value: str) -> bool:
    # uuid.UUID is the most lenient reader we have (32 hex, stray hyphens, braces, urn:uuid:).
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def find_org(ref: str) -> Organization:
    """By id (canonical form only) or slug (the API and the CLI take either).

    The two never overlap: an id is only ever read in its canonical form, and a slug can never be
    one that parses as a UUID. A 32-hex string or a braced id is a slug here — and finds nothing.
    """
    org = None
    if isinstance(ref, str) and CANONICAL_ID.fullmatch(ref):
        org = db.session.get(Organization, uuid.UUID(ref))
    elif isinstance(ref, str) and SLUG.fullmatch(ref):
        org = db.session.execute(sa.select(Organization).where(Organization.slug == ref)).scalar_one_or_none()
    if org is None:
        raise NotFound("No such organization.", code="organization_not_found")
    return org


def issue_key(org: Organization, name: str | None = None, *, actor: str) -> tuple[ApiKey, str]:
    # A sandbox server issues test keys (refused by any server that is not in sandbox mode).
    plaintext = keys.generate(test=current_app.config["SANDBOX"])
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
    # A revoked key is refused as revoked (401) at once, not from a refusal's note (in this process).
    current_app.extensions["limit_notes"].forget(digest=api_key.key_hash)
    guard = current_app.extensions.get("upstream_guard")
    if guard is not None:
        guard.noted_keys.pop(api_key.key_hash, None)
    return api_key


# --- integrations -----------------------------------------------------------------------------


def _own_integration(org_id, provider_name: str) -> Integration | None:
    return db.session.execute(
        Integration.for_org(org_id).where(Integration.provider == provider_name)
    ).scalar_one_or_none()


def get_integration(org: OrgContext, provider_name: str) -> Integration:
    get_provider(provider_name)
    integration = _own_integration(org.id, provider_name)
    if integration is None or integration.status == "disconnected":
        raise NotFound(f"{provider_name} is not connected for this organization.",
                       code="integration_not_found")
    return integration


def list_integrations(org: OrgContext) -> list[Integration]:
    return list(db.session.execute(
        Integration.for_org(org.id).order_by(Integration.provider)).scalars())


_table = Integration.__table__
_CAS_ATTEMPTS = 5


def _swap(integration_id, expected: dict, **values) -> bool:
    """Compare-and-set: change the row only if its ``expected`` columns still hold what we read.

    One conditional UPDATE, decided by the database on both engines (PostgreSQL re-checks the
    WHERE after waiting on a concurrent writer's row lock; SQLite serialises writers). Returns
    whether this caller made the change; a loser re-reads and decides again.
    """
    conditions = [_table.c.id == integration_id]
    for column, value in expected.items():
        conditions.append(_table.c[column].is_(None) if value is None else _table.c[column] == value)
    values.setdefault("updated_at", utcnow())
    return db.session.execute(sa.update(_table).where(*conditions).values(**values)).rowcount == 1


def _busy() -> Conflict:
    return Conflict("The integration was changed by another request at the same time; retry.",
                    code="integration_busy")


def connect(org: OrgContext, provider_name: str, raw_identifier, *, actor: str) -> tuple[Integration, bool]:
    """Validate → claim check → verify upstream → one commit. Returns (integration, created).

    A refused attempt changes nothing but is audited (``integration.connect_failed`` with the
    error code): an org probing for other orgs' accounts shows up in the trail.
    """
    return _audited_connect(org.id, provider_name, raw_identifier, actor=actor, assigned=False)


def assign(org: Organization, provider_name: str, raw_identifier, *, actor: str) -> tuple[Integration, bool]:
    """The admin gives ``org`` an account: verified like a connect, stored ``connected`` whatever
    the approval policy (the admin's assignment is the approval). Another org's claim is 409 —
    the admin releases it first. The org's own connect of that account then changes nothing."""
    return _audited_connect(org.id, provider_name, raw_identifier, actor=actor, assigned=True)


def _audited_connect(org_id, provider_name, raw_identifier, *, actor, assigned):
    try:
        return _connect(org_id, provider_name, raw_identifier, actor=actor, assigned=assigned)
    except SwitchboardError as exc:
        db.session.rollback()
        record(Action.INTEGRATION_CONNECT_FAILED, outcome="failure", provider=provider_name[:50],
               organization_id=org_id, actor=actor, status_code=exc.status,
               detail={"error": exc.code}, commit=True)
        raise


def _connect(org_id, provider_name: str, raw_identifier, *, actor: str, assigned: bool) -> tuple[Integration, bool]:
    provider = get_provider(provider_name)
    identifier, account_key = provider.parse_identifier(raw_identifier)
    credentials_for(provider.name)
    if account_key is not None and _claimed_elsewhere(provider.name, account_key, org_id):
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
    if assigned:
        needs_approval = False
    now = utcnow()
    fields = {"account_identifier": identifier, "account_key": account_key, "error_message": None,
              "sync_status": "verified" if provider.verify else "unverified", "last_synced_at": now}
    # Read, decide, then write only if the row is still what we read: two requests of one org
    # (or an org and the admin) racing each other serialise instead of overwriting or colliding.
    for _ in range(_CAS_ATTEMPTS):
        after = None
        integration = _own_integration(org_id, provider.name)
        values = dict(fields)
        if integration is None:
            status = "pending" if needs_approval else "connected"
            integration = Integration(id=uuid.uuid4(), organization_id=org_id, provider=provider.name,
                                      status=status, connected_at=now if status == "connected" else None,
                                      **values)
            db.session.add(integration)
            try:
                db.session.flush()  # the claim is decided here, by UNIQUE(provider, account_key)
            except sa.exc.IntegrityError:
                db.session.rollback()
                if account_key is not None and _claimed_elsewhere(provider.name, account_key, org_id):
                    raise _claimed(provider.name) from None
                continue  # this org created its row in a concurrent request: decide again
            created = True
        else:
            # The same account, already approved (connected, or in error since): it stays approved.
            same_account = integration.account_key == account_key and integration.status in ("connected", "error")
            status = "connected" if same_account or not needs_approval else "pending"
            if status == "connected" and not same_account:
                values["connected_at"] = now
            elif status == "pending":
                values["connected_at"] = None
            was_pending = integration.status == "pending" and integration.account_key == account_key
            try:
                swapped = _swap(integration.id, {"status": integration.status, "account_key": integration.account_key},
                                status=status, **values)
            except sa.exc.IntegrityError:
                db.session.rollback()
                raise _claimed(provider.name) from None  # own row: only another org can hold the key
            if not swapped:
                db.session.rollback()
                continue
            created = False
            if was_pending and status == "connected":
                # Assigned (or approval no longer required) over this org's pending claim on the
                # same account: as an approval, its events kept while pending become the org's.
                after = _events_kept_while_pending(integration, actor)
        action = (Action.INTEGRATION_ASSIGNED if assigned else
                  Action.INTEGRATION_PENDING if status == "pending" else Action.INTEGRATION_CONNECTED)
        record(action, provider=provider.name, target=account_key, organization_id=org_id, actor=actor)
        db.session.commit()
        if after is not None:
            after()
        return db.session.get(Integration, integration.id), created
    raise _busy()


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
    """Release the claim. Of several concurrent DELETEs exactly one changes the row and writes
    the audit row; the others find it disconnected (404), as they would one after the other."""
    for _ in range(_CAS_ATTEMPTS):
        integration = get_integration(org, provider_name)
        released, status = integration.account_key, integration.status
        if _swap(integration.id, {"status": status, "account_key": released},
                 status="disconnected", account_key=None, connected_at=None):
            # the identifier stays as history; the claim (account_key) is released
            record(Action.INTEGRATION_DISCONNECTED, provider=provider_name, target=released,
                   organization_id=org.id, actor=actor)
            db.session.commit()
            return
        db.session.rollback()
    raise _busy()


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
    integration_id, read_status, read_key = integration.id, integration.status, integration.account_key
    db.session.rollback()  # no transaction open across the upstream call
    account_failed = False
    try:
        provider.verify(read_key)
        ok, message = True, None
    except AccountCheckFailed as exc:
        ok, message, account_failed = False, exc.message, True
    except UpstreamError as exc:
        # The provider had a bad moment (timeout, 5xx, rate limit): reported, but the integration
        # is not taken offline for it — only a failed account check marks it ``error``.
        ok, message = False, exc.detail
    status = read_status
    if ok and read_status == "error":
        status = "connected"
    elif account_failed and read_status == "connected":
        status = "error"
    # Written only if nobody disconnected, switched, rejected or released it meanwhile: a test
    # must never bring a released account back.
    if not _swap(integration_id, {"status": read_status, "account_key": read_key}, status=status,
                 last_synced_at=utcnow(), error_message=message,
                 sync_status="ok" if ok else ("failed" if account_failed else "upstream_error")):
        db.session.rollback()
        raise _busy()
    record(Action.INTEGRATION_TESTED, provider=provider_name, target=read_key,
           outcome="success" if ok else "failure", organization_id=org.id, actor=actor,
           detail={"ok": ok})
    db.session.commit()
    return db.session.get(Integration, integration_id), {"ok": ok, "message": message}


def mark_integration_failed(org_id, provider_name: str, integration_id, account_key: str | None,
                            message: str, *, actor: str | None) -> bool:
    """A live call was refused with the platform's credentials: ``connected → error``, once.

    Conditional (``_swap``): only if the row is still connected to the same account — a
    disconnect, release or switch racing this call is never undone — and audited with the change.
    A loser (another refused call already marked it) writes nothing.
    """
    try:
        changed = _swap(integration_id, {"status": "connected", "account_key": account_key},
                        status="error", error_message=message[:500], sync_status="failed",
                        last_synced_at=utcnow())
        if changed:
            record(Action.INTEGRATION_FAILED, provider=provider_name, target=account_key, outcome="failure",
                   organization_id=org_id, actor=actor, detail={"error": "upstream_auth_failed"})
        db.session.commit()
        return changed
    except sa.exc.SQLAlchemyError:
        # The caller still gets the provider's refusal; the mark is retried by the next call.
        db.session.rollback()
        log.error("could not mark %s integration %s as error", provider_name, integration_id)
        return False


# --- the admin's decisions on claims -------------------------------------------------------------


def _integration_by_id(integration_id) -> Integration:
    try:
        integration = db.session.get(Integration, uuid.UUID(str(integration_id)))
    except ValueError:
        integration = None
    if integration is None:
        raise NotFound("No such integration.", code="integration_not_found")
    return integration


_NOT_THIS_ACCOUNT = object()


def _reviewed_key(integration: Integration, reviewed) -> str | None:
    """The account the admin reviewed, canonicalised like a connect (``{"storeName": "Demo"}``
    and ``demo`` name the same store). The CLI passes the bare value."""
    provider = get_provider(integration.provider)
    if isinstance(reviewed, str) and provider.identifier is not None:
        reviewed = {provider.identifier.name: reviewed}
    if reviewed is None and provider.identifier is not None:
        raise ValidationFailed("account_identifier",
                               f"name the account you reviewed ({provider.identifier.name})")
    try:
        return provider.parse_identifier(reviewed)[1]
    except ValidationFailed:
        # Well-formed for some provider but not this integration's (the document cannot know
        # which provider an integration id names): it is not the account under review.
        return _NOT_THIS_ACCOUNT


def _decide(integration_id, reviewed, *, allowed: tuple[str, ...], action: Action, actor: str,
            require_review: bool, changes: dict, on_change=None) -> Integration:
    """One admin transition, bound to what the admin looked at: the row must still be in one of
    ``allowed`` and (when the admin names it, always for approval) still name the reviewed
    account — checked and changed in one conditional UPDATE. ``on_change(integration)`` runs in
    the same transaction; what it returns is run after the commit."""
    for _ in range(_CAS_ATTEMPTS):
        integration = _integration_by_id(integration_id)
        if require_review or reviewed is not None:
            key = _reviewed_key(integration, reviewed)
            if integration.account_key != key and integration.status != "disconnected":
                raise Conflict("The connection now names another account than the one reviewed; "
                               "review it again.", code="account_changed")
        if integration.status not in allowed:
            code = "not_pending" if allowed == ("pending",) else "not_claimed"
            raise Conflict(f"The integration is {integration.status}, not {' or '.join(allowed)}.", code=code)
        status, key = integration.status, integration.account_key
        if _swap(integration.id, {"status": status, "account_key": key}, **changes):
            after = on_change(integration, actor) if on_change is not None else None
            record(action, provider=integration.provider, target=key, actor=actor,
                   organization_id=integration.organization_id, detail={"from": status})
            db.session.commit()
            if after is not None:
                after()
            return db.session.get(Integration, integration.id)
        db.session.rollback()
    raise _busy()


def approve(integration_id: str, reviewed=None, *, actor: str) -> Integration:
    """Connect a pending integration — only while it still names the account the admin reviewed."""
    return _decide(integration_id, reviewed, allowed=("pending",), action=Action.INTEGRATION_APPROVED,
                   actor=actor, require_review=True,
                   changes={"status": "connected", "connected_at": utcnow()}, on_change=_events_kept_while_pending)


def _events_kept_while_pending(integration: Integration, actor: str):
    """The approval proves control: the events stored unattributed while this claim was pending
    become the org's, with their deliveries, in the approval's transaction (webhooks/attribution.py).
    Returns what to run after the commit (the messaging window hears the customer messages)."""
    from webhooks import attribution

    return attribution.attribute_pending(integration.organization_id, integration.provider,
                                         integration.account_key, actor=actor).announce


def reject(integration_id: str, reviewed=None, *, actor: str) -> Integration:
    """Refuse a pending connection: the account is free again for its owner."""
    return _decide(integration_id, reviewed, allowed=("pending",), action=Action.INTEGRATION_REJECTED,
                   actor=actor, require_review=False,
                   changes={"status": "disconnected", "account_key": None, "connected_at": None,
                            "error_message": "Rejected by the platform administrator."})


def release(integration_id: str, reviewed=None, *, actor: str) -> Integration:
    """Take a claim away from whichever org holds it (connected, pending or error)."""
    return _decide(integration_id, reviewed, allowed=("connected", "pending", "error"),
                   action=Action.INTEGRATION_RELEASED, actor=actor, require_review=False,
                   changes={"status": "disconnected", "account_key": None, "connected_at": None,
                            "error_message": "Released by the platform administrator."})


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


def integrations_page(org: OrgContext | Organization, *, limit=50, cursor=None):
    """An org's integrations by provider name (disconnected ones included, as history)."""
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
