"""The contract, checked by tools nobody here wrote: openapi-spec-validator on the served
document, then schemathesis (every check) against a real Switchboard on a loopback port, with the
Shopify emulator behind it, org and admin keys, and real ids. Zero failures is the bar; the few
per-operation allowances are in ``schemathesis.toml`` here, each with its reason in docs/decisions.md.

Bounded: a fixed number of examples per operation and a time budget (``CONTRACT_MAX_EXAMPLES``,
``CONTRACT_MAX_TIME`` to change them locally).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from sandbox.server import serve
from tests.conftest import ADMIN_KEY

BIN = Path(sys.executable).parent
# Every provider configured, so a valid connect is never refused for a missing credential.
PROVIDER_ENV = {
    "MESSENGER_PAGE_ACCESS_TOKEN": "contract-messenger-token",
    "MESSENGER_APP_SECRET": "contract-messenger-secret",
    "TWILIO_ACCOUNT_SID": "ACcontract",
    "TWILIO_AUTH_TOKEN": "contract-twilio-token",
    "STRIPE_SECRET_KEY": "contract-stripe-key",
    "OPENAI_API_KEY": "contract-openai-key",
    # Webhooks: endpoints can be set, and signed Shopify deliveries make events to page through.
    "WEBHOOK_SIGNING_KEY": "contract-webhook-signing-key-0123456789",
    "SHOPIFY_ADMIN_API_SECRET": "contract-shopify-client-secret",
}
MUG = "8915061031187"


@pytest.fixture
def server(make_app, messenger, twilio):
    from tests.conftest import messenger_env, twilio_env

    # Messenger and WhatsApp connects call their emulators (Graph /me, Twilio's Senders API).
    env = {**PROVIDER_ENV, **messenger_env(messenger), **twilio_env(twilio)}
    env.pop("MESSENGER_PAGE_ACCESS_TOKEN")
    app = make_app(ORG_RATE_LIMIT="100000/minute", **env)
    with serve(app) as running:
        yield running


def _setup(base: str) -> dict:
    """Real ids (and real cursors: a cursor is opaque, only one the server issued is valid)."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}

    def call(method, path, body=None, headers=admin, expect=(200, 201)):
        response = requests.request(method, base + path, json=body, headers=headers, timeout=10)
        assert response.status_code in expect, response.text
        return response.json()

    org = call("POST", "/api/v1/admin/organizations", {"slug": "contract"})
    key = call("POST", f"/api/v1/admin/organizations/{org['id']}/api-keys", {"name": "contract"})
    # The admin run changes its own org (suspends it, revokes its keys), never the org run's.
    other = call("POST", "/api/v1/admin/organizations", {"slug": "contract-admin"})
    other_key = call("POST", f"/api/v1/admin/organizations/{other['id']}/api-keys", {"name": "revocable"})
    call("POST", f"/api/v1/admin/organizations/{other['id']}/api-keys", {"name": "second"})
    headers = {"Authorization": f"Bearer {key['key']}"}
    connected = call("PUT", "/api/v1/integrations/shopify", {"account_identifier": {"storeName": "demo-store"}},
                     headers=headers)
    call("PUT", "/api/v1/integrations/klaviyo", {"account_identifier": {"companyId": "AbC123"}}, headers=headers)
    call("PUT", "/api/v1/integrations/kustomer", {"account_identifier": {"subdomain": "demo"}}, headers=headers)
    call("PUT", "/api/v1/integrations/messenger", {"account_identifier": {"pageId": "104512345678901"}},
         headers=headers)
    call("PUT", "/api/v1/integrations/whatsapp", {"account_identifier": {"phoneNumber": "+14155550100"}},
         headers=headers)

    def cursor(path, headers=admin):
        value = call("GET", path, headers=headers)["next_cursor"]
        assert value, path
        return value

    integrations_cursor = cursor("/api/v1/integrations?limit=1", headers)
    _shopify_webhooks(base, PROVIDER_ENV["SHOPIFY_ADMIN_API_SECRET"])
    return {
        "org_key": key["key"], "admin_org": other["id"], "admin_key_id": other_key["id"],
        "integration_id": connected["id"],
        "cursors": {
            "org_list_integrations": integrations_cursor,
            # One list kind, keyed by position: a cursor of one org's integrations pages another's.
            "admin_list_org_integrations": integrations_cursor,
            "org_audit_logs": cursor("/api/v1/audit-logs?limit=1", headers),
            "shopify_search_products": cursor("/api/v1/shopify/products?limit=1", headers),
            "admin_list_orgs": cursor("/api/v1/admin/organizations?limit=1"),
            "admin_list_keys": cursor(f"/api/v1/admin/organizations/{other['id']}/api-keys?limit=1"),
            "admin_list_integrations": cursor("/api/v1/admin/integrations?status=connected&limit=1"),
            "admin_audit_logs": cursor("/api/v1/admin/audit-logs?limit=1"),
            "events_list_events": cursor("/api/v1/events?limit=1", headers),
            "admin_all_events": cursor("/api/v1/admin/events?limit=1"),
            "klaviyo_list_lists": cursor("/api/v1/klaviyo/lists?limit=1", headers),
            "klaviyo_list_segments": cursor("/api/v1/klaviyo/segments?limit=1", headers),
            "klaviyo_list_campaigns": cursor("/api/v1/klaviyo/campaigns?channel=email&limit=1", headers),
        },
    }


