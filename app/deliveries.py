"""Delivering stored events to each org's endpoint: the outbox worker, endpoint safety, signing.

::

    deliveries rows (pending, due) ─▶ claim as many as there are free threads (PostgreSQL: one
      statement, FOR UPDATE SKIP LOCKED, that also reads each attempt's event and endpoint;
      SQLite: a SELECT, then a conditional UPDATE) ─▶ on a thread of the worker's pool:
      endpoint URL checked again (scheme, every resolved address) ─▶ POST through
      app/outbound.py, signed with ``standardwebhooks`` (webhook-id/-timestamp/-signature),
      no redirects, the address actually connected to checked ─▶ delivered | retry later | dead,
      written with the attempt's ``delivery.attempted`` audit row (PostgreSQL: one statement;
      SQLite: one transaction)

Retries follow ``SCHEDULE`` (delays after each failed attempt, ±20 % jitter): 5 s, 5 min,
30 min, 2 h, 5 h, 10 h, 10 h — eight attempts over about 27.6 hours, then ``dead``. 410 Gone
dead-letters at once (the receiver said the endpoint is gone). A claim is a lease
(``WEBHOOK_DELIVERY_TIMEOUT`` + 60 s): a worker that dies mid-attempt leaves a row another
worker takes over once the lease ends; a worker whose lease was taken writes nothing.

Endpoint secrets are not stored: ``whsec_`` + base64(HMAC-SHA256(WEBHOOK_SIGNING_KEY,
"switchboard/webhook-endpoint/v1:<org id>:<salt>")). The salt (random, useless without the
server key) is in the row; a new PUT draws a new salt — the secret rotates.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import secrets
import socket
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta, timezone

import click
import sqlalchemy as sa
from flask import Flask, current_app
from flask.cli import AppGroup
from standardwebhooks import Webhook
from urllib3.util import parse_url

from app import audit, pagination
from app.errors import (
    Conflict,
    NotFound,
    UpstreamError,
    ValidationFailed,
    WebhooksNotConfigured,
)
from app.extensions import autocommit, db
from app.models import Delivery, InboundEvent, WebhookEndpoint
from app.models.base import utcnow
from app.outbound import AddressRefused, Outbound, Target

log = logging.getLogger("switchboard.deliveries")

SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)  # seconds after failed attempt 1..7
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.2
LEASE_MARGIN = 60
USER_AGENT = "Switchboard-Webhooks/1"
UNSAFE = "unsafe_webhook_url"


# --- the endpoint and its secret ------------------------------------------------------------------


def _signing_key() -> bytes:
    key = current_app.config.get("WEBHOOK_SIGNING_KEY")
    if key is None:
        raise WebhooksNotConfigured("The platform has not enabled webhook delivery (WEBHOOK_SIGNING_KEY); ask the operator.")
    return key.reveal().encode()


def endpoint_secret(endpoint: WebhookEndpoint) -> str:
    return derive_secret(endpoint.organization_id, endpoint.secret_salt)


def derive_secret(organization_id, salt: str) -> str:
    message = f"switchboard/webhook-endpoint/v1:{organization_id}:{salt}".encode()
    return "whsec_" + base64.b64encode(hmac.new(_signing_key(), message, hashlib.sha256).digest()).decode()


def get_endpoint(org_id) -> WebhookEndpoint:
    endpoint = db.session.execute(WebhookEndpoint.for_org(org_id)).scalar_one_or_none()
    if endpoint is None:
        raise NotFound("This organization has no webhook endpoint.", code="webhook_endpoint_not_set")
    return endpoint


def set_endpoint(org_id, url: str, *, actor: str) -> tuple[WebhookEndpoint, str, bool]:
    """Set (or replace) the org's endpoint; a new secret every time, returned once."""
    _signing_key()
    url = check_url(url, sandbox=current_app.config["SANDBOX"])
    endpoint = db.session.execute(WebhookEndpoint.for_org(org_id)).scalar_one_or_none()
    created = endpoint is None
    if created:
        endpoint = WebhookEndpoint(organization_id=org_id)
        db.session.add(endpoint)
    endpoint.url = url
    endpoint.secret_salt = secrets.token_hex(16)
    endpoint.updated_at = utcnow()
    audit.record(audit.Action.WEBHOOK_ENDPOINT_SET, organization_id=org_id, actor=actor,
                 target=parse_url(url).host, detail={"created": created})
    db.session.commit()
    return endpoint, endpoint_secret(endpoint), created


