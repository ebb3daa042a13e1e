"""The hook point for what happens after an inbound customer message is stored.

The 24-hour messaging window (the sending side's module) registers a listener here::

    from webhooks import dispatch
    dispatch.on_inbound_message(lambda org_id, channel, customer_id, at: record_inbound(...))

Each listener is called once per *newly stored* inbound message event (duplicates are not
re-announced), after the event's transaction has committed, with the org's id (a UUID), the
channel (``messenger`` or ``whatsapp``), the customer's id (PSID, or E.164 number) and the
message's time (aware UTC datetime). Only attributed events are announced; a message stored
while its account's claim was pending is announced when the approval attributes it
(``webhooks/attribution.py``), after that commit. A failing listener is
logged and does not fail the acknowledgement: the event is already stored; the provider must not
retry it.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Callable

log = logging.getLogger("switchboard.webhooks")

Listener = Callable[[object, str, str, datetime], None]
_listeners: list[Listener] = []


def on_inbound_message(listener: Listener) -> Listener:
    """Register ``listener(org_id, channel, customer_id, at)``; usable as a decorator."""
    if listener not in _listeners:
        _listeners.append(listener)
    return listener


def remove_listener(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


def inbound_message(org_id, channel: str, customer_id: str, at: datetime) -> None:
    for listener in list(_listeners):
        try:
            listener(org_id, channel, customer_id, at)
        except Exception:  # noqa: BLE001 - the event is stored; a listener's bug must not un-ack it
            log.exception("inbound-message listener %r failed", getattr(listener, "__name__", listener))
