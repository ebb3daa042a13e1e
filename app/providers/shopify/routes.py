"""Shopify's actions: the blueprint, its argument and answer schemas, three-line handlers."""

from __future__ import annotations

import re

from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app import pagination
from app.auth import org_required
from app.errors import NotFound, ValidationFailed
from app.providers.shopify.client import NAME, client
from app.providers.shopify.documents import FIND_ORDER, GET_ORDER, GET_PRODUCT, SEARCH_PRODUCTS, SEARCH_MAX, SEARCH_VARIANTS
from app.providers.shopify.mapping import MAX_ID, _NUMERIC_ID, _node, _order_named, _str, order_out, product_out, products_page_out
from app.proxy import proxy_action

# --- the blueprint: three-line handlers -------------------------------------------------------

blp = Blueprint("shopify", __name__, url_prefix="/api/v1/shopify",
                description="Shopify product lookup and order tracking (GraphQL Admin API).")

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
