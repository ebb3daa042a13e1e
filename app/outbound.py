"""The one outbound HTTP layer. Every provider call goes through ``Outbound.call``.

It owns, so that no provider has to:

* a keep-alive connection pool (one urllib3 ``PoolManager`` — urllib3 itself, not requests: it
  reads no ``.netrc`` or proxy variables that could add credentials or hosts behind our back, and
  it saves a quarter of a millisecond per call on the hot path);
* connect and read timeouts, bounded by the request's deadline — and the deadline itself: one
  watchdog thread shuts down the socket of a call still running when its deadline passes, so a
  server that drips its status line, headers or body (every read within the read timeout) or
  accepts and never answers cannot hold a call past ``HTTP_DEADLINE`` (504);
* no redirects, ever — a 3xx is a bad answer (502), and the credential never follows it;
* the host check: the final URL is parsed again with urllib3's own parser and must name exactly
  the host the provider's template produced for this account;
* the one retry layer: idempotent calls are retried on connection errors, 429 and 5xx (and on a
  provider-specific signal such as Shopify's ``THROTTLED``) with capped, jittered backoff that
  honours ``Retry-After`` — but only while the deadline allows. A non-idempotent call is retried
  only when the connection was never made (the request cannot have been sent);
* mapping transport failures onto the error tree (504 timeout, 502 unreachable/bad answer,
  429 upstream rate limit with ``Retry-After``); a non-idempotent call whose request may have been
  sent (read timeout, connection lost, deadline passed while waiting) is 504
  ``upstream_outcome_unknown`` and is never re-sent;
* the account's shared budget and circuit breaker (``app/quota.py``), when the caller names the
  account: refused before sending when the provider would surely throttle it (429) or the
  account's circuit is open (503); every answer's rate-limit signals are recorded.

Nothing here logs headers or bodies.
"""

from __future__ import annotations

import heapq
import itertools
import json as jsonlib
import logging
import math
import os
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlencode

import urllib3
from urllib3 import exceptions as u3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util import parse_url

from app.errors import (
    UpstreamBadResponse,
    UpstreamOutcomeUnknown,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnreachable,
)

log = logging.getLogger("switchboard.outbound")

RETRY_STATUSES = {429, 500, 502, 503, 504}
MAX_RETRY_AFTER = 3600.0  # an upstream hint is passed on, but never beyond an hour
MAX_BODY = 10 * 1024 * 1024  # an upstream answer larger than this is refused, not buffered
BACKOFF_BASE = 0.2
BACKOFF_CAP = 2.0


@dataclass(frozen=True)
class Target:
    """Where a call may go: scheme, host and port fixed by the provider's URL template."""

    scheme: str
    host: str
    port: int | None

    @classmethod
    def of(cls, url: str) -> "Target":
        parsed = parse_url(url)
        return cls(parsed.scheme or "", (parsed.host or "").lower(), parsed.port)


@dataclass
class Retry:
    """A provider's verdict on a response that is not an HTTP error but asks for a retry."""

    after: float


@dataclass
class Response:
    """What a provider sees of an upstream answer (fully read; the connection is back in the pool)."""

    status_code: int
    headers: urllib3.HTTPHeaderDict
    content: bytes

    def json(self):
        return jsonlib.loads(self.content)


@dataclass
class Outcome:
    response: Response
    attempts: int
    elapsed_ms: float
    extra: dict = field(default_factory=dict)


def retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date: treat as absent and fall back to backoff
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


def check_url(url: str, expected: Target, provider: str) -> None:
    """Re-parse the URL we built; refuse it unless it names exactly the expected host."""
    try:
        parsed = parse_url(url)
    except u3.LocationParseError:
        parsed = None
    actual = Target(parsed.scheme or "", (parsed.host or "").lower(), parsed.port) if parsed else None
    if actual != expected or parsed.auth is not None:
        # Identifiers are validated at write time; reaching this line means a bug or tampering.
        log.error("refused outbound URL for %s: host mismatch", provider)
        raise UpstreamBadResponse(provider, "Refused to call an unexpected host.")


