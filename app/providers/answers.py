"""Typed reads of a provider's JSON answer, one place for every provider.

A provider's answer is untrusted input: a field of the wrong type (a ``cost`` that is a string,
nodes that are numbers) must be 502 ``upstream_bad_response`` naming the provider, never a 500.
Each provider binds one ``Answer`` and reads every value through it::

    read = Answer("shopify", "Shopify")
    page = read.obj(data.get("products"))      # None -> {}; not an object -> 502
"""

from __future__ import annotations

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

    def str(self, value) -> str | None:
        if value is not None and not isinstance(value, str):
            raise self.unexpected()
        return value

    def bool(self, value) -> bool | None:
        if value is not None and not isinstance(value, bool):
            raise self.unexpected()
        return value
