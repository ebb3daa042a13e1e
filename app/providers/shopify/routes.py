"""Shopify's actions: the blueprint, its argument and answer schemas, three-line handlers."""

from __future__ import annotations

import re

from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate

from app import pagination
from app.auth import org_required
from app.errors import NotFound, UpstreamAuthFailed, UpstreamBadResponse, ValidationFailed, pointer
from app.providers.shopify.client import NAME, client
from app.providers.shopify.documents import (
    CART_VARIANTS,
    CREATE_DRAFT_ORDER,
    FIND_CUSTOMER,
    FIND_ORDER_NAMES,
    FIND_VARIANTS_BY_SKU,
    GET_DRAFT_ORDER,
    GET_DRAFT_ORDER_INVOICE,
    GET_ORDER,
    GET_PRODUCT,
    GET_VARIANT_INVENTORY,
    SEARCH_MAX,
    SEARCH_PRODUCTS,
    SEARCH_VARIANTS,
)
from app.providers.shopify.mapping import (
    MAX_ID,
    _NUMERIC_ID,
    _bool,
    _int,
    _list,
    _node,
    _obj,
    _str,
    customer_out,
    draft_order_out,
    exact_order_gid,
    exact_sku,
    inventory_out,
    order_out,
    product_out,
    products_page_out,
)
from app.proxy import proxy_action

# --- the blueprint: three-line handlers -------------------------------------------------------

blp = Blueprint("shopify", __name__, url_prefix="/api/v1/shopify",
                description="Shopify product lookup and order tracking (GraphQL Admin API).")

# Any name form: #1001, EN1001, 1001-A (a leading "-" would be a negated search term: refused).
_ORDER_NAME = re.compile(r"#?[A-Za-z0-9][A-Za-z0-9-]{0,31}", re.ASCII)
_PHONE = r"^\+[1-9][0-9]{6,14}$"  # E.164, as Shopify stores customers' phones


def _ascii_email(value: str) -> None:
    """Issue 7: non-ASCII values are refused before any call (as Klaviyo's and Kustomer's emails)."""
    if not value.isascii():
        raise ValidationError("must be an ASCII email address")
_SKU = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
_ID_PATTERN = r"^[1-9][0-9]{0,19}$"
MAX_LINES = 50


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
    email = fields.Email(load_default=None, validate=[validate.Length(max=254), _ascii_email], metadata={
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
    fulfillment_required = fields.Boolean(metadata={
        "description": "false when nothing is left to fulfil (2026-10: `FULFILLMENT_NOT_REQUIRED`; before: a "
                       "cancelled order with status `UNFULFILLED` and no fulfillments)"})
    withheld = fields.List(fields.String(), metadata={
        "description": "fields Shopify withheld (protected customer data or a missing scope); they are null"})


class CustomerArgs(Schema):
    email = fields.Email(load_default=None, validate=[validate.Length(max=254), _ascii_email],
                         metadata={"description": "the customer's email (ASCII)"})
    phone = fields.String(load_default=None, validate=validate.Regexp(_PHONE), metadata={
        "description": "E.164, e.g. `+14155550102`", "pattern": _PHONE})


class OrderSummarySchema(Schema):
    id = fields.String()
    name = fields.String()
    created_at = fields.String(allow_none=True)
    cancelled_at = fields.String(allow_none=True)
    financial_status = fields.String(allow_none=True)
    fulfillment_status = fields.String(allow_none=True)
    total = fields.Nested(MoneySchema, allow_none=True)


class ShopifyCustomerSchema(Schema):
    id = fields.String()
    gid = fields.String()
    display_name = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)
    tags = fields.List(fields.String())
    number_of_orders = fields.Integer()
    recent_orders = fields.List(fields.Nested(OrderSummarySchema), metadata={"description": "newest first, at most 5"})
    withheld = fields.List(fields.String(), metadata={
        "description": "fields Shopify withheld (protected customer data); they are null"})


class InventoryArgs(Schema):
    sku = fields.String(load_default=None, validate=validate.Regexp(_SKU), metadata={"pattern": _SKU})
    variant_id = fields.String(load_default=None, validate=validate.Regexp(_ID_PATTERN),
                               metadata={"pattern": _ID_PATTERN})


class LocationStockSchema(Schema):
    location_id = fields.String(allow_none=True)
    name = fields.String(allow_none=True)
    available = fields.Integer(allow_none=True)


class InventorySchema(Schema):
    variant_id = fields.String()
    sku = fields.String(allow_none=True)
    title = fields.String(allow_none=True)
    product_id = fields.String(allow_none=True)
    available_for_sale = fields.Boolean(allow_none=True)
    tracked = fields.Boolean(allow_none=True)
    available = fields.Integer(allow_none=True, metadata={"description": "sum over the locations"})
    locations = fields.List(fields.Nested(LocationStockSchema))
    withheld = fields.List(fields.String())


class LineSchema(Schema):
    variant_id = fields.String(required=True, validate=validate.Regexp(_ID_PATTERN),
                               metadata={"pattern": _ID_PATTERN, "description": "numeric variant id"})
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=999))


