"""Delivering stored events to each org's endpoint: the outbox worker, endpoint safety, signing.

::

    deliveries row (pending, due) ─▶ claim (one conditional UPDATE; PostgreSQL: FOR UPDATE SKIP
      LOCKED) ─▶ endpoint URL checked again (scheme, every resolved address) ─▶ POST through
      app/outbound.py, signed with ``standardwebhooks`` (webhook-id/-timestamp/-signature),
      no redirects, the address actually connected to checked ─▶ delivered | retry later | dead

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
from app.extensions import db
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
    message = f"switchboard/webhook-endpoint/v1:{endpoint.organization_id}:{endpoint.secret_salt}".encode()
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


def _due(now):
    return sa.or_(
        sa.and_(Delivery.status == "pending", Delivery.next_attempt_at <= now),
        sa.and_(Delivery.status == "delivering", Delivery.lease_until < now),
    )


def claim(owner: str) -> int | None:
    """Take one due delivery under a lease; None when nothing is due.

    One statement: the candidate is chosen with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (two
    workers never wait on, nor take, the same row), and the UPDATE repeats the due condition,
    so on SQLite — which has no row locks, and serialises writers — it is a conditional claim:
    of two workers racing for one row, one updates it and the other updates nothing.
    """
    now = utcnow()
    lease = now + timedelta(seconds=current_app.config["WEBHOOK_DELIVERY_TIMEOUT"] + LEASE_MARGIN)
    candidate = (sa.select(Delivery.id).where(_due(now)).order_by(Delivery.next_attempt_at, Delivery.id)
                 .limit(1).with_for_update(skip_locked=True).scalar_subquery())
    try:
        claimed = db.session.execute(
            sa.update(Delivery).where(Delivery.id == candidate, _due(now))
            .values(status="delivering", lease_owner=owner, lease_until=lease,
                    attempts=Delivery.attempts + 1, updated_at=now)
            .returning(Delivery.id)
        ).scalar()
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return claimed


def _finish(delivery_id: int, owner: str, **values) -> bool:
    values["updated_at"] = utcnow()
    values.setdefault("lease_owner", None)
    values.setdefault("lease_until", None)
    done = db.session.execute(
        sa.update(Delivery).where(Delivery.id == delivery_id, Delivery.lease_owner == owner,
                                  Delivery.status == "delivering").values(**values)
    ).rowcount
    db.session.commit()
    return bool(done)


def retry_delay(attempts: int) -> float | None:
    """Seconds until the next attempt after ``attempts`` failed ones; None: dead-letter."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = SCHEDULE[attempts - 1]
    return base * random.uniform(1 - JITTER, 1 + JITTER)


def deliver(delivery_id: int, owner: str) -> str:
    """One attempt for a claimed delivery; returns the row's new status."""
    delivery = db.session.get(Delivery, delivery_id)
    event = db.session.get(InboundEvent, delivery.event_id)
    endpoint = db.session.execute(WebhookEndpoint.for_org(delivery.organization_id)).scalar_one_or_none()
    db.session.rollback()  # read only: hold no transaction (nor SQLite lock) during the HTTP call
    if endpoint is None:
        _finish(delivery_id, owner, status="no_endpoint", last_error="the organization has no webhook endpoint")
        return "no_endpoint"
    status_code, error = _post(endpoint, event)
    if status_code is not None and 200 <= status_code < 300:
        _finish(delivery_id, owner, status="delivered", delivered_at=utcnow(), last_status_code=status_code,
                last_error=None)
        return "delivered"
    delay = None if status_code == 410 else retry_delay(delivery.attempts)
    if delay is None:
        _finish(delivery_id, owner, status="dead", last_status_code=status_code, last_error=error)
        log.warning("delivery %s dead-lettered after %d attempts", delivery_id, delivery.attempts)
        return "dead"
    _finish(delivery_id, owner, status="pending", last_status_code=status_code, last_error=error,
            next_attempt_at=utcnow() + timedelta(seconds=delay))
    return "pending"


def _post(endpoint: WebhookEndpoint, event: InboundEvent) -> tuple[int | None, str | None]:
    """(status code, error) of one signed POST; never raises for the endpoint's faults."""
    sandbox = current_app.config["SANDBOX"]
    try:
        url = check_url(endpoint.url, sandbox=sandbox)  # DNS may have changed since the PUT
    except ValidationFailed as exc:
        return None, f"{UNSAFE}: {exc.extra['errors'][0]['message']}"
    view = event_view(event, None)
    view.pop("delivery")
    view.pop("organization_id")
    body = json.dumps(view, default=_json_default, separators=(",", ":"), sort_keys=True)
    message_id = f"msg_{event.id.hex}"
    now = datetime.now(timezone.utc)
    signature = Webhook(endpoint_secret(endpoint)).sign(message_id, now, body)
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


def run_batch(limit: int, *, budget: float | None = None) -> dict:
    """Claim and deliver up to ``limit`` due deliveries, one at a time, within ``budget`` seconds."""
    owner = uuid.uuid4().hex
    started = time.monotonic()
    counts = {"claimed": 0, "delivered": 0, "pending": 0, "dead": 0, "no_endpoint": 0}
    while counts["claimed"] < limit:
        if budget is not None and time.monotonic() - started >= budget:
            break
        delivery_id = claim(owner)
        if delivery_id is None:
            break
        counts["claimed"] += 1
        counts[deliver(delivery_id, owner)] += 1
    counts["retrying"] = counts.pop("pending")
    return counts


# --- wiring -------------------------------------------------------------------------------------

deliveries_cli = AppGroup("deliveries", help="Deliver stored webhook events to org endpoints.")


@deliveries_cli.command("run")
@click.option("--batch", default=20, show_default=True, help="Deliveries claimed per round.")
@click.option("--idle", default=2.0, show_default=True, help="Seconds to sleep when nothing is due.")
@click.option("--once", is_flag=True, help="One round, then exit (cron, tests).")
def run_command(batch, idle, once):
    """Deliver due events; long-running unless --once. Safe to run as several processes."""
    while True:
        counts = run_batch(batch)
        if counts["claimed"]:
            click.echo(" ".join(f"{k}={v}" for k, v in counts.items()))
        if once:
            return
        if counts["claimed"] < batch:
            time.sleep(idle)


def init_app(app: Flask) -> None:
    config = app.config
    # A pool of its own: org endpoints never share keep-alive connections with provider calls.
    app.extensions["delivery_outbound"] = Outbound(
        connect_timeout=min(config["HTTP_CONNECT_TIMEOUT"], config["WEBHOOK_DELIVERY_TIMEOUT"]),
        read_timeout=config["WEBHOOK_DELIVERY_TIMEOUT"], deadline=config["WEBHOOK_DELIVERY_TIMEOUT"],
        max_retries=0, pool_size=config["HTTP_POOL_SIZE"])
    app.cli.add_command(deliveries_cli)
