"""What a provider is, as data: name, identifier schema, credentials, actions, blueprint.

A provider module (``app/providers/<name>.py``) builds one ``Provider`` and the registry in
``app/providers/__init__.py`` maps name → provider. Identifiers are validated here, once, for every
provider: ASCII only, ``re.fullmatch`` against an allow-list, canonicalised (DNS labels are
lower-cased) — before anything is stored or any request leaves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from flask import Blueprint

from app.errors import ValidationFailed
from config import CredentialSpec

# One DNS label: 1–63 of a-z, 0-9 and inner hyphens (RFC 1035 as relaxed by RFC 1123).
DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
E164 = r"\+[1-9][0-9]{6,14}"


@dataclass(frozen=True)
class IdentifierField:
    name: str
    pattern: str
    description: str
    example: str
    lower: bool = False
    max_length: int = 64

    def canonical(self, raw: object) -> str:
        field_name = f"account_identifier.{self.name}"
        if not isinstance(raw, str):
            raise ValidationFailed(field_name, "must be a string")
        if not raw:
            raise ValidationFailed(field_name, "must not be empty")
        if len(raw) > self.max_length:
            raise ValidationFailed(field_name, f"must be at most {self.max_length} characters")
        # ASCII first: str.lower() maps some non-ASCII letters (the Kelvin sign) onto ASCII ones.
        if not raw.isascii():
            raise ValidationFailed(field_name, f"must be ASCII: {self.description}")
        value = raw.lower() if self.lower else raw
        if not re.fullmatch(self.pattern, value, flags=re.ASCII):
            raise ValidationFailed(field_name, f"is not valid: {self.description}")
        return value


class AccountCheckFailed(Exception):
    """The platform's credentials do not reach the named account, or it is not the one named."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class Provider:
    name: str
    title: str
    credentials: CredentialSpec
    identifier: IdentifierField | None = None  # None: a platform service (Stripe, OpenAI)
    docs_url: str = ""
    actions: list[str] = field(default_factory=list)
    blueprint: Blueprint | None = None
    # verify(account_key) -> None; raises AccountCheckFailed or an UpstreamError.
    verify: Callable[[str | None], None] | None = None
    # How to read the provider's rate-limit signals from an answer (app/quota.py: Reading,
    # header_signals for declared header names); None: only a 429's Retry-After.
    rate_limit: Callable[[object], object] | None = None
    # Whose bucket a call spends: account key -> quota scope. None: the account itself (or
    # "platform" for a platform service, whose one key every org shares).
    quota_scope: Callable[[str | None], str] | None = None

    @property
    def kind(self) -> str:
        return "account" if self.identifier else "platform"

    def parse_identifier(self, raw: object) -> tuple[dict, str | None]:
        """Validate ``account_identifier``; return (canonical identifier, claim key)."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ValidationFailed("account_identifier", "must be an object")
        expected = {self.identifier.name} if self.identifier else set()
        for key in raw:
            if key not in expected:
                allowed = ", ".join(sorted(expected)) or "nothing"
                raise ValidationFailed(
                    f"account_identifier.{key}", f"unknown field; {self.name} takes {allowed}"
                )
        if self.identifier is None:
            return {}, None
        if self.identifier.name not in raw:
            raise ValidationFailed(f"account_identifier.{self.identifier.name}", "is required")
        value = self.identifier.canonical(raw[self.identifier.name])
        return {self.identifier.name: value}, value
