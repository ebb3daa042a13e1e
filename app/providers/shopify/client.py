"""The Shopify client: the platform's credentials for a store, its tokens, and GraphQL through
the one outbound layer.

Credentials, in order of precedence for a store:

1. ``SHOPIFY_ADMIN_ACCESS_TOKENS`` — JSON map store → Admin API token (operator serves several);
2. ``SHOPIFY_ADMIN_ACCESS_TOKEN`` — one token (it reaches exactly one store);
3. ``SHOPIFY_ADMIN_API_KEY`` + ``SHOPIFY_ADMIN_API_SECRET`` — the client-credentials grant mints a
   token per store (stores of the operator's own organization), cached until shortly before
   ``expires_in``, refreshed once at a time (app/tokens.py).

We talk to Shopify with our own outbound layer rather than ShopifyAPI's ``GraphQL().execute``,
which opens urllib without a timeout and prints error bodies to stdout (see docs/decisions.md).

Rate limits: GraphQL is cost-based; a throttled call is HTTP 200 with
``errors[].extensions.code == "THROTTLED"`` (https://shopify.dev/docs/api/usage/rate-limits), so
``_classify`` looks in the body and computes the wait from ``extensions.cost.throttleStatus``.
"""

from __future__ import annotations

import hashlib
import math
import re
import time

from flask import current_app

from app.errors import UpstreamAuthFailed, UpstreamBadResponse, ValidationFailed
from app.outbound import Response, Retry, Target
from app.providers.answers import Answer
from app.providers.base import DNS_LABEL, AccountCheckFailed
from app.providers.shopify.documents import SHOP_IDENTITY
from app.providers.shopify.mapping import _CONTROL, _obj, _str
from app.proxy import note
from app.quota import Reading, retry_after_only
from config import CredentialSpec

NAME = "shopify"

CREDENTIALS = CredentialSpec(
    alternatives=(
        ("SHOPIFY_ADMIN_ACCESS_TOKEN",),
        ("SHOPIFY_ADMIN_ACCESS_TOKENS",),
        ("SHOPIFY_ADMIN_API_KEY", "SHOPIFY_ADMIN_API_SECRET"),
    ),
    json_maps=("SHOPIFY_ADMIN_ACCESS_TOKENS",),
    # During a client-secret rotation Shopify may still sign webhooks with the old secret
    # (webhooks/shopify.py accepts either); never used for the grant.
    optional=("SHOPIFY_ADMIN_API_SECRET_PREVIOUS",),
    public=("SHOPIFY_ADMIN_API_KEY",),
)

# --- the client -------------------------------------------------------------------------------


