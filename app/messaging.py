"""The 24-hour messaging window, shared by Messenger and WhatsApp sends.

Both platforms allow free-form messages only within 24 hours of the customer's last message to
the business. Outside it, Meta refuses the send (code 10, subcode 2018278) and Twilio accepts it
and fails it later (63016, in the status callback): Switchboard's own check is the only
synchronous protection a chatbot gets, and it runs before anything is sent::

    webhook (inbound message) ──▶ record_inbound(org, channel, customer, at)   [one row per customer]
    send ──▶ validate ──▶ require_window(...) ──▶ 422 outside_messaging_window  (nothing sent)
                                    └─ template (WhatsApp) or message tag (Messenger): no check

``record_inbound`` runs in the caller's transaction (``db.session``, not committed here): the
webhook side stores the event, its audit row and the window together.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from flask import current_app
from marshmallow import ValidationError as MarshmallowError
from marshmallow import fields
from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from app.errors import SwitchboardError
from app.extensions import autocommit, db
from app.models import MessagingWindow

WINDOW = timedelta(hours=24)
CHANNELS = ("messenger", "whatsapp")

_table = MessagingWindow.__table__
_LAST = sa.select(_table.c.last_inbound_at).where(
    _table.c.organization_id == sa.bindparam("org_id"),
    _table.c.channel == sa.bindparam("channel"),
    _table.c.customer == sa.bindparam("customer"),
)


class OutsideMessagingWindow(SwitchboardError):
    status = 422
    code = "outside_messaging_window"
    title = "Outside the messaging window"


def canonical_customer(channel: str, customer: str) -> str:
    """Twilio writes ``whatsapp:+15551234567``; the window is kept for ``+15551234567``."""
    if channel == "whatsapp" and customer.startswith("whatsapp:"):
        return customer[len("whatsapp:"):]
    return customer


def _keep_latest(statement):
    """``statement`` (an INSERT into the windows) made an upsert that never moves a window back."""
    excluded = statement.excluded.last_inbound_at
    return statement.on_conflict_do_update(
        index_elements=["organization_id", "channel", "customer"],
        set_={"last_inbound_at": sa.case((excluded > _table.c.last_inbound_at, excluded),
                                         else_=_table.c.last_inbound_at)},
    )


# Built once: the webhook hot path runs it for every inbound message.
_UPSERT = {"postgresql": _keep_latest(postgresql.insert(_table)), "sqlite": _keep_latest(sqlite.insert(_table))}


def _values(channel: str, customer: str, at: datetime) -> dict:
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    if at.tzinfo is None:
        raise ValueError("at must be timezone-aware")
    return {"channel": channel, "customer": canonical_customer(channel, customer),
            "last_inbound_at": at.astimezone(timezone.utc)}


def record_inbound(org_id: uuid.UUID, channel: str, customer: str, at: datetime,
                   connection: sa.Connection | None = None) -> None:
    """Note that ``customer`` wrote to the org on ``channel`` at ``at`` (keeps the latest time).

    One statement, safe under concurrency on both engines (INSERT … ON CONFLICT DO UPDATE); an
    older event arriving late never moves the window back. Not committed here: it joins
    ``connection``'s transaction (the webhook store's), or else the session's.
    """
    values = {"organization_id": org_id, **_values(channel, customer, at)}
    target = db.session if connection is None else connection
    dialect = (db.session.get_bind() if connection is None else connection).dialect.name
    target.execute(_UPSERT[dialect], values)


def last_inbound(org_id: uuid.UUID, channel: str, customer: str) -> datetime | None:
    row = autocommit(_LAST, {"org_id": org_id, "channel": channel,
                             "customer": canonical_customer(channel, customer)})
    if row is None:
        return None
    value = row.last_inbound_at
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def require_window(org_id: uuid.UUID, channel: str, customer: str, *, exempt_by: str) -> None:
    """Refuse a free-form send when the customer has not written in the last 24 hours."""
    last = last_inbound(org_id, channel, customer)
    if last is not None and datetime.now(timezone.utc) - last <= WINDOW:
        return
    since = "has never written to this organization" if last is None else \
        f"last wrote at {last.replace(microsecond=0).isoformat()}"
    raise OutsideMessagingWindow(
        f"The customer {since}; free-form messages are allowed only within 24 hours of the "
        f"customer's last message. Outside it, send {exempt_by}."
    )


# --- shared input rules ---------------------------------------------------------------------------

MAX_URL = 2000
_URL_CHARS = re.compile(r"[!#$%&'()*+,\-./0-9:;=?@A-Z\[\]_a-z~]+", re.ASCII)


def media_url_error(value: str, *, allow_http: bool) -> str | None:
    """Why ``value`` is not a URL a provider can fetch media from, or ``None`` when it is.

    The provider fetches it, not Switchboard: the rule is that it is a well-formed absolute
    https URL (http only in the sandbox) with a host, printable ASCII, at most 2000 characters.
    """
    if len(value) > MAX_URL:
        return f"must be at most {MAX_URL} characters"
    if not _URL_CHARS.fullmatch(value):
        return "must be an absolute URL in printable ASCII (percent-encode anything else)"
    try:
        parsed = parse_url(value)
    except LocationParseError:
        return "is not a valid URL"
    allowed = ("https", "http") if allow_http else ("https",)
    if parsed.scheme not in allowed:
        return "must be an https URL"
    if not parsed.host or parsed.auth is not None:
        return "must name a host (and no user or password)"
    return None


class MediaUrl(fields.String):
    """A request field holding a media URL the provider will fetch (``media_url_error``'s rules)."""

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        problem = media_url_error(value, allow_http=current_app.config["SANDBOX"])
        if problem:
            raise MarshmallowError(problem)
        return value


def _customer_wrote(connection, org_id, channel: str, customer: str, at: datetime) -> None:
    """Listener for webhooks/dispatch: a stored inbound message opens (or extends) the window.

    Called inside the event's own transaction: the event, its audit row, its outbox row and the
    window are committed together (one commit per delivery), or not at all (503; the provider
    retries)."""
    record_inbound(org_id, channel, customer, at, connection=connection)


_WINDOW = {name: sa.bindparam(f"window_{name}", type_=_table.c[column].type)
           for name, column in (("channel", "channel"), ("customer", "customer"), ("at", "last_inbound_at"))}


def _window_after(event):
    """``_customer_wrote`` as SQL, for the store's single statement (PostgreSQL): the same upsert,
    for the org of the event just inserted; nothing for a duplicate or a non-message."""
    source = sa.select(event.c.organization_id, _WINDOW["channel"], _WINDOW["customer"], _WINDOW["at"]).where(
        event.c.organization_id.is_not(None), _WINDOW["channel"].is_not(None))
    return _keep_latest(postgresql.insert(_table).from_select(
        ["organization_id", "channel", "customer", "last_inbound_at"], source))


def _window_params(message: tuple | None) -> dict:
    if message is None:
        return {"window_channel": None, "window_customer": None, "window_at": None}
    values = _values(*message)
    return {"window_channel": values["channel"], "window_customer": values["customer"],
            "window_at": values["last_inbound_at"]}


def init_app(app) -> None:
    from webhooks import dispatch

    dispatch.on_inbound_message_stored(_customer_wrote, statement=dispatch.StoredStatement(_window_after, _window_params))
