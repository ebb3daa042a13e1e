"""The hook points for what happens when an inbound customer message is stored.

Two kinds of listener, each called once per *newly stored*, attributed inbound message event
(duplicates are not re-announced), with the org's id (a UUID), the channel (``messenger`` or
``whatsapp``), the customer's id (PSID, or E.164 number) and the message's time (aware UTC
datetime):

- ``on_inbound_message_stored(listener)``: ``listener(connection, org_id, channel, customer_id,
  at)`` runs *inside* the event's transaction, on its Core connection, before the commit — for
  writes that must be atomic with the event (the 24-hour messaging window, app/messaging.py). It
  must only add statements to that transaction; if it raises, nothing of the delivery is stored
  and the provider gets no 2xx (it retries).
- ``on_inbound_message(listener)``: ``listener(org_id, channel, customer_id, at)`` runs *after*
  the commit. A failing one is logged and does not fail the acknowledgement: the event is
  already stored; the provider must not retry it.

Only attributed events are announced; a message stored while its account's claim was pending is
announced when the approval attributes it (``webhooks/attribution.py``): the stored-listeners in
the approval's transaction, the others after its commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

log = logging.getLogger("switchboard.webhooks")

Listener = Callable[[object, str, str, datetime], None]
StoredListener = Callable[[object, object, str, str, datetime], None]
_listeners: list[Listener] = []
_stored_listeners: list[StoredListener] = []
_statements: dict[StoredListener, "StoredStatement"] = {}


@dataclass(frozen=True)
class StoredStatement:
    """A stored-listener's work as one data-modifying part of the store's statement (PostgreSQL).

    ``build(event)`` returns the statement (made a CTE by the store) reading ``event``, the newly
    inserted event's row (columns ``id`` and ``organization_id``; no row for a duplicate, so the
    listener's statement must do nothing then); it is called once per set of listeners.
    ``params(message)`` returns its bind parameters for the event's ``(channel, customer_id, at)``,
    or for ``None`` when the event is no inbound message (the statement must then do nothing).
    The names must not collide with the store's (prefix them).
    """

    build: Callable
    params: Callable[[tuple | None], dict]


def on_inbound_message(listener: Listener) -> Listener:
    """Register ``listener(org_id, channel, customer_id, at)``, run after the commit; usable as a decorator."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def on_inbound_message_stored(listener: StoredListener, statement: StoredStatement | None = None) -> StoredListener:
    """Register ``listener(connection, org_id, channel, customer_id, at)``, run in the event's
    transaction; ``statement``: the same work as SQL, for the store's single statement."""
    if listener not in _stored_listeners:
        _stored_listeners.append(listener)
    if statement is not None:
        _statements[listener] = statement
    return listener


def stored_statements() -> tuple[StoredStatement, ...] | None:
    """Every stored-listener's ``StoredStatement``, or ``None`` when one has none."""
    if any(listener not in _statements for listener in _stored_listeners):
        return None
    return tuple(_statements[listener] for listener in _stored_listeners)


def remove_listener(listener) -> None:
    for registry in (_listeners, _stored_listeners):
        if listener in registry:
            registry.remove(listener)
    _statements.pop(listener, None)


def inbound_message_stored(connection, org_id, channel: str, customer_id: str, at: datetime) -> None:
    for listener in _stored_listeners:
        listener(connection, org_id, channel, customer_id, at)  # raising aborts the transaction: intended


def inbound_message(org_id, channel: str, customer_id: str, at: datetime) -> None:
    for listener in list(_listeners):
        try:
            listener(org_id, channel, customer_id, at)
        except Exception:  # noqa: BLE001 - the event is stored; a listener's bug must not un-ack it
            log.exception("inbound-message listener %r failed", getattr(listener, "__name__", listener))
