"""Every GraphQL document Switchboard sends, and the emulator's schema, against Shopify's real
Admin schema (2026-01, /work/shared/data or ../shared/data; see its README)."""

import gzip
from pathlib import Path

import graphql
import pytest

from app.providers.shopify import documents
from sandbox import shopify_graphql

CANDIDATES = [Path(__file__).resolve().parents[1] / ".." / "shared" / "data",
              Path("/work/shared/data")]
SCHEMA_FILE = next((p / "shopify-admin-2026-01.graphql.gz" for p in CANDIDATES
                    if (p / "shopify-admin-2026-01.graphql.gz").exists()), None)
# What 2026-10 (the pinned version) adds to 2026-01: allowed in the emulator, never sent by us.
NEWER_THAN_2026_01 = {("OrderDisplayFulfillmentStatus", "FULFILLMENT_NOT_REQUIRED")}

pytestmark = pytest.mark.skipif(SCHEMA_FILE is None, reason="Shopify's schema file is not available")


@pytest.fixture(scope="module")
def real():
    return graphql.build_schema(gzip.open(SCHEMA_FILE, "rt").read(), assume_valid=True)


def test_every_document_is_listed():
    assert {"CREATE_DRAFT_ORDER", "FIND_CUSTOMER", "FIND_VARIANTS_BY_SKU", "CART_VARIANTS", "GET_ORDER",
            "FIND_ORDER_NAMES", "GET_DRAFT_ORDER", "GET_DRAFT_ORDER_INVOICE"} <= set(documents.ALL)


@pytest.mark.parametrize("name", sorted(documents.ALL))
def test_document_validates_against_the_real_schema(real, name):
    errors = graphql.validate(real, graphql.parse(documents.ALL[name]))
    assert not errors, [e.message for e in errors]


@pytest.mark.parametrize("name", sorted(documents.ALL))
def test_document_validates_against_the_emulator(name):
    assert not graphql.validate(shopify_graphql.SCHEMA, graphql.parse(documents.ALL[name]))


def test_emulator_schema_is_a_subset_of_the_real_one(real):
    problems = []
    for name, ours in shopify_graphql.SCHEMA.type_map.items():
        if name.startswith("__") or name in ("String", "Int", "Float", "Boolean", "ID"):
            continue
        theirs = real.type_map.get(name)
        if theirs is None or type(theirs) is not type(ours):
            problems.append(f"{name}: missing or another kind")
            continue
        if isinstance(ours, graphql.GraphQLEnumType):
            extra = set(ours.values) - set(theirs.values)
            problems += [f"{name}.{v}" for v in extra if (name, v) not in NEWER_THAN_2026_01]
        if isinstance(ours, (graphql.GraphQLObjectType, graphql.GraphQLInterfaceType, graphql.GraphQLInputObjectType)):
            for field_name, field in ours.fields.items():
                other = theirs.fields.get(field_name)
                if other is None or str(other.type) != str(field.type):
                    problems.append(f"{name}.{field_name}: {field.type} vs {other and other.type}")
                    continue
                for arg, spec in getattr(field, "args", {}).items():
                    if arg not in other.args or str(other.args[arg].type) != str(spec.type):
                        problems.append(f"{name}.{field_name}({arg})")
    assert not problems, problems
