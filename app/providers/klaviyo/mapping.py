"""Klaviyo's JSON:API answers → Switchboard's small JSON.

Every value read from Klaviyo goes through a reader that accepts exactly the documented type (or
null); anything else is Klaviyo's bad answer (502 upstream_bad_response), never our 500.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from app import pagination
from app.providers.answers import Answer

NAME = "klaviyo"

# Every value of the answer is read through these (app/providers/answers.py).
_read = Answer(NAME, "Klaviyo")
_unexpected, _obj, _list, _str, _bool = _read.unexpected, _read.obj, _read.list, _read.str, _read.bool

MAX_UPSTREAM_CURSOR = 300  # wrapped in ours (base64 of JSON) it must stay within pagination's 512


def _resource(value, kind: str) -> tuple[str, dict]:
    node = _obj(value)
    if node.get("type") != kind or not isinstance(node.get("id"), str) or not node["id"]:
        raise _unexpected()
    return node["id"], _obj(node.get("attributes"))


def next_cursor(document: dict, kind: str) -> str | None:
    """Our opaque cursor wrapping Klaviyo's ``page[cursor]`` from ``links.next`` (None: last page)."""
    link = _str(_obj(document.get("links")).get("next"))
    if not link:
        return None
    values = parse_qs(urlsplit(link).query).get("page[cursor]")
    if not values or not values[0] or len(values[0]) > MAX_UPSTREAM_CURSOR or not values[0].isascii():
        raise _unexpected()
    return pagination.encode(kind, values[0])


def list_out(value) -> dict:
    list_id, a = _resource(value, "list")
    return {"id": list_id, "name": _str(a.get("name")), "opt_in_process": _str(a.get("opt_in_process")),
            "created": _str(a.get("created")), "updated": _str(a.get("updated"))}


def segment_out(value) -> dict:
    segment_id, a = _resource(value, "segment")
    return {"id": segment_id, "name": _str(a.get("name")), "is_active": _bool(a.get("is_active")),
            "is_processing": _bool(a.get("is_processing")),
            "created": _str(a.get("created")), "updated": _str(a.get("updated"))}


def campaign_out(value, channel: str) -> dict:
    campaign_id, a = _resource(value, "campaign")
    return {"id": campaign_id, "name": _str(a.get("name")), "status": _str(a.get("status")), "channel": channel,
            "archived": _bool(a.get("archived")), "created_at": _str(a.get("created_at")),
            "updated_at": _str(a.get("updated_at")), "scheduled_at": _str(a.get("scheduled_at")),
            "send_time": _str(a.get("send_time"))}


def page_out(document: dict | None, kind: str, item) -> dict:
    document = _obj(document)
    return {"data": [item(node) for node in _list(document.get("data"))], "next_cursor": next_cursor(document, kind)}


def profile_out(document: dict | None, created: bool) -> dict:
    profile_id, a = _resource(_obj(document).get("data"), "profile")
    return {"id": profile_id, "created": created, "email": _str(a.get("email")),
            "phone_number": _str(a.get("phone_number")), "external_id": _str(a.get("external_id")),
            "first_name": _str(a.get("first_name")), "last_name": _str(a.get("last_name"))}