class ShopifyClient:
    """Resolves the platform's token for a store and runs GraphQL through the outbound layer."""

    def __init__(self, app):
        self.creds = app.extensions["credentials"][NAME]
        self.outbound = app.extensions["outbound"]
        self.tokens = app.extensions["token_cache"]
        self.version = app.config["SHOPIFY_API_VERSION"]
        self.template = app.config["SHOPIFY_SHOP_URL_TEMPLATE"]
        self.token_map = {k.lower(): v for k, v in self.creds.map("SHOPIFY_ADMIN_ACCESS_TOKENS").items()}
        client_id = self.creds.get("SHOPIFY_ADMIN_API_KEY")
        # Cache keys name the app (by a digest of its client id), so rotated app credentials or
        # two deployments sharing one Redis never hand each other's tokens out.
        self.grant_prefix = "shopify:" + (
            hashlib.sha256(client_id.reveal().encode()).hexdigest()[:12] if client_id else "-") + ":"

    def base_url(self, shop: str) -> tuple[str, Target]:
        # Second line of defence (names are validated when connected): the store must still be
        # one DNS label here, and the expected host is derived from the template with a
        # placeholder, so a name that smuggles a host or a path fails outbound.check_url.
        if not re.fullmatch(DNS_LABEL, shop, flags=re.ASCII):
            raise UpstreamBadResponse(NAME, "Refused to call an unexpected host.")
        marker = "storeplaceholder"
        shape = Target.of(self.template.format(shop=marker))
        expected = Target(shape.scheme, shape.host.replace(marker, shop), shape.port)
        return self.template.format(shop=shop), expected

    def _token(self, shop: str, deadline: float) -> tuple[str, str]:
        """(token, source) for a store, or raise if no credential covers it."""
        if shop in self.token_map:
            return self.token_map[shop].reveal(), "map"
        single = self.creds.get("SHOPIFY_ADMIN_ACCESS_TOKEN")
        if single is not None:
            return single.reveal(), "token"
        if self.creds.get("SHOPIFY_ADMIN_API_KEY") and self.creds.get("SHOPIFY_ADMIN_API_SECRET"):
            return self.tokens.get_or_mint(self.grant_prefix + shop, lambda: self._mint(shop, deadline)), "grant"
        raise UpstreamAuthFailed(NAME, "The platform has no Shopify credential for this store.")

    def _mint(self, shop: str, deadline: float) -> tuple[str, float]:
        base, expected = self.base_url(shop)
        outcome = self.outbound.call(
            NAME, "POST", f"{base}/admin/oauth/access_token", expected=expected,
            headers={"Accept": "application/json"},
            data={
                "grant_type": "client_credentials",
                "client_id": self.creds.get("SHOPIFY_ADMIN_API_KEY").reveal(),
                "client_secret": self.creds.get("SHOPIFY_ADMIN_API_SECRET").reveal(),
            },
            idempotent=True,  # minting twice is harmless; a lost answer just mints again
            deadline=deadline,  # the grant spends from the budget of the request it serves
        )
        response = outcome.response
        if response.status_code in (400, 401, 403, 404):
            raise UpstreamAuthFailed(NAME, "Shopify refused the app's client credentials for this store.")
        payload = _json(response)
        token, ttl = payload.get("access_token"), payload.get("expires_in")
        if (response.status_code != 200 or not isinstance(token, str) or not isinstance(ttl, (int, float))
                or not token or not all(33 <= ord(ch) <= 126 for ch in token) or not 0 < ttl < 10**7):
            raise UpstreamBadResponse(NAME, "Shopify's token endpoint gave an unusable answer.")
        return token, float(ttl)

    def graphql(self, shop: str, document: str, variables: dict | None = None, *,
                caller_fields: dict[str, str] | None = None, withheld: list[str] | None = None) -> dict:
        """Run ``document``; the ``data`` object. ``caller_fields`` maps the variables whose values
        the caller chose to the request fields they came from, so that Shopify's verdict on one
        of them is the caller's 422, not Shopify's 502. With a ``withheld`` list, fields Shopify
        refused to show (protected customer data, a missing scope) are named in it and the rest
        of the answer is returned; without one, any ``errors`` entry fails the call."""
        deadline = time.monotonic() + self.outbound.deadline  # one budget: token grant, query, retry
        base, expected = self.base_url(shop)
        for last_try in (False, True):
            token, source = self._token(shop, deadline)
            outcome = self.outbound.call(
                NAME, "POST", f"{base}/admin/api/{self.version}/graphql.json", expected=expected,
                headers={"X-Shopify-Access-Token": token, "Accept": "application/json"},
                json={"query": document, "variables": variables or {}},
                idempotent=document.lstrip().startswith("query"),  # queries are safe to repeat
                classify=_classify,
                deadline=deadline,
                account=shop,  # the store's shared budget and circuit breaker (app/quota.py)
            )
            response = outcome.response
            if response.status_code in (401, 403) and source == "grant" and not last_try:
                # A minted token Shopify refuses (revoked, or expired early) is stale, not the
                # org's failure: drop it — unless another caller already replaced it — mint once,
                # retry once. A 401/403 cannot have run the operation, so the retry is safe.
                self.tokens.invalidate(self.grant_prefix + shop, token)
                continue
            break
        note(upstream_status=response.status_code, attempts=outcome.attempts)
        if response.status_code in (401, 403):
            raise UpstreamAuthFailed(NAME, "Shopify refused the platform's token for this store.")
        if response.status_code == 404:
            raise UpstreamAuthFailed(NAME, "Shopify does not know this store (or the app is not installed).")
        payload = _json(response)
        if response.status_code != 200:
            raise UpstreamBadResponse(NAME, f"Shopify failed with HTTP {response.status_code}.")
        cost = _obj(_obj(payload.get("extensions")).get("cost"))
        if "actualQueryCost" in cost:
            note(query_cost=cost["actualQueryCost"])  # note() keeps it only if it is a sane number
        data = payload.get("data")
        if payload.get("errors"):
            refused = _withheld(payload["errors"]) if withheld is not None and isinstance(data, dict) else None
            if refused is None:
                _refused(payload["errors"], variables or {}, caller_fields or {})
            withheld.extend(name for name in refused if name not in withheld)
            note(withheld=",".join(withheld)[:200])
        if not isinstance(data, dict):
            raise UpstreamBadResponse(NAME, "Shopify's answer had no data.")
        return data