def delete_endpoint(org_id, *, actor: str) -> None:
    endpoint = get_endpoint(org_id)
    db.session.delete(endpoint)
    audit.record(audit.Action.WEBHOOK_ENDPOINT_DELETED, organization_id=org_id, actor=actor)
    db.session.commit()


# --- URL safety ---------------------------------------------------------------------------------


def address_allowed(address: str, *, sandbox: bool) -> bool:
    """Public unicast only: no loopback, private, link-local (cloud metadata: 169.254.169.254,
    fd00:ec2::254), shared, reserved or multicast address. Loopback is allowed in the sandbox
    only, where the demo's and the tests' receivers run on this machine."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return sandbox
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, sandbox: bool) -> str:
    """The URL, if an org may receive at it: https (http in the sandbox), no credentials in it,
    every address its host resolves to allowed. Raises 422 ``unsafe_webhook_url`` naming ``url``."""
    def refuse(message: str):
        return ValidationFailed("url", message, code=UNSAFE)

    if not isinstance(url, str) or len(url) > 2048 or not url.isascii() or any(c.isspace() for c in url):
        raise refuse("must be an ASCII URL of at most 2048 characters without spaces")
    try:
        parsed = parse_url(url)
    except Exception:  # noqa: BLE001 - urllib3's parser raises LocationParseError and friends
        raise refuse("is not a URL") from None
    if parsed.scheme not in (("https", "http") if sandbox else ("https",)):
        raise refuse("must use https" + (" (or http in the sandbox)" if sandbox else ""))
    if not parsed.host or parsed.auth is not None or parsed.fragment is not None:
        raise refuse("must name a host, without user:password@ or #fragment")
    for address in _resolve(parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)):
        if not address_allowed(address, sandbox=sandbox):
            raise refuse("resolves to a loopback, private, link-local or otherwise non-public address")
    return parsed.url


def _resolve(host: str, port: int) -> list[str]:
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise ValidationFailed("url", "does not resolve to an address", code=UNSAFE) from None
    return sorted({info[4][0] for info in infos})


# --- the org's view: events, redelivery --------------------------------------------------------


def events_page(org_id, *, limit=50, cursor=None, status=None, provider=None):
    """Newest first. ``org_id=None``: every event (admin), ``status`` filters attributed/unattributed."""
    query = sa.select(InboundEvent)
    if org_id is not None:
        query = InboundEvent.for_org(org_id)
    if status:
        query = query.where(InboundEvent.status == status)
    if provider:
        query = query.where(InboundEvent.provider == provider)
    rows, next_cursor = pagination.page(query, kind="events", order=[InboundEvent.received_at, InboundEvent.id],
                                        limit=limit, cursor=cursor, descending=True)
    ids = [row.id for row in rows]
    deliveries = {d.event_id: d for d in db.session.execute(
        sa.select(Delivery).where(Delivery.event_id.in_(ids))).scalars()} if ids else {}
    return [event_view(row, deliveries.get(row.id)) for row in rows], next_cursor


def event_view(event: InboundEvent, delivery: Delivery | None) -> dict:
    return {
        "id": event.id,
        "type": f"{event.provider}.{event.topic}",
        "provider": event.provider,
        "topic": event.topic,
        "account": event.account_key,
        "organization_id": event.organization_id,
        "received_at": event.received_at,
        "data": event.payload,
        "delivery": None if delivery is None else {
            "status": delivery.status,
            "attempts": delivery.attempts,
            "next_attempt_at": delivery.next_attempt_at if delivery.status == "pending" else None,
            "last_status_code": delivery.last_status_code,
            "last_error": delivery.last_error,
            "delivered_at": delivery.delivered_at,
        },
    }


def get_event(org_id, event_id: uuid.UUID) -> dict:
    event = db.session.execute(InboundEvent.for_org(org_id).where(InboundEvent.id == event_id)).scalar_one_or_none()
    if event is None:
        raise NotFound("No such event for this organization.", code="event_not_found")
    delivery = db.session.execute(sa.select(Delivery).where(Delivery.event_id == event.id)).scalar_one_or_none()
    return event_view(event, delivery)


def redeliver(org_id, event_id: uuid.UUID, *, actor: str) -> dict:
    """Queue the event again, now, with a fresh attempt budget (one row, one UPDATE)."""
    view = get_event(org_id, event_id)
    get_endpoint(org_id)  # 404 webhook_endpoint_not_set: nowhere to deliver
    now = utcnow()
    changed = db.session.execute(
        sa.update(Delivery)
        .where(Delivery.event_id == event_id, Delivery.organization_id == org_id, Delivery.status != "delivering")
        .values(status="pending", attempts=0, next_attempt_at=now, lease_owner=None, lease_until=None,
                last_error=None, updated_at=now)
    ).rowcount
    if not changed:
        db.session.rollback()
        raise Conflict("This event is being delivered right now; try again shortly.", code="delivery_in_progress")
    audit.record(audit.Action.EVENT_REDELIVERY, organization_id=org_id, actor=actor, provider=view["provider"],
                 detail={"event": str(event_id)})
    db.session.commit()
    return get_event(org_id, event_id)


# --- the worker ---------------------------------------------------------------------------------

_d, _e, _w = Delivery.__table__, InboundEvent.__table__, WebhookEndpoint.__table__
# One read per attempt: the claimed row, its event and the org's endpoint (None: no endpoint).
_ATTEMPT = (
    sa.select(_d.c.attempts, _d.c.organization_id, _e.c.id.label("event_id"), _e.c.provider, _e.c.topic,
              _e.c.account_key, _e.c.received_at, _e.c.payload, _w.c.url, _w.c.secret_salt)
    .select_from(_d.join(_e, _e.c.id == _d.c.event_id)
                 .outerjoin(_w, _w.c.organization_id == _d.c.organization_id))
    .where(_d.c.id == sa.bindparam("delivery_id"))
)


def _due(now):
    return sa.or_(
        sa.and_(_d.c.status == "pending", _d.c.next_attempt_at <= now),
        sa.and_(_d.c.status == "delivering", _d.c.lease_until < now),
    )


# Built once (the worker runs them for every delivery); the values are bound at each call.
_NOW = sa.bindparam("now", type_=_d.c.next_attempt_at.type)
_CANDIDATES = (sa.select(_d.c.id).where(_due(_NOW)).order_by(_d.c.next_attempt_at, _d.c.id)
               .limit(sa.bindparam("limit", type_=sa.Integer)).with_for_update(skip_locked=True))
_CLAIM = (
    sa.update(_d)
    .where(_d.c.id.in_(sa.bindparam("ids", expanding=True)), _due(_NOW))
    .values(status="delivering", lease_owner=sa.bindparam("owner"),
            lease_until=sa.bindparam("lease", type_=_d.c.lease_until.type),
            attempts=_d.c.attempts + 1, updated_at=_NOW)
    .returning(_d.c.id)
)
# The SET clause is whatever columns the call passes; the lease is checked by the WHERE.
_FINISH = sa.update(_d).where(_d.c.id == sa.bindparam("b_id"), _d.c.lease_owner == sa.bindparam("b_owner"),
                              _d.c.status == "delivering")


# PostgreSQL: the claim and the attempts' reads in one statement. The candidates are a
# MATERIALIZED CTE: evaluated once (a LIMIT subquery inlined into the UPDATE may be evaluated
# more than once and claim more rows than asked for), their rows locked SKIP LOCKED.
_CANDIDATES_ONCE = _CANDIDATES.cte("candidates").prefix_with("MATERIALIZED")
_CLAIMED = (
    sa.update(_d)
    .where(_d.c.id == _CANDIDATES_ONCE.c.id)
    .values(status="delivering", lease_owner=sa.bindparam("owner"),
            lease_until=sa.bindparam("lease", type_=_d.c.lease_until.type),
            attempts=_d.c.attempts + 1, updated_at=_NOW)
    .returning(_d.c.id, _d.c.attempts, _d.c.organization_id, _d.c.event_id)
    .cte("claimed")
)
_CLAIM_AND_READ = (
    sa.select(_CLAIMED.c.id, _CLAIMED.c.attempts, _CLAIMED.c.organization_id, _e.c.id.label("event_id"),
              _e.c.provider, _e.c.topic, _e.c.account_key, _e.c.received_at, _e.c.payload, _w.c.url,
              _w.c.secret_salt)
    .select_from(_CLAIMED.join(_e, _e.c.id == _CLAIMED.c.event_id)
                 .outerjoin(_w, _w.c.organization_id == _CLAIMED.c.organization_id))
    .order_by(_CLAIMED.c.id)
)


def _lease(now):
    return now + timedelta(seconds=current_app.config["WEBHOOK_DELIVERY_TIMEOUT"] + LEASE_MARGIN)


def claim_many(owner: str, limit: int) -> list[int]:
    """Take up to ``limit`` due deliveries under a lease, oldest due first; [] when nothing is due.

    The candidates are chosen with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (two workers never
    wait on, nor take, the same row). It is a SELECT of its own, not an ``IN (subquery)`` of the
    UPDATE: PostgreSQL may evaluate such a LIMIT subquery more than once and claimed 3 rows for
    a LIMIT of 1 in the tests. The UPDATE repeats the due condition, so on SQLite — which has no row locks, and serialises
    writers — it is a conditional claim: of two workers racing for one row, one updates it and
    the other updates nothing.
    """
    now = utcnow()
    with db.engine.begin() as connection:
        ids = connection.execute(_CANDIDATES, {"now": now, "limit": limit}).scalars().all()
        if not ids:
            return []
        claimed = connection.execute(_CLAIM, {"now": now, "ids": ids, "owner": owner, "lease": _lease(now)})
        return sorted(claimed.scalars().all())


def claim_attempts(owner: str, limit: int) -> list[tuple[int, object]]:
    """``claim_many``, with each claimed row's attempt data when it comes at no cost:
    [(delivery id, the row ``deliver`` reads, or None: ``deliver`` reads it)].

    On PostgreSQL one statement in autocommit (``_CLAIM_AND_READ``) claims and reads: one round
    trip per claim instead of a transaction of two statements plus one read per delivery.
    """
    if db.engine.dialect.name != "postgresql":
        return [(delivery_id, None) for delivery_id in claim_many(owner, limit)]
    now = utcnow()
    with current_app.extensions["autocommit_engine"].connect() as connection:
        rows = connection.execute(_CLAIM_AND_READ, {"now": now, "limit": limit, "owner": owner,
                                                    "lease": _lease(now)}).all()
    return [(row.id, row) for row in rows]


def claim(owner: str) -> int | None:
    """Take one due delivery under a lease (``claim_many`` of one); None when nothing is due."""
    claimed = claim_many(owner, 1)
    return claimed[0] if claimed else None


_FINISH_AND_AUDIT: dict[frozenset, sa.Select] = {}  # PostgreSQL, per set of columns written


def _finish_and_audit(columns: frozenset) -> sa.Select:
    """PostgreSQL: ``_FINISH`` and the attempt's audit row in one statement; it answers whether
    the lease was still held (the audit row's detail says ``lease_lost`` when not)."""
    done = (sa.update(_d)
            .where(_d.c.id == sa.bindparam("b_id"), _d.c.lease_owner == sa.bindparam("b_owner"),
                   _d.c.status == "delivering")
            .values({name: sa.bindparam(f"set_{name}", type_=_d.c[name].type) for name in columns})
            .returning(_d.c.id)
            .cte("done"))
    held = sa.exists(sa.select(done.c.id))
    detail = audit.param("detail")
    lost = detail.op("||", return_type=detail.type)(sa.func.jsonb_build_object("lease_lost", sa.true()))
    row = audit.insert_from(detail=sa.case((held, detail), else_=lost))
    return sa.select(held).add_cte(done).add_cte(row.cte("audit_row"))


def _finish(delivery_id: int, owner: str, *, attempt: dict | None = None, **values) -> bool:
    """Write an attempt's result if this worker still holds the lease; False when it does not
    (another worker took the row over: the result is not written). ``attempt``: the audit
    row's facts, written in the same transaction — whether or not the lease was still held, as
    the attempt happened either way. On PostgreSQL, with an audit row: one statement."""
    values.update(updated_at=utcnow())
    values.setdefault("lease_owner", None)
    values.setdefault("lease_until", None)
    if attempt is not None and db.engine.dialect.name == "postgresql":
        columns = frozenset(values)
        statement = _FINISH_AND_AUDIT.get(columns)
        if statement is None:
            statement = _FINISH_AND_AUDIT[columns] = _finish_and_audit(columns)
        params = {f"set_{name}": value for name, value in values.items()}
        params.update(audit.params(audit.row(audit.Action.DELIVERY_ATTEMPTED, **attempt)),
                      b_id=delivery_id, b_owner=owner)
        return bool(autocommit(statement, params)[0])
    values.update(b_id=delivery_id, b_owner=owner)
    with db.engine.begin() as connection:
        done = connection.execute(_FINISH, values).rowcount
        if attempt is not None:
            if not done:
                attempt["detail"]["lease_lost"] = True
            audit.record(audit.Action.DELIVERY_ATTEMPTED, connection=connection, **attempt)
    return bool(done)


def retry_delay(attempts: int) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones; None: dead-letter."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = SCHEDULE[attempts - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def deliver(delivery_id: int, owner: str, row=None) -> str:
    """One attempt for a claimed delivery; returns the row's new status. Each attempt leaves an
    audit row (``delivery.attempted``: outcome, status code, attempt number, duration — never
    the endpoint's secret, its URL path, or the payload). ``row``: the attempt's data when the
    claim read it (``claim_attempts``)."""
    started = time.perf_counter()
    if row is None:
        row = autocommit(_ATTEMPT, {"delivery_id": delivery_id})  # no transaction held during the POST
    if row is None:  # the event was deleted under the claim (its org went): nothing to attempt
        return "no_endpoint"

    def finish(status: str, code: int | None, error: str | None, **values) -> str:
        target = parse_url(row.url).host if row.url else None
        detail = {"event": str(row.event_id), "delivery": delivery_id, "attempt": row.attempts, "result": status,
                  "duration_ms": round((time.perf_counter() - started) * 1000, 1)}
        if error:
            detail["error"] = error.split(":", 1)[0][:64]  # the code only: the rest may quote the endpoint
        _finish(delivery_id, owner, status=status, last_status_code=code, last_error=error, **values,
                attempt={"outcome": "success" if status == "delivered" else "failure", "provider": row.provider,
                         "target": target, "status_code": code, "organization_id": row.organization_id,
                         "actor": "system", "latency_ms": detail["duration_ms"], "detail": detail})
        return status

    if row.url is None:
        return finish("no_endpoint", None, "the organization has no webhook endpoint")
    status_code, error = _post(row)
    if status_code is not None and 200 <= status_code < 300:
        return finish("delivered", status_code, None, delivered_at=utcnow())
    delay = None if status_code == 410 else retry_delay(row.attempts)
    if delay is None:
        log.warning("delivery %s dead-lettered after %d attempts", delivery_id, row.attempts)
        return finish("dead", status_code, error)
    return finish("pending", status_code, error, next_attempt_at=utcnow() + timedelta(seconds=delay))


def _post(row) -> tuple[int | None, str | None]:
    """(status code, error) of one signed POST of the attempt's event to its org's endpoint;
    never raises for the endpoint's faults."""
    sandbox = current_app.config["SANDBOX"]
    try:
        url = check_url(row.url, sandbox=sandbox)  # DNS may have changed since the PUT
    except ValidationFailed as exc:
        return None, f"{UNSAFE}: {exc.extra['errors'][0]['message']}"
    view = {"id": row.event_id, "type": f"{row.provider}.{row.topic}", "provider": row.provider,
            "topic": row.topic, "account": row.account_key, "received_at": row.received_at, "data": row.payload}
    body = json.dumps(view, default=_json_default, separators=(",", ":"), sort_keys=True)
    message_id = f"msg_{row.event_id.hex}"
    now = datetime.now(timezone.utc)
    signature = Webhook(derive_secret(row.organization_id, row.secret_salt)).sign(message_id, now, body)
    headers = {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json",
    }

    def peer_check(address: str) -> None:
        if not address_allowed(address, sandbox=sandbox):
            raise AddressRefused("the endpoint connected to a non-public address")

    outbound: Outbound = current_app.extensions["delivery_outbound"]
    timeout = current_app.config["WEBHOOK_DELIVERY_TIMEOUT"]
    try:
        outcome = outbound.call("webhook endpoint", "POST", url, expected=Target.of(url), headers=headers,
                                content=body.encode(), idempotent=False, any_status=True, peer_check=peer_check,
                                deadline=time.monotonic() + timeout)
    except AddressRefused:
        return None, f"{UNSAFE}: connected to a non-public address; nothing was sent"
    except UpstreamError as exc:
        return None, f"{exc.code}: {exc.detail}"[:255]
    code = outcome.response.status_code
    return code, None if 200 <= code < 300 else f"endpoint answered HTTP {code}"


def _json_default(value):
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(type(value).__name__)


class Worker:
    """Claims due deliveries and attempts up to ``concurrency`` of them at once, each on a thread
    of a bounded pool (an attempt is mostly waiting on the org's endpoint). A row is claimed only
    when a thread is free to attempt it at once, so no lease runs out while a row waits its turn.
    Several processes may run it: the claim is what keeps two attempts of one delivery apart."""

    def __init__(self, app: Flask, concurrency: int):
        self.app, self.concurrency = app, concurrency
        self.owner = uuid.uuid4().hex
        self.pool = ThreadPoolExecutor(concurrency, thread_name_prefix="delivery")
        self.inflight: set[Future] = set()
        self.counts = dict.fromkeys(("claimed", "delivered", "pending", "dead", "no_endpoint", "error"), 0)

    def _attempt(self, delivery_id: int, row) -> str:
        with self.app.app_context():
            try:
                return deliver(delivery_id, self.owner, row)
            except Exception:  # noqa: BLE001 - the row stays leased; another claim takes it after the lease
                log.exception("delivery %s: the attempt failed inside Switchboard", delivery_id)
                return "error"

    def fill(self, limit: int | None = None) -> int:
        """Claim as many due rows as there are free threads (at most ``limit``) and start them."""
        free = self.concurrency - len(self.inflight)
        if limit is not None:
            free = min(free, limit)
        if free <= 0:
            return 0
        with self.app.app_context():
            claimed = claim_attempts(self.owner, free)
        for delivery_id, row in claimed:
            self.inflight.add(self.pool.submit(self._attempt, delivery_id, row))
        self.counts["claimed"] += len(claimed)
        return len(claimed)

    def reap(self, timeout: float | None) -> int:
        """Wait up to ``timeout`` for at least one attempt to end; count the ended ones."""
        if not self.inflight:
            return 0
        done, self.inflight = wait(self.inflight, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            self.counts[future.result()] += 1
        return len(done)

    def summary(self) -> dict:
        counts = dict(self.counts)
        counts["retrying"] = counts.pop("pending")
        if not counts["error"]:
            counts.pop("error")
        return counts

    def close(self) -> None:
        while self.inflight:
            self.reap(None)
        self.pool.shutdown()


def run_batch(limit: int, *, budget: float | None = None, concurrency: int = 4) -> dict:
    """Claim and deliver up to ``limit`` due deliveries, ``concurrency`` at a time; no new claim
    after ``budget`` seconds (attempts already started finish: each is bounded by the timeout)."""
    worker = Worker(current_app._get_current_object(), max(1, min(concurrency, limit)))
    started = time.monotonic()
    try:
        while worker.counts["claimed"] < limit:
            if budget is not None and time.monotonic() - started >= budget:
                break
            free = worker.concurrency - len(worker.inflight)
            if worker.fill(limit - worker.counts["claimed"]) < min(free, limit - worker.counts["claimed"]):
                break  # fewer due than asked for: nothing more is due
            worker.reap(None)
    finally:
        worker.close()
    return worker.summary()


FIRST_IDLE = 0.01  # the first look after the work ran out; then twice as long each time, up to ``idle``


def run_forever(app: Flask, *, concurrency: int, idle: float, report=None) -> None:
    """The long-running worker: keep every thread busy while deliveries are due; when none is,
    look again after 10 ms, then twice as long each time up to ``idle`` seconds (a claim that
    finds nothing is one indexed statement): an event stored just after the work ran out waits
    milliseconds, not ``idle``, and an idle worker still looks only every ``idle`` seconds."""
    worker = Worker(app, concurrency)
    pause = min(FIRST_IDLE, idle)
    try:
        while True:
            try:
                started = worker.fill()
            except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError):
                log.warning("the database is unavailable; the delivery worker retries in %g s", pause)
                started = 0
            full = len(worker.inflight) >= worker.concurrency
            if worker.inflight:
                # Busy: wake on the first attempt that ends (a free thread), or after ``idle``
                # to look for newly due rows while some threads are still free.
                ended = worker.reap(None if full else idle)
                if report and ended:
                    report(worker)
            elif not started:
                time.sleep(pause)
                pause = min(pause * 2, idle)
            if started:
                pause = min(FIRST_IDLE, idle)
    finally:
        worker.close()


# --- wiring -------------------------------------------------------------------------------------

deliveries_cli = AppGroup("deliveries", help="Deliver stored webhook events to org endpoints.")


@deliveries_cli.command("run")
@click.option("--concurrency", default=8, show_default=True, type=click.IntRange(1, 64),
              help="Deliveries attempted at once (threads of this process).")
@click.option("--batch", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="With --once: deliveries claimed in that round.")
@click.option("--idle", default=0.25, show_default=True, type=click.FloatRange(0.01, 60),
              help="Longest pause between looks for due deliveries when none is due (the first is 10 ms).")
@click.option("--once", is_flag=True, help="One round, then exit (cron, tests).")
def run_command(concurrency, batch, idle, once):
    """Deliver due events; long-running unless --once. Safe to run as several processes."""
    if once:
        counts = run_batch(batch, concurrency=concurrency)
        click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
        return
    last = [time.monotonic()]

    def report(worker: Worker) -> None:  # one line every 10 s at most, not one per delivery
        if time.monotonic() - last[0] >= 10:
            last[0] = time.monotonic()
            click.echo(" ".join(f"{k}={v}" for k, v in worker.summary().items()))

    run_forever(current_app._get_current_object(), concurrency=concurrency, idle=idle, report=report)


def init_app(app: Flask) -> None:
    config = app.config
    # A pool of its own: org endpoints never share keep-alive connections with provider calls.
    app.extensions["delivery_outbound"] = Outbound(
        connect_timeout=min(config["HTTP_CONNECT_TIMEOUT"], config["WEBHOOK_DELIVERY_TIMEOUT"]),
        read_timeout=config["WEBHOOK_DELIVERY_TIMEOUT"], deadline=config["WEBHOOK_DELIVERY_TIMEOUT"],
        max_retries=0, pool_size=config["HTTP_POOL_SIZE"])
    app.cli.add_command(deliveries_cli)
