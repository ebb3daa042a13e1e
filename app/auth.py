"""Who is calling: an org (its API key) or the platform admin (``ADMIN_API_KEY``).

The org is resolved once per request from the key and put on ``g.org``; every org-owned query is
then scoped by ``g.org.id``. Missing, malformed, unknown, revoked and query-string keys all get the
same 401 — the reason goes to the audit log, not to the caller.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import timedelta, timezone
from functools import wraps

import sqlalchemy as sa
from flask import current_app, g, request

from app import idempotency, keys, ratelimit
from app.audit import Action, record
from app.errors import AdminNotConfigured, Forbidden, Unauthorized
from app.extensions import autocommit
from app.models import ApiKey, Organization
from app.models.base import utcnow

# A key must never travel in a URL (it would land in access logs and browser history).
_KEY_PARAMS = {"api_key", "apikey", "key", "token", "access_token", "x-api-key"}
_LAST_USED_GRANULARITY = timedelta(seconds=60)


def presented_key(authorization: str | None, api_key_header: str | None) -> str | None:
    """The key from ``Authorization: Bearer …`` or else ``X-API-Key`` ("" for another scheme).

    Also read straight from the WSGI environ by app/proxy.py's ``RefusedKeys``: one rule for both."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        return value.strip() if scheme.lower() == "bearer" and value.strip() else ""
    return api_key_header


def _presented_key() -> str | None:
    return presented_key(request.headers.get("Authorization"), request.headers.get("X-API-Key"))


def _deny(reason: str, organization_id=None) -> Unauthorized:
    # Every failure is audited — up to AUTH_FAILURE_AUDIT_LIMIT per client address, so a flood of
    # bad keys cannot turn into a flood of writes. The caller's answer is the same 401 either way.
    config = current_app.config
    if ratelimit.strategy().hit(config["AUTH_FAILURE_AUDIT_LIMIT"], config["RATELIMIT_KEY_PREFIX"],
                                "auth-failure", request.remote_addr or "-"):
        record(
            Action.AUTH_FAILED,
            outcome="denied",
            status_code=401,
            organization_id=organization_id,
            actor="anonymous",
            detail={"reason": reason, "path": request.path[:200]},
            commit=True,
        )
    return Unauthorized()


@dataclass(frozen=True)
class OrgContext:
    """The caller's org, as read once per request with its key (a plain value, not a session row)."""

    id: uuid.UUID
    slug: str
    status: str
    rate_limit: str | None

    @property
    def active(self) -> bool:
        return self.status == "active"


_keys, _orgs = ApiKey.__table__, Organization.__table__
# One indexed lookup per request, on the hot path of every proxy call: Core, not the ORM.
_KEY_LOOKUP = (
    sa.select(_keys.c.id, _keys.c.organization_id, _keys.c.revoked_at, _keys.c.last_used_at,
              _orgs.c.slug, _orgs.c.status, _orgs.c.rate_limit)
    .join(_orgs, _orgs.c.id == _keys.c.organization_id)
    .where(_keys.c.key_hash == sa.bindparam("key_hash"))
)


def authenticate_org() -> None:
    if any(name.lower() in _KEY_PARAMS or any(keys.looks_like_key(v) for v in values)
           for name, values in request.args.lists()):
        raise _deny("key_in_query_string")
    presented = _presented_key()
    if presented is None:
        raise _deny("missing")
    mode = keys.mode(presented)
    if mode is None:
        raise _deny("malformed")  # checksum/shape: refused before any database lookup
    if mode == "test" and not current_app.config["SANDBOX"]:
        raise _deny("test_key_outside_sandbox")  # a sandbox key never works against real providers
    digest = keys.digest(presented)
    row = autocommit(_KEY_LOOKUP, {"key_hash": digest})
    if row is None:
        raise _deny("unknown")
    if row.revoked_at is not None:
        raise _deny("revoked", row.organization_id)
    org = OrgContext(id=row.organization_id, slug=row.slug, status=row.status, rate_limit=row.rate_limit)
    g.org, g.api_key_id, g.actor = org, row.id, f"key:{row.id}"
    g.key_digest = digest  # the stored hash, never the key: what app/quota.py's note_key remembers
    if not org.active:
        raise Forbidden("This organization is suspended.", code="organization_suspended")
    now = utcnow()
    last_used = row.last_used_at
    if last_used is not None and last_used.tzinfo is None:
        last_used = last_used.replace(tzinfo=timezone.utc)
    if last_used is None or now - last_used > _LAST_USED_GRANULARITY:
        # Coarse on purpose: one write a minute per key, not one per request.
        autocommit(sa.update(_keys).where(_keys.c.id == row.id).values(last_used_at=now))


def _org_scope() -> str:
    return f"org:{g.org.id}"


def _admin_scope() -> str:
    return "admin"


def org_required(view):
    """Authenticate the org key, then count the request against the org's rate limit (and read
    its window for the headers, app/ratelimit.py), then honour an ``Idempotency-Key`` (POST and
    PUT: app/idempotency.py), then run the view."""
    limited = ratelimit.org_limited(idempotency.guard(view, _org_scope))

    @wraps(view)
    def wrapper(*args, **kwargs):
        authenticate_org()
        return limited(*args, **kwargs)

    wrapper.org_limited = True  # what app/proxy.py's RefusedKeys may answer from a limit note
    return wrapper


def authenticate_admin() -> None:
    expected = current_app.config.get("ADMIN_API_KEY")
    if expected is None:
        raise AdminNotConfigured("Set ADMIN_API_KEY to enable the admin API.")
    presented = _presented_key() or ""
    if not hmac.compare_digest(presented.encode(), expected.reveal().encode()):
        raise _deny("admin_key_mismatch")  # audited under the same per-address cap as org keys
    g.actor = "admin"


def admin_required(view):
    """Authenticate the admin key, then honour an ``Idempotency-Key`` (POST and PUT)."""
    guarded = idempotency.guard(view, _admin_scope)

    @wraps(view)
    def wrapper(*args, **kwargs):
        authenticate_admin()
        return guarded(*args, **kwargs)

    return wrapper
