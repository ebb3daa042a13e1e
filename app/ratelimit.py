"""Per-org rate limits: one cell per org (GCRA, a token bucket), shared by every org endpoint.

The limit is the org's own override (``organizations.rate_limit``, set by the admin) or
``ORG_RATE_LIMIT``. The key is the org id taken from the authenticated key, never from the
request. Storage is memory for one process and Redis (``REDIS_URL``) for several.

``60/minute`` admits one call a second, with a burst of 60 for an org that was idle: an org that
keeps asking is admitted evenly, never a fresh burst at the start of each window, and a refused
caller's ``Retry-After`` says when its next call is admitted (a second here, where a fixed
window said "at the minute's end"). The rate strings are ``limits``' (parsed by it); its
storages hold the memory or Redis connection (and its fixed window still caps the audit of
failed authentications, app/auth.py). Not through Flask-Limiter's request hooks: those
evaluated every request twice, about a tenth of a proxied request's CPU. Here a request to an
org endpoint costs one read-decide-write of its cell (one Redis round trip), done right after
authentication and **before the view**: a storage
failure (503 ``shared_state_unavailable``) refuses the request before anything happened — no
provider call, no audit row — and the ``X-RateLimit-*`` headers are written afterwards from that
snapshot without touching storage again, so they can never contradict an audited outcome.

Headers are written here: ``X-RateLimit-Limit``/``-Remaining``/``-Reset`` on every answer of an
org endpoint, ``Retry-After`` on our own 429 only — an upstream provider's ``Retry-After`` (a
Shopify 429) is never overwritten.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from functools import lru_cache, wraps

from flask import Flask, current_app, g
from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, RedisStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests


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
    """Spend one of ``g.org``'s allowance; 429 ``rate_limited`` when none is left.

    Reads the cell's state at once and keeps the headers in ``g``.
    """
    config = current_app.config
    item = _item(g.org.rate_limit or config["ORG_RATE_LIMIT"])
    # One cell per org and limit: a new limit from the admin starts with its whole allowance.
    key = item.key_for(config["RATELIMIT_KEY_PREFIX"], f"org:{g.org.id}", CELL_SCOPE)
    period = item.get_expiry() * 1_000_000
    interval = max(1, period // item.amount)  # a microsecond at least (the regex allows 999999999/second)
    cells = current_app.extensions["org_cells"]
    now = cells.clock()
    allowed, ahead = cells.take(key, round(now * 1_000_000), interval, period)
    reset_at = math.ceil(now + ahead / 1_000_000)
    if allowed:
        remaining = min(item.amount, (period - ahead) // interval)
        g.ratelimit_headers = {
            "X-RateLimit-Limit": str(item.amount),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(reset_at),
        }
        if remaining == 0 and g.get("key_digest"):
            # The cell is empty: until it admits the next call, this key's calls are refused
            # whatever they are, so note it now rather than after a refusal through the app.
            current_app.extensions["limit_notes"].note(
                g.key_digest, now + (ahead + interval - period) / 1_000_000, reset_at, item.amount, str(item), g.org.id)
        return
    wait = (ahead + interval - period) / 1_000_000  # until the cell admits one more call
    g.ratelimit_headers = {
        "X-RateLimit-Limit": str(item.amount),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset_at),
        "Retry-After": str(max(1, math.ceil(wait))),
    }
    if g.get("key_digest"):
        current_app.extensions["limit_notes"].note(g.key_digest, now + wait, reset_at, item.amount, str(item),
                                                   g.org.id)
    raise TooManyRequests(str(item))  # app/errors.py: 429 rate_limited, "Rate limit of 3 per 1 minute …"


# The org limit is a GCRA cell (a token bucket kept as one number): ``amount`` calls per
# ``period`` means one call every ``interval = period / amount``, with a burst of ``amount``.
# The cell holds the theoretical arrival time (TAT): when the org's allowance would be whole
# again. A call is admitted when TAT + interval lies at most a period ahead of now; it moves TAT
# on by one interval. So an idle org may send its whole allowance at once, and an org that keeps
# asking is admitted once per interval — evenly, not a fresh burst at each window's start.
# Times are integer microseconds (exact: 7 per second admits exactly 7 in a burst).
CELL_SCOPE = "org-cell"

# Redis: read, decide and write in one round trip; the caller's clock (as ``limits``' moving
# window does), so that every process and the tests agree on "now". Returns {admitted, TAT - now}.
_TAKE = """
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local period = tonumber(ARGV[3])
local tat = math.max(tonumber(redis.call("get", KEYS[1]) or "0"), now)
if tat + interval - now > period then
    return {0, tat - now}
