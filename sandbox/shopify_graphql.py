"""The GraphQL half of the Shopify emulator: schema, demo-data views, search syntax, cost.

``sandbox/shopify.py`` owns HTTP (paths, tokens, buckets, faults); this module answers the
question "what does the GraphQL Admin API return for this document against this shop?".

    request body ──▶ prepare()  parse → validate → requested cost      (no data touched)
                 ──▶ execute()  graphql-core execution → data/errors → actual cost

Schema
    ``SDL`` below is a hand-written *subset* of the Admin API 2026-10 schema: same type names,
    field names, argument names, nullability and enum values as Shopify's reference
    (https://shopify.dev/docs/api/admin-graphql/2026-10). Types we do not serve are absent,
    so a query for them fails validation exactly as a misspelt field would. Root type is
    ``QueryRoot`` as in Shopify. ``UnsignedInt64``, ``Money``, ``Decimal``, ``URL`` and
    ``DateTime`` serialise as JSON strings, as Shopify does.

Cost (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits#cost-calculation)
    Documented rules: scalar/enum 0, object 1, interface/union = max over possible selections,
    connection = 2 + (first|last) × cost of one node. What we approximate (guesses, flagged):
      * a plain list of objects taking ``first`` (``Order.fulfillments``, ``Fulfillment.trackingInfo``)
        costs ``first × (1 + children)``; without ``first`` it costs like one object;
      * ``pageInfo``/``edges``/``cursor`` are covered by the connection's 2 points;
      * ``actualQueryCost`` re-runs the same rules over the response: null objects cost 0 and
        connections/lists are sized by what was actually returned;
      * a document that fails to parse or validate reports requested/actual cost 0.
    A single query may not request more than ``max_query_cost`` (1000) points:
    ``MAX_COST_EXCEEDED``, checked before execution like Shopify.

Search syntax (https://shopify.dev/docs/api/usage/search-syntax)
    Whitespace-separated terms are ANDed; ``OR`` between terms; ``-term`` / ``NOT term``
    negate; ``field:value`` with ``"quoted values"``; ``value*`` is a prefix match; ``a,b``
    lists alternatives for enum-like fields. Products: free text matches title, vendor, tags
    and variant SKUs (case-insensitive substring — a guess; Shopify tokenises words);
    fields ``title``, ``sku``, ``status``, ``vendor``, ``product_type``, ``tag``, ``tag_not``,
    ``handle``, ``id``. Orders: free text matches name and email; fields ``name`` (token match:
    ``1001`` finds ``#1001`` and ``1001-A``), ``email``, ``id``, ``status`` (open/closed/cancelled), ``financial_status``,
    ``fulfillment_status``. An unknown field is ignored (guess: Shopify reports a warning in
    ``extensions.search``; we do not). Shopify limits ``orders`` to the last 60 days without
    ``read_all_orders``; the emulator does not.

Error shapes
    Validation errors carry graphql-ruby's codes in ``extensions.code`` (``undefinedField``,
    ``missingRequiredArguments``…), which is what Shopify returns; the *messages* are
    graphql-core's wording, not graphql-ruby's. Parse errors carry no code (as Shopify).
    Guessed messages: an invalid GID (``Invalid global id '…'``, code
    ``argumentLiteralsIncompatible`` — seen in the wild), missing first/last
    (``you must provide one of first or last``), page size over 250, and an undecodable cursor.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    build_schema,
    execute,
    get_named_type,
    get_operation_ast,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    parse,
    specified_rules,
    validate,
    value_from_ast_untyped,
)

MAX_PAGE_SIZE = 250  # https://shopify.dev/docs/api/usage/pagination-graphql
DEFAULT_MAX_QUERY_COST = 1000  # "A single query ... cannot exceed a cost of 1,000"
RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"

SDL = '''
schema { query: QueryRoot  mutation: Mutation }

scalar DateTime
scalar Decimal
scalar HTML
scalar Money
scalar URL
scalar UnsignedInt64

interface Node { id: ID! }

type QueryRoot {
  customerByIdentifier(identifier: CustomerIdentifierInput!): Customer
  draftOrder(id: ID!): DraftOrder
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  order(id: ID!): Order
  orders(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
         sortKey: OrderSortKeys = PROCESSED_AT, query: String, savedSearchId: ID): OrderConnection!
  product(id: ID!): Product
  productVariant(id: ID!): ProductVariant
  productVariants(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
                  sortKey: ProductVariantSortKeys = ID, query: String, savedSearchId: ID): ProductVariantConnection!
  products(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
           sortKey: ProductSortKeys = ID, query: String, savedSearchId: ID): ProductConnection!
  shop: Shop!
}

type Mutation {
  draftOrderCreate(input: DraftOrderInput!): DraftOrderCreatePayload
}

input CustomerIdentifierInput { emailAddress: String  id: ID  phoneNumber: String }

enum CustomerState { DECLINED DISABLED ENABLED INVITED }

type CustomerEmailAddress { emailAddress: String! }
type CustomerPhoneNumber { phoneNumber: String! }

type Customer implements Node {
  createdAt: DateTime!
  defaultEmailAddress: CustomerEmailAddress
  defaultPhoneNumber: CustomerPhoneNumber
  displayName: String!
  email: String
  firstName: String
  id: ID!
  lastName: String
  legacyResourceId: UnsignedInt64!
  numberOfOrders: UnsignedInt64!
  orders(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
         sortKey: OrderSortKeys = ID, query: String): OrderConnection!
  phone: String
  state: CustomerState!
  tags: [String!]!
}

type Location implements Node {
  id: ID!
  isActive: Boolean!
  legacyResourceId: UnsignedInt64!
  name: String!
}

type InventoryQuantity implements Node { id: ID!  name: String!  quantity: Int!  updatedAt: DateTime }

type InventoryLevel implements Node {
  id: ID!
  location: Location!
  quantities(names: [String!]!): [InventoryQuantity!]!
}

type InventoryLevelConnection { edges: [InventoryLevelEdge!]!  nodes: [InventoryLevel!]!  pageInfo: PageInfo! }
type InventoryLevelEdge { cursor: String!  node: InventoryLevel! }

type InventoryItem implements Node {
  id: ID!
  inventoryLevels(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
                  query: String): InventoryLevelConnection!
  legacyResourceId: UnsignedInt64!
  sku: String
  tracked: Boolean!
}

enum DraftOrderStatus { COMPLETED INVOICE_SENT OPEN }

type DraftOrderLineItem implements Node {
  id: ID!
  name: String!
  originalUnitPriceSet: MoneyBag!
  quantity: Int!
  sku: String
  title: String!
  variant: ProductVariant
}

type DraftOrderLineItemConnection { edges: [DraftOrderLineItemEdge!]!  nodes: [DraftOrderLineItem!]!  pageInfo: PageInfo! }
type DraftOrderLineItemEdge { cursor: String!  node: DraftOrderLineItem! }

type DraftOrder implements Node {
  createdAt: DateTime!
  customer: Customer
  email: String
  id: ID!
  invoiceSentAt: DateTime
  invoiceUrl: URL
  legacyResourceId: UnsignedInt64!
  lineItems(first: Int, after: String, last: Int, before: String, reverse: Boolean = false): DraftOrderLineItemConnection!
  name: String!
  note2: String  # Shopify's name for the draft's note (DraftOrderInput says `note`)
  order: Order
  ready: Boolean!
  status: DraftOrderStatus!
  totalPriceSet: MoneyBag!
}

input DraftOrderLineItemInput { quantity: Int!  variantId: ID }
input PurchasingEntityInput { customerId: ID }
input DraftOrderInput {
  email: String
  lineItems: [DraftOrderLineItemInput!]
  note: String
  purchasingEntity: PurchasingEntityInput
  tags: [String!]
}

type UserError { field: [String!]  message: String! }

type DraftOrderCreatePayload { draftOrder: DraftOrder  userErrors: [UserError!]! }

type Shop implements Node {
  contactEmail: String!
  currencyCode: CurrencyCode!
  email: String!
  id: ID!
  myshopifyDomain: String!
  name: String!
  primaryDomain: Domain!
  url: URL!
}

type Domain implements Node {
  host: String!
  id: ID!
  sslEnabled: Boolean!
  url: URL!
}

enum CurrencyCode { AUD CAD CHF DKK EUR GBP JPY NOK NZD SEK USD }

type MoneyV2 { amount: Decimal!  currencyCode: CurrencyCode! }
type MoneyBag { presentmentMoney: MoneyV2!  shopMoney: MoneyV2! }

type PageInfo {
  endCursor: String
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
}

enum ProductStatus { ACTIVE ARCHIVED DRAFT UNLISTED }

enum ProductSortKeys { CREATED_AT ID INVENTORY_TOTAL PRODUCT_TYPE PUBLISHED_AT RELEVANCE TITLE UPDATED_AT VENDOR }

type Product implements Node {
  createdAt: DateTime!
  description(truncateAt: Int): String!
  descriptionHtml: HTML!
  featuredMedia: Media
  handle: String!
  hasOnlyDefaultVariant: Boolean!
  id: ID!
  legacyResourceId: UnsignedInt64!
  onlineStoreUrl: URL
  priceRangeV2: ProductPriceRangeV2!
  productType: String!
  publishedAt: DateTime
  status: ProductStatus!
  tags: [String!]!
  title: String!
  totalInventory: Int!
  tracksInventory: Boolean!
  updatedAt: DateTime!
  variants(first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
           sortKey: ProductVariantSortKeys = POSITION): ProductVariantConnection!
  vendor: String!
}

type ProductPriceRangeV2 { maxVariantPrice: MoneyV2!  minVariantPrice: MoneyV2! }

type ProductConnection { edges: [ProductEdge!]!  nodes: [Product!]!  pageInfo: PageInfo! }
type ProductEdge { cursor: String!  node: Product! }

enum ProductVariantInventoryPolicy { CONTINUE DENY }
enum ProductVariantSortKeys { FULL_TITLE ID INVENTORY_LEVELS_AVAILABLE INVENTORY_MANAGEMENT INVENTORY_POLICY
                              INVENTORY_QUANTITY NAME POPULAR POSITION RELEVANCE SKU TITLE }

type ProductVariant implements Node {
  availableForSale: Boolean!
  barcode: String
  compareAtPrice: Money
  createdAt: DateTime!
  displayName: String!
  id: ID!
  inventoryItem: InventoryItem!
  inventoryPolicy: ProductVariantInventoryPolicy!
  inventoryQuantity: Int
  legacyResourceId: UnsignedInt64!
  position: Int!
  price: Money!
  product: Product!
  sku: String
  taxable: Boolean!
  title: String!
  updatedAt: DateTime!
}

type ProductVariantConnection { edges: [ProductVariantEdge!]!  nodes: [ProductVariant!]!  pageInfo: PageInfo! }
type ProductVariantEdge { cursor: String!  node: ProductVariant! }

enum MediaContentType { EXTERNAL_VIDEO IMAGE MODEL_3D VIDEO }
enum MediaStatus { FAILED PROCESSING READY UPLOADED }
enum MediaPreviewImageStatus { FAILED PROCESSING READY UPLOADED }
enum CropRegion { BOTTOM CENTER LEFT RIGHT TOP }
enum ImageContentType { JPG PNG WEBP }

input ImageTransformInput {
  crop: CropRegion
  maxHeight: Int
  maxWidth: Int
  preferredContentType: ImageContentType
  scale: Int = 1
}

interface Media {
  alt: String
  id: ID!
  mediaContentType: MediaContentType!
  preview: MediaPreviewImage
  status: MediaStatus!
}

type MediaImage implements Media & Node {
  alt: String
  createdAt: DateTime!
  id: ID!
  image: Image
  mediaContentType: MediaContentType!
  mimeType: String
  preview: MediaPreviewImage
  status: MediaStatus!
}

type MediaPreviewImage { image: Image  status: MediaPreviewImageStatus! }

type Image {
  altText: String
  height: Int
  id: ID
  url(transform: ImageTransformInput): URL!
  width: Int
}

enum OrderSortKeys { CREATED_AT CUSTOMER_NAME FINANCIAL_STATUS FULFILLMENT_STATUS ID ORDER_NUMBER
                     PROCESSED_AT RELEVANCE TOTAL_PRICE UPDATED_AT }
enum OrderCancelReason { CUSTOMER DECLINED FRAUD INVENTORY OTHER STAFF }
enum OrderDisplayFinancialStatus { AUTHORIZED EXPIRED PAID PARTIALLY_PAID PARTIALLY_REFUNDED PENDING REFUNDED VOIDED }
# FULFILLMENT_NOT_REQUIRED is new in 2026-10 (a breaking change in Shopify's changelog:
# https://shopify.dev/changelog/orderdisplayfulfillmentstatus-now-returns-fulfillmentnotrequired);
# earlier versions answer UNFULFILLED for the same orders (ShopView._order).
enum OrderDisplayFulfillmentStatus { FULFILLED FULFILLMENT_NOT_REQUIRED IN_PROGRESS ON_HOLD OPEN PARTIALLY_FULFILLED
                                     PENDING_FULFILLMENT REQUEST_DECLINED RESTOCKED SCHEDULED UNFULFILLED }

type Order implements Node {
  cancelReason: OrderCancelReason
  cancelledAt: DateTime
  closed: Boolean!
  closedAt: DateTime
  createdAt: DateTime!
  currencyCode: CurrencyCode!
  customer: Customer
  displayFinancialStatus: OrderDisplayFinancialStatus
  displayFulfillmentStatus: OrderDisplayFulfillmentStatus!
  email: String
  fulfillments(first: Int, query: String): [Fulfillment!]!
  id: ID!
  legacyResourceId: UnsignedInt64!
  lineItems(first: Int, after: String, last: Int, before: String, reverse: Boolean = false): LineItemConnection!
  name: String!
  note: String
  phone: String
  processedAt: DateTime!
  statusPageUrl: URL!
  subtotalPriceSet: MoneyBag
  tags: [String!]!
  test: Boolean!
  totalPriceSet: MoneyBag!
  totalRefundedSet: MoneyBag!
  updatedAt: DateTime!
}

type OrderConnection { edges: [OrderEdge!]!  nodes: [Order!]!  pageInfo: PageInfo! }
type OrderEdge { cursor: String!  node: Order! }

type LineItem implements Node {
  currentQuantity: Int!
  id: ID!
  name: String!
  originalUnitPriceSet: MoneyBag!
  product: Product
  quantity: Int!
  sku: String
  title: String!
  variant: ProductVariant
  variantTitle: String
  vendor: String
}

type LineItemConnection { edges: [LineItemEdge!]!  nodes: [LineItem!]!  pageInfo: PageInfo! }
type LineItemEdge { cursor: String!  node: LineItem! }

enum FulfillmentStatus { CANCELLED ERROR FAILURE OPEN PENDING SUCCESS }
enum FulfillmentDisplayStatus { ATTEMPTED_DELIVERY CANCELED CARRIER_PICKED_UP CONFIRMED DELAYED DELIVERED FAILURE
                                FULFILLED IN_TRANSIT LABEL_PRINTED LABEL_PURCHASED LABEL_VOIDED MARKED_AS_FULFILLED
                                NOT_DELIVERED OUT_FOR_DELIVERY PICKED_UP READY_FOR_PICKUP SUBMITTED }

type Fulfillment implements Node {
  createdAt: DateTime!
  deliveredAt: DateTime
  displayStatus: FulfillmentDisplayStatus
  estimatedDeliveryAt: DateTime
  id: ID!
  inTransitAt: DateTime
  legacyResourceId: UnsignedInt64!
  name: String!
  order: Order!
  requiresShipping: Boolean!
  status: FulfillmentStatus!
  totalQuantity: Int!
  trackingInfo(first: Int): [FulfillmentTrackingInfo!]!
  updatedAt: DateTime!
}

type FulfillmentTrackingInfo { company: String  number: String  url: URL }
'''

SCHEMA: GraphQLSchema = build_schema(SDL)

# graphql-ruby's static-validation codes, which Shopify puts in errors[].extensions.code.
_RULE_CODES = {
    "FieldsOnCorrectTypeRule": "undefinedField",
    "KnownArgumentNamesRule": "argumentNotAccepted",
    "ProvidedRequiredArgumentsRule": "missingRequiredArguments",
    "KnownTypeNamesRule": "undefinedType",
    "ScalarLeafsRule": "selectionMismatch",
    "ValuesOfCorrectTypeRule": "argumentLiteralsIncompatible",
    "VariablesInAllowedPositionRule": "variableMismatch",
    "NoUnusedVariablesRule": "variableNotUsed",
    "NoUndefinedVariablesRule": "undefinedVariable",
    "KnownFragmentNamesRule": "undefinedFragment",
    "NoUnusedFragmentsRule": "useAndDefineFragment",
    "KnownDirectivesRule": "undefinedDirective",
    "UniqueArgumentNamesRule": "argumentUniqueness",
    "UniqueOperationNamesRule": "operationNotUnique",
    "UniqueFragmentNamesRule": "fragmentNotUnique",
    "UniqueVariableNamesRule": "variableNotUnique",
    "FragmentsOnCompositeTypesRule": "fragmentOnNonCompositeType",
    "PossibleFragmentSpreadsRule": "cannotSpreadFragment",
    "NoFragmentCyclesRule": "infiniteLoop",
    "VariablesAreInputTypesRule": "variableRequiresValidType",
    "KnownOperationTypesRule": "missingQueryConfiguration",
    "OverlappingFieldsCanBeMergedRule": "fieldConflict",
}


# --------------------------------------------------------------------------- GIDs


def gid(kind: str, numeric_id: int) -> str:
    return f"gid://shopify/{kind}/{numeric_id}"


_GID = re.compile(r"gid://shopify/([A-Za-z0-9]+)/(\d+)(?:\?.*)?")


def parse_gid(value: str) -> tuple[str, int]:
    """Split a Shopify GID; a malformed one is an error, as on Shopify."""
    match = _GID.fullmatch(value or "")
    if not match:
        raise GraphQLError(
            f"Invalid global id '{value}'",
            extensions={"code": "argumentLiteralsIncompatible", "typeName": "CoercionError"},
        )
    return match.group(1), int(match.group(2))


# --------------------------------------------------------------------------- search syntax


@dataclass(frozen=True)
class _Term:
    field: str | None  # None: free text
    value: str
    negated: bool


_TOKEN = re.compile(r'(-?)(?:([A-Za-z_]+):)?(?:"([^"]*)"|(\S+))')


def parse_search(query: str | None) -> list[list[_Term]]:
    """Parse Shopify search syntax into OR-groups of ANDed terms (no parentheses)."""
    groups: list[list[_Term]] = [[]]
    negate_next = False
    for match in _TOKEN.finditer(query or ""):
        dash, field, quoted, bare = match.groups()
        value = quoted if quoted is not None else bare
        if field is None and quoted is None:
            if value == "OR":
                groups.append([])
                continue
            if value == "AND":
                continue
            if value == "NOT":
                negate_next = True
                continue
        groups[-1].append(_Term(field.lower() if field else None, value, bool(dash) or negate_next))
        negate_next = False
    return [group for group in groups if group] or [[]]


def _text_match(haystack: str | None, needle: str) -> bool:
    return needle.rstrip("*").lower() in (haystack or "").lower()


def _exact_match(value: str | None, needle: str) -> bool:
    value = (value or "").lower()
    needle = needle.lower()
    if needle.endswith("*"):
        return value.startswith(needle[:-1])
    return value == needle


def _any_of(value: str | None, needle: str) -> bool:
    return any(_exact_match(value, option) for option in needle.split(","))


def _matches(groups: list[list[_Term]], term_match: Callable[[_Term], bool | None]) -> bool:
    def holds(term: _Term) -> bool:
        result = term_match(term)
        if result is None:  # unknown field: ignored
            return True
        return result != term.negated

    return any(all(holds(term) for term in group) for group in groups)


def _product_term(product: dict, term: _Term) -> bool | None:
    skus = [v["sku"] for v in product["_variants"]]
    match term.field:
        case None:
            return (
                _text_match(product["title"], term.value)
                or _text_match(product["vendor"], term.value)
                or any(_text_match(tag, term.value) for tag in product["tags"])
                or any(_text_match(sku, term.value) for sku in skus)
            )
        case "title":
            return _text_match(product["title"], term.value)
        case "sku":
            return any(_exact_match(sku, term.value) for sku in skus)
        case "status":
            return _any_of(product["status"], term.value)
        case "vendor":
            return _exact_match(product["vendor"], term.value)
        case "product_type":
            return _exact_match(product["productType"], term.value)
        case "tag":
            return any(_any_of(tag, term.value) for tag in product["tags"])
        case "tag_not":
            return not any(_any_of(tag, term.value) for tag in product["tags"])
        case "handle":
            return _exact_match(product["handle"], term.value)
        case "id":
            return term.value == product["legacyResourceId"]
    return None


_ORDER_STATUS = {
    "open": lambda o: o["closedAt"] is None and o["cancelledAt"] is None,
    "closed": lambda o: o["closedAt"] is not None,
    "cancelled": lambda o: o["cancelledAt"] is not None,
    "not_closed": lambda o: o["closedAt"] is None,
}
_FULFILLMENT_STATUS = {
    "shipped": {"FULFILLED"},
    "fulfilled": {"FULFILLED"},
    "partial": {"PARTIALLY_FULFILLED"},
    "unshipped": {"UNFULFILLED"},
    "unfulfilled": {"UNFULFILLED", "PARTIALLY_FULFILLED"},
}


def _name_tokens(text: str) -> set[str]:
    return {t for t in re.split(r"[^0-9a-z]+", text.lower()) if t}


def _order_name_match(name: str, value: str) -> bool:
    # Shopify tokenises order names and matches tokens, so ``name:1001-A`` finds ``#1001`` as well
    # as ``1001-A`` (a guess with the documented consequence: ``name:`` is not exact, and the
    # exact order need not come first; callers compare names themselves).
    return bool(_name_tokens(name) & _name_tokens(value))


def _order_term(order: dict, term: _Term) -> bool | None:
    match term.field:
        case None:
            return _order_name_match(order["name"], term.value) or _text_match(order["email"], term.value)
        case "name":
            return any(_order_name_match(order["name"], v) for v in term.value.split(","))
        case "email":
            return _exact_match(order["email"], term.value)
        case "id":
            return term.value == order["legacyResourceId"]
        case "status":
            return any(_ORDER_STATUS.get(v.lower(), lambda o: False)(order) for v in term.value.split(","))
        case "financial_status":
            return _any_of(order["displayFinancialStatus"], term.value)
        case "fulfillment_status":
            wanted = set().union(*(_FULFILLMENT_STATUS.get(v.lower(), {v.upper()}) for v in term.value.split(",")))
            return order["displayFulfillmentStatus"] in wanted
    return None


# --------------------------------------------------------------------------- pagination


def _encode_cursor(last_id: int, last_value: Any) -> str:
    raw = json.dumps({"last_id": last_id, "last_value": last_value}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[Any, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return payload["last_value"], int(payload["last_id"])
    except (ValueError, KeyError, TypeError, binascii.Error) as exc:
        raise GraphQLError("Invalid cursor for current pagination sort.") from exc


def paginate(
    items: list[dict],
    sort_value: Callable[[dict], Any],
    *,
    first: int | None = None,
    after: str | None = None,
    last: int | None = None,
    before: str | None = None,
    reverse: bool = False,
    **_ignored: Any,
) -> dict:
    """A Relay connection over ``items`` (dicts with an ``_id``), ordered by (sort value, id)."""
    if first is None and last is None:
        raise GraphQLError("you must provide one of first or last")
    for name, size in (("first", first), ("last", last)):
        if size is not None and not 0 <= size <= MAX_PAGE_SIZE:
            raise GraphQLError(
                f"The '{name}' argument must be between 0 and {MAX_PAGE_SIZE} (was {size})."
            )

    def key(item: dict) -> tuple:
        return (sort_value(item), item["_id"])

    ordered = sorted(items, key=key, reverse=reverse)

    def comes_after(item_key: tuple, cursor_key: tuple) -> bool:
        return item_key < cursor_key if reverse else item_key > cursor_key

    start, end = 0, len(ordered)
    if after:
        value, last_id = _decode_cursor(after)
        start = next((i for i, it in enumerate(ordered) if comes_after(key(it), (value, last_id))), len(ordered))
    if before:
        value, last_id = _decode_cursor(before)
        end = next((i for i, it in enumerate(ordered) if not comes_after((value, last_id), key(it))), len(ordered))
        end = max(end, start)
    window = ordered[start:end]
    has_previous, has_next = start > 0, end < len(ordered)
    if first is not None and len(window) > first:
        window, has_next = window[:first], True
    if last is not None and len(window) > last:
        window, has_previous = window[len(window) - last:], True

    edges = [{"cursor": _encode_cursor(it["_id"], sort_value(it)), "node": it} for it in window]
    return {
        "edges": edges,
        "nodes": window,
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_previous,
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
    }


_PRODUCT_SORT: dict[str, Callable[[dict], Any]] = {
    "ID": lambda p: p["_id"],
    "TITLE": lambda p: p["title"].lower(),
    "CREATED_AT": lambda p: p["createdAt"],
    "UPDATED_AT": lambda p: p["updatedAt"],
    "PUBLISHED_AT": lambda p: p["publishedAt"] or "",
    "PRODUCT_TYPE": lambda p: p["productType"].lower(),
    "VENDOR": lambda p: p["vendor"].lower(),
    "INVENTORY_TOTAL": lambda p: p["totalInventory"],
}
_ORDER_SORT: dict[str, Callable[[dict], Any]] = {
    "ID": lambda o: o["_id"],
    "CREATED_AT": lambda o: o["createdAt"],
    "PROCESSED_AT": lambda o: o["processedAt"],
    "UPDATED_AT": lambda o: o["updatedAt"],
    "ORDER_NUMBER": lambda o: int(re.sub(r"\D", "", o["name"]) or 0),
    "TOTAL_PRICE": lambda o: float(o["totalPriceSet"]["shopMoney"]["amount"]),
    "FINANCIAL_STATUS": lambda o: o["displayFinancialStatus"] or "",
    "FULFILLMENT_STATUS": lambda o: o["displayFulfillmentStatus"],
}
_VARIANT_SORT: dict[str, Callable[[dict], Any]] = {
    "ID": lambda v: v["_id"],
    "POSITION": lambda v: v["position"],
    "SKU": lambda v: v["sku"] or "",
    "TITLE": lambda v: v["title"].lower(),
    "INVENTORY_QUANTITY": lambda v: v["inventoryQuantity"] or 0,
}


def _sorter(table: dict[str, Callable[[dict], Any]], sort_key: str | None) -> Callable[[dict], Any]:
    return table.get(sort_key or "ID", table["ID"])  # RELEVANCE etc.: id order (a simplification)


# --------------------------------------------------------------------------- data views


def _money(amount: str, currency: str) -> dict:
    return {"amount": amount, "currencyCode": currency}


def _money_bag(amount: str, currency: str) -> dict:
    return {"shopMoney": _money(amount, currency), "presentmentMoney": _money(amount, currency)}


class ShopView:
    """Read-only GraphQL views (plain dicts) over one shop's demo data.

    Fields that take arguments hold callables ``(info, **args)``; ``_resolve`` calls them.
    """

    def __init__(self, handle: str, raw: dict):
        currency = raw.get("currencyCode", "USD")
        self.handle = handle
        self.currency = currency
        domain = raw["primaryDomain"]
        self.shop = {
            "__typename": "Shop",
            "id": gid("Shop", raw.get("shopId", 1)),
            "name": raw["name"],
            "email": raw.get("email", f"owner@{handle}.example"),
            "contactEmail": raw.get("email", f"owner@{handle}.example"),
            "myshopifyDomain": f"{handle}.myshopify.com",
            "primaryDomain": {
                "__typename": "Domain",
                "id": gid("Domain", domain.get("id", 1)),
                "host": domain["host"],
                "url": domain["url"],
                "sslEnabled": domain["url"].startswith("https://"),
            },
            "currencyCode": currency,
            "url": domain["url"],
        }
        self.locations = [
            {"__typename": "Location", "_id": loc["id"], "id": gid("Location", loc["id"]),
             "legacyResourceId": str(loc["id"]), "name": loc["name"], "isActive": loc.get("isActive", True)}
            for loc in raw.get("locations") or [{"id": 1, "name": "Shop location"}]
        ]
        self.products = [self._product(p, domain["url"]) for p in raw.get("products", [])]
        self.variants = {v["_id"]: v for p in self.products for v in p["_variants"]}
        self.line_items: dict[int, dict] = {}
        self.orders = [self._order(o, domain["url"]) for o in raw.get("orders", [])]
        self.fulfillments = {f["_id"]: f for o in self.orders for f in o["_fulfillments"]}
        self.customers = [self._customer(c) for c in raw.get("customers", [])]
        self.draft_orders: dict[int, dict] = {}
        self._next_draft = raw.get("nextDraftOrderId", 1120000000001)
        self.by_type: dict[str, dict[int, dict]] = {
            "Product": {p["_id"]: p for p in self.products},
            "ProductVariant": self.variants,
            "Order": {o["_id"]: o for o in self.orders},
            "LineItem": self.line_items,
            "Fulfillment": self.fulfillments,
            "Customer": {c["_id"]: c for c in self.customers},
            "Location": {loc["_id"]: loc for loc in self.locations},
            "DraftOrder": self.draft_orders,
        }

    # -- products

    def _product(self, raw: dict, store_url: str) -> dict:
        pid = raw["id"]
        active = raw["status"] == "ACTIVE"
        product: dict[str, Any] = {
            "__typename": "Product",
            "_id": pid,
            "id": gid("Product", pid),
            "legacyResourceId": str(pid),
            "title": raw["title"],
            "handle": raw["handle"],
            "status": raw["status"],
            "vendor": raw.get("vendor", ""),
            "productType": raw.get("productType", ""),
            "tags": list(raw.get("tags", [])),
            "descriptionHtml": f"<p>{raw.get('description', '')}</p>",
            "createdAt": raw["createdAt"],
            "updatedAt": raw["updatedAt"],
            "publishedAt": raw["createdAt"] if active else None,
            # onlineStoreUrl is null unless the product is published to the Online Store.
            "onlineStoreUrl": f"{store_url}/products/{raw['handle']}" if active else None,
            "tracksInventory": True,
        }
        product["description"] = lambda info, truncateAt=None: (
            raw.get("description", "")[:truncateAt] if truncateAt else raw.get("description", "")
        )
        variants = [self._variant(v, i + 1, product) for i, v in enumerate(raw["variants"])]
        product["_variants"] = variants
        product["hasOnlyDefaultVariant"] = len(variants) == 1 and variants[0]["title"] == "Default Title"
        product["totalInventory"] = sum(v["inventoryQuantity"] or 0 for v in variants)
        prices = sorted(variants, key=lambda v: float(v["price"]))
        product["priceRangeV2"] = {
            "minVariantPrice": _money(prices[0]["price"], self.currency),
            "maxVariantPrice": _money(prices[-1]["price"], self.currency),
        }
        product["variants"] = lambda info, sortKey="POSITION", **args: paginate(
            variants, _sorter(_VARIANT_SORT, sortKey), **args
        )
        image = raw.get("image")
        product["featuredMedia"] = self._media(image, raw["createdAt"]) if image else None
        return product

    @staticmethod
    def _media(image: dict, created_at: str) -> dict:
        img = {
            "__typename": "Image",
            "id": gid("ImageSource", image["mediaId"]),
            "url": image["url"],
            "altText": image.get("altText"),
            "width": image.get("width"),
            "height": image.get("height"),
        }
        return {
            "__typename": "MediaImage",
            "id": gid("MediaImage", image["mediaId"]),
            "alt": image.get("altText"),
            "mediaContentType": "IMAGE",
            "status": "READY",
            "preview": {"image": img, "status": "READY"},
            "image": img,
            "mimeType": "image/jpeg",
            "createdAt": created_at,
        }

    def _variant(self, raw: dict, position: int, product: dict) -> dict:
        vid = raw["id"]
        quantity = raw.get("inventoryQuantity")
        policy = raw.get("inventoryPolicy", "DENY")
        sellable = (quantity or 0) > 0 or policy == "CONTINUE"
        title = raw["title"]
        # Stock per location: ``inventoryByLocation`` {location id: available}, or all of it at the
        # first location.
        by_location = raw.get("inventoryByLocation") or {str(self.locations[0]["_id"]): quantity or 0}
        levels = []
        for loc in self.locations:
            if str(loc["_id"]) not in by_location:
                continue
            available = by_location[str(loc["_id"])]
            levels.append({
                "__typename": "InventoryLevel", "_id": loc["_id"],
                "id": f"gid://shopify/InventoryLevel/{loc['_id']}?inventory_item_id={vid}", "location": loc,
                "quantities": lambda info, names, available=available, loc=loc: [
                    {"__typename": "InventoryQuantity",
                     "id": f"gid://shopify/InventoryQuantity/{loc['_id']}?inventory_item_id={vid}&name={n}",
                     "name": n, "quantity": available if n in ("available", "on_hand") else 0,
                     "updatedAt": product["updatedAt"]} for n in names],
            })
        item = {
            "__typename": "InventoryItem", "_id": vid, "id": gid("InventoryItem", vid), "legacyResourceId": str(vid),
            "sku": raw.get("sku"), "tracked": quantity is not None,
            "inventoryLevels": lambda info, query=None, **args: paginate(levels, lambda lv: lv["_id"], **args),
        }
        return {
            "__typename": "ProductVariant",
            "inventoryItem": item,
            "_id": vid,
            "id": gid("ProductVariant", vid),
            "legacyResourceId": str(vid),
            "title": title,
            "displayName": product["title"] if title == "Default Title" else f"{product['title']} - {title}",
            "sku": raw.get("sku"),
            "barcode": raw.get("barcode"),
            "price": raw["price"],
            "compareAtPrice": raw.get("compareAtPrice"),
            "inventoryQuantity": quantity,
            "inventoryPolicy": policy,
            "availableForSale": sellable and product["status"] == "ACTIVE",
            "position": position,
            "product": product,
            "taxable": True,
            "createdAt": product["createdAt"],
            "updatedAt": product["updatedAt"],
        }

    # -- orders

    def _order(self, raw: dict, store_url: str) -> dict:
        oid = raw["id"]
        currency = self.currency
        order: dict[str, Any] = {
            "__typename": "Order",
            "_id": oid,
            "id": gid("Order", oid),
            "legacyResourceId": str(oid),
            "name": raw["name"],
            "email": raw.get("email"),
            "phone": raw.get("phone"),
            "createdAt": raw["createdAt"],
            "updatedAt": raw.get("updatedAt", raw["createdAt"]),
            "processedAt": raw.get("processedAt", raw["createdAt"]),
            "cancelledAt": raw.get("cancelledAt"),
            "cancelReason": raw.get("cancelReason"),
            "closedAt": raw.get("closedAt"),
            "closed": raw.get("closedAt") is not None,
            "displayFinancialStatus": raw.get("displayFinancialStatus"),
            # FULFILLMENT_NOT_REQUIRED exists from 2026-10; earlier versions said UNFULFILLED.
            "displayFulfillmentStatus": lambda info, status=raw["displayFulfillmentStatus"]: (
                "UNFULFILLED" if status == "FULFILLMENT_NOT_REQUIRED" and _version(info) < "2026-10" else status),
            "_fulfillmentStatus": raw["displayFulfillmentStatus"],
            "customer": lambda info, email=raw.get("email"): self._customer_by("email", email),
            "currencyCode": currency,
            "totalPriceSet": _money_bag(raw["totalPrice"], currency),
            "subtotalPriceSet": _money_bag(raw.get("subtotalPrice", raw["totalPrice"]), currency),
            "totalRefundedSet": _money_bag(raw.get("totalRefunded", "0.00"), currency),
            "tags": list(raw.get("tags", [])),
            "note": raw.get("note"),
            "test": False,
            "statusPageUrl": f"{store_url}/{self.shop['id'].rsplit('/', 1)[-1]}/orders/{oid:x}/authenticate",
        }
        items = [self._line_item(li) for li in raw.get("lineItems", [])]
        for item in items:
            self.line_items[item["_id"]] = item
        order["_lineItems"] = items
        order["lineItems"] = lambda info, **args: paginate(items, lambda li: li["_id"], **args)
        fulfillments = [self._fulfillment(f, i + 1, order) for i, f in enumerate(raw.get("fulfillments", []))]
        order["_fulfillments"] = fulfillments
        order["fulfillments"] = lambda info, first=None, query=None: _first(fulfillments, first)
        return order

    def _line_item(self, raw: dict) -> dict:
        variant = self.variants.get(raw.get("variantId"))
        product = variant["product"] if variant else None
        title = raw.get("title") or (product["title"] if product else "Deleted product")
        variant_title = None if not variant or variant["title"] == "Default Title" else variant["title"]
        price = variant["price"] if variant else raw.get("price", "0.00")
        return {
            "__typename": "LineItem",
            "_id": raw["id"],
            "id": gid("LineItem", raw["id"]),
            "title": title,
            "name": f"{title} - {variant_title}" if variant_title else title,
            "variantTitle": variant_title,
            "quantity": raw["quantity"],
            "currentQuantity": raw["quantity"],
            "sku": raw.get("sku") or (variant["sku"] if variant else None),
            "vendor": product["vendor"] if product else None,
            "variant": variant,
            "product": product,
            "originalUnitPriceSet": _money_bag(price, self.currency),
        }

    def _fulfillment(self, raw: dict, number: int, order: dict) -> dict:
        fid = raw["id"]
        tracking = [dict(t) for t in raw.get("trackingInfo", [])]
        status = raw.get("displayStatus")
        return {
            "__typename": "Fulfillment",
            "_id": fid,
            "id": gid("Fulfillment", fid),
            "legacyResourceId": str(fid),
            "name": f"{order['name']}-F{number}",
            "status": raw.get("status", "SUCCESS"),
            "displayStatus": status,
            "createdAt": raw["createdAt"],
            "updatedAt": raw.get("updatedAt", raw["createdAt"]),
            "deliveredAt": raw.get("deliveredAt"),
            "inTransitAt": raw["createdAt"] if status in {"IN_TRANSIT", "OUT_FOR_DELIVERY", "DELIVERED"} else None,
            "estimatedDeliveryAt": raw.get("estimatedDeliveryAt"),
            "requiresShipping": True,
            "totalQuantity": sum(qty for _, qty in raw.get("lineItems", [])),
            "order": order,
            "trackingInfo": lambda info, first=None: _first(tracking, first),
        }

    # -- customers (their orders: the orders placed with their email)

    def _customer(self, raw: dict) -> dict:
        cid = raw["id"]
        email, phone = raw.get("email"), raw.get("phone")
        first, last = raw.get("firstName"), raw.get("lastName")

        def mine():
            return [o for o in self.orders if email and (o["email"] or "").lower() == email.lower()]

        return {
            "__typename": "Customer", "_id": cid, "id": gid("Customer", cid), "legacyResourceId": str(cid),
            "firstName": first, "lastName": last,
            "displayName": " ".join(x for x in (first, last) if x) or email or phone or "",
            "email": email, "phone": phone,
            "defaultEmailAddress": {"emailAddress": email} if email else None,
            "defaultPhoneNumber": {"phoneNumber": phone} if phone else None,
            "createdAt": raw.get("createdAt", "2026-01-01T00:00:00Z"),
            "state": raw.get("state", "ENABLED"), "tags": list(raw.get("tags", [])),
            "numberOfOrders": lambda info: str(len(mine())),
            "orders": lambda info, sortKey="ID", query=None, **args: paginate(
                mine(), _sorter(_ORDER_SORT, sortKey), **args),
        }

    def _customer_by(self, field: str, value: str | None) -> dict | None:
        if not value:
            return None
        for customer in self.customers:
            if (customer[field] or "").lower() == value.lower():
                return customer
        return None

    def _customer_by_identifier(self, info, identifier: dict) -> dict | None:
        given = [k for k, v in identifier.items() if v is not None]
        if len(given) != 1:  # a @oneOf input; the wording is graphql-ruby's (a guess at Shopify's)
            raise GraphQLError("Exactly one key must be specified for CustomerIdentifierInput.")
        key = given[0]
        if key == "id":
            return self._by_gid(identifier["id"], "Customer")
        return self._customer_by("email" if key == "emailAddress" else "phone", identifier[key])

    # -- draft orders: the one thing a caller can create. A bad line is a userError whose ``field``
    # is the input path (documented shape); the messages are guesses in Shopify's style.

    def _draft_order_create(self, info, input: dict) -> dict:
        errors, items = [], []
        lines = input.get("lineItems") or []
        if not lines:
            errors.append({"field": ["lineItems"], "message": "Add at least 1 product"})
        for i, line in enumerate(lines):
            variant = None
            match = _GID.fullmatch(line.get("variantId") or "")
            if match and match.group(1) == "ProductVariant":
                variant = self.variants.get(int(match.group(2)))
            if variant is None:
                errors.append({"field": ["lineItems", str(i), "variantId"], "message": "Product variant does not exist"})
            elif line["quantity"] < 1:
                errors.append({"field": ["lineItems", str(i), "quantity"], "message": "Quantity must be greater than 0"})
            else:
                items.append((variant, line["quantity"]))
        email = input.get("email")
        if email is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            errors.append({"field": ["email"], "message": "Email is invalid"})
        if errors:
            return {"draftOrder": None, "userErrors": errors}
        did = self._next_draft
        self._next_draft += 1
        total = sum(float(v["price"]) * q for v, q in items)
        line_nodes = [{
            "__typename": "DraftOrderLineItem", "_id": did * 100 + n, "id": gid("DraftOrderLineItem", did * 100 + n),
            "title": v["product"]["title"], "name": v["displayName"], "sku": v["sku"], "quantity": q,
            "variant": v, "originalUnitPriceSet": _money_bag(v["price"], self.currency),
        } for n, (v, q) in enumerate(items)]
        draft = {
            "__typename": "DraftOrder", "_id": did, "id": gid("DraftOrder", did), "legacyResourceId": str(did),
            "name": f"#D{len(self.draft_orders) + 1}", "status": "OPEN", "ready": True, "email": email,
            "note2": input.get("note"), "createdAt": "2026-10-20T12:00:00Z", "invoiceSentAt": None, "order": None,
            "invoiceUrl": f"https://{self.handle}.myshopify.com/{self.shop['id'].rsplit('/', 1)[-1]}"
                          f"/invoices/{did:x}",
            "totalPriceSet": _money_bag(f"{total:.2f}", self.currency),
            "customer": self._customer_by("email", email),
            "lineItems": lambda info, **args: paginate(line_nodes, lambda li: li["_id"], **args),
        }
        self.draft_orders[did] = draft
        return {"draftOrder": draft, "userErrors": []}

    def _product_variants(self, info, query=None, sortKey="ID", savedSearchId=None, **args):
        groups = parse_search(query)
        found = [v for v in self.variants.values() if _matches(groups, lambda t, v=v: _variant_term(v, t))]
        return paginate(found, lambda v: v["_id"], **args)

    # -- root fields

    def root(self) -> dict:
        return {
            "customerByIdentifier": self._customer_by_identifier,
            "draftOrder": lambda info, id: self._by_gid(id, "DraftOrder"),
            "draftOrderCreate": self._draft_order_create,
            "nodes": lambda info, ids: [self._by_gid(i, None) for i in ids],
            "productVariants": self._product_variants,
            "shop": self.shop,
            "product": lambda info, id: self._by_gid(id, "Product"),
            "productVariant": lambda info, id: self._by_gid(id, "ProductVariant"),
            "order": lambda info, id: self._by_gid(id, "Order"),
            "node": lambda info, id: self._by_gid(id, None),
            "products": self._products,
            "orders": self._orders,
        }

    def _by_gid(self, value: str, expected_type: str | None) -> dict | None:
        kind, numeric_id = parse_gid(value)
        if expected_type is not None and kind != expected_type:
            return None  # a well-formed GID of another type finds nothing
        return self.by_type.get(kind, {}).get(numeric_id)

    def _products(self, info, query=None, sortKey="ID", savedSearchId=None, **args):
        groups = parse_search(query)
        found = [p for p in self.products if _matches(groups, lambda t, p=p: _product_term(p, t))]
        return paginate(found, _sorter(_PRODUCT_SORT, sortKey), **args)

    def _orders(self, info, query=None, sortKey="PROCESSED_AT", savedSearchId=None, **args):
        groups = parse_search(query)
        found = [o for o in self.orders if _matches(groups, lambda t, o=o: _order_term(o, t))]
        return paginate(found, _sorter(_ORDER_SORT, sortKey), **args)


def _variant_term(variant: dict, term: _Term) -> bool | None:
    # Shopify tokenises SKUs, so ``sku:MUG`` may find ``MUG-CLASSIC-11`` too (callers re-check
    # equality); the emulator matches a substring, which is as loose.
    match term.field:
        case None | "sku":
            return term.value.lower() in (variant["sku"] or "").lower()
        case "id":
            return term.value == variant["legacyResourceId"]
        case "product_id":
            return term.value == variant["product"]["legacyResourceId"]
        case "title":
            return _text_match(variant["title"], term.value)
    return None


def _version(info) -> str:
    context = info.context if isinstance(info.context, dict) else {}
    return context.get("version") or "unstable"


def _first(items: list, first: int | None) -> list:
    if first is None:
        return list(items)
    if not 0 <= first <= MAX_PAGE_SIZE:
        raise GraphQLError(f"The 'first' argument must be between 0 and {MAX_PAGE_SIZE} (was {first}).")
    return items[:first]


# Protected customer data (https://shopify.dev/docs/apps/launch/protected-customer-data): an app
# without approval gets the field null and an ``errors`` entry with message and path, no code.
PROTECTED_FIELDS = frozenset({
    ("Order", "email"), ("Order", "phone"), ("DraftOrder", "email"),
    ("Customer", "email"), ("Customer", "phone"), ("Customer", "firstName"), ("Customer", "lastName"),
    ("Customer", "defaultEmailAddress"), ("Customer", "defaultPhoneNumber"),
})
# Access scopes (https://shopify.dev/docs/api/usage/access-scopes): without one, the field is null
# and the error carries ``extensions.code: ACCESS_DENIED`` and ``requiredAccess``.
REQUIRED_SCOPES = {
    ("QueryRoot", "customerByIdentifier"): "read_customers",
    ("Order", "customer"): "read_customers",
    ("QueryRoot", "draftOrder"): "read_draft_orders",
    ("Mutation", "draftOrderCreate"): "write_draft_orders",
    ("ProductVariant", "inventoryItem"): "read_inventory",
    ("QueryRoot", "orders"): "read_orders",
    ("QueryRoot", "order"): "read_orders",
}


def _guard(info) -> None:
    """Refuse a field the app may not read (see PROTECTED_FIELDS and REQUIRED_SCOPES)."""
    context = info.context if isinstance(info.context, dict) else {}
    key = (info.parent_type.name, info.field_name)
    scope = REQUIRED_SCOPES.get(key)
    scopes = context.get("scopes")
    if scope and scopes is not None and scope not in scopes and scope.replace("read_", "write_") not in scopes:
        raise GraphQLError(
            f"Access denied for {info.field_name} field. Required access: `{scope}` access scope.",
            extensions={"code": "ACCESS_DENIED", "documentation": "https://shopify.dev/api/usage/access-scopes",
                        "requiredAccess": f"`{scope}` access scope."},
        )
    if key in PROTECTED_FIELDS and context.get("protected_customer_data") is False:
        raise GraphQLError(
            f"This app is not approved to use the {info.field_name} field. See "
            "https://shopify.dev/docs/apps/launch/protected-customer-data for more details."
        )


def _resolve(source: Any, info, **args: Any) -> Any:
    """Default resolver: dict lookup; callables receive the field's arguments."""
    _guard(info)
    value = source.get(info.field_name) if isinstance(source, dict) else getattr(source, info.field_name, None)
    return value(info, **args) if callable(value) else value


