"""One pagination convention for every list (docs/decisions.md, API).

A list answers ``{"data": [...], "next_cursor": "…" | null}``; ``?limit=`` bounds the page
(1–200, default 50) and ``?cursor=`` is the previous page's ``next_cursor``. A cursor is opaque
to the client: base64url of ``[list, last id]``, so a cursor from one list (or a forged one) is a
422 ``invalid_cursor``, never a silent wrong page. Pages are keyset pages: the cursor names the
last row seen and the next page starts strictly after it in the list's order, so rows inserted
meanwhile never shift or repeat a page.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid

import sqlalchemy as sa

from app.errors import ValidationFailed

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,512}$"
_INVALID = "is not a cursor from this list (send the previous page's next_cursor)"


def encode(kind: str, value) -> str:
    raw = json.dumps([kind, str(value)], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(kind: str, cursor: str, field: str = "cursor") -> str:
    """The value a cursor of list ``kind`` carries; 422 ``invalid_cursor`` for anything else."""
    try:
        if len(cursor) > 512:
            raise ValueError
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parsed = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError, TypeError):
        raise ValidationFailed(field, _INVALID, code="invalid_cursor") from None
    if (not isinstance(parsed, list) or len(parsed) != 2 or parsed[0] != kind
            or not isinstance(parsed[1], str)):
        raise ValidationFailed(field, _INVALID, code="invalid_cursor")
    return parsed[1]


def page(query, *, kind: str, order: list, limit: int, cursor: str | None, descending: bool = False):
    """(rows, next_cursor) of ``query`` in ``order`` (its last column is the unique id).

    The cursor carries the last row's id; the page starts after that row's position in
    ``order``, read back with scalar subqueries (so no timestamps travel in cursors).
    """
    id_column = order[-1]
    if cursor is not None:
        last_id = _parse_id(id_column, decode(kind, cursor))
        position = [sa.select(column).where(id_column == last_id).scalar_subquery() for column in order[:-1]]
        query = query.where(_after(order, position + [last_id], descending))
    ordering = [column.desc() if descending else column.asc() for column in order]
    from app.extensions import db

    rows = list(db.session.execute(query.order_by(*ordering).limit(limit + 1)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    last = getattr(rows[-1], id_column.key) if rows else None
    return rows, (encode(kind, last) if more and rows else None)


def _parse_id(column, value: str):
    try:
        if isinstance(column.type, sa.Integer):
            if not value.isdigit() or len(value) > 19:
                raise ValueError
            return int(value)
        return uuid.UUID(value)
    except ValueError:
        raise ValidationFailed("cursor", _INVALID, code="invalid_cursor") from None


def _after(order, values, descending):
    """``(a, b, id) > (x, y, z)`` spelled out (row values compare alike on every engine)."""
    column, value = order[0], values[0]
    beyond = column < value if descending else column > value
    if len(order) == 1:
        return beyond
    return sa.or_(beyond, sa.and_(column == value, _after(order[1:], values[1:], descending)))