def client() -> ShopifyClient:
    """The app's one client (built on first use; it holds no per-request state)."""
    existing = current_app.extensions.get("shopify_client")
    if existing is None:
        existing = current_app.extensions["shopify_client"] = ShopifyClient(current_app)
    return existing


# Shopify's verdicts on a value the caller chose: HTTP 200 with a GraphQL error. Shopify does
# not document these messages; graphql-ruby's connection pagination answers a cursor it cannot
# decode with "Invalid cursor for current pagination sort." and path ["products"] (the wording
# seen in the wild and served by the emulator).
_CALLER_VERDICTS = ((re.compile(r"\binvalid cursor\b", re.IGNORECASE), "after", "is not a cursor from a previous page"),)


def _refused(errors, variables: dict, caller_fields: dict[str, str]):
    """Raise for a GraphQL ``errors`` list: the caller's 422 when Shopify refused a value the caller
    chose; otherwise 502 — our documents are fixed, so any other error is Shopify's or a version drift."""
    for error in errors if isinstance(errors, list) else ():
        message = error.get("message") if isinstance(error, dict) else None
        if not isinstance(message, str):
            continue
        for pattern, variable, explanation in _CALLER_VERDICTS:
            if variable in caller_fields and variables.get(variable) is not None and pattern.search(message):
                raise ValidationFailed(caller_fields[variable], explanation)
    raise UpstreamBadResponse(NAME, "Shopify rejected the query.")


# Shopify's names for what it withholds → ours. Protected customer data: the field is null with an
# ``errors`` entry (message and path, no documented code); a missing scope: ``ACCESS_DENIED``.
# https://shopify.dev/docs/apps/launch/protected-customer-data, https://shopify.dev/docs/api/usage/access-scopes
_WITHHELD_NAMES = {"defaultEmailAddress": "email", "defaultPhoneNumber": "phone", "firstName": "first_name",
                   "lastName": "last_name", "customerByIdentifier": "customer", "inventoryItem": "inventory",
                   "draftOrder": "draft_order", "draftOrderCreate": "draft_order"}
_NOT_APPROVED = re.compile(r"\bnot approved to (?:access|use)\b|\baccess denied\b", re.IGNORECASE)


def _withheld(errors) -> list[str] | None:
    """The fields an ``errors`` list withholds, or None when any entry is something else (then
    the call fails as before: our documents are fixed, other errors are Shopify's)."""
    names = []
    for error in errors if isinstance(errors, list) else [errors]:
        if not isinstance(error, dict):
            return None
        extensions = error.get("extensions") if isinstance(error.get("extensions"), dict) else {}
        message = error.get("message") if isinstance(error.get("message"), str) else ""
        path = error.get("path")
        if not (isinstance(path, list) and path and (extensions.get("code") == "ACCESS_DENIED"
                                                     or _NOT_APPROVED.search(message))):
            return None
        field = next((p for p in reversed(path) if isinstance(p, str)), None)
        if field is None or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", field):
            return None
        name = _WITHHELD_NAMES.get(field, field)
        if name not in names:
            names.append(name)
    return names


