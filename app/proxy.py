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

import json
import math
import uuid
from functools import wraps

import sqlalchemy as sa
from flask import Flask, current_app, g
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

from app import REQUEST_ID
from app.audit import Action, record
from app.auth import presented_key
from app.errors import (AuditUnavailable, Conflict, ProviderNotConfigured, UpstreamAuthFailed,
                        SwitchboardError, UpstreamRateLimited, org_rate_limited, problem)
from app.extensions import autocommit, db
from app.keys import digest
from app.models import Integration
from app.quota import BudgetRefusal


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
            guard = current_app.extensions.get("upstream_guard")
            try:
                # Refused by the account's budget moments ago (app/quota.py): 429 again before
                # any database work, unaudited like the org limit's refusals (the first one was
                # audited).
                if guard is not None and g.get("org") is not None:
                    guard.refuse_early(provider_name, str(g.org.id))
                g.proxy_audit = {"provider": provider_name, "operation": operation, "target": None}
                credentials_for(provider_name)
                integration = connected_integration(provider_name)
                g.proxy_audit["target"] = integration.account_key
                return view(integration, *args, **kwargs)
            except BudgetRefusal as refused:
                # The key that was refused, and only it, is answered before the app for a moment
                # (RefusedKeys below): the same 429, without the cost of getting here.
                if guard is not None and g.get("key_digest"):
                    guard.note_key(g.key_digest, provider_name, str(g.org.id), refused.wait)
                raise
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

        wrapper.proxy_provider = provider_name  # what RefusedKeys may answer for (copied by @wraps)
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


class RefusedKeys:
    """WSGI middleware in front of Flask: a key the budget refused a moment ago gets its 429 here.

    ``proxy_action`` notes the API key of a call refused by the account's budget before sending
    (app/quota.py ``Guard.note_key``: its SHA-256 digest, per provider, for ``KEY_NOTE_FOR`` s at
    most and never past the ``Retry-After``). Until then, that key's requests to that provider's
    routes (those ``proxy_action`` tags, nothing else) are answered here with the same problem
    details and ``Retry-After`` — no request context, authentication, database, limiter or audit
    row, so a flood of refused calls costs the server little and cannot delay the other orgs.
    Only a key that authenticated and was refused itself is ever noted: another key, another org
    or an unauthenticated caller is never answered from a note. What this skips is deliberate
    (README, docs/decisions.md "Refused keys, before the app"): those answers are not audited
    (the first refusal was), carry no ``X-RateLimit-*`` headers and do not count against the
    org's own limit; a key revoked meanwhile gets 429 rather than 401 until its note ends.
    """

    def __init__(self, wsgi_app, app: Flask):
        self.wsgi_app = wsgi_app
        self.app = app
        self._providers: dict[str, str] | None = None  # endpoint -> provider, once routes are final
        self._limited: frozenset[str] = frozenset()  # endpoints behind the org's limit (org_required)

    def __call__(self, environ, start_response):
        guard = self.app.extensions.get("upstream_guard")
        limits = self.app.extensions.get("limit_notes")
        if (guard is not None and guard.noted_keys) or (limits is not None and limits.keys):
            key = presented_key(environ.get("HTTP_AUTHORIZATION"), environ.get("HTTP_X_API_KEY"))
            if key:
                hashed = digest(key)
                # The app's order: the org's limit (right after authentication), then the budget.
                if limits is not None and hashed in limits.keys:
                    refused = limits.refused(hashed)
                    if refused is not None and self.endpoint_of(environ) in self._limited:
                        headers, limit = refused
                        return self._answer(environ, start_response, org_rate_limited(limit), headers)
                if guard is not None and guard.noted(hashed):
                    provider = self.provider_of(environ)
                    retry = guard.refused_key(hashed, provider) if provider else None
                    if retry is not None:
                        return self._refuse(environ, start_response, provider, retry)
        return self.wsgi_app(environ, start_response)

    def _routes(self) -> dict[str, str]:
        if self._providers is None:
            views = self.app.view_functions.items()
            self._providers = {endpoint: view.proxy_provider for endpoint, view in views
                               if getattr(view, "proxy_provider", None)}
            self._limited = frozenset(endpoint for endpoint, view in views if getattr(view, "org_limited", False))
        return self._providers

    def endpoint_of(self, environ) -> str | None:
        """The endpoint of the route this request would reach, or ``None`` (no route, OPTIONS)."""
        if environ.get("REQUEST_METHOD") == "OPTIONS":
            return None
        self._routes()
        try:
            rule, _ = self.app.url_map.bind_to_environ(environ).match(return_rule=True)
        except HTTPException:  # 404, 405, a redirect: the app answers those
            return None
        return rule.endpoint

    def provider_of(self, environ) -> str | None:
        """The provider of the ``proxy_action`` route this request would reach, or ``None``."""
        return self._routes().get(self.endpoint_of(environ))

    @classmethod
    def _refuse(cls, environ, start_response, provider: str, retry: int):
        return cls._answer(environ, start_response, UpstreamRateLimited(provider, retry), {"Retry-After": str(retry)})

    @staticmethod
    def _answer(environ, start_response, error: SwitchboardError, headers: dict):
        """The app's problem details for ``error`` (app/errors.py ``problem``), written here."""
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        body = error.body()
        body.update(request_id=request_id, instance=f"urn:request:{request_id}")
        data = json.dumps(body).encode()
        start_response(f"{error.status} {HTTP_STATUS_CODES[error.status].upper()}", [
            ("Content-Type", "application/problem+json"), ("Content-Length", str(len(data))),
            *headers.items(), ("X-Request-ID", request_id),
        ])
        return [data]


def init_app(app: Flask) -> None:
    app.after_request(_write_proxy_audit)
    app.wsgi_app = RefusedKeys(app.wsgi_app, app)