# --------------------------------------------------------------------------- cost


class _CostWalker:
    """Shopify-style query cost over one operation (see module docstring)."""

    def __init__(self, document: DocumentNode, variables: dict):
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = variables

    def _int_arg(self, node: FieldNode, name: str) -> int | None:
        for arg in node.arguments or ():
            if arg.name.value != name:
                continue
            if isinstance(arg.value, IntValueNode):
                return int(arg.value.value)
            if isinstance(arg.value, VariableNode):
                value = self.variables.get(arg.value.name.value)
                return value if isinstance(value, int) and not isinstance(value, bool) else None
        return None

    def _fields(self, selection_set: SelectionSetNode | None, parent_type) -> list[tuple[FieldNode, Any]]:
        """Flatten fields; fragments on other concrete types are kept apart (max, not sum)."""
        out: list[tuple[FieldNode, Any]] = []
        for sel in selection_set.selections if selection_set else ():
            if isinstance(sel, FieldNode):
                out.append((sel, parent_type))
                continue
            if isinstance(sel, FragmentSpreadNode):
                frag = self.fragments.get(sel.name.value)
                if frag is None:
                    continue
                cond, sub = frag.type_condition, frag.selection_set
            elif isinstance(sel, InlineFragmentNode):
                cond, sub = sel.type_condition, sel.selection_set
            else:
                continue
            target = SCHEMA.get_type(cond.name.value) if cond else parent_type
            out.append((sub, target))  # a nested group
        return out

    def selection(self, selection_set, parent_type, data: Any, actual: bool) -> int:
        base = 0
        by_type: dict[str, int] = {}
        for item, owner in self._fields(selection_set, parent_type):
            if isinstance(item, FieldNode):
                base += self.field(item, owner, data, actual)
            elif owner is parent_type or is_abstract_type(owner):
                base += self.selection(item, owner, data, actual)
            else:  # a fragment on one concrete type: interface/union = max of possibilities
                by_type[owner.name] = by_type.get(owner.name, 0) + self.selection(item, owner, data, actual)
        return base + max(by_type.values(), default=0)

    def field(self, node: FieldNode, parent_type, parent_data: Any, actual: bool) -> int:
        name = node.name.value
        fields = getattr(parent_type, "fields", {})
        if name.startswith("__") or name not in fields:
            return 0
        field_type = fields[name].type
        named = get_named_type(field_type)
        if is_leaf_type(named):
            return 0
        value = None
        if actual:
            key = node.alias.value if node.alias else name
            value = parent_data.get(key) if isinstance(parent_data, dict) else None
            if value is None:
                return 0
        if named.name.endswith("Connection"):
            return 2 + self._connection(node, named, value, actual)
        nullable = field_type.of_type if is_non_null_type(field_type) else field_type
        if is_list_type(nullable):
            if actual:
                return sum(self._object(node, named, item, actual) for item in value)
            size = self._int_arg(node, "first")
            return (1 if size is None else size) * self._object(node, named, None, actual)
        return self._object(node, named, value, actual)

    def _object(self, node: FieldNode, named, data: Any, actual: bool) -> int:
        if actual and data is None:
            return 0
        return 1 + self.selection(node.selection_set, named, data, actual)

    def _connection(self, node: FieldNode, conn_type, data: Any, actual: bool) -> int:
        size = self._int_arg(node, "first")
        if size is None:
            size = self._int_arg(node, "last") or 0
        node_type = get_named_type(conn_type.fields["nodes"].type)
        edge_type = get_named_type(conn_type.fields["edges"].type)
        total = 0
        for item, owner in self._fields(node.selection_set, conn_type):
            items = [item] if isinstance(item, FieldNode) else [f for f, _ in self._fields(item, owner)]
            for field in items:
                if not isinstance(field, FieldNode):
                    continue
                key = field.alias.value if field.alias else field.name.value
                listed = (data or {}).get(key) if actual else None
                if field.name.value == "nodes":
                    if actual:
                        total += sum(self._object(field, node_type, n, True) for n in listed or [])
                    else:
                        total += size * self._object(field, node_type, None, False)
                elif field.name.value == "edges":
                    for sub, _owner in self._fields(field.selection_set, edge_type):
                        if not isinstance(sub, FieldNode) or sub.name.value != "node":
                            continue
                        sub_key = sub.alias.value if sub.alias else "node"
                        if actual:
                            total += sum(
                                self._object(sub, node_type, (e or {}).get(sub_key), True) for e in listed or []
                            )
                        else:
                            total += size * self._object(sub, node_type, None, False)
        return total


