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

# Order names are not always "#1001" (EN1001, 1001-A) and ``name:`` is a token search, not an
# exact one: fetch a page of (id, name) pairs cheaply, pick the exact name, then fetch that order.
FIND_ORDER_NAMES = (
    "query FindOrderNames($query: String!) { orders(first: 50, query: $query) { nodes { id name } } }"
)

_ORDER_SUMMARY = """
fragment OrderSummary on Order {
  id legacyResourceId name createdAt cancelledAt displayFinancialStatus displayFulfillmentStatus
  totalPriceSet { shopMoney { amount currencyCode } }
}"""
RECENT_ORDERS = 5
FIND_CUSTOMER = (
    "query FindCustomer($identifier: CustomerIdentifierInput!) {"
    " customerByIdentifier(identifier: $identifier) {"
    " id legacyResourceId displayName firstName lastName createdAt numberOfOrders tags"
    " defaultEmailAddress { emailAddress } defaultPhoneNumber { phoneNumber }"
    f" orders(first: {RECENT_ORDERS}, sortKey: CREATED_AT, reverse: true) {{ nodes {{ ...OrderSummary }} }} }} }}"
    + _ORDER_SUMMARY
)

_INVENTORY_FIELDS = """
fragment InventoryFields on ProductVariant {
  id legacyResourceId sku title displayName availableForSale inventoryQuantity
  product { legacyResourceId title }
  inventoryItem { tracked inventoryLevels(first: 20) {
    nodes { location { legacyResourceId name } quantities(names: ["available"]) { name quantity } } } }
}"""
# ``sku:`` is tokenised too: several variants may come back; the exact SKU is picked by us. Five
# variants × 20 locations keeps the query well under the 1,000-point single-query limit.
FIND_VARIANTS_BY_SKU = (
    "query VariantsBySku($query: String!) { productVariants(first: 5, query: $query) {"
    " nodes { ...InventoryFields } } }" + _INVENTORY_FIELDS
)
GET_VARIANT_INVENTORY = (
    "query VariantInventory($id: ID!) { productVariant(id: $id) { ...InventoryFields } }" + _INVENTORY_FIELDS
)

CART_VARIANTS = (
    "query CartVariants($ids: [ID!]!) { nodes(ids: $ids) { ... on ProductVariant {"
    " id legacyResourceId title displayName availableForSale inventoryPolicy inventoryQuantity } } }"
)

_DRAFT_ORDER_FIELDS = """
fragment DraftOrderFields on DraftOrder {
  id legacyResourceId name status email invoiceUrl ready createdAt
  totalPriceSet { shopMoney { amount currencyCode } }
  lineItems(first: 100) { nodes { title quantity sku variant { legacyResourceId } } }
}"""
# A mutation: never re-sent blindly (ShopifyClient.graphql sends only queries as idempotent).
CREATE_DRAFT_ORDER = (
    "mutation CreateDraftOrder($input: DraftOrderInput!) { draftOrderCreate(input: $input) {"
    " draftOrder { ...DraftOrderFields } userErrors { field message } } }" + _DRAFT_ORDER_FIELDS
)
GET_DRAFT_ORDER = (
    "query GetDraftOrder($id: ID!) { draftOrder(id: $id) { ...DraftOrderFields } }" + _DRAFT_ORDER_FIELDS
)
GET_DRAFT_ORDER_INVOICE = "query GetDraftOrderInvoice($id: ID!) { draftOrder(id: $id) { id invoiceUrl } }"

# Every document Switchboard sends (tests/test_shopify_schema.py validates each against the real schema).
ALL = {name: value for name, value in dict(globals()).items()
       if name.isupper() and isinstance(value, str) and value.lstrip().startswith(("query", "mutation"))}
