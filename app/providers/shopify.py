"""Shopify: product lookup and order tracking through the GraphQL Admin API (version pinned).

The org names its store (``mystore`` of mystore.myshopify.com). The platform's credentials, in
order of precedence for a store:

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
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app import pagination
from app.auth import org_required
from app.errors import (
    NotFound,
    UpstreamAuthFailed,
    UpstreamBadResponse,
    ValidationFailed,
)
from app.outbound import Response, Retry, Target
from app.providers.base import DNS_LABEL, AccountCheckFailed, IdentifierField, Provider
from app.proxy import note, proxy_action
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
    public=("SHOPIFY_ADMIN_API_KEY",),
)

# --- GraphQL documents ------------------------------------------------------------------------

# Shopify refuses any single query over 1,000 cost points (MAX_COST_EXCEEDED); each product's
# cost grows with the variants it carries. A product lookup brings 50 variants (~59 points); a
# search brings 10 per product and at most 25 products (~477 points at first=25).
_PRODUCT_FIELDS = """
fragment ProductFields on Product {
  id legacyResourceId title handle status vendor productType tags totalInventory onlineStoreUrl
  priceRangeV2 { minVariantPrice { amount currencyCode } maxVariantPrice { amount currencyCode } }
  featuredMedia { preview { image { url altText } } }
  variants(first: VARIANTS) { nodes { id legacyResourceId title sku price availableForSale inventoryQuantity } }
}"""
SEARCH_VARIANTS, PRODUCT_VARIANTS, SEARCH_MAX = 10, 50, 25

ORDER_FIELDS = """
fragment OrderFields on Order {
  id legacyResourceId name email createdAt processedAt cancelledAt closedAt
  displayFinancialStatus displayFulfillmentStatus
  totalPriceSet { shopMoney { amount currencyCode } }
  fulfillments(first: 20) { status displayStatus createdAt trackingInfo(first: 10) { company number url } }
  lineItems(first: 100) { nodes { title quantity sku variant { id legacyResourceId } } }
}"""

SHOP_IDENTITY = "query ShopIdentity { shop { name myshopifyDomain } }"
SEARCH_PRODUCTS = (
    "query SearchProducts($first: Int!, $query: String, $after: String) {"
    " products(first: $first, query: $query, after: $after) {"
    " nodes { ...ProductFields } pageInfo { hasNextPage endCursor } } }"
    + _PRODUCT_FIELDS.replace("VARIANTS", str(SEARCH_VARIANTS))
)
GET_PRODUCT = ("query GetProduct($id: ID!) { product(id: $id) { ...ProductFields } }"
               + _PRODUCT_FIELDS.replace("VARIANTS", str(PRODUCT_VARIANTS)))
GET_ORDER = "query GetOrder($id: ID!) { order(id: $id) { ...OrderFields } }" + ORDER_FIELDS
FIND_ORDER = (
    "query FindOrderByName($query: String!) { orders(first: 1, query: $query) {"
    " nodes { ...OrderFields } } }" + ORDER_FIELDS
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
                caller_fields: dict[str, str] | None = None) -> dict:
        """Run ``document``; the ``data`` object. ``caller_fields`` maps the variables whose values
        the caller chose to the request fields they came from, so that Shopify's verdict on one
        of them is the caller's 422, not Shopify's 502."""
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
        if payload.get("errors"):
            _refused(payload["errors"], variables or {}, caller_fields or {})
        data = payload.get("data")
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


def _json(response: Response) -> dict:
    try:
        payload = response.json()
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        raise UpstreamBadResponse(NAME, "Shopify answered with something that is not JSON.") from None
    if not isinstance(payload, dict):
        raise UpstreamBadResponse(NAME, "Shopify answered with unexpected JSON.")
    return payload


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


# --- reading Shopify's JSON -------------------------------------------------------------------
#
# Every value taken from Shopify's answer goes through one of these readers, which accept exactly
# the documented type (or null) and refuse anything else with 502 upstream_bad_response. So an
# unexpected shape — a number where an object belongs, a string for pageInfo — is Shopify's bad
# answer, never our 500, and what we return always matches our response schema.

_CONTROL = re.compile(r"[^\x20-\x7e]")
MAX_ID = 2**64 - 1  # Shopify's ids are UnsignedInt64


def _unexpected() -> UpstreamBadResponse:
    return UpstreamBadResponse(NAME, "Shopify answered with an unexpected shape.")


def _obj(value) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _unexpected()
    return value


def _list(value) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _unexpected()
    return value


def _str(value) -> str | None:
    if value is not None and not isinstance(value, str):
        raise _unexpected()
    return value


def _int(value) -> int | None:
    if value is not None and (type(value) is not int or abs(value) > MAX_ID):
        raise _unexpected()
    return value


def _bool(value) -> bool | None:
    if value is not None and not isinstance(value, bool):
        raise _unexpected()
    return value


def _id(value) -> str | None:
    """An UnsignedInt64 (a string of digits; an integer is accepted too)."""
    if value is None:
        return None
    text = str(_int(value)) if type(value) is int else _str(value)
    if not _NUMERIC_ID.fullmatch(text) or int(text) > MAX_ID:
        raise _unexpected()
    return text


# --- mapping Shopify's shapes to ours ---------------------------------------------------------


def _money(value) -> dict | None:
    node = _obj(value)
    if not node:
        return None
    return {"amount": _str(node.get("amount")), "currency": _str(node.get("currencyCode"))}


def product_out(value) -> dict:
    node = _obj(value)
    image = _obj(_obj(_obj(node.get("featuredMedia")).get("preview")).get("image"))
    price = _obj(node.get("priceRangeV2"))
    return {
        "id": _id(node.get("legacyResourceId")),
        "gid": _str(node.get("id")),
        "title": _str(node.get("title")),
        "handle": _str(node.get("handle")),
        "status": (_str(node.get("status")) or "").lower(),
        "vendor": _str(node.get("vendor")),
        "product_type": _str(node.get("productType")),
        "tags": [_str(tag) for tag in _list(node.get("tags"))],
        "total_inventory": _int(node.get("totalInventory")),
        "url": _str(node.get("onlineStoreUrl")),
        "price_range": {"min": _money(price.get("minVariantPrice")), "max": _money(price.get("maxVariantPrice"))},
        "image": {"url": _str(image.get("url")), "alt": _str(image.get("altText"))} if image else None,
        "variants": [_variant_out(v) for v in _list(_obj(node.get("variants")).get("nodes"))],
    }


def _variant_out(value) -> dict:
    v = _obj(value)
    return {
        "id": _id(v.get("legacyResourceId")),
        "title": _str(v.get("title")),
        "sku": _str(v.get("sku")),
        "price": _str(v.get("price")),
        "available": _bool(v.get("availableForSale")),
        "inventory_quantity": _int(v.get("inventoryQuantity")),
    }


def products_page_out(data: dict) -> dict:
    page = _obj(data.get("products"))
    info = _obj(page.get("pageInfo"))
    return {"data": [product_out(n) for n in _list(page.get("nodes"))],
            "next_cursor": _str(info.get("endCursor")) if _bool(info.get("hasNextPage")) else None}


def _node(data: dict, name: str) -> dict | None:
    """``data[name]``: an object, or None when Shopify found nothing."""
    return _obj(data.get(name)) or None


def _order_named(data: dict, name: str) -> dict | None:
    """The order called exactly ``name`` among the ``orders`` search results, if any."""
    for value in _list(_obj(data.get("orders")).get("nodes")):
        node = _obj(value)
        if (_str(node.get("name")) or "").lower() == name.lower():
            return node
    return None


def _tracking_out(value) -> dict:
    t = _obj(value)
    return {"company": _str(t.get("company")), "number": _str(t.get("number")), "url": _str(t.get("url"))}


def _line_item_out(value) -> dict:
    li = _obj(value)
    variant = _obj(li.get("variant"))
    return {
        "title": _str(li.get("title")),
        "quantity": _int(li.get("quantity")),
        "sku": _str(li.get("sku")),
        "variant_id": _id(variant.get("legacyResourceId")) if variant else None,
    }


def order_out(value) -> dict:
    node = _obj(value)
    fulfillments = []
    for item in _list(node.get("fulfillments")):
        f = _obj(item)
        fulfillments.append({
            "status": (_str(f.get("status")) or "").lower() or None,
            "display_status": _str(f.get("displayStatus")),
            "created_at": _str(f.get("createdAt")),
            "tracking": [_tracking_out(t) for t in _list(f.get("trackingInfo"))],
        })
    tracking = [t for f in fulfillments for t in f["tracking"]]
    return {
        "id": _id(node.get("legacyResourceId")),
        "gid": _str(node.get("id")),
        "name": _str(node.get("name")),
        "created_at": _str(node.get("createdAt")),
        "processed_at": _str(node.get("processedAt")),
        "cancelled_at": _str(node.get("cancelledAt")),
        "closed_at": _str(node.get("closedAt")),
        "financial_status": _str(node.get("displayFinancialStatus")),
        "fulfillment_status": _str(node.get("displayFulfillmentStatus")),
        "total": _money(_obj(node.get("totalPriceSet")).get("shopMoney")),
        "fulfillments": fulfillments,
        "tracking_numbers": [t["number"] for t in tracking if t["number"]],
        "tracking_urls": [t["url"] for t in tracking if t["url"]],
        "line_items": [_line_item_out(li) for li in _list(_obj(node.get("lineItems")).get("nodes"))],
    }


# --- the blueprint: three-line handlers -------------------------------------------------------

blp = Blueprint("shopify", __name__, url_prefix="/api/v1/shopify",
                description="Shopify product lookup and order tracking (GraphQL Admin API).")

_NUMERIC_ID = re.compile(r"[1-9][0-9]{0,19}", re.ASCII)
_ORDER_NAME = re.compile(r"#[A-Za-z0-9-]{1,32}", re.ASCII)


def _gid(kind: str, field: str, value: str) -> str:
    if not _NUMERIC_ID.fullmatch(value):
        raise ValidationFailed(field, "must be a numeric Shopify id")
    if int(value) > MAX_ID:  # nothing beyond 64 bits is a Shopify id: refused before any call
        raise ValidationFailed(field, f"must be a Shopify id (at most {MAX_ID})")
    return f"gid://shopify/{kind}/{value}"


class ProductSearchArgs(Schema):
    """The one pagination convention (``limit``, ``cursor``; app/pagination.py). ``first`` and
    ``after`` are the earlier names, still accepted."""

    query = fields.String(load_default=None, validate=validate.Length(max=200),
                          metadata={"description": "Shopify search syntax, e.g. `mug` or `sku:MUG-1`"})
    limit = fields.Integer(load_default=None, validate=validate.Range(min=1, max=SEARCH_MAX), metadata={
        "description": f"products per page, default 10 (each with up to {SEARCH_VARIANTS} variants; "
                       "fetch one product for all)"})
    cursor = fields.String(load_default=None, validate=validate.Regexp(pagination.CURSOR_PATTERN), metadata={
        "description": "`next_cursor` of the previous page (opaque)", "pattern": pagination.CURSOR_PATTERN})
    first = fields.Integer(load_default=None, validate=validate.Range(min=1, max=SEARCH_MAX),
                           metadata={"description": "old name of `limit`", "deprecated": True})
    after = fields.String(load_default=None, validate=validate.Regexp(pagination.CURSOR_PATTERN),
                          metadata={"description": "old name of `cursor`", "deprecated": True,
                                    "pattern": pagination.CURSOR_PATTERN})


class OrderArgs(Schema):
    email = fields.Email(load_default=None, metadata={
        "description": "when given, the order is only returned if it belongs to this email"})


class MoneySchema(Schema):
    amount = fields.String()
    currency = fields.String()


class VariantSchema(Schema):
    id = fields.String()
    title = fields.String()
    sku = fields.String(allow_none=True)
    price = fields.String(allow_none=True)
    available = fields.Boolean(allow_none=True)
    inventory_quantity = fields.Integer(allow_none=True)


class ProductSchema(Schema):
    id = fields.String()
    gid = fields.String()
    title = fields.String()
    handle = fields.String()
    status = fields.String()
    vendor = fields.String(allow_none=True)
    product_type = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    total_inventory = fields.Integer(allow_none=True)
    url = fields.String(allow_none=True)
    price_range = fields.Dict(keys=fields.String(), values=fields.Nested(MoneySchema, allow_none=True))
    image = fields.Dict(allow_none=True)
    variants = fields.List(fields.Nested(VariantSchema))


class ProductPageSchema(Schema):
    data = fields.List(fields.Nested(ProductSchema))
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "pass as `cursor` for the next page; null on the last page"})


class TrackingSchema(Schema):
    company = fields.String(allow_none=True)
    number = fields.String(allow_none=True)
    url = fields.String(allow_none=True)


class FulfillmentSchema(Schema):
    status = fields.String(allow_none=True)
    display_status = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)
    tracking = fields.List(fields.Nested(TrackingSchema))


class LineItemSchema(Schema):
    title = fields.String()
    quantity = fields.Integer()
    sku = fields.String(allow_none=True)
    variant_id = fields.String(allow_none=True)


class OrderSchema(Schema):
    id = fields.String()
    gid = fields.String()
    name = fields.String()
    created_at = fields.String(allow_none=True)
    processed_at = fields.String(allow_none=True)
    cancelled_at = fields.String(allow_none=True)
    closed_at = fields.String(allow_none=True)
    financial_status = fields.String(allow_none=True)
    fulfillment_status = fields.String(allow_none=True)
    total = fields.Nested(MoneySchema, allow_none=True)
    fulfillments = fields.List(fields.Nested(FulfillmentSchema))
    tracking_numbers = fields.List(fields.String())
    tracking_urls = fields.List(fields.String())
    line_items = fields.List(fields.Nested(LineItemSchema))


@blp.route("/products")
@blp.alt_response(200, schema=ProductPageSchema, success=True)
@org_required
@blp.arguments(ProductSearchArgs, location="query", as_kwargs=True)
@proxy_action(NAME, "products.search")
def search_products(integration, query, limit, cursor, first, after):
    """Search the connected store's products (Shopify search syntax)."""
    field = "cursor" if cursor else "after"
    cursor = cursor or after
    # Our cursor wraps Shopify's: one we did not issue is a 422 here, and one Shopify no longer
    # accepts (expired, another sort) is Shopify's verdict on the caller's input: a 422 as well.
    shopify_after = pagination.decode("shopify-products", cursor, field) if cursor else None
    data = client().graphql(integration.account_key, SEARCH_PRODUCTS,
                            {"first": limit or first or 10, "query": query, "after": shopify_after},
                            caller_fields={"after": field})
    page = products_page_out(data)
    if page["next_cursor"]:
        page["next_cursor"] = pagination.encode("shopify-products", page["next_cursor"])
    return page


