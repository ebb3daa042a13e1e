"""The Klaviyo client: the platform's private key for a company id, calls through the outbound layer.

Every call carries ``Authorization: Klaviyo-API-Key <key>``, the pinned ``revision`` header and
JSON:API bodies (``application/vnd.api+json``) —
https://developers.klaviyo.com/en/reference/api_overview. Errors are mapped here, once::

    401 / 403              → 502 upstream_auth_failed (the platform's key, not the caller's fault)
    404 on a named object  → 404 (the caller named a list that is not there)
    400 with a pointer we  → 422 naming the caller's field (Klaviyo refused an email or phone)
      know the field of
    429                    → 429 upstream_rate_limited with Retry-After (app/outbound.py)
    anything else          → 502 upstream_bad_response
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote, urlencode

from flask import current_app

from app.errors import NotFound, UpstreamAuthFailed, UpstreamBadResponse, ValidationFailed
from app.outbound import Response, Target
from app.providers.answers import Answer
from app.providers.base import AccountCheckFailed
from app.proxy import note

NAME = "klaviyo"
# The API revision every call names (the `revision` header). Not a setting: the request shapes and
# the mapping are written for this revision's documents — Klaviyo's OpenAPI description of it is in
# ../shared/data, and the official SDK of the same revision (klaviyo-api 24.0.0) parses the
# emulator's answers in the tests. 2026-10-15 ("omni" campaigns) drops the channel from the
# campaign list; see docs/decisions.md before moving.
REVISION = "2026-07-15"
JSON_API = "application/vnd.api+json"
VERIFIED_TTL = 600.0  # /api/accounts allows 1/s and 15/min per account: a good answer is kept


class KlaviyoClient:
    def __init__(self, app):
        self.creds = app.extensions["credentials"][NAME]
        self.outbound = app.extensions["outbound"]
        self.base = app.config["KLAVIYO_BASE_URL"]
        self.revision = REVISION
        self.expected = Target.of(self.base)
        self.key_map = self.creds.map("KLAVIYO_PRIVATE_API_KEYS")
        self._verified: dict[tuple[str, int], float] = {}

    def _key(self, company_id: str) -> str:
        if company_id in self.key_map:
            return self.key_map[company_id].reveal()
        single = self.creds.get("KLAVIYO_PRIVATE_API_KEY")
        if single is not None:
            return single.reveal()
        raise UpstreamAuthFailed(NAME, "The platform has no Klaviyo key for this account.")

    def call(self, company_id: str, method: str, path: str, *, params: dict | None = None,
             body: dict | None = None, idempotent: bool, fields: dict[str, str] | None = None,
             not_found: NotFound | None = None) -> tuple[int, dict | None]:
        """(status, JSON:API document or None for an empty 2xx). ``fields`` maps JSON pointers of
        the request body to the caller's fields, so Klaviyo's 400 on one of them is a 422."""
        if not re.fullmatch(r"[A-Za-z0-9]{6}", company_id or "", flags=re.ASCII):
            raise UpstreamBadResponse(NAME, "Refused to call Klaviyo for an invalid company id.")
        url = f"{self.base}{path}"
        if params:
            url += "?" + urlencode(params, quote_via=quote, safe="")
        headers = {"Authorization": f"Klaviyo-API-Key {self._key(company_id)}",
                   "revision": self.revision, "Accept": JSON_API}
        if body is not None:
            headers["Content-Type"] = JSON_API
        outcome = self.outbound.call(NAME, method, url, expected=self.expected, headers=headers,
                                     json=body, idempotent=idempotent,
                                     account=company_id)  # the account's budget and breaker (app/quota.py)
        response = outcome.response
        note(upstream_status=response.status_code, attempts=outcome.attempts)
        remaining = response.headers.get("RateLimit-Remaining")
        if remaining and remaining.isdigit():
            note(ratelimit_remaining=int(remaining))
        status = response.status_code
        if status in (401, 403):
            raise UpstreamAuthFailed(NAME, "Klaviyo refused the platform's API key for this account.")
        if status == 404 and not_found is not None:
            raise not_found
        if status == 400 and fields:
            _caller_error(_document(response, allow_empty=True) or {}, fields)
        if not 200 <= status < 300:
            raise UpstreamBadResponse(NAME, f"Klaviyo failed with HTTP {status}.")
        return status, _document(response, allow_empty=status == 202)

    def verify(self, company_id: str) -> None:
        """The key used for ``company_id`` belongs to that account (its public API key)."""
        try:
            stamp = (company_id, hash(self._key(company_id)))
            if self._verified.get(stamp, 0.0) > time.monotonic():
                return
            _, payload = self.call(company_id, "GET", "/api/accounts",
                                   params={"fields[account]": "public_api_key"}, idempotent=True)
        except UpstreamAuthFailed as exc:
            raise AccountCheckFailed(f"The platform's Klaviyo key does not reach '{company_id}': {exc.detail}") from None
        accounts = (payload or {}).get("data")
        first = accounts[0] if isinstance(accounts, list) and accounts and isinstance(accounts[0], dict) else {}
        attributes = first.get("attributes") if isinstance(first.get("attributes"), dict) else {}
        public = attributes.get("public_api_key")
        if not isinstance(public, str):
            raise UpstreamBadResponse(NAME, "Klaviyo's account answer had no public API key.")
        if public != company_id:
            shown = re.sub(r"[^A-Za-z0-9]", "?", public[:20])
            raise AccountCheckFailed(
                f"The Klaviyo key for '{company_id}' belongs to the account '{shown}', not '{company_id}'.")
        self._verified[stamp] = time.monotonic() + VERIFIED_TTL


def client() -> KlaviyoClient:
    existing = current_app.extensions.get("klaviyo_client")
    if existing is None:
        existing = current_app.extensions["klaviyo_client"] = KlaviyoClient(current_app)
    return existing


def verify(company_id: str | None) -> None:
    client().verify(company_id or "")


def _document(response: Response, *, allow_empty: bool = False) -> dict | None:
    return Answer(NAME, "Klaviyo").document(response, allow_empty=allow_empty)


def _caller_error(payload: dict, fields: dict[str, str]) -> None:
    """Klaviyo's 400 names the offending member with ``source.pointer``: one of the caller's
    values (an email Klaviyo refuses, a phone number it cannot route) is the caller's 422."""
    errors = payload.get("errors")
    for error in errors if isinstance(errors, list) else ():
        source = error.get("source") if isinstance(error, dict) else None
        pointer = source.get("pointer") if isinstance(source, dict) else None
        if isinstance(pointer, str) and pointer in fields:
            raise ValidationFailed(fields[pointer], "was refused by Klaviyo")
