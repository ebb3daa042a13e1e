"""Per-org rate limits: one fixed-window counter per org, shared by every org endpoint.

The limit is the org's own override (``organizations.rate_limit``, set by the admin) or
``ORG_RATE_LIMIT``. The key is the org id taken from the authenticated key, never from the
request. Storage is memory for one process and Redis (``REDIS_URL``) for several.

Built on ``limits`` directly (its fixed-window strategy and storages), not through Flask-Limiter's
request hooks: those evaluated every request twice (a ``before_request`` pass over global limits
we do not have, then the decorator's pass), about a tenth of a proxied request's CPU. Here a
request to an org endpoint costs one counter increment and one read of the window's expiry (one
Redis round trip for both), done right after authentication and **before the view**: a storage
failure (503 ``shared_state_unavailable``) refuses the request before anything happened — no
provider call, no audit row — and the ``X-RateLimit-*`` headers are written afterwards from that
snapshot without touching storage again, so they can never contradict an audited outcome.

Headers are written here: ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` on every answer of an
org endpoint, ``Retry-After`` on our own 429 only — an upstream provider's ``Retry-After`` (a
Shopify 429) is never overwritten.
"""

from __future__ import annotations

import threading
import time
import weakref
from functools import lru_cache, wraps

from flask import Flask, current_app, g
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

ORG_SCOPE = "org"


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


@lru_cache(maxsize=1024)
def _item(value: str) -> RateLimitItem:
    """A rate string (validated where it is set: config.is_rate_limit) parsed once per process."""
    return parse(value)


def strategy() -> FixedWindowRateLimiter:
    """The app's fixed-window limiter over its storage (the auth-failure audit cap uses it too)."""
    return current_app.extensions["ratelimit"]


def hit_org_limit() -> None:
    """Count this request against ``g.org``'s limit; 429 ``rate_limited`` past it.

    Reads the window (remaining, reset) at once and keeps it in ``g`` for the headers.
    """
    config = current_app.config
    item = _item(g.org.rate_limit or config["ORG_RATE_LIMIT"])
    # The key Flask-Limiter's shared limit used (prefix, key, scope): counters survive a deploy.
    key = item.key_for(config["RATELIMIT_KEY_PREFIX"], f"org:{g.org.id}", ORG_SCOPE)
    count, expires_at = _count(strategy().storage, key, item.get_expiry())
    reset_at = int(expires_at + 1)
    values = {
        "X-RateLimit-Limit": str(item.amount),
        "X-RateLimit-Remaining": str(max(0, item.amount - count)),
        "X-RateLimit-Reset": str(reset_at),
    }
    if count > item.amount:
        values["Retry-After"] = str(max(1, reset_at - int(time.time())))
        g.ratelimit_headers = values
        if g.get("key_digest"):
            current_app.extensions["limit_notes"].note(g.key_digest, expires_at, reset_at, item.amount, str(item),
                                                       g.org.id)
        raise TooManyRequests(str(item))  # app/errors.py: 429 rate_limited, "Rate limit of 3 per 1 minute …"
    g.ratelimit_headers = values


# ``limits``' own increment (start the window's expiry on its first hit), plus the TTL it now has
# (in milliseconds, so that a limit note never outlasts its window):
# the count and the window's end in one round trip. (A pipeline holding a script would add a
# SCRIPT EXISTS round trip on every call; a script call loads itself once, on NOSCRIPT.)
_INCR_TTL = """
local current = redis.call("incrby", KEYS[1], ARGV[2])
if tonumber(current) == tonumber(ARGV[2]) then
    redis.call("expire", KEYS[1], ARGV[1])
end
return {current, redis.call("pttl", KEYS[1])}
"""


def _count(storage, key: str, expiry: int) -> tuple[int, float]:
    """Increment the window's counter; (the count after it, when the window ends).

    With Redis, one script call (one round trip); a Redis error propagates (503).
    """
    if isinstance(storage, RedisStorage):
        count, ttl = current_app.extensions["ratelimit_incr_ttl"](keys=[storage.prefixed_key(key)], args=[expiry, 1])
        return int(count), max(int(ttl), 0) / 1000 + time.time()  # PTTL: milliseconds (a note ends with the window)
    return storage.incr(key, expiry), storage.get_expiry(key)


NOTE_FOR = 1.0  # a key refused by its org's limit is answered before the app this long (never past the window)
MAX_NOTES = 10_000  # per process; the oldest note is forgotten first


class LimitNotes:
    """API keys their org's limit refused a moment ago, by SHA-256 digest: app/proxy.py's
    ``RefusedKeys`` answers their next requests to org endpoints with the same 429 before Flask
    runs — no authentication, database or limiter round trip — for ``NOTE_FOR`` s at most and
    never past the end of the window that refused them, so an org flooding past its limit costs
    the server little. Only the refused key is noted: another key of the same org takes the
    app's path (and is refused there while the org is over its limit). The requests answered
    from a note are not counted (the window is spent already: counting them would change no
    answer) and are not audited (nor is the app's own ``rate_limited`` answer)."""

    def __init__(self, clock=time.time):
        self.clock = clock
        # digest -> (until, reset at, limit, "60 per 1 minute", org id)
        self.keys: dict[str, tuple[float, int, int, str, object]] = {}
        self._lock = threading.Lock()

    def note(self, digest: str, window_ends: float, reset_at: int, amount: int, limit: str, org) -> None:
        now = self.clock()
        until = min(now + NOTE_FOR, window_ends)
        if until <= now:
            return
        with self._lock:
            self.keys.pop(digest, None)  # a key noted again moves to the end
            self.keys[digest] = (until, reset_at, amount, limit, org)
            while len(self.keys) > MAX_NOTES:
                del self.keys[next(iter(self.keys))]

    def forget(self, *, org=None, digest: str | None = None) -> None:
        """Drop the notes of an org whose limit or status the admin changed, or of a revoked key
        (in this process: the others' notes end within ``NOTE_FOR`` s)."""
        with self._lock:
            for noted in [d for d, note in self.keys.items() if d == digest or (org is not None and note[4] == org)]:
                del self.keys[noted]

    def refused(self, digest: str) -> tuple[dict, str] | None:
        """(the 429's headers, the limit's text) while this key's note lasts; else ``None``."""
        note = self.keys.get(digest)
        if note is None:
            return None
        now = self.clock()
        if note[0] <= now:
            with self._lock:
                if self.keys.get(digest) is note:
                    del self.keys[digest]
            return None
        until, reset_at, amount, limit, _ = note
        return {
            "X-RateLimit-Limit": str(amount),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset_at),
            "Retry-After": str(max(1, reset_at - int(now))),
        }, limit


def org_limited(view):
    """Apply the org's limit (``g.org`` is set: call inside the authentication) before ``view``."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        hit_org_limit()
        return view(*args, **kwargs)

    return wrapper


def _headers(response):
    values = g.get("ratelimit_headers")
    if values is not None:
        for name, value in values.items():
            if name != "Retry-After" or name not in response.headers:  # keep an upstream's own hint
                response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    storage = storage_from_string(app.config["RATELIMIT_STORAGE_URI"], **app.config["RATELIMIT_STORAGE_OPTIONS"])
    app.extensions["ratelimit"] = FixedWindowRateLimiter(storage)
    app.extensions["limit_notes"] = LimitNotes()
    if isinstance(storage, RedisStorage):
        app.extensions["ratelimit_incr_ttl"] = storage.get_connection().register_script(_INCR_TTL)
    app.after_request(_headers)