def _json(response: Response) -> dict:
    return Answer(NAME, "Shopify").document(response)  # app/providers/answers.py


def _classify(response: Response) -> Retry | None:
    """THROTTLED arrives as HTTP 200 with an error code in the body; wait until the bucket refills."""
    if response.status_code != 200 or b"THROTTLED" not in response.content:
        return None
    try:
        payload = response.json()
    except (ValueError, RecursionError):
        return None
    errors = payload.get("errors") if isinstance(payload, dict) else None
    if not isinstance(errors, list) or not any(
        isinstance(e, dict) and isinstance(e.get("extensions"), dict) and e["extensions"].get("code") == "THROTTLED"
        for e in errors
    ):
        return None
    extensions = payload.get("extensions")
    cost = extensions.get("cost") if isinstance(extensions, dict) else None
    cost = cost if isinstance(cost, dict) else {}
    status = cost.get("throttleStatus") if isinstance(cost.get("throttleStatus"), dict) else {}
    try:
        needed = float(cost.get("requestedQueryCost", 0)) - float(status.get("currentlyAvailable", 0))
        rate = float(status.get("restoreRate") or 0)
        wait = needed / rate if rate > 0 else 1.0
    except (TypeError, ValueError, OverflowError):
        wait = 1.0
    if not math.isfinite(wait):
        wait = 1.0
    return Retry(after=max(0.5, min(wait, 60.0)))


_COST_FIELD = re.compile(
    rb'"(requestedQueryCost|maximumAvailable|currentlyAvailable|restoreRate)"\s*:\s*([0-9][0-9.eE+]{0,20})')


def rate_limit_signals(response: Response):
    """The store's bucket from ``extensions.cost`` (on every GraphQL answer, THROTTLED included),
    read with a byte scan of the answer's tail — the hot path must not parse the JSON twice
    (``extensions`` comes last; the whole answer is scanned if the tail lacks it)."""
    if response.status_code != 200:
        return retry_after_only(response)
    content = response.content
    found = {m.group(1): m.group(2) for m in _COST_FIELD.finditer(content, max(0, len(content) - 600))}
    if b"currentlyAvailable" not in found:
        found = {m.group(1): m.group(2) for m in _COST_FIELD.finditer(content)}
    try:
        values = {k.decode(): float(v) for k, v in found.items()}
    except ValueError:
        return None
    if "currentlyAvailable" not in values:
        return None
    wait = None
    if b'"THROTTLED"' in content:
        verdict = _classify(response)
        wait = verdict.after if verdict else 1.0
    return Reading(limit=values.get("maximumAvailable"), remaining=values["currentlyAvailable"],
                   refill=values.get("restoreRate"), need=values.get("requestedQueryCost"), wait=wait)


# --- verification (connect and test) ----------------------------------------------------------


def verify(store: str | None) -> None:
    """The platform's credentials reach the store, and the store is the one named."""
    try:
        data = client().graphql(store, SHOP_IDENTITY)
    except UpstreamAuthFailed as exc:
        raise AccountCheckFailed(f"The platform's Shopify credentials do not reach '{store}': {exc.detail}") from None
    domain = (_str(_obj(data.get("shop")).get("myshopifyDomain")) or "").lower()
    if domain != f"{store}.myshopify.com":
        shown = _CONTROL.sub("?", domain[:100])  # Shopify's text, shown to the caller: printable only
        raise AccountCheckFailed(
            f"The store answering for '{store}' reports the domain '{shown}', not '{store}.myshopify.com'."
        )
