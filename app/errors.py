"""The one error tree, rendered as RFC 9457 problem details.

::

    SwitchboardError (500 internal_error)
    ├── BadRequest              400 bad_request           unreadable input (JSON syntax, depth, number size)
    ├── ValidationFailed        422 validation_error      names the offending ``field``
    ├── Unauthorized            401 unauthorized          one uniform answer for every bad key
    ├── Forbidden               403 forbidden
    ├── NotFound                404 not_found
    ├── Conflict                409 conflict              (account_claimed, integration_not_connected…)
    │   └── IdempotencyKeyInProgress 409 idempotency_key_in_progress (Retry-After: 1)
    ├── IdempotencyKeyReused    422 idempotency_key_reused (the key came with another request)
    ├── PayloadTooLarge         413 payload_too_large     (counted on the bytes read, chunked too)
    ├── UnsupportedMediaType    415 unsupported_media_type (a body that is not declared JSON)
    ├── AuditUnavailable        503 audit_unavailable     (no answer without its audit row)
    ├── DatabaseUnavailable     503 database_unavailable  (also: connection pool exhausted)
    ├── SharedStateUnavailable  503 shared_state_unavailable (Redis down)
    ├── AdminNotConfigured      503 admin_not_configured
    └── UpstreamError           the provider's fault or state; always names ``provider``
        ├── ProviderNotConfigured   503 provider_not_configured   (variables: log and admin API only)
        ├── UpstreamRateLimited     429 upstream_rate_limited     (Retry-After)
        ├── UpstreamCircuitOpen     503 upstream_circuit_open     (Retry-After; app/quota.py)
        ├── UpstreamTimeout         504 upstream_timeout
        ├── UpstreamOutcomeUnknown  504 upstream_outcome_unknown  (a write that may have run; not re-sent)
        ├── UpstreamUnreachable     502 upstream_unreachable
        ├── UpstreamBadResponse     502 upstream_bad_response     (garbage, redirect, 5xx)
        └── UpstreamAuthFailed      502 upstream_auth_failed      (our credentials were refused)

Handlers never ``try``: they raise one of these and ``init_app`` renders it. Messages are written
for the caller and must never contain a credential; upstream bodies are not echoed.
"""

from __future__ import annotations

import logging

import redis
import sqlalchemy as sa
from flask import Flask, g, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("switchboard.errors")

PROBLEM_TYPE = "https://switchboard.dev/problems/"


