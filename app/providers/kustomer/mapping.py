"""Kustomer's JSON:API answers mapped to Switchboard's small shapes.

Every value read from an answer goes through a reader that accepts exactly the expected type (or
null) and refuses anything else with 502 ``upstream_bad_response``, so an odd answer is Kustomer's
bad answer, never our 500, and what we return always matches our response schema.
"""

from __future__ import annotations

import re

from app.providers.answers import Answer

NAME = "kustomer"
OBJECT_ID = re.compile(r"[0-9a-f]{24}", re.ASCII)


# Every value of the answer is read through these (app/providers/answers.py).
_read = Answer(NAME, "Kustomer")
obj, lst, text, integer = _read.obj, _read.list, _read.str, _read.int


def object_id(value) -> str:
    """A Kustomer id (24 hex digits): anything else in an id field is a bad answer."""
    return _read.match(value, OBJECT_ID)


def _related(node: dict, name: str) -> str | None:
    data = obj(obj(obj(node.get("relationships")).get(name)).get("data"))
    return object_id(data.get("id")) if data else None


def customer_out(node: dict) -> dict:
    attributes = obj(node.get("attributes"))
    return {
        "id": object_id(node.get("id")),
        "name": text(attributes.get("name"), 1000),
        "emails": [e for e in (text(obj(item).get("email"), 1000) for item in lst(attributes.get("emails"))) if e],
        "phones": [p for p in (text(obj(item).get("phone"), 100) for item in lst(attributes.get("phones"))) if p],
        "external_id": text(attributes.get("externalId"), 1000),
        "created_at": text(attributes.get("createdAt"), 64),
        "updated_at": text(attributes.get("updatedAt"), 64),
    }


def conversation_out(node: dict) -> dict:
    attributes = obj(node.get("attributes"))
    return {
        "id": object_id(node.get("id")),
        "customer_id": _related(node, "customer"),
        "subject": text(attributes.get("name"), 10_000),
        "status": text(attributes.get("status"), 64),
        "priority": integer(attributes.get("priority")),
        "channels": [text(c, 64) for c in lst(attributes.get("channels"))],
        "message_count": integer(attributes.get("messageCount")),
        "created_at": text(attributes.get("createdAt"), 64),
        "updated_at": text(attributes.get("updatedAt"), 64),
    }


def conversations_page(body: dict) -> tuple[list[dict], bool]:
    """(conversations, whether Kustomer has a next page)."""
    items = [conversation_out(n) for n in conversations_nodes(body)]
    return items, bool(text(obj(body.get("links")).get("next"), 4000))


def conversations_nodes(body: dict) -> list[dict]:
    return [obj(n) for n in lst(body.get("data"))]


def external_id_of(node: dict) -> str | None:
    return text(obj(node.get("attributes")).get("externalId"), 1000)


def message_out(node: dict) -> dict:
    attributes = obj(node.get("attributes"))
    return {"id": object_id(node.get("id")), "channel": text(attributes.get("channel"), 64),
            "direction": text(attributes.get("direction"), 16), "created_at": text(attributes.get("createdAt"), 64)}


def note_out(node: dict) -> dict:
    attributes = obj(node.get("attributes"))
    return {"id": object_id(node.get("id")), "conversation_id": _related(node, "conversation"),
            "body": text(attributes.get("body"), 100_000), "created_at": text(attributes.get("createdAt"), 64)}
