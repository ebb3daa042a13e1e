"""The Kustomer client: which key serves a subdomain, where calls go, and what answers mean.

Kustomer serves every org from one host (``https://api.kustomerapp.com``; EU
``https://api.prod2.kustomerapp.com``) and the API key decides the org, so the subdomain an org
connects selects the *key* (``KUSTOMER_API_KEYS``, a map subdomain → key; or the one
``KUSTOMER_API_KEY``). ``KUSTOMER_URL_TEMPLATE`` may still name ``{subdomain}`` (the
``https://{subdomain}.api.kustomerapp.com`` form some clients use); the host is then derived from
the template with a placeholder and checked as Shopify's ``base_url`` does.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import quote

from flask import current_app

from app.errors import NotFound, UpstreamAuthFailed, UpstreamBadResponse, ValidationFailed
from app.outbound import Response, Target
from app.providers.answers import Answer
from app.providers.base import DNS_LABEL
from app.proxy import note

NAME = "kustomer"
_read = Answer(NAME, "Kustomer")  # typed reads of answers (app/providers/answers.py)


class KustomerClient:
    def __init__(self, app):
        self.creds = app.extensions["credentials"][NAME]
        self.outbound = app.extensions["outbound"]
        self.template = app.config["KUSTOMER_URL_TEMPLATE"]
        self.key_map = {k.lower(): v for k, v in self.creds.map("KUSTOMER_API_KEYS").items()}

    def base_url(self, subdomain: str) -> tuple[str, Target]:
        if not re.fullmatch(DNS_LABEL, subdomain, flags=re.ASCII):
            raise UpstreamBadResponse(NAME, "Refused to call an unexpected host.")
        if "{subdomain}" not in self.template:
            return self.template.rstrip("/"), Target.of(self.template)
        marker = "subdomainplaceholder"
        shape = Target.of(self.template.format(subdomain=marker))
        expected = Target(shape.scheme, shape.host.replace(marker, subdomain), shape.port)
        return self.template.format(subdomain=subdomain).rstrip("/"), expected

    def key(self, subdomain: str) -> tuple[str, str]:
        """(API key, source) for a subdomain: its entry in the map, else the one key."""
        if subdomain in self.key_map:
            return self.key_map[subdomain].reveal(), "map"
        single = self.creds.get("KUSTOMER_API_KEY")
        if single is not None:
            return single.reveal(), "single"
        raise UpstreamAuthFailed(NAME, "The platform has no Kustomer key for this subdomain.")

    def call(self, subdomain: str, method: str, path: str, *, json: dict | None = None,
             query: dict | None = None, idempotent: bool | None = None, conflict: bool = False) -> Response:
        """One call; answers 2xx and 404 (and 409 with ``conflict``: a create whose ``externalId``
        exists) are returned, every other status is raised as our error.

        ``path`` is built by the caller from validated values only, each segment quoted here
        again (``quote(safe="")``) by ``segment``. GETs are idempotent; a POST is re-sent only
        when the caller says it is idempotent (a create carrying an ``externalId``); otherwise it
        is never re-sent blindly (app/outbound.py).
        """
        base, expected = self.base_url(subdomain)
        key, _ = self.key(subdomain)
        url = base + path
        if query:
            url += "?" + "&".join(f"{quote(k, safe='')}={quote(str(v), safe='')}" for k, v in query.items())
        outcome = self.outbound.call(
            NAME, method, url, expected=expected,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            json=json, idempotent=method == "GET" if idempotent is None else idempotent,
            account=subdomain,  # the Kustomer org's shared budget and circuit breaker (app/quota.py)
        )
        response = outcome.response
        remaining = response.headers.get("x-ratelimit-remaining")
        note(upstream_status=response.status_code, attempts=outcome.attempts,
             ratelimit_remaining=int(remaining) if remaining and remaining.isdigit() and len(remaining) < 10 else None)
        status = response.status_code
        if status in (401, 403):
            raise UpstreamAuthFailed(NAME, "Kustomer refused the platform's API key for this subdomain "
                                           "(a wrong key, or a key without the role this action needs).")
        if status == 400:
            raise UpstreamBadResponse(NAME, "Kustomer refused the request as invalid.")
        if status == 413:
            raise ValidationFailed("body", "is larger than Kustomer accepts (100 kB)")
        if status == 404 or 200 <= status < 300 or (status == 409 and conflict):
            return response
        raise UpstreamBadResponse(NAME, f"Kustomer failed with HTTP {status}.")


def segment(value: str) -> str:
    """One path segment, percent-encoded (values are validated before; this is the second line)."""
    return quote(value, safe="")  # '/', '?', '#', '%', '+', '@' and non-ASCII are encoded


def client() -> KustomerClient:
    existing = current_app.extensions.get("kustomer_client")
    if existing is None:
        existing = current_app.extensions["kustomer_client"] = KustomerClient(current_app)
    return existing


def payload(response: Response) -> dict:
    return _read.document(response)


def found(response: Response, what: str, code: str) -> dict:
    """The ``data`` object of a 2xx answer; 404 → our NotFound."""
    if response.status_code == 404:
        raise NotFound(f"No such {what} in this Kustomer org.", code=code)
    data = payload(response).get("data")
    if not isinstance(data, dict):
        raise UpstreamBadResponse(NAME, "Kustomer's answer had no data.")
    return data


def key_claims(key: str) -> dict:
    """The payload of a JWT-shaped key, unverified (we do not hold Kustomer's signing key); {}
    when the key is not a JWT."""
    parts = key.split(".")
    if len(parts) != 3:
        return {}
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (ValueError, binascii.Error, RecursionError):
        return {}
    return claims if isinstance(claims, dict) else {}



def verify(subdomain: str | None) -> None:
    """The key for ``subdomain`` works, and, where the key reveals its org, it is that org.

    ``GET /v1/auth/tokens/current`` proves the key works and names its org *id*, not the
    subdomain. A JWT-shaped key carries ``org`` (id) and ``orgName`` (subdomain) in its payload:
    when it does, ``org`` must be the id Kustomer just named (so the payload describes this key's
    org) and ``orgName`` the subdomain being connected. A key without them is taken on the
    operator's word (the map keyed by subdomain).
    """
    from app.providers.base import AccountCheckFailed

    kustomer = client()
    try:
        key, _ = kustomer.key(subdomain)
        data = found(kustomer.call(subdomain, "GET", "/v1/auth/tokens/current"), "token", "not_found")
    except (UpstreamAuthFailed, NotFound) as exc:
        raise AccountCheckFailed(
            f"The platform's Kustomer key does not work for '{subdomain}': {exc.detail}") from None
    relationships = data.get("relationships")
    org = relationships.get("org") if isinstance(relationships, dict) else None
    org_data = org.get("data") if isinstance(org, dict) else None
    org_id = org_data.get("id") if isinstance(org_data, dict) else None
    if not isinstance(org_id, str) or not org_id:
        raise UpstreamBadResponse(NAME, "Kustomer's token answer names no org.")
    claims = key_claims(key)
    claimed_org, claimed_name = claims.get("org"), claims.get("orgName")
    if isinstance(claimed_org, str) and claimed_org != org_id:
        raise AccountCheckFailed(f"The platform's Kustomer key for '{subdomain}' does not describe its own org.")
    if isinstance(claimed_name, str) and claimed_name.lower() != subdomain:
        shown = re.sub(r"[^a-z0-9-]", "?", claimed_name.lower()[:63])
        raise AccountCheckFailed(f"The platform's Kustomer key for '{subdomain}' belongs to the org '{shown}'.")
