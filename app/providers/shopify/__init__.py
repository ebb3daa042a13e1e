"""Shopify: product lookup and order tracking through the GraphQL Admin API (version pinned).

The org names its store (``mystore`` of mystore.myshopify.com); the platform's credentials reach it
(see ``client``).

Parts (style.md #13): ``client`` (credentials, tokens, outbound), ``documents`` (GraphQL),
``mapping`` (Shopify's JSON to ours), ``routes`` (the blueprint).
"""

from app.providers.base import DNS_LABEL, IdentifierField, Provider
from app.providers.shopify.client import CREDENTIALS, NAME, ShopifyClient, client, rate_limit_signals, verify
from app.providers.shopify.documents import (
    FIND_ORDER,
    GET_ORDER,
    GET_PRODUCT,
    ORDER_FIELDS,
    SEARCH_PRODUCTS,
    SHOP_IDENTITY,
)
from app.providers.shopify.routes import blp

__all__ = ["CREDENTIALS", "FIND_ORDER", "GET_ORDER", "GET_PRODUCT", "NAME", "ORDER_FIELDS", "SEARCH_PRODUCTS",
           "SHOP_IDENTITY", "ShopifyClient", "client", "provider", "verify"]

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
             "GET /api/v1/shopify/orders/{order_ref}", "GET /api/v1/shopify/customers",
             "GET /api/v1/shopify/inventory", "POST /api/v1/shopify/draft-orders",
             "GET /api/v1/shopify/draft-orders/{draft_order_id}",
             "GET /api/v1/shopify/draft-orders/{draft_order_id}/invoice-url", "POST /api/v1/shopify/cart-links"],
    blueprint=blp,
    verify=verify,
    rate_limit=rate_limit_signals,  # extensions.cost.throttleStatus on every answer (app/quota.py)
)