class DraftOrderCreateSchema(Schema):
    email = fields.Email(required=True, validate=[validate.Length(max=254), _ascii_email])
    items = fields.List(fields.Nested(LineSchema), required=True, validate=validate.Length(min=1, max=MAX_LINES))
    note = fields.String(load_default=None, validate=validate.Length(max=500))


class DraftOrderSchema(Schema):
    id = fields.String()
    gid = fields.String()
    name = fields.String()
    status = fields.String(allow_none=True)
    email = fields.String(allow_none=True)
    invoice_url = fields.String(allow_none=True)
    ready = fields.Boolean(allow_none=True)
    created_at = fields.String(allow_none=True)
    total = fields.Nested(MoneySchema, allow_none=True)
    line_items = fields.List(fields.Nested(LineItemSchema))
    withheld = fields.List(fields.String())


class InvoiceSchema(Schema):
    draft_order_id = fields.String()
    invoice_url = fields.String(allow_none=True)


class CartLinkCreateSchema(Schema):
    items = fields.List(fields.Nested(LineSchema), required=True, validate=validate.Length(min=1, max=MAX_LINES))


class CartLineSchema(Schema):
    variant_id = fields.String()
    quantity = fields.Integer()
    title = fields.String(allow_none=True)


class CartLinkSchema(Schema):
    url = fields.String(metadata={"description": "https://{store}.myshopify.com/cart/{variant}:{qty},…"})
    items = fields.List(fields.Nested(CartLineSchema))


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
    """An order's status, fulfillment, tracking and line items, by numeric id or by name in any form
    (`#1001` sent as `%231001`, `EN1001`, `1001-A`)."""
    withheld: list[str] = []
    node = _find_order(integration.account_key, order_ref, withheld)
    if node is not None and email:
        if "email" in withheld:
            # Fail closed: without the order's email we cannot tell the caller's order from another's.
            raise UpstreamAuthFailed(NAME, "Shopify withholds customers' emails from the platform's app "
                                           "(protected customer data), so the order cannot be checked against `email`.")
        if (_str(node.get("email")) or "").lower() != email.lower():
            node = None
    if node is None:
        raise NotFound(f"No order {order_ref} in this store.", code="order_not_found")
    return order_out(node, withheld)


def _find_order(shop_name: str, ref: str, withheld: list[str]) -> dict | None:
    """By id when ``ref`` is all digits (then by name, for stores whose names are bare numbers);
    otherwise by name: the exact name anywhere on a page of ``name:`` matches."""
    shop = client()
    if _NUMERIC_ID.fullmatch(ref):
        gid = _gid("Order", "order_ref", ref)
        node = _node(shop.graphql(shop_name, GET_ORDER, {"id": gid}, withheld=withheld), "order")
        if node is not None:
            return node
    elif not _ORDER_NAME.fullmatch(ref) or ref.isdigit():
        raise ValidationFailed("order_ref", "must be a numeric order id or an order name like #1001, EN1001 or 1001-A")
    found = exact_order_gid(shop.graphql(shop_name, FIND_ORDER_NAMES, {"query": f'name:"{ref}"'}), ref)
    if found is None:
        return None
    return _node(shop.graphql(shop_name, GET_ORDER, {"id": found}, withheld=withheld), "order")