# --------------------------------------------------------------------------- prepare / execute


@dataclass
class Prepared:
    """A parsed, validated operation and its requested cost."""

    document: DocumentNode | None
    operation: OperationDefinitionNode | None
    variables: dict
    operation_name: str | None
    requested_cost: int
    errors: list[dict]  # non-empty: answer with these, do not execute


def _validation_errors(document: DocumentNode) -> list[dict]:
    """Run each rule on its own so every error can carry graphql-ruby's code."""
    errors: list[dict] = []
    seen: set[str] = set()
    for rule in specified_rules:
        for error in validate(SCHEMA, document, [rule]):
            if error.message in seen:
                continue
            seen.add(error.message)
            formatted = error.formatted
            code = _RULE_CODES.get(rule.__name__)
            if code:
                formatted["extensions"] = {"code": code}
            errors.append(formatted)
    return errors


@lru_cache(maxsize=512)
def _parse_and_validate(query: str) -> tuple[DocumentNode | None, tuple[dict, ...]]:
    """Parse and validate once per distinct document (both depend on the text alone)."""
    try:
        document = parse(query)
    except GraphQLError as error:  # a parse error: message and location, no code
        return None, (error.formatted,)
    return document, tuple(_validation_errors(document))


def prepare(query: str, variables: dict | None, operation_name: str | None) -> Prepared:
    variables = dict(variables or {})
    document, errors = _parse_and_validate(query)
    if errors:
        return Prepared(document, None, variables, operation_name, 0, copy.deepcopy(list(errors)))
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        message = (
            f"No operation named \"{operation_name}\""
            if operation_name
            else "An operation name is required"
        )
        return Prepared(document, None, variables, operation_name, 0, [{"message": message}])
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in variables and definition.default_value is not None:
            variables[name] = value_from_ast_untyped(definition.default_value)
    cost = _CostWalker(document, variables).selection(
        operation.selection_set, _root_type(operation), None, actual=False
    )
    return Prepared(document, operation, variables, operation_name, cost, [])


