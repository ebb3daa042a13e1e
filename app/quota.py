"""What Switchboard knows about each provider account, shared by every process: its quota budget
and its circuit breaker.

One record per (provider, quota scope) — the scope is the account, as the provider declares it
(``Provider.quota_scope``): Shopify's bucket is per app and store, so a store; a platform
service's key is shared by every org, so ``platform``. Memory for one process; Redis
(``REDIS_URL``) when several share it. ``app/outbound.py`` consults it around every call that
names an account::

    admit(provider, scope, org) ──▶ circuit open?              503 upstream_circuit_open (Retry-After)
                                ──▶ surely throttled?           429 upstream_rate_limited (Retry-After)
                                ──▶ budget low and this org
                                    above its share?            429 upstream_rate_limited (Retry-After)
                                ──▶ send ──▶ record(reading, failed?)

**The budget** is what the provider last said (a ``Reading``: its bucket size, what remains, how
fast it refills or when it resets, a ``Retry-After``), projected to now. A provider declares how
to read its answers (``Provider.rate_limit``): ``header_signals`` reads declared header names
(the IETF ``RateLimit-*`` draft, ``x-ratelimit-*``), Shopify parses ``extensions.cost``.

**Fairness.** Each org's calls to a scope are counted in a sliding window (``WINDOW`` seconds:
this window's counts plus the previous one's, weighted by how much of it is left). While the
budget is above ``LOW`` of its size, everyone is served. Below it, an org that made more than an
even share of the window's calls (more than total / active orgs) is refused first, so the last
part of the bucket is kept for the orgs that use little; when the budget is exhausted everyone
waits. Why this policy: it needs no per-org configuration, one counter per org and window, no
coordination beyond the shared record, and it never refuses an org that is alone on an account
(its share is everything).

**A flood stays cheap** (per process): an org refused by the budget is noted with its wait, and
its next calls to that provider within the wait are refused by ``refuse_early`` (called by
``proxy_action`` before the integration lookup, the shared record and the audit row) — still
counted as the org's demand. Cheaper still, the API key that was refused is noted
(``note_key``, by its SHA-256 digest, for at most ``KEY_NOTE_FOR`` s and never past the
``Retry-After`` it was given);
app/proxy.py's ``RefusedKeys`` answers that key's next calls to that provider's routes before
Flask runs at all (no authentication, database, limiter or audit row), counted the same way. An org with ``org_concurrency`` calls in flight to one account and
more than an even share of the account's calls in flight here is refused too
(``TooManyInFlight``), so a slow provider cannot let one org hold every server thread.

**The breaker** counts consecutive failures (timeouts, lost connections, 5xx — not 4xx or 429,
which are answers). ``fail_max`` of them open it for ``reset_timeout`` seconds; then exactly one
caller (a lease, ``SET NX``) makes the trial call: success closes it, failure opens it again.

Hot path: a record read as healthy (breaker closed, no failures, no wait, budget well above
what a call needs and above ``LOW``) is trusted by the process for ``HEALTHY_FOR`` seconds, and
only while the calls admitted on it ask for less than its margin above ``LOW`` —
no Redis round trip; otherwise one pipelined round trip reads it and counts this org's call.
The answer is written back only when it matters (the budget is tight or was, a wait was given,
the breaker moved, the record is new), and such a write makes the process read again. So a
healthy account costs about one round trip per process per second; the calls admitted on a
trusted record are counted for fairness all the same, in memory, and ride along with the
process's next read (no round trip of their own).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from app.errors import UpstreamCircuitOpen, UpstreamRateLimited

log = logging.getLogger("switchboard.quota")

WINDOW = 10.0  # seconds over which each org's recent use is counted
LOW = 0.5  # below this fraction of the bucket, orgs above their share are refused first
STATE_TTL = 3600  # an account nobody calls for an hour is forgotten
STALE = 60.0  # a reading with neither a refill rate nor a reset time is believed this long
MAX_WAIT = 3600.0  # a provider's "wait" is believed up to an hour
HEALTHY_FOR = 1.0  # a process trusts a healthy record this long without reading it again
KEY_NOTE_FOR = 1.0  # a key refused by the budget is answered before the app this long (never past its Retry-After)
MAX_NOTED_KEYS = 10_000  # per process; the oldest note is forgotten first


@dataclass(frozen=True)
class Reading:
    """One answer's rate-limit facts; any may be unknown (None)."""

    limit: float | None = None  # the bucket's size
    remaining: float | None = None  # what is left after this call
    refill: float | None = None  # units per second (Shopify's restoreRate)
    reset: float | None = None  # seconds until the window resets (RateLimit-Reset)
    need: float | None = None  # what a call asks for (Shopify's requestedQueryCost)
    wait: float | None = None  # the provider said: nothing before this many seconds


