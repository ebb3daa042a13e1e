"""The GraphQL documents Switchboard sends to Shopify's Admin API (each one validated against
Shopify's real schema by tests/test_shopify_schema.py)."""

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