end
redis.call("set", KEYS[1], string.format("%.0f", tat + interval), "px", math.ceil((tat + interval - now) / 1000))
return {1, tat + interval - now}
"""


class MemoryCells:
    """The org cells of one process (the memory storage)."""

    def __init__(self, clock=time.time):
        self.clock = clock
        self.tat: dict[str, int] = {}
        self._lock = threading.Lock()
        self._swept = 0

    def take(self, key: str, now: int, interval: int, period: int) -> tuple[bool, int]:
        """(admitted, TAT - now after the decision), all in microseconds."""
        with self._lock:
            tat = max(self.tat.get(key, 0), now)
            if tat + interval - now > period:
                return False, tat - now
            self.tat[key] = tat + interval
            if now - self._swept > 1_000_000:  # a whole cell says nothing: drop those, once a second
                self._swept = now
                for whole in [k for k, t in self.tat.items() if t <= now]:
                    del self.tat[whole]
            return True, tat + interval - now


class RedisCells:
    """The org cells shared by every process (``REDIS_URL``); a Redis error propagates (503)."""

    def __init__(self, storage: RedisStorage, clock=time.time):
        self.clock = clock
        self._prefixed = storage.prefixed_key
        self._script = storage.get_connection().register_script(_TAKE)

    def take(self, key: str, now: int, interval: int, period: int) -> tuple[bool, int]:
        admitted, ahead = self._script(keys=[self._prefixed(key)], args=[now, interval, period])
        return bool(admitted), int(ahead)


NOTE_FOR = 1.0  # a key refused by its org's limit is answered before the app this long (never past its next turn)
MAX_NOTES = 10_000  # per process; the oldest note is forgotten first


class LimitNotes:
    """API keys their org's limit refused a moment ago (or whose call emptied the org's
    allowance), by SHA-256 digest: app/proxy.py's
    ``RefusedKeys`` answers their next requests to org endpoints with the same 429 before Flask
    runs — no authentication, database or limiter round trip — for ``NOTE_FOR`` s at most and
    never past the moment the limit would admit their next call, so an org flooding past its limit costs
    the server little. Only the refused key is noted: another key of the same org takes the
    app's path (and is refused there while the org is over its limit). The requests answered
    from a note are not counted (the allowance is spent already: counting them would change no
    answer) and are not audited (nor is the app's own ``rate_limited`` answer)."""

    def __init__(self, clock=time.time):
        self.clock = clock
        # digest -> (until, admits its next call at, reset at, limit, "60 per 1 minute", org id)
        self.keys: dict[str, tuple[float, float, int, int, str, object]] = {}
        self._lock = threading.Lock()

    def note(self, digest: str, admits_at: float, reset_at: int, amount: int, limit: str, org) -> None:
        now = self.clock()
        until = min(now + NOTE_FOR, admits_at)
        if until <= now:
            return
        with self._lock:
            self.keys.pop(digest, None)  # a key noted again moves to the end
            self.keys[digest] = (until, admits_at, reset_at, amount, limit, org)
            while len(self.keys) > MAX_NOTES:
                del self.keys[next(iter(self.keys))]

    def forget(self, *, org=None, digest: str | None = None) -> None:
        """Drop the notes of an org whose limit or status the admin changed, or of a revoked key
        (in this process: the others' notes end within ``NOTE_FOR`` s)."""
        with self._lock:
            for noted in [d for d, note in self.keys.items() if d == digest or (org is not None and note[5] == org)]:
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
        until, admits_at, reset_at, amount, limit, _ = note
        return {
            "X-RateLimit-Limit": str(amount),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(reset_at),
            "Retry-After": str(max(1, math.ceil(admits_at - now))),
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
    app.extensions["org_cells"] = RedisCells(storage) if isinstance(storage, RedisStorage) else MemoryCells()
    app.after_request(_headers)