def _root_type(operation: OperationDefinitionNode):
    return SCHEMA.mutation_type if operation.operation == OperationType.MUTATION else SCHEMA.query_type


def execute_prepared(prepared: Prepared, view: ShopView, context: dict | None = None) -> tuple[dict, int]:
    """Run a prepared operation against one shop; returns (response body, actual cost).
    ``context``: ``version`` (the URL's), ``scopes`` (a set; None = all) and
    ``protected_customer_data`` (False = not approved)."""
    result = execute(
        SCHEMA,
        prepared.document,
        root_value=view.root(),
        context_value=dict(context or {}),
        variable_values=prepared.variables,
        operation_name=prepared.operation_name,
        field_resolver=_resolve,
    )
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [error.formatted for error in result.errors]
    # "data" is absent only when execution never started (variable coercion failed); an error
    # raised while executing carries a path and leaves "data": null (GraphQL spec §7.1.2).
    if result.data is not None or any(error.path for error in result.errors or ()):
        body["data"] = result.data
    actual = 0
    if result.data is not None:
        actual = _CostWalker(prepared.document, prepared.variables).selection(
            prepared.operation.selection_set, _root_type(prepared.operation), result.data, actual=True
        )
    return body, actual


def max_cost_error(cost: int, max_cost: int) -> dict:
    """Shopify's refusal of a query whose requested cost is over the single-query limit."""
    return {
        "message": (
            f"Query cost is {cost}, which exceeds the single query max cost limit ({max_cost}).\n\n"
            "See https://shopify.dev/concepts/about-apis/rate-limits for more information on how the\n"
            "cost of a query is calculated.\n\n"
            "To query larger amounts of data with fewer limits, bulk operations should be used instead.\n"
            "See https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage details.\n"
        ),
        "extensions": {
            "code": "MAX_COST_EXCEEDED",
            "cost": cost,
            "maxCost": max_cost,
            "documentation": RATE_LIMITS_DOC,
        },
    }


def throttled_error() -> dict:
    """https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits — the THROTTLED error."""
    return {
        "message": "Throttled",
        "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC},
    }


def load_views(data: dict) -> dict[str, ShopView]:
    return {handle: ShopView(handle, raw) for handle, raw in data.get("shops", {}).items()}
