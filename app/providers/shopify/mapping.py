"""Shopify's JSON to Switchboard's: strict readers, then one ``*_out`` per shape we return."""

from __future__ import annotations

import re

from app.providers.answers import Answer

NAME = "shopify"

# Every value of the answer is read through these (app/providers/answers.py).
_read = Answer(NAME, "Shopify")
_unexpected, _obj, _list, _str, _bool = _read.unexpected, _read.obj, _read.list, _read.str, _read.bool

# --- reading Shopify's JSON -------------------------------------------------------------------
#
# Every value taken from Shopify's answer goes through one of these readers, which accept exactly
# the documented type (or null) and refuse anything else with 502 upstream_bad_response. So an
# unexpected shape — a number where an object belongs, a string for pageInfo — is Shopify's bad
# answer, never our 500, and what we return always matches our response schema.

_CONTROL = re.compile(r"[^\x20-\x7e]")
MAX_ID = 2**64 - 1  # Shopify's ids are UnsignedInt64
_NUMERIC_ID = re.compile(r"[1-9][0-9]{0,19}", re.ASCII)


def _int(value) -> int | None:
    if value is not None and (type(value) is not int or abs(value) > MAX_ID):
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


# 2026-10: an order with nothing left to fulfil (cancelled or refunded before any fulfillment).
# Shopify treats its enums as open sets; any status we do not know is passed through as given.
FULFILLMENT_NOT_REQUIRED = "FULFILLMENT_NOT_REQUIRED"


def order_out(value, withheld: list[str] | None = None) -> dict:
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
        # Before 2026-10 the same order said UNFULFILLED: cancelled with no fulfillment means the same.
        "fulfillment_required": not (
            _str(node.get("displayFulfillmentStatus")) == FULFILLMENT_NOT_REQUIRED
            or (node.get("cancelledAt") is not None and not fulfillments
                and _str(node.get("displayFulfillmentStatus")) == "UNFULFILLED")),
        "withheld": list(withheld or []),
    }


def _order_names(data: dict) -> list[tuple[str, str]]:
    """(gid, name) of each order in an ``orders`` page."""
    pairs = []
    for value in _list(_obj(data.get("orders")).get("nodes")):
        node = _obj(value)
        pairs.append((_str(node.get("id")) or "", _str(node.get("name")) or ""))
    return pairs


def exact_order_gid(data: dict, ref: str) -> str | None:
    """The order whose name is exactly ``ref`` (case-insensitively) anywhere on the page — ``name:``
    is a token search, so the exact one need not come first. ``1001`` also finds ``#1001``."""
    pairs = _order_names(data)
    for wanted in (ref, "#" + ref) if not ref.startswith("#") else (ref,):
        for gid, name in pairs:
            if name.lower() == wanted.lower() and gid:
                return gid
    return None


def order_summary_out(value) -> dict:
    node = _obj(value)
    return {
        "id": _id(node.get("legacyResourceId")),
        "name": _str(node.get("name")),
        "created_at": _str(node.get("createdAt")),
        "cancelled_at": _str(node.get("cancelledAt")),
        "financial_status": _str(node.get("displayFinancialStatus")),
        "fulfillment_status": _str(node.get("displayFulfillmentStatus")),
        "total": _money(_obj(node.get("totalPriceSet")).get("shopMoney")),
    }


def customer_out(value, withheld: list[str]) -> dict:
    node = _obj(value)
    number = _str(node.get("numberOfOrders")) if isinstance(node.get("numberOfOrders"), str) else _int(
        node.get("numberOfOrders"))
    return {
        "id": _id(node.get("legacyResourceId")),
        "gid": _str(node.get("id")),
        "display_name": _str(node.get("displayName")),
        "first_name": _str(node.get("firstName")),
        "last_name": _str(node.get("lastName")),
        "email": _str(_obj(node.get("defaultEmailAddress")).get("emailAddress")),
        "phone": _str(_obj(node.get("defaultPhoneNumber")).get("phoneNumber")),
        "created_at": _str(node.get("createdAt")),
        "tags": [_str(tag) for tag in _list(node.get("tags"))],
        "number_of_orders": int(_id(number)) if number not in (None, "0", 0) else 0,
        "recent_orders": [order_summary_out(o) for o in _list(_obj(node.get("orders")).get("nodes"))],
        "withheld": list(withheld),
    }


def exact_sku(data: dict, sku: str) -> dict | None:
    """The variant whose SKU is exactly ``sku`` (``sku:`` is tokenised; the first exact one wins)."""
    for value in _list(_obj(data.get("productVariants")).get("nodes")):
        node = _obj(value)
        if (_str(node.get("sku")) or "") == sku:
            return node
    return None


def inventory_out(value, withheld: list[str]) -> dict:
    node = _obj(value)
    product = _obj(node.get("product"))
    item = _obj(node.get("inventoryItem"))
    locations = []
    for level_value in _list(_obj(item.get("inventoryLevels")).get("nodes")):
        level = _obj(level_value)
        location = _obj(level.get("location"))
        available = None
        for q in _list(level.get("quantities")):
            q = _obj(q)
            if _str(q.get("name")) == "available":
                available = _int(q.get("quantity"))
        locations.append({"location_id": _id(location.get("legacyResourceId")),
                          "name": _str(location.get("name")), "available": available})
    return {
        "variant_id": _id(node.get("legacyResourceId")),
        "sku": _str(node.get("sku")),
        "title": _str(node.get("displayName")) or _str(node.get("title")),
        "product_id": _id(product.get("legacyResourceId")),
        "available_for_sale": _bool(node.get("availableForSale")),
        "tracked": _bool(item.get("tracked")) if item else None,
        "available": sum(loc["available"] or 0 for loc in locations) if item else _int(node.get("inventoryQuantity")),
        "locations": locations,
        "withheld": list(withheld),
    }


def draft_order_out(value, withheld: list[str] | None = None) -> dict:
    node = _obj(value)
    return {
        "id": _id(node.get("legacyResourceId")),
        "gid": _str(node.get("id")),
        "name": _str(node.get("name")),
        "status": _str(node.get("status")),
        "email": _str(node.get("email")),
        "invoice_url": _str(node.get("invoiceUrl")),
        "ready": _bool(node.get("ready")),
        "created_at": _str(node.get("createdAt")),
        "total": _money(_obj(node.get("totalPriceSet")).get("shopMoney")),
        "line_items": [_line_item_out(li) for li in _list(_obj(node.get("lineItems")).get("nodes"))],
        "withheld": list(withheld or []),
    }