@blp.route("/customers")
@blp.alt_response(200, schema=ShopifyCustomerSchema, success=True)
@org_required
@blp.arguments(CustomerArgs, location="query", as_kwargs=True)
@proxy_action(NAME, "customers.lookup")
def find_customer(integration, email, phone):
    """A customer by exact email or phone (E.164), with their five most recent orders."""
    identifier = _one_of(email=email and {"emailAddress": email}, phone=phone and {"phoneNumber": phone})
    withheld: list[str] = []
    data = client().graphql(integration.account_key, FIND_CUSTOMER, {"identifier": identifier}, withheld=withheld)
    if "customer" in withheld:
        raise UpstreamAuthFailed(NAME, "The platform's Shopify app may not read customers of this store "
                                       "(missing read_customers scope).")
    node = _node(data, "customerByIdentifier")
    if node is None:
        raise NotFound("No customer with that email or phone in this store.", code="customer_not_found")
    return customer_out(node, withheld)


@blp.route("/inventory")
@blp.alt_response(200, schema=InventorySchema, success=True)
@org_required
@blp.arguments(InventoryArgs, location="query", as_kwargs=True)
@proxy_action(NAME, "inventory.get")
def get_inventory(integration, sku, variant_id):
    """Available quantity per location for one variant, by exact SKU or numeric variant id."""
    _one_of(sku=sku, variant_id=variant_id)
    withheld: list[str] = []
    shop = client()
    if sku:
        # Quoted: the search syntax treats ``: \ ( )`` specially; the SKU pattern allows none of them.
        data = shop.graphql(integration.account_key, FIND_VARIANTS_BY_SKU, {"query": f'sku:"{sku}"'},
                            withheld=withheld)
        node = exact_sku(data, sku)
    else:
        gid = _gid("ProductVariant", "variant_id", variant_id)
        node = _node(shop.graphql(integration.account_key, GET_VARIANT_INVENTORY, {"id": gid}, withheld=withheld),
                     "productVariant")
    if "inventory" in withheld:
        raise UpstreamAuthFailed(NAME, "The platform's Shopify app may not read this store's inventory "
                                       "(missing read_inventory scope).")
    if node is None:
        raise NotFound(f"No variant {sku or variant_id} in this store.", code="variant_not_found")
    return inventory_out(node, withheld)


@blp.route("/draft-orders", methods=["POST"])
@blp.alt_response(201, schema=DraftOrderSchema, success=True)
@org_required
@blp.arguments(DraftOrderCreateSchema)
@proxy_action(NAME, "draft_orders.create")
def create_draft_order(integration, body):
    """Create a draft order from variants and quantities for a customer's email (a write: send an
    `Idempotency-Key`; a call whose outcome is unknown is never re-sent)."""
    lines = _distinct_lines(body["items"])
    variables = {"input": {"email": body["email"], "note": body["note"], "lineItems": [
        {"variantId": _gid("ProductVariant", f"items.{i}.variant_id", line["variant_id"]), "quantity": line["quantity"]}
        for i, line in enumerate(lines)]}}
    withheld: list[str] = []
    data = client().graphql(integration.account_key, CREATE_DRAFT_ORDER, variables, withheld=withheld)
    if "draft_order" in withheld:
        raise UpstreamAuthFailed(NAME, "The platform's Shopify app may not create draft orders in this store "
                                       "(missing write_draft_orders scope).")
    payload = _obj(data.get("draftOrderCreate"))
    _user_errors(payload.get("userErrors"))
    node = _node(payload, "draftOrder")
    if node is None:
        raise UpstreamBadResponse(NAME, "Shopify created no draft order and gave no reason.")
    return draft_order_out(node, withheld), 201


@blp.route("/draft-orders/<draft_order_id>")
@blp.alt_response(200, schema=DraftOrderSchema, success=True)
@org_required
@proxy_action(NAME, "draft_orders.get")
def get_draft_order(integration, draft_order_id):
    """One draft order of the connected store (status, total, lines, invoice URL)."""
    gid = _gid("DraftOrder", "draft_order_id", draft_order_id)
    withheld: list[str] = []
    node = _draft(client().graphql(integration.account_key, GET_DRAFT_ORDER, {"id": gid}, withheld=withheld),
                  draft_order_id, withheld)
    return draft_order_out(node, withheld)


