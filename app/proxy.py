"""What every provider action shares: configured check, org-scoped integration, the audit row.

A provider route is declared as::

    @blp.route("/products/<product_id>")
    @org_required
    @proxy_action("shopify", "products.get")
    def get_product(integration, product_id): ...

``proxy_action`` refuses with 503 when the platform has no credentials for the provider, loads the
org's integration (scoped by ``g.org``; 409 unless it is ``connected``), hands it to the view and
arranges for one ``proxy.request`` audit row — written after the response is known, committed
before it is sent, whatever the outcome.
"""

from __future__ import annotations

import math
from functools import wraps

import sqlalchemy as sa
from flask import Flask, current_app, g

from app.audit import Action, record
from app.errors import AuditUnavailable, Conflict, ProviderNotConfigured, UpstreamAuthFailed, problem
from app.extensions import autocommit, db
from app.models import Integration


def credentials_for(provider_name: str):
    creds = current_app.extensions["credentials"][provider_name]
    if not creds.configured:
        raise ProviderNotConfigured(provider_name, creds.missing(), creds.hint())
    return creds


_integrations = Integration.__table__
# On every proxy call: only the two columns needed, scoped by the org from the key.
_LOOKUP = sa.select(_integrations.c.status, _integrations.c.account_key, _integrations.c.id).where(
    _integrations.c.organization_id == sa.bindparam("org_id"),
    _integrations.c.provider == sa.bindparam("provider"),
)


def connected_integration(provider_name: str):
    """(status, account_key) of the org's integration; 409 unless it is connected."""
    integration = autocommit(_LOOKUP, {"org_id": g.org.id, "provider": provider_name})
    if integration is None or integration.status != "connected":
        state = integration.status if integration else "not connected"
        raise Conflict(
            f"{provider_name} is {state} for this organization; connect it with "
            f"PUT /api/v1/integrations/{provider_name} first.",
            code="integration_not_connected",
        )
    return integration


def proxy_action(provider_name: str, operation: str):
    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            # Refused by the account's budget moments ago (app/quota.py): 429 again before any
            # database work, unaudited like the org limit's refusals (the first one was audited).
            guard = current_app.extensions.get("upstream_guard")
            if guard is not None and g.get("org") is not None:
                guard.refuse_early(provider_name, str(g.org.id))
            g.proxy_audit = {"provider": provider_name, "operation": operation, "target": None}
            credentials_for(provider_name)
            integration = connected_integration(provider_name)
            g.proxy_audit["target"] = integration.account_key
            try:
                return view(integration, *args, **kwargs)
            except UpstreamAuthFailed as exc:
                # The provider refused the platform's credentials for this account (after any
                # stale-token re-mint): not retried, and the integration turns ``error`` so the
                # admin sees it (GET /api/v1/admin/integrations?status=error).
                from app.services import mark_integration_failed

                mark_integration_failed(g.org.id, provider_name, integration.id, integration.account_key,
                                        f"{exc.detail} (during {operation}); the operator must fix the "
                                        "platform's credentials, then test the integration again.",
                                        actor=g.get("actor"))
                raise

        return wrapper

    return decorator


MAX_FACT_NUMBER = 2**53  # beyond this a JSON number loses precision in most readers
MAX_FACT_TEXT = 200


def _bounded(value):
    """``value`` if it is a small, typed fact; otherwise ``None`` (the fact is left out).

    Facts often come from the provider's answer (a query cost, a status): only finite numbers
    within range and short printable strings are kept, so an upstream cannot grow, break (a NaN
    or NUL that PostgreSQL's JSON refuses) or inject into the audit row.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -MAX_FACT_NUMBER <= value <= MAX_FACT_NUMBER else None
    if isinstance(value, float):
        return value if math.isfinite(value) and abs(value) <= MAX_FACT_NUMBER else None
    if isinstance(value, str):
        return value if len(value) <= MAX_FACT_TEXT and value.isprintable() else None
    return None


def note(**facts) -> None:
    """Add small facts (upstream status, attempts, query cost) to this request's audit detail.

    Only bounded, typed values are kept (see ``_bounded``); anything else is left out.
    """
    audit = g.get("proxy_audit")
    if audit is not None:
        kept = audit.setdefault("facts", {})
        for name, value in facts.items():
            value = _bounded(value)
            if value is None:
                kept.pop(name, None)
            else:
                kept[name] = value


def _write_proxy_audit(response):
    audit = g.pop("proxy_audit", None)
    if audit is None:
        return response
    status = response.status_code
    detail = {"operation": audit["operation"], **audit.get("facts", {})}
    error_code = g.pop("error_code", None)
    if error_code:
        detail["error"] = error_code
    try:
        record(
            Action.PROXY_REQUEST,
            outcome="success" if status < 400 else "failure",
            provider=audit["provider"],
            target=audit["target"],
            status_code=status,
            detail=detail,
            commit=True,
        )
    except sa.exc.SQLAlchemyError:
        # Audit rows are durable or the call fails: never answer without the trail.
        db.session.rollback()
        current_app.logger.error("audit write failed request_id=%s", g.get("request_id"))
        return problem(AuditUnavailable("The audit log is unavailable; the request was not completed."))
    return response


def init_app(app: Flask) -> None:
    app.after_request(_write_proxy_audit)
