"""Per-org rate limits (Flask-Limiter), one shared bucket per org across every org endpoint.

The limit is the org's own override (``organizations.rate_limit``, set by the admin) or
``ORG_RATE_LIMIT``. The key is the org id taken from the authenticated key, never from the
request. Storage is memory for one process and Redis (``REDIS_URL``) for several.

Headers are written here rather than by Flask-Limiter: its writer stretches any ``Retry-After``
to the org window's reset, which would overwrite an upstream provider's own hint on a 429 that
is Shopify's, not ours.
"""

import logging
import threading
import time
import weakref
from functools import wraps

import redis
from flask import Flask, current_app, g
from limits.storage import MemoryStorage

from app.errors import SharedStateUnavailable, problem
from app.extensions import limiter

log = logging.getLogger("switchboard.ratelimit")


class SweptMemoryStorage(MemoryStorage):
    """``limits``' memory storage without a thread per request burst.

    The stock storage arms a 10 ms ``threading.Timer`` on every hit whose previous timer has
    fired — under steady traffic that is a new OS thread every few requests (a quarter of a
    millisecond each on this machine, measured with py-spy under ``make bench``). Expired counters
    are already dropped lazily on read (``MemoryStorage.get``); here one daemon thread sweeps the
    rest once a second, only to bound memory.
    """

    STORAGE_SCHEME = ["swept-memory"]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options):
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        sweeper = threading.Thread(target=_sweep, args=(weakref.ref(self),), daemon=True,
                                   name="ratelimit-sweeper")
        sweeper.start()

    def _MemoryStorage__schedule_expiry(self) -> None:  # replaces the per-hit timer
        pass


def _sweep(ref: "weakref.ref[SweptMemoryStorage]") -> None:
    while True:
        time.sleep(1.0)
        storage = ref()
        if storage is None:
            return
        storage._MemoryStorage__expire_events()
        del storage


def _org_key() -> str:
    return f"org:{g.org.id}"


def _org_limit_value() -> str:
    return g.org.rate_limit or current_app.config["ORG_RATE_LIMIT"]


org_limit = limiter.shared_limit(_org_limit_value, scope="org", key_func=_org_key)


def _header_values(current) -> dict[str, str]:
    reset_at = int(current.reset_at)  # reset_at and remaining: one Redis read, then cached
    values = {
        "X-RateLimit-Limit": str(current.limit.amount),
        "X-RateLimit-Remaining": str(current.remaining),
        "X-RateLimit-Reset": str(reset_at),
    }
    if current.breached:
        values["Retry-After"] = str(max(1, reset_at - int(time.time())))
    return values


def headers_first(view):
    """Read the window for the rate-limit headers right after the hit, before the view runs.

    Read after the response (in ``after_request``), a Redis failure would come after the view's
    work and its audit row were committed, and would turn a recorded 200 into a 500. Read here,
    it fails the request before anything happened — 503 ``shared_state_unavailable``, no
    provider call, so no ``proxy.request`` row, as when the hit itself fails — and the headers
    are then written from this snapshot without touching Redis again.
    """

    @wraps(view)
    def wrapper(*args, **kwargs):
        current = limiter.current_limit
        if current is not None:
            g.ratelimit_headers = _header_values(current)
        return view(*args, **kwargs)

    return wrapper


def _headers(response):
    values = g.pop("ratelimit_headers", None)
    if values is None:
        # Only a request refused by the limit itself (429: no view ran, nothing was audited)
        # reads the window here; a request whose Redis read failed before its view has none.
        current = limiter.current_limit
        if current is None or not current.breached:
            return response
        try:
            values = _header_values(current)
        except redis.exceptions.RedisError as exc:
            log.error("redis unavailable: %s", type(exc).__name__)
            return problem(SharedStateUnavailable("Rate-limit storage is unavailable; retry shortly."))
    for name, value in values.items():
        if name != "Retry-After" or name not in response.headers:  # keep an upstream's own hint
            response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    app.config["RATELIMIT_HEADERS_ENABLED"] = False
    limiter.init_app(app)
    app.after_request(_headers)