Signals = Callable[[object], "Reading | None"]  # (outbound.Response) -> Reading


def _number(value) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.split(",")[0].split(";")[0]) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def header_signals(*, limit: str, remaining: str, reset: str, retry_after: str = "Retry-After") -> Signals:
    """A reader for providers that send their budget in headers (declared names, any case).

    ``reset`` may be seconds from now (the IETF draft) or a Unix time (some ``x-ratelimit-reset``
    implementations): a value above 10^9 is read as a Unix time.
    """

    def read(response) -> Reading | None:
        headers = response.headers
        left = _number(headers.get(remaining))
        wait = _number(headers.get(retry_after)) if response.status_code in (429, 503) else None
        if left is None and wait is None:
            return None
        until = _number(headers.get(reset))
        if until is not None and until > 1e9:
            until = max(0.0, until - time.time())
        if response.status_code == 429 and wait is None:
            wait = until if until is not None else 1.0
        return Reading(limit=_number(headers.get(limit)), remaining=left, reset=until, wait=wait)

    return read


# The IETF draft's names (draft-ietf-httpapi-ratelimit-headers), as Klaviyo sends them.
IETF_RATELIMIT = header_signals(limit="RateLimit-Limit", remaining="RateLimit-Remaining", reset="RateLimit-Reset")


def retry_after_only(response) -> Reading | None:
    """The least every provider says: a 429 with (or without) ``Retry-After``."""
    if response.status_code != 429:
        return None
    return Reading(wait=_number(response.headers.get("Retry-After")) or 1.0)


# --- the record ------------------------------------------------------------------------------
#
# Fields (floats): lim rem rate ts rst blk need (the budget, as of wall-clock ``ts``); fails open
# (the breaker: consecutive failures; open until this Unix time, 0 when closed).


def _available(state: dict, now: float) -> float | None:
    if "rem" not in state:
        return None
    remaining, limit = state["rem"], state.get("lim") or math.inf
    if state.get("rate"):
        return min(limit, remaining + max(0.0, now - state.get("ts", now)) * state["rate"])
    if state.get("rst"):
        return state.get("lim", remaining) if now >= state["rst"] else remaining  # the window reset
    return remaining if now - state.get("ts", 0.0) < STALE else None


def _seconds_until(state: dict, now: float, amount: float) -> float:
    """How long until ``amount`` is available again (``Retry-After`` rounds it up to 1 s or more)."""
    available = _available(state, now) or 0.0
    if state.get("rate"):
        return max(0.0, (amount - available) / state["rate"])
    if state.get("rst"):
        return max(0.0, state["rst"] - now)
    return WINDOW - now % WINDOW


def _low(state: dict, now: float) -> bool:
    available, limit = _available(state, now), state.get("lim")
    return available is not None and bool(limit) and available < LOW * limit


def _tight(state: dict, now: float) -> bool:
    """Low, or within two calls of surely throttled: a reading worth sharing."""
    available = _available(state, now)
    return available is not None and (_low(state, now) or available < 2 * max(1.0, state.get("need", 1.0)))


class TooManyInFlight(UpstreamRateLimited):
    """429 ``upstream_rate_limited``: this org already has its share of this process's calls to
    the account waiting on the provider."""

    def __init__(self, provider: str, limit: int):
        super().__init__(provider, 1)
        self.detail = (f"This organization already has {limit} calls to this {provider} account in "
                       "progress; retry in 1 s.")


class BudgetRefusal(UpstreamRateLimited):
    """429 ``upstream_rate_limited`` decided here, before sending: the account's budget cannot
    take the call now. ``wait`` keeps the exact seconds (``Retry-After`` rounds them up)."""

    def __init__(self, provider: str, seconds: float):
        super().__init__(provider, math.ceil(seconds))
        self.wait = max(0.0, seconds)