def _shopify_webhooks(base: str, secret: str) -> None:
    """Two signed store events for the connected demo-store: the org's event list has a page 2."""
    import base64
    import hashlib
    import hmac

    for number in (1, 2):
        body = json.dumps({"id": number, "name": f"#100{number}"}).encode()
        digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
        response = requests.post(base + "/webhooks/shopify", data=body, timeout=10, headers={
            "X-Shopify-Hmac-Sha256": digest, "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": "demo-store.myshopify.com", "X-Shopify-Webhook-Id": f"contract-{number}",
            "Content-Type": "application/json"})
        assert response.status_code == 200, response.text


def _config(ids: dict) -> str:
    operations = "".join(
        f"""
[[operations]]
include-operation-id = "{operation}"
parameters = {{ "query.cursor" = "{value}", "query.after" = "{value}" }}
""" for operation, value in ids["cursors"].items())
    return f"""
[auth.openapi.bearerAuth]
bearer = "{ids['org_key']}"
[auth.openapi.apiKeyHeader]
api_key = "{ids['org_key']}"
[auth.openapi.adminBearer]
bearer = "{ADMIN_KEY}"

[parameters]
"path.org_ref" = "{ids['admin_org']}"
"path.key_id" = "{ids['admin_key_id']}"
"path.integration_id" = "{ids['integration_id']}"
"path.product_id" = "{MUG}"
{operations}
# Each allowance below has its reason in docs/decisions.md (API: the contract check).
[[operations]]
include-operation-id = "org_connect_shopify"
# A well-formed store name that the platform's credentials do not reach: 422 account_not_reachable.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "admin_assign_shopify"
# The same for the admin's assignment of a store to an org: 422 account_not_reachable.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "org_connect_kustomer"
# A well-formed subdomain the platform's Kustomer key does not belong to: 422 account_not_reachable.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "admin_assign_kustomer"
# The same for the admin's assignment of a Kustomer org to an org.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "kustomer_lookup_customer"
# Exactly one of email or phone (OpenAPI 3.0 query parameters cannot say "one of"): 422 otherwise.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "kustomer_create_ticket"
# Texts holding NUL or unpaired surrogates are 422 on the field (the input guard), as everywhere.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "kustomer_add_note"
# The same for the note's body.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "events_put_endpoint"
# A well-formed URL whose host does not resolve, or resolves to a non-public address: 422 unsafe_webhook_url.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "shopify_find_customer"
# Exactly one of email / phone (OpenAPI cannot say "one of" for query parameters): 422 naming it.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "shopify_get_inventory"
# Exactly one of sku / variant_id, as above.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "shopify_create_draft_order"
# Well-formed variant ids the store does not have: Shopify's userErrors, 422 naming the item.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "shopify_create_cart_link"
# Well-formed variant ids the store does not have (or out of stock): 422 naming the item.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = ["org_connect_messenger", "admin_assign_messenger", "org_connect_whatsapp",
                         "admin_assign_whatsapp"]
# A well-formed Page id / number the platform's credentials do not reach: 422 account_not_reachable.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = ["messenger_send_message", "messenger_send_sender_action", "whatsapp_send_message"]
# A send to a customer who has not written in 24 hours is 422 outside_messaging_window (a fact
# about the world), and the one-of rules (text or attachment; template or free-form) are not in
# the document's shape.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "org_connect_klaviyo"
# A well-formed company id the platform's keys do not reach (Klaviyo is verified): 422.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "admin_assign_klaviyo"
# The same for the admin's assignment.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "klaviyo_track_event"
# At least one of email, phone_number, external_id: a rule across fields the document cannot say.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "klaviyo_upsert_profile"
# The same rule (one identifier at least).
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "klaviyo_subscribe"
# At least one of email, phone_number; and Klaviyo's own verdict on a made-up address: 422.
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429", "5xx"]

[[operations]]
include-operation-id = "org_test"
# Providers whose account check is not built yet answer 501 check_unavailable (documented).
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "501"]
"""


def test_served_document_is_valid_openapi(server):
    from openapi_spec_validator import validate

    document = requests.get(server.url + "/api/v1/openapi.json", timeout=10).json()
    validate(document)


def test_schemathesis_finds_nothing(server, tmp_path):
    ids = _setup(server.url)
    (tmp_path / "schemathesis.toml").write_text(_config(ids))
    examples = os.environ.get("CONTRACT_MAX_EXAMPLES", "15")
    result = subprocess.run(
        [str(BIN / "schemathesis"), "run", server.url + "/api/v1/openapi.json", "--checks", "all",
         "--max-examples", examples, "--workers", "1", "--seed", "1", "--no-shrink",
         "--request-timeout", "10", "--warnings", "off"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(Path(__file__).with_name("schemathesis_hooks.py")),
             "NO_COLOR": "1"},
    )
    (tmp_path / "schemathesis.out").write_text(result.stdout + result.stderr)
    print(result.stdout[-1500:])  # the summary, shown with -s / on failure
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-3000:]