# --- the deadline watchdog -----------------------------------------------------------------------
#
# A socket timeout bounds one read, not a call: a server that sends a byte a second never trips
# it. So each call registers its deadline with one watchdog thread (a heap of deadlines; no
# thread per call), and the connection records its socket when it starts reading an answer.
# When a deadline passes with the call still running, the watchdog shuts that socket down; the
# blocked read returns at once and the call maps it to 504. On the hot path this costs one heap
# push and one lock round-trip per call.


class _Ticket:
    __slots__ = ("sock", "fired", "done")

    def __init__(self):
        self.sock = None  # the socket of the current attempt, once it reads an answer
        self.fired = False  # the deadline passed while the call was running
        self.done = False  # the call finished: nothing to do


def _shutdown(sock) -> None:
    if sock is None:
        return
    try:
        # The plain socket's shutdown, also for TLS: SSLSocket.shutdown would drop its TLS state
        # under the feet of the thread that is reading.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # already closed


class _Watchdog:
    def __init__(self):
        self._reset()
        os.register_at_fork(after_in_child=self._reset)  # a forked worker starts its own thread

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, _Ticket]] = []
        self._order = itertools.count()
        self._running = False

    def arm(self, deadline: float) -> _Ticket:
        ticket = _Ticket()
        with self._cond:
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="outbound-deadline", daemon=True).start()
            earliest = not self._heap or deadline < self._heap[0][0]
            heapq.heappush(self._heap, (deadline, next(self._order), ticket))
            if earliest:
                self._cond.notify()
        return ticket

    def disarm(self, ticket: _Ticket) -> None:
        with self._cond:
            ticket.done = True
            ticket.sock = None

    def _run(self) -> None:
        cond, heap = self._cond, self._heap
        with cond:
            while True:
                if not heap:
                    cond.wait()
                    continue
                deadline, _, ticket = heap[0]
                if not ticket.done:
                    delay = deadline - time.monotonic()
                    if delay > 0:
                        cond.wait(delay)
                        continue
                    ticket.fired = True
                    _shutdown(ticket.sock)
                heapq.heappop(heap)


_watchdog = _Watchdog()
_current = threading.local()  # .ticket: the running call's ticket, for the connection to fill


class AddressRefused(Exception):
    """The connection reached an address the call's ``peer_check`` refuses (nothing was sent)."""


def _checked_new_conn(self):
    """Open the socket, then let the running call's ``peer_check`` judge the address actually
    connected to (DNS may answer differently than when a URL was accepted): nothing, not even a
    TLS hello, is sent to a refused address."""
    sock = HTTPConnection._new_conn(self)  # urllib3 2: HTTPSConnection inherits it
    check = getattr(_current, "peer_check", None)
    if check is not None:
        try:
            check(sock.getpeername()[0])
        except BaseException:
            sock.close()
            raise
    return sock


