"""Typed reads of a provider's JSON answer, one place for every provider.

A provider's answer is untrusted input: a field of the wrong type (a ``cost`` that is a string,
nodes that are numbers) must be 502 ``upstream_bad_response`` naming the provider, never a 500.
Each provider binds one ``Answer`` and reads every value through it::

    read = Answer("shopify", "Shopify")
    body = read.document(response)             # a JSON object, or 502 (not JSON / not an object)
    page = read.obj(data.get("products"))      # None -> {}; not an object -> 502
    name = read.str(node.get("name"), 1000)    # None, or a string of at most 1000 characters
"""

from __future__ import annotations

import re

from app.errors import UpstreamBadResponse


class Answer:
    def __init__(self, provider: str, title: str):
        self.provider, self.title = provider, title

    def unexpected(self) -> UpstreamBadResponse:
        return UpstreamBadResponse(self.provider, f"{self.title} answered with an unexpected shape.")

    def obj(self, value) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.unexpected()
        return value

    def list(self, value) -> list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.unexpected()
        return value

    def str(self, value, limit: int | None = None) -> str | None:
        if value is not None and (not isinstance(value, str) or (limit is not None and len(value) > limit)):
            raise self.unexpected()
        return value

    def text(self, value, limit: int) -> str | None:
        """A short printable string (an id we echo), or None."""
        value = self.str(value, limit)
        if value is not None and not value.isprintable():
            raise self.unexpected()
        return value

    def int(self, value) -> int | None:
        """An integer (not a bool, not a float) within JSON's safe range, or None."""
        if value is not None and (type(value) is not int or abs(value) > 2**53):
            raise self.unexpected()
        return value

    def match(self, value, pattern: re.Pattern) -> str:
        """A required string matching ``pattern`` in full (an id of a known shape)."""
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise self.unexpected()
        return value

    def document(self, response, *, allow_empty: bool = False) -> dict | None:
        """The answer's body as a JSON object (None for an empty body when ``allow_empty``)."""
        if allow_empty and not response.content.strip():
            return None
        try:
            payload = response.json()
        except (ValueError, RecursionError):
            raise UpstreamBadResponse(self.provider, f"{self.title} answered with something that is not JSON.") from None
        if not isinstance(payload, dict):
            raise UpstreamBadResponse(self.provider, f"{self.title} answered with unexpected JSON.")
        return payload

    def bool(self, value) -> bool | None:
        if value is not None and not isinstance(value, bool):
            raise self.unexpected()
        return value