@blp.route("/products/<product_id>")
@blp.alt_response(200, schema=ProductSchema, success=True)
@org_required
@proxy_action(NAME, "products.get")
def get_product(integration, product_id):
    """One product of the connected store by its numeric id."""
    gid = _gid("Product", "product_id", product_id)
    node = _node(client().graphql(integration.account_key, GET_PRODUCT, {"id": gid}), "product")
    if node is None:
        raise NotFound(f"No product {product_id} in this store.", code="product_not_found")
    return product_out(node)


@blp.route("/orders/<path:order_ref>")
@blp.alt_response(200, schema=OrderSchema, success=True)
@org_required
@blp.arguments(OrderArgs, location="query", as_kwargs=True)
@proxy_action(NAME, "orders.get")
def get_order(integration, order_ref, email):
    """An order's status, fulfillment, tracking and line items, by numeric id or by `#name` (send `%23`)."""
    shop = client()
    if _ORDER_NAME.fullmatch(order_ref):
        node = _order_named(shop.graphql(integration.account_key, FIND_ORDER, {"query": f"name:{order_ref}"}),
                            order_ref)
    else:
        gid = _gid("Order", "order_ref", order_ref) if _NUMERIC_ID.fullmatch(order_ref) else None
        if gid is None:
            raise ValidationFailed("order_ref", "must be a numeric order id or an order name like #1001")
        node = _node(shop.graphql(integration.account_key, GET_ORDER, {"id": gid}), "order")
    if node is None or (email and (_str(node.get("email")) or "").lower() != email.lower()):
        raise NotFound(f"No order {order_ref} in this store.", code="order_not_found")
    return order_out(node)


provider = Provider(
    name=NAME,
    title="Shopify",
    identifier=IdentifierField(
        name="storeName",
        pattern=DNS_LABEL,
        description="the store name, one DNS label: 'mystore' from mystore.myshopify.com",
        example="mystore",
        lower=True,
        max_length=63,
    ),
    credentials=CREDENTIALS,
    docs_url="https://shopify.dev/docs/api/admin-graphql",
    actions=["GET /api/v1/shopify/products", "GET /api/v1/shopify/products/{product_id}",
             "GET /api/v1/shopify/orders/{order_ref}"],
    blueprint=blp,
    verify=verify,
    rate_limit=rate_limit_signals,
)
