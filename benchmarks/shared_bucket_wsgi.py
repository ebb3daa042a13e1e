"""Switchboard for ``benchmarks/fairness.py``: two orgs' Shopify calls on one provider bucket.

Shopify's buckets are per app and store, and a store belongs to one org (the claim policy), so
two orgs never share a Shopify bucket in production; they do share a platform service's one key.
To measure that case with the Shopify emulator, this app (benchmark only):

* sends every store's calls to the emulator's ``demo-store`` (the URL template has no ``{shop}``),
  with demo-store's token — one real bucket;
* declares one quota scope for Shopify, as a platform service's declaration would — one record.

The orgs name different stores; connecting checks the store's reported domain, which is
``demo-store``'s here, so the check is declared away for this process only and the admin assigns
the stores (an assignment is the approval).
"""

import os

from app import create_app

app = create_app(dict(os.environ, SHOPIFY_SHOP_URL_TEMPLATE=os.environ["BENCH_SHOPIFY_URL"] + "/shops/demo-store"))
app.extensions["outbound"].scopes["shopify"] = lambda account: "shared"

from app.providers import PROVIDERS  # noqa: E402

PROVIDERS["shopify"].verify = None  # this process only: the stores all answer as demo-store