def _refusal(provider: str, seconds: float) -> BudgetRefusal:
    return BudgetRefusal(provider, seconds)


@dataclass
class Ticket:
    provider: str
    key: str
    org: str
    state: dict
    trial: bool
    slot: tuple[str, str] | None = None  # (key, org) while the call counts as in flight


class Guard:
    """Budget and breaker over a ``MemoryStore`` or ``RedisStore``."""

    def __init__(self, store, *, fail_max: int = 5, reset_timeout: float = 30.0,
                 clock: Callable[[], float] = time.time, org_concurrency: int = 0):
        self.store = store
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        self.clock = clock
        # Per process (see "Fairness" above): (provider, org) -> (until, Retry-After) of this org's
        # last refusal by the budget, so the calls that follow within its Retry-After are refused
        # before any database or Redis work (``refuse_early``); and (key, org) -> calls in flight.
        self.org_concurrency = org_concurrency
        self._refused: dict[tuple[str, str], tuple[float, str]] = {}
        self._in_flight: Counter = Counter()
        self._pending: dict[tuple[str, str], tuple[int, float]] = {}  # early refusals not yet counted
        self._lock = threading.Lock()
        # key -> (until, state, margin): a record read as healthy is trusted for HEALTHY_FOR seconds
        # (and while the calls admitted on it ask for less than its margin above LOW) in
        # this process, so a healthy account costs no Redis round trip at all (see the docstring).
        self._healthy: dict[str, tuple[float, dict, float]] = {}
        # API key digest -> {provider: (until, retry until, account key, org)}: keys refused by
        # the budget, answered before the app by app/proxy.py's RefusedKeys (``note_key``).
        # Oldest first (a dict keeps insertion order; a key noted again moves to the end).
        self.noted_keys: dict[str, dict[str, tuple[float, float, str, str]]] = {}
        self.answered_early = 0  # requests answered from a key's note, for the log line

    def refuse_early(self, provider: str, org: str) -> None:
        """Raise 429 if the budget refused this org on this provider less than its Retry-After
        ago (in this process): nothing has changed that would let the call through, and saying
        so before the integration lookup, the shared record and the audit row keeps a flood cheap."""
        note = self._refused.get((provider, org))
        if note is not None:
            now = self.clock()
            left = note[0] - now
            if left > 0:
                self._count_refusal(note[1], org, now)
                raise _refusal(provider, left)
            self._refused.pop((provider, org), None)

    def note_key(self, digest: str, provider: str, org: str, wait: float) -> None:
        """Remember that the API key with this SHA-256 ``digest`` (authenticated, of ``org``) was
        just refused by the budget for ``provider`` with ``wait`` seconds: for the next
        ``KEY_NOTE_FOR`` seconds at most (never past the ``Retry-After`` it was given),
        ``refused_key`` answers its calls
        to that provider before the app runs. Only the org's own refusal is noted (``_refused``),
        so no other key, and no other org, is ever refused by a note."""
        refused = self._refused.get((provider, org))
        if refused is None or wait <= 0:
            return
        now = self.clock()
        with self._lock:
            notes = self.noted_keys.pop(digest, None) or {}
            if self.answered_early:
                log.info("%s calls were answered 429 before the app from refused keys' notes", self.answered_early)
                self.answered_early = 0
            # Until the Retry-After the caller was given (whole seconds, at least 1: the header),
            # not the exact wait — a budget hovering at its low mark gives waits of milliseconds,
            # and a note that short would let nearly all of a flood through to the full path.
            told = max(1, math.ceil(wait))
            notes[provider] = (now + min(KEY_NOTE_FOR, told), now + told, refused[1], org)
            self.noted_keys[digest] = notes
            while len(self.noted_keys) > MAX_NOTED_KEYS:
                del self.noted_keys[next(iter(self.noted_keys))]

    def noted(self, digest: str) -> bool:
        """Whether any note is held for this key digest (cheap: no clock, no lock)."""
        return digest in self.noted_keys

    def refused_key(self, digest: str, provider: str) -> int | None:
        """``Retry-After`` seconds if this key's calls to ``provider`` are still refused by its
        note (counted in the org's demand, as ``refuse_early`` counts them); else ``None``."""
        notes = self.noted_keys.get(digest)
        note = notes.get(provider) if notes else None
        if note is None:
            return None
        now = self.clock()
        if note[0] <= now:
            with self._lock:
                current = self.noted_keys.get(digest)
                if current is not None and current.get(provider) is note:
                    del current[provider]
                    if not current:
                        del self.noted_keys[digest]
            return None
        self._count_refusal(note[2], note[3], now)
        self.answered_early += 1
        return max(1, math.ceil(note[1] - now))

    def _count_refusal(self, key: str, org: str, now: float) -> None:
        """Count a call refused early in the window's demand, as ``read`` counts the others, so a
        flooder stays the heavy org (batched: at most one Redis write per ``store.batch`` s)."""
        slot = (key, org)
        with self._lock:
            count, since = self._pending.get(slot, (0, now))
            count += 1
            if now - since < self.store.batch:
                self._pending[slot] = (count, since)
                return
            self._pending.pop(slot, None)
        try:
            self.store.count(key, int(now // WINDOW), org, count)
        except Exception:  # noqa: BLE001 — the call is refused either way; only the count is lost
            log.exception("could not count a refused call for %s", key)

    def admit(self, provider: str, scope: str, org: str, *, lease: float = 15.0) -> Ticket:
        """Raise 503/429 if this call must not be sent; else a ticket for ``record``."""
        key = f"{provider}:{scope}"
        note = self._refused.get((provider, org))
        now = self.clock()
        if note is not None and note[1] == key and note[0] > now:
            self._count_refusal(key, org, now)
            raise _refusal(provider, note[0] - now)
        try:
            ticket = self._admit(provider, key, org, lease)
        except UpstreamRateLimited as refused:
            self._refused[(provider, org)] = (now + refused.wait, key)
            raise
        if self.org_concurrency:
            slot = (ticket.key, org)
            with self._lock:
                # At the cap and above an even share of the account's calls in flight here (so
                # never an org alone on the account, and never the lighter of two orgs).
                mine = self._in_flight[slot]
                others = [n for (k, o), n in self._in_flight.items() if k == ticket.key and o != org]
                busy = mine >= self.org_concurrency and bool(others) and mine > (mine + sum(others)) / (1 + len(others))
                if not busy:
                    self._in_flight[slot] += 1
            if busy:
                if ticket.trial:
                    self.store.release_trial(ticket.key)
                raise TooManyInFlight(provider, self.org_concurrency)
            ticket.slot = slot
        return ticket

    def _admit(self, provider: str, key: str, org: str, lease: float) -> Ticket:
        now = self.clock()
        cached = self._healthy.get(key)
        if cached is not None and cached[0] > now and cached[2] > 0:
            state, usage = cached[1], {}
            # Spend the margin this process was given: a flood cannot run the bucket down
            # unseen for a whole HEALTHY_FOR (it is read again once the margin is spent).
            self._healthy[key] = (cached[0], state, cached[2] - max(1.0, state.get("need", 1.0)))
            # Counted all the same, riding along with this process's next read: otherwise an org
            # that spent the bucket on a healthy record would look light the moment it runs low,
            # and the org that used little while it was contested would be refused first.
            with self._lock:
                count, since = self._pending.get((key, org), (0, now))
                self._pending[(key, org)] = (count + 1, since)
        else:
            # Early refusals not yet counted in the shared window ride along with this read, so
            # whoever reads next sees the flooder's demand (memory counts them at once).
            with self._lock:
                pending = {o: self._pending.pop((k, o))[0] for k, o in list(self._pending) if k == key}
            state, current, previous = self.store.read(key, int(now // WINDOW), org, pending)
            # A sliding window: the previous window's counts weigh as much as is left of it, so
            # a window boundary does not make the first caller of the new one look heavy.
            weight = 1.0 - (now % WINDOW) / WINDOW
            usage = {o: current.get(o, 0) + previous.get(o, 0) * weight for o in {*current, *previous}}
            if self._is_healthy(state, now):
                margin = (_available(state, now) or 0.0) - LOW * state["lim"]
                self._healthy[key] = (now + HEALTHY_FOR, state, margin)
            else:
                self._healthy.pop(key, None)
        open_until = state.get("open", 0.0)
        if open_until:
            if now < open_until:
                raise UpstreamCircuitOpen(provider, open_until - now)
            if not self.store.claim_trial(key, lease):  # another caller is making the trial call
                raise UpstreamCircuitOpen(provider, 1)
            return Ticket(provider, key, org, state, trial=True)
        if now < state.get("blk", 0.0):
            raise _refusal(provider, state["blk"] - now)
        available = _available(state, now)
        if available is not None:
            need = max(1.0, state.get("need", 1.0))
            if available < need:
                raise _refusal(provider, _seconds_until(state, now, need))
            if _low(state, now) and len(usage) > 1 and usage.get(org, 0) > sum(usage.values()) / len(usage):
                raise _refusal(provider, _seconds_until(state, now, LOW * state["lim"]))
        return Ticket(provider, key, org, state, trial=False)

    @staticmethod
    def _is_healthy(state: dict, now: float) -> bool:
        return (not state.get("open") and not state.get("fails") and now >= state.get("blk", 0.0)
                and "lim" in state and not _tight(state, now))

    def record(self, ticket: Ticket, reading: Reading | None, failed: bool) -> None:
        """Write back what the answer taught us — only what changes a later decision."""
        if ticket.slot is not None:
            with self._lock:
                self._in_flight[ticket.slot] -= 1
                if self._in_flight[ticket.slot] <= 0:
                    del self._in_flight[ticket.slot]
            ticket.slot = None
        now = self.clock()
        state, fields = ticket.state, {}
        if reading is not None:
            new = {"ts": now}
            if reading.limit is not None:
                new["lim"] = reading.limit
            if reading.remaining is not None:
                new["rem"] = reading.remaining
            if reading.refill is not None:
                new["rate"] = reading.refill
            if reading.reset is not None:
                new["rst"] = now + reading.reset
            if reading.need is not None:
                new["need"] = reading.need
            new["blk"] = now + min(reading.wait, MAX_WAIT) if reading.wait else 0.0
            if ("lim" not in state or reading.wait or state.get("blk") or _tight(state, now)
                    or _tight({**state, **new}, now)):
                fields.update(new)
        if failed or fields or ticket.trial:
            self._healthy.pop(ticket.key, None)  # this process reads the record again next time
        try:
            if failed:
                fails = self.store.fail(ticket.key, fields)
                if ticket.trial or fails >= self.fail_max:
                    self.store.update(ticket.key, {"open": now + self.reset_timeout, "fails": 0})
                    log.warning("circuit opened for %s after %s failure(s)", ticket.key, fails)
            else:
                if ticket.trial or state.get("fails"):
                    fields.update(fails=0, open=0)
                    if ticket.trial:
                        log.info("circuit closed for %s: the trial call passed", ticket.key)
                if fields:
                    self.store.update(ticket.key, fields)
            if ticket.trial:
                self.store.release_trial(ticket.key)
        except Exception:  # noqa: BLE001 — the upstream answer stands; only our notes are lost
            log.exception("could not record upstream state for %s", ticket.key)


# --- storage ---------------------------------------------------------------------------------


class MemoryStore:
    """One process: a dict under one lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state: dict[str, dict] = {}
        self._usage: dict[str, dict[int, Counter]] = {}  # key -> {window: counts} (two windows)
        self._trials: dict[str, float] = {}

    def _window(self, key: str, window: int) -> Counter:
        windows = self._usage.setdefault(key, {})
        for old in [w for w in windows if w < window - 1]:
            del windows[old]
        return windows.setdefault(window, Counter())

    def read(self, key: str, window: int, org: str, pending: dict | None = None) -> tuple[dict, dict, dict]:
        with self._lock:
            current = self._window(key, window)
            current[org] += 1
            current.update(pending or {})
            previous = self._usage[key].get(window - 1, {})
            return dict(self._state.get(key, ())), dict(current), dict(previous)

    batch = 0.0  # counting is cheap here: every early refusal is counted at once

    def count(self, key: str, window: int, org: str, n: int) -> None:
        with self._lock:
            self._window(key, window)[org] += n

    def update(self, key: str, fields: dict) -> None:
        with self._lock:
            self._state.setdefault(key, {}).update(fields)

    def fail(self, key: str, fields: dict) -> int:
        with self._lock:
            state = self._state.setdefault(key, {})
            state.update(fields)
            state["fails"] = state.get("fails", 0) + 1
            return state["fails"]

    def claim_trial(self, key: str, lease: float) -> bool:
        now = time.monotonic()
        with self._lock:
            if self._trials.get(key, 0.0) > now:
                return False
            self._trials[key] = now + lease
            return True

    def release_trial(self, key: str) -> None:
        with self._lock:
            self._trials.pop(key, None)


_FIELD = re.compile(rb"[a-z]{2,5}")


def _fmt(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


class RedisStore:
    """Several processes: a hash per account, a hash of org counts per window, a lease key for
    the half-open trial. Redis errors while admitting propagate (503 shared_state_unavailable, as
    for the limiter: requests are refused, not unmetered)."""

    def __init__(self, client, prefix: str = "switchboard:upstream:"):
        self.client = client
        self.prefix = prefix

    def read(self, key: str, window: int, org: str, pending: dict | None = None) -> tuple[dict, dict, dict]:
        name, usage = self.prefix + key, f"{self.prefix}{key}:use:{window}"
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(name)
        for other, count in (pending or {}).items():  # before this org's count: the result order below
            pipe.hincrby(usage, other, count)
        pipe.hincrby(usage, org, 1)
        pipe.expire(usage, int(WINDOW * 2) + 1)
        pipe.hgetall(usage)
        pipe.hgetall(f"{self.prefix}{key}:use:{window - 1}")
        raw, *_, counts, before = pipe.execute()
        state = {}
        for field, value in raw.items():
            number = _number(value.decode("ascii", "replace"))
            if number is not None and _FIELD.fullmatch(field):
                state[field.decode()] = number
        return (state, {org_id.decode(): int(count) for org_id, count in counts.items()},
                {org_id.decode(): int(count) for org_id, count in before.items()})

    batch = 0.25  # early refusals are counted in one write per this many seconds

    def count(self, key: str, window: int, org: str, n: int) -> None:
        usage = f"{self.prefix}{key}:use:{window}"
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(usage, org, n)
        pipe.expire(usage, int(WINDOW * 2) + 1)
        pipe.execute()

    def update(self, key: str, fields: dict) -> None:
        name = self.prefix + key
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(name, mapping={k: _fmt(v) for k, v in fields.items()})
        pipe.expire(name, STATE_TTL)
        pipe.execute()

    def fail(self, key: str, fields: dict) -> int:
        name = self.prefix + key
        pipe = self.client.pipeline(transaction=False)
        if fields:
            pipe.hset(name, mapping={k: _fmt(v) for k, v in fields.items()})
        pipe.hincrby(name, "fails", 1)
        pipe.expire(name, STATE_TTL)
        return int(pipe.execute()[-2])

    def claim_trial(self, key: str, lease: float) -> bool:
        return bool(self.client.set(f"{self.prefix}{key}:trial", b"1", nx=True, px=max(1, int(lease * 1000))))

    def release_trial(self, key: str) -> None:
        self.client.delete(f"{self.prefix}{key}:trial")


def init_app(app) -> None:
    """Give the outbound layer the shared record and each provider's declared reader and scope."""
    from app.providers import PROVIDERS

    client = app.extensions.get("redis")
    # Under the limiter's key prefix: deployments (or test runs) sharing one Redis stay apart.
    store = (RedisStore(client, prefix=app.config["RATELIMIT_KEY_PREFIX"] + ":upstream:")
             if client is not None else MemoryStore())
    outbound = app.extensions["outbound"]
    outbound.guard = app.extensions["upstream_guard"] = Guard(
        store, fail_max=app.config["BREAKER_FAILURES"], reset_timeout=app.config["BREAKER_RESET"],
        org_concurrency=app.config["UPSTREAM_ORG_CONCURRENCY"])
    for provider in PROVIDERS.values():
        outbound.signals[provider.name] = provider.rate_limit or retry_after_only
        outbound.scopes[provider.name] = provider.quota_scope or _account_scope


def _account_scope(account_key: str | None) -> str:
    return account_key or "platform"