@blp.route("/draft-orders/<draft_order_id>/invoice-url")
@blp.alt_response(200, schema=InvoiceSchema, success=True)
@org_required
@proxy_action(NAME, "draft_orders.invoice_url")
def get_draft_order_invoice(integration, draft_order_id):
    """The URL where the customer pays a draft order (Shopify's `invoiceUrl`)."""
    gid = _gid("DraftOrder", "draft_order_id", draft_order_id)
    withheld: list[str] = []
    node = _draft(client().graphql(integration.account_key, GET_DRAFT_ORDER_INVOICE, {"id": gid},
                                   withheld=withheld), draft_order_id, withheld)
    return {"draft_order_id": draft_order_id, "invoice_url": _str(node.get("invoiceUrl"))}


@blp.route("/cart-links", methods=["POST"])
@blp.alt_response(200, schema=CartLinkSchema, success=True)
@org_required
@blp.arguments(CartLinkCreateSchema)
@proxy_action(NAME, "cart_links.create")
def create_cart_link(integration, body):
    """A cart permalink for variants and quantities, each checked against the store's variants:
    an unknown or unavailable one (or more than is in stock) is a 422 naming the item."""
    lines = _distinct_lines(body["items"])
    ids = [_gid("ProductVariant", f"items.{i}.variant_id", line["variant_id"]) for i, line in enumerate(lines)]
    nodes = _list(client().graphql(integration.account_key, CART_VARIANTS, {"ids": ids}).get("nodes"))
    if len(nodes) != len(ids):
        raise UpstreamBadResponse(NAME, "Shopify answered with an unexpected shape.")
    out = []
    for i, (line, value) in enumerate(zip(lines, nodes)):
        node, field = _obj(value), f"items.{i}.variant_id"
        if _str(node.get("id")) != ids[i]:
            raise ValidationFailed(field, f"variant {line['variant_id']} is not in this store")
        if not _bool(node.get("availableForSale")):
            raise ValidationFailed(field, f"variant {line['variant_id']} is not available for sale")
        stock = _int(node.get("inventoryQuantity"))
        if _str(node.get("inventoryPolicy")) == "DENY" and stock is not None and line["quantity"] > stock:
            raise ValidationFailed(f"items.{i}.quantity", f"only {max(stock, 0)} of variant {line['variant_id']} in stock")
        out.append({"variant_id": line["variant_id"], "quantity": line["quantity"],
                    "title": _str(node.get("displayName")) or _str(node.get("title"))})
    path = ",".join(f"{line['variant_id']}:{line['quantity']}" for line in lines)
    return {"url": f"https://{integration.account_key}.myshopify.com/cart/{path}", "items": out}


def _one_of(**given):
    """Exactly one of the named query arguments; its value."""
    present = [value for value in given.values() if value]
    if len(present) != 1:
        raise ValidationFailed(next(iter(given)), f"give exactly one of {', '.join(given)}")
    return present[0]


def _distinct_lines(items: list[dict]) -> list[dict]:
    seen = set()
    for i, line in enumerate(items):
        if line["variant_id"] in seen:
            raise ValidationFailed(f"items.{i}.variant_id", "is listed twice; give one line per variant")
        seen.add(line["variant_id"])
    return items


def _draft(data: dict, draft_order_id: str, withheld: list[str]) -> dict:
    if "draft_order" in withheld:
        raise UpstreamAuthFailed(NAME, "The platform's Shopify app may not read draft orders of this store "
                                       "(missing read_draft_orders scope).")
    node = _node(data, "draftOrder")
    if node is None:
        raise NotFound(f"No draft order {draft_order_id} in this store.", code="draft_order_not_found")
    return node


# Shopify's userErrors ``field`` paths on DraftOrderInput → our request fields.
_INPUT_FIELDS = {"lineItems": "items", "variantId": "variant_id", "quantity": "quantity", "email": "email",
                 "note": "note"}


def _user_errors(value) -> None:
    """Shopify's ``userErrors`` on our input: the caller's 422 naming the field (nothing was created)."""
    errors = []
    for item in _list(value):
        error = _obj(item)
        path = [p for p in _list(error.get("field")) if isinstance(p, str)]
        parts = [p if p.isdigit() else _INPUT_FIELDS.get(p) for p in path]
        field = ".".join(parts) if parts and all(parts) else "body"
        message = (_str(error.get("message")) or "was refused by Shopify")[:200]
        errors.append({"field": field, "pointer": pointer([] if field == "body" else field.split(".")),
                       "message": message})
    if errors:
        raise ValidationFailed(errors[0]["field"], errors[0]["message"], errors=errors)