class SwitchboardError(Exception):
    status = 500
    code = "internal_error"
    title = "Internal error"

    def __init__(self, detail: str | None = None, *, code: str | None = None, headers=None, **extra):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code:
            self.code = code
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict:
        body = {
            "type": PROBLEM_TYPE + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        body.update(self.extra)
        return body


class BadRequest(SwitchboardError):
    """Input that cannot be read at all (as opposed to read and found invalid: 422)."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(self, field: str, message: str):
        where = pointer([] if field == "body" else field.split("."))
        super().__init__(f"{field}: {message}", field=field, pointer=where,
                         errors=[{"field": field, "pointer": where, "message": message}])


class ValidationFailed(SwitchboardError):
    status = 422
    code = "validation_error"
    title = "Invalid request"

    def __init__(self, field: str, message: str, *, errors: list | None = None, code: str | None = None):
        errors = errors or [{"field": field, "pointer": pointer([] if field == "body" else field.split(".")),
                             "message": message}]
        super().__init__(f"{field}: {message}", code=code, field=field, pointer=errors[0]["pointer"],
                         errors=errors)


def pointer(parts) -> str:
    """RFC 6901 JSON Pointer, as a URI fragment (RFC 9457 §3's ``"pointer": "#/age"``)."""
    return "#" + "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


class Unauthorized(SwitchboardError):
    status = 401
    code = "unauthorized"
    title = "Unauthorized"

    def __init__(self, detail: str = "A valid API key is required in the Authorization header."):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="switchboard"'})


class Forbidden(SwitchboardError):
    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFound(SwitchboardError):
    status = 404
    code = "not_found"
    title = "Not found"


class Conflict(SwitchboardError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLarge(SwitchboardError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaType(SwitchboardError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class AuditUnavailable(SwitchboardError):
    status = 503
    code = "audit_unavailable"
    title = "Audit log unavailable"


class DatabaseUnavailable(SwitchboardError):
    status = 503
    code = "database_unavailable"
    title = "Database unavailable"


class SharedStateUnavailable(SwitchboardError):
    status = 503
    code = "shared_state_unavailable"
    title = "Shared state unavailable"


class AdminNotConfigured(SwitchboardError):
    status = 503
    code = "admin_not_configured"
    title = "Admin API disabled"


class UpstreamError(SwitchboardError):
    status = 502
    code = "upstream_error"
    title = "Upstream error"

    def __init__(self, provider: str, detail: str | None = None, **kw):
        super().__init__(detail, provider=provider, **kw)
        self.provider = provider


class ProviderNotConfigured(UpstreamError):
    status = 503
    code = "provider_not_configured"
    title = "Provider not configured"

    def __init__(self, provider: str, missing: list[str], hint: str):
        # The org learns that the platform has not enabled the provider; which variables the
        # operator must set is the operator's business (log, CLI, GET /api/v1/admin/providers).
        super().__init__(provider, f"The platform has not enabled {provider}; ask the operator.")
        log.warning("provider %s is not configured: the operator must %s (missing: %s)",
                    provider, hint, ", ".join(missing))


class UpstreamRateLimited(UpstreamError):
    status = 429
    code = "upstream_rate_limited"
    title = "Provider rate limit reached"

    def __init__(self, provider: str, retry_after: int):
        retry_after = max(1, int(retry_after))
        super().__init__(
            provider,
            f"{provider} is rate limiting this account; retry in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


class UpstreamCircuitOpen(UpstreamError):
    """Repeated timeouts or 5xx from this provider account: calls fail fast until a trial passes."""

    status = 503
    code = "upstream_circuit_open"
    title = "Provider failing; calls paused"

    def __init__(self, provider: str, retry_after: float):
        retry_after = max(1, int(retry_after + 0.999))
        super().__init__(
            provider,
            f"{provider} has been failing for this account; calls are paused for {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"
    title = "Provider timed out"


class UpstreamOutcomeUnknown(UpstreamTimeout):
    """A non-idempotent write was (or may have been) sent and no answer came: it may have run.
    It is never re-sent blindly; the caller decides (with its Idempotency-Key, or by reading back)."""

    code = "upstream_outcome_unknown"
    title = "Provider outcome unknown"


class UpstreamUnreachable(UpstreamError):
    status = 502
    code = "upstream_unreachable"
    title = "Provider unreachable"


class UpstreamBadResponse(UpstreamError):
    status = 502
    code = "upstream_bad_response"
    title = "Bad answer from provider"


class UpstreamAuthFailed(UpstreamError):
    status = 502
    code = "upstream_auth_failed"
    title = "Provider refused the platform's credentials"


def problem(error: SwitchboardError):
    body = error.body()
    body["request_id"] = g.get("request_id")
    body["instance"] = f"urn:request:{body['request_id']}"
    g.error_code = error.code
    response = jsonify(body)
    response.status_code = error.status
    response.mimetype = "application/problem+json"
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


# werkzeug's own exceptions (404 for an unknown route, 405, 413, 429 from app/ratelimit.py) get
# stable codes too, so a client only ever parses one shape.
_HTTP_TITLES = {
    400: "Bad request", 401: Unauthorized.title, 403: Forbidden.title, 404: NotFound.title,
    405: "Method not allowed", 413: "Payload too large", 415: "Unsupported media type",
    429: "Too many requests",
}
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def org_rate_limited(limit: str) -> SwitchboardError:
    """429 ``rate_limited``: the org's own limit (app/ratelimit.py), e.g. ``limit`` = "60 per 1 minute"."""
    error = SwitchboardError(f"Rate limit of {limit} for this organization exceeded.", code="rate_limited")
    error.status, error.title = 429, _HTTP_TITLES[429]
    return error


def http_problem(exc: HTTPException):
    """Render a werkzeug HTTPException (including webargs' 422) as problem details."""
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") or data.get("errors")
    if exc.code == 422 and messages:
        errors = list(_flatten(messages))
        first = errors[0] if errors else _field_error((), "invalid")
        error: SwitchboardError = ValidationFailed(first["field"], first["message"], errors=errors)
    elif exc.code == 429:
        error = org_rate_limited(exc.description)
    else:
        error = SwitchboardError(exc.description, code=_HTTP_CODES.get(exc.code or 500, "http_error"))
        error.status = exc.code or 500
        error.title = _HTTP_TITLES.get(error.status, exc.name)
    response = problem(error)
    if exc.code == 405 and hasattr(exc, "valid_methods") and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    for name, value in (data.get("headers") or {}).items():
        response.headers[name] = value
    return response


def _flatten(messages, parts: tuple = (), top: bool = True):
    """webargs reports ``{"json": {"a": {"b": ["msg"]}}}``; we report ``a.b`` and ``#/a/b``."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            key = str(key)
            if top and key in ("json", "query", "form", "headers", "view_args"):
                yield from _flatten(value, (), top=False)  # the location, not a field
                continue
            if key == "_schema":
                yield from _flatten(value, parts, top=False)
                continue
            yield from _flatten(value, parts + (key,), top=False)
    elif isinstance(messages, (list, tuple)):
        for item in messages:
            if isinstance(item, (dict, list, tuple)):
                yield from _flatten(item, parts, top=False)
            else:
                yield _field_error(parts, item)
    else:
        yield _field_error(parts, messages)


def _field_error(parts: tuple, message) -> dict:
    return {"field": ".".join(parts) or "body", "pointer": pointer(parts), "message": str(message)}


def init_app(app: Flask) -> None:
    app.register_error_handler(SwitchboardError, problem)
    app.register_error_handler(HTTPException, http_problem)

    @app.errorhandler(sa.exc.OperationalError)
    @app.errorhandler(sa.exc.InterfaceError)
    def database_unavailable(exc):
        # A dead pooled connection (database restarted) or an unreachable database: the
        # connection is invalidated by SQLAlchemy, so the next request gets a fresh one.
        log.error("database unavailable: %s", type(exc.orig).__name__ if getattr(exc, "orig", None) else type(exc).__name__)
        from app.extensions import db

        db.session.rollback()
        return problem(DatabaseUnavailable("The database is unavailable; nothing was changed. Retry shortly."))

    @app.errorhandler(sa.exc.TimeoutError)
    def pool_exhausted(exc):
        log.error("database connection pool exhausted")
        return problem(DatabaseUnavailable("The service is saturated; nothing was changed. Retry shortly."))

    @app.errorhandler(redis.exceptions.RedisError)
    def shared_state_unavailable(exc):
        # Rate-limit counters and the token cache live in Redis when REDIS_URL is set: without
        # them a request is refused (never let through unmetered), and says so.
        log.error("redis unavailable: %s", type(exc).__name__)
        return problem(SharedStateUnavailable("Rate-limit storage is unavailable; retry shortly."))

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):  # pragma: no cover - exercised only by real bugs
        # The traceback goes to the log through the redacting filter (app/logs.py).
        log.exception("unhandled %s", type(exc).__name__)
        return problem(SwitchboardError("Something went wrong on our side."))


# --- Idempotency-Key (app/idempotency.py): under SwitchboardError, beside Conflict ---------------


class IdempotencyKeyReused(SwitchboardError):
    """422 idempotency_key_reused: the key came with another method, path or body."""

    status = 422
    code = "idempotency_key_reused"
    title = "Idempotency key reused"


class IdempotencyKeyInProgress(Conflict):
    """409 idempotency_key_in_progress: the first request with this key has not answered yet."""

    code = "idempotency_key_in_progress"
    title = "Idempotency key in use"


# --- Webhooks (webhooks/, app/deliveries.py) -------------------------------------------------------


class WebhookSignatureInvalid(SwitchboardError):
    """401 invalid_signature: a provider webhook whose signature is missing or wrong (nothing stored)."""

    status = 401
    code = "invalid_signature"
    title = "Invalid webhook signature"


class WebhooksNotConfigured(SwitchboardError):
    """503 webhooks_not_configured: WEBHOOK_SIGNING_KEY is unset, so no endpoint secret can be made."""

    status = 503
    code = "webhooks_not_configured"
    title = "Webhook delivery not configured"