class _WatchedHTTPConnection(HTTPConnection):
    _new_conn = _checked_new_conn

    def getresponse(self, *args, **kwargs):
        ticket = getattr(_current, "ticket", None)
        if ticket is not None:
            ticket.sock = self.sock
            if ticket.fired:  # the deadline passed between connecting and reading
                _shutdown(self.sock)
        return super().getresponse(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    _new_conn = _checked_new_conn
    getresponse = _WatchedHTTPConnection.getresponse


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


def _read_body(raw, deadline: float, provider: str) -> bytes:
    """Read the answer in chunks so the deadline holds even against a server that drips bytes
    (the read timeout alone bounds each socket read, not the whole body)."""
    chunks, size = [], 0
    try:
        # read1: whatever one socket read returns (read(n) would block until n bytes arrive).
        while chunk := raw.read1(64 * 1024):
            size += len(chunk)
            if size > MAX_BODY:
                raise UpstreamBadResponse(provider, f"{provider}'s answer was too large.")
            if time.monotonic() > deadline:
                raise UpstreamTimeout(provider, f"{provider} did not finish answering in time.")
            chunks.append(chunk)
    except (UpstreamBadResponse, UpstreamTimeout):
        raw.close()  # the connection has unread bytes: do not reuse it
        raise
    finally:
        raw.release_conn()
    return b"".join(chunks)


class Outbound:
    def __init__(self, *, connect_timeout: float, read_timeout: float, deadline: float,
                 max_retries: int, pool_size: int, sleep: Callable[[float], None] = time.sleep):
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.max_retries = max_retries
        self._sleep = sleep
        # retries=False: this module is the one retry layer; urllib3 raises errors as they happen.
        self.pool = urllib3.PoolManager(num_pools=pool_size, maxsize=pool_size, retries=False)
        self.pool.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
        # Set by the app (app/__init__.py): the shared budget and breaker, and per provider its
        # rate-limit reader and quota scope (declared on ``Provider``).
        self.guard = None
        self.signals: dict[str, Callable] = {}
        self.scopes: dict[str, Callable[[str | None], str]] = {}

    @classmethod
    def from_config(cls, config) -> "Outbound":
        return cls(
            connect_timeout=config["HTTP_CONNECT_TIMEOUT"],
            read_timeout=config["HTTP_READ_TIMEOUT"],
            deadline=config["HTTP_DEADLINE"],
            max_retries=config["HTTP_MAX_RETRIES"],
            pool_size=config["HTTP_POOL_SIZE"],
        )

    def call(
        self,
        provider: str,
        method: str,
        url: str,
        *,
        expected: Target,
        headers: dict[str, str],
        json: object = None,
        data: dict | None = None,
        content: bytes | None = None,
        idempotent: bool,
        classify: Callable[[Response], Retry | None] | None = None,
        deadline: float | None = None,
        peer_check: Callable[[str], None] | None = None,
        any_status: bool = False,
        account: str | None = None,
    ) -> Outcome:
        """One provider call within ``deadline`` (a ``time.monotonic()`` instant; by default
        ``HTTP_DEADLINE`` from now — a provider passes its own when several calls, such as a token
        grant and the query it serves, share one request's budget).

        ``peer_check(ip)`` raises ``AddressRefused`` for an address a new connection must not use
        (org webhook endpoints: app/deliveries.py). ``any_status``: every non-3xx answer is
        returned as it is, 429 and 5xx included, never retried here (the caller keeps its own
        schedule).
        ``account`` (the account key) puts the call under the account's shared budget and
        circuit breaker (app/quota.py)."""
        check_url(url, expected, provider)
        send = dict(json=json, data=data, content=content, idempotent=idempotent, classify=classify,
                    deadline=deadline, peer_check=peer_check, any_status=any_status)
        if account is None or self.guard is None:
            return self._call(provider, method, url, headers, seen=None, **send)
        scope = self.scopes.get(provider)
        ticket = self.guard.admit(provider, scope(account) if scope else account, _org_id(),
                                  lease=self.deadline)
        seen: list[Response] = []
        failed = False
        try:
            return self._call(provider, method, url, headers, seen=seen, **send)
        except (UpstreamTimeout, UpstreamUnreachable):  # UpstreamOutcomeUnknown included
            failed = True
            raise
        except UpstreamBadResponse:
            failed = bool(seen) and seen[-1].status_code >= 500
            raise
        finally:
            read = self.signals.get(provider)
            reading = None
            if seen:
                try:
                    reading = read(seen[-1]) if read else None
                except Exception:  # noqa: BLE001 — a reader's bug must not fail the call
                    log.exception("rate-limit reader for %s failed", provider)
                if reading is None and seen[-1].status_code == 429:
                    reading = _retry_after_reading(seen[-1])
            self.guard.record(ticket, reading, failed)

    def _call(self, provider, method, url, headers, *, json, data, content, idempotent, classify, deadline,
              peer_check, any_status, seen):
        headers = dict(headers)
        body = None
        if json is not None:
            body = jsonlib.dumps(json, separators=(",", ":")).encode()
            headers.setdefault("Content-Type", "application/json")  # JSON:API sends its own type
        elif data is not None:
            body = urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif content is not None:
            body = content  # sent byte for byte (a signed body); the caller sets Content-Type
        started = time.monotonic()
        if deadline is None:
            deadline = started + self.deadline
        ticket = _watchdog.arm(deadline)
        _current.ticket = ticket
        _current.peer_check = peer_check
        try:
            return self._attempts(provider, method, url, body, headers, idempotent, classify,
                                  started, deadline, ticket, seen, any_status)
        finally:
            _current.ticket = None
            _current.peer_check = None
            _watchdog.disarm(ticket)

    def _exchange(self, provider, method, url, body, headers, timeout, deadline, ticket) -> Response:
        """One attempt: send, read the whole answer. Whatever fails after the watchdog fired is a
        timeout (the failure is the socket it shut down)."""
        try:
            raw = self.pool.request(
                method, url, body=body, headers=headers, redirect=False, retries=False,
                timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1]),
                preload_content=False,
            )
            response = Response(raw.status, raw.headers, _read_body(raw, deadline, provider))
        except (u3.HTTPError, OSError):
            if ticket.fired:
                raise UpstreamTimeout(provider, f"{provider} did not finish answering in time.") from None
            raise
        if ticket.fired:  # an answer cut short by the watchdog can look complete
            raise UpstreamTimeout(provider, f"{provider} did not finish answering in time.")
        return response

    def _attempts(self, provider, method, url, body, headers, idempotent, classify,
                  started, deadline, ticket, seen, any_status=False) -> Outcome:
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise UpstreamTimeout(provider, f"{provider} did not answer in time.")
            timeout = (min(self.connect_timeout, remaining), min(self.read_timeout, remaining))
            wait: float | None = None
            try:
                response = self._exchange(provider, method, url, body, headers, timeout, deadline, ticket)
                if seen is not None:
                    seen.append(response)
            except UpstreamTimeout:
                # The deadline passed while the request was out (the watchdog, or a dripped body):
                # for a write, it may have run.
                if not idempotent:
                    raise _unknown(provider) from None
                raise
            except u3.NewConnectionError:
                # Refused or unresolvable: nothing was sent, so any method may be retried.
                failure: Exception = UpstreamUnreachable(provider, f"Could not reach {provider}.")
                wait = self._backoff(attempt)
            except u3.ConnectTimeoutError:
                failure = UpstreamTimeout(provider, f"{provider} did not accept a connection in time.")
                wait = self._backoff(attempt)
            except u3.ReadTimeoutError:
                failure = UpstreamTimeout(provider, f"{provider} did not answer in time.")
                if not idempotent:
                    raise _unknown(provider) from None  # the request was sent: never re-send blindly
                wait = self._backoff(attempt)
            except (u3.ProtocolError, u3.SSLError, u3.ProxyError):
                failure = UpstreamUnreachable(provider, f"Lost the connection to {provider}.")
                if not idempotent:
                    # The connection broke after it was made: the request may have been sent.
                    raise _unknown(provider) from None
                wait = self._backoff(attempt)
            except u3.HTTPError:
                raise UpstreamBadResponse(provider, f"Unusable answer from {provider}.") from None
            else:
                elapsed_ms = (time.monotonic() - started) * 1000
                if 300 <= response.status_code < 400:
                    raise UpstreamBadResponse(provider, f"{provider} answered with a redirect, which is never followed.")
                verdict = classify(response) if classify else None
                if not any_status and (response.status_code in RETRY_STATUSES or verdict is not None):
                    hinted = verdict.after if verdict else retry_after_seconds(response.headers.get("Retry-After"))
                    if response.status_code == 429 or verdict is not None:
                        failure = UpstreamRateLimited(provider, int(round(hinted or 1)))
                    else:
                        failure = UpstreamBadResponse(provider, f"{provider} failed with HTTP {response.status_code}.")
                    if not idempotent:
                        raise failure
                    wait = hinted if hinted is not None else self._backoff(attempt)
                else:
                    return Outcome(response=response, attempts=attempt, elapsed_ms=elapsed_ms)
            # Retry only when attempts remain and the wait still fits inside the deadline.
            if attempt > self.max_retries or time.monotonic() + wait >= deadline:
                raise failure
            self._sleep(wait)

    @staticmethod
    def _backoff(attempt: int) -> float:
        ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)



def _unknown(provider: str) -> UpstreamOutcomeUnknown:
    return UpstreamOutcomeUnknown(
        provider, f"{provider} did not answer a write that may have been carried out; it was not "
                  "sent again. Check its result before retrying (or retry with the same Idempotency-Key).")


def _retry_after_reading(response: Response):
    from app.quota import Reading

    return Reading(wait=retry_after_seconds(response.headers.get("Retry-After")) or 1.0)


def _org_id() -> str:
    """The org on whose behalf this call is made (fairness counts per org), or ``-`` outside a
    request (CLI checks)."""
    from flask import g, has_app_context

    org = g.get("org") if has_app_context() else None
    return str(org.id) if org is not None else "-"
