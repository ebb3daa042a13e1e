"""Per-org rate limits (Flask-Limiter), one shared bucket per org across every org endpoint.

The limit is the org's own override (``organizations.rate_limit``, set by the admin) or
``ORG_RATE_LIMIT``. The key is the org id taken from the authenticated key, never from the
request. Storage is memory for one process and Redis (``REDIS_URL``) for several.

Headers are written here rather than by Flask-Limiter: its writer stretches any ``Retry-After``
to the org window's reset, which would overwrite an upstream provider's own hint on a 429 that
is Shopify's, not ours.
"""

import time

from flask import Flask, current_app, g

from app.extensions import limiter


def _org_key() -> str:
    return f"org:{g.org.id}"


def _org_limit_value() -> str:
    return g.org.rate_limit or current_app.config["ORG_RATE_LIMIT"]


org_limit = limiter.shared_limit(_org_limit_value, scope="org", key_func=_org_key)


def _headers(response):
    current = limiter.current_limit
    if current is None:
        return response
    reset_at = int(current.reset_at)
    response.headers["X-RateLimit-Limit"] = str(current.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(current.remaining)
    response.headers["X-RateLimit-Reset"] = str(reset_at)
    if current.breached and "Retry-After" not in response.headers:
        response.headers["Retry-After"] = str(max(1, reset_at - int(time.time())))
    return response


def init_app(app: Flask) -> None:
    app.config["RATELIMIT_HEADERS_ENABLED"] = False
    limiter.init_app(app)
    app.after_request(_headers)
