"""Every credential set to a unique canary; none may appear in a response, a log line or an audit row."""

import json
import logging
import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from sandbox.server import serve
from sandbox.shopify import ShopifyEmulator

CANARIES = {
    "ADMIN_API_KEY": "canary-admin-key-7f3a9c1e5b2d4a6f",
    "SHOPIFY_ADMIN_ACCESS_TOKEN": "canary-shopify-single-token-91b2",
    "SHOPIFY_ADMIN_API_KEY": "canary-shopify-client-id-5c7d",
    "SHOPIFY_ADMIN_API_SECRET": "canary-shopify-client-secret-3e8f",
    "KLAVIYO_PRIVATE_API_KEY": "canary-klaviyo-private-key-a1b2",
    "KUSTOMER_API_KEY": "canary-kustomer-api-key-c3d4",
    "MESSENGER_PAGE_ACCESS_TOKEN": "canary-messenger-page-token-e5f6",
    "MESSENGER_APP_SECRET": "canary-messenger-app-secret-a7b8",
    "MESSENGER_VERIFY_TOKEN": "canary-messenger-verify-token-c9d0",
    "TWILIO_AUTH_TOKEN": "canary-twilio-auth-token-e1f2",
    "STRIPE_SECRET_KEY": "canary-stripe-secret-key-a3b4",
    "STRIPE_WEBHOOK_SECRET": "canary-stripe-webhook-secret-c5d6",
    "OPENAI_API_KEY": "canary-openai-api-key-e7f8",
}
WRONG_SECRET = "canary-shopify-wrong-client-secret-9a0b"
MAP_CANARIES = {
    "SHOPIFY_ADMIN_ACCESS_TOKENS": {"demo-store": "canary-shopify-map-token-demo-0a1b"},
    "KLAVIYO_PRIVATE_API_KEYS": {"AbC123": "canary-klaviyo-map-key-2c3d"},
    "KUSTOMER_API_KEYS": {"mycompany": "canary-kustomer-map-key-4e5f"},
    "MESSENGER_PAGE_ACCESS_TOKENS": {"104512345678901": "canary-messenger-map-token-6a7b"},
}
ALL = list(CANARIES.values()) + [v for m in MAP_CANARIES.values() for v in m.values()] + [WRONG_SECRET]
MUG = "8915061031187"


@pytest.fixture
def canary_shopify():
    emulator = ShopifyEmulator(
        access_tokens={"demo-store": MAP_CANARIES["SHOPIFY_ADMIN_ACCESS_TOKENS"]["demo-store"],
                       "other-store": CANARIES["SHOPIFY_ADMIN_ACCESS_TOKEN"]},
        client_id=CANARIES["SHOPIFY_ADMIN_API_KEY"],
        client_secret=CANARIES["SHOPIFY_ADMIN_API_SECRET"],
    )
    with serve(emulator.wsgi) as server:
        emulator.url = server.url
        yield emulator


def test_no_credential_appears_anywhere(make_app, canary_shopify, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    env = dict(CANARIES, TWILIO_ACCOUNT_SID="AC-canary-public-sid", OPENAI_ORG_ID="org-canary-public")
    env.update({name: json.dumps(value) for name, value in MAP_CANARIES.items()})
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=canary_shopify.url + "/shops/{shop}", **env)
    client = app.test_client()
    admin = {"Authorization": f"Bearer {CANARIES['ADMIN_API_KEY']}"}
    seen = []

    def call(method, path, **kwargs):
        response = client.open(path, method=method, **kwargs)  # the client currently in use
        seen.append(f"{response.status_code} {dict(response.headers)} {response.get_data(as_text=True)}")
        return response

    org_id = call("POST", "/api/v1/admin/organizations", json={"slug": "acme"}, headers=admin).json["id"]
    key = call("POST", f"/api/v1/admin/organizations/{org_id}/api-keys", json={}, headers=admin).json["key"]
    org = {"Authorization": f"Bearer {key}"}
    call("GET", "/api/v1/providers", headers=org)
    call("PUT", "/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "nowhere"}}, headers=org)
    call("PUT", "/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}}, headers=org)
    for fault in ("http_500", "garbage", "redirect", "throttled", "http_429"):
        canary_shopify.inject(fault, times=5)
        call("GET", f"/api/v1/shopify/products/{MUG}", headers=org)
        canary_shopify.reset()
    time.sleep(1.1)  # the 429's Retry-After (1 s) is honoured for the account's next calls too
    canary_shopify.inject("slow", times=5, seconds=1.5)
    call("GET", f"/api/v1/shopify/products/{MUG}", headers=org)
    canary_shopify.reset()
    call("GET", "/api/v1/shopify/products?query=mug", headers=org)
    call("GET", "/api/v1/shopify/orders/%231001", headers=org)
    call("POST", "/api/v1/integrations/shopify/test", headers=org)
    for provider, ident in [("klaviyo", {"companyId": "AbC123"}), ("kustomer", {"subdomain": "mycompany"}),
                            ("messenger", {"pageId": "104512345678901"}), ("whatsapp", {"phoneNumber": "+14155550123"}),
                            ("stripe", {}), ("openai", {})]:
        call("PUT", f"/api/v1/integrations/{provider}", json={"account_identifier": ident}, headers=org)
    call("GET", "/api/v1/integrations", headers=org)
    call("GET", "/api/v1/audit-logs", headers=org)
    call("GET", "/api/v1/admin/audit-logs", headers=admin)
    call("GET", "/api/v1/admin/organizations", headers={"Authorization": "Bearer " + CANARIES["ADMIN_API_KEY"][:-1]})
    call("GET", "/api/v1/integrations", headers={"Authorization": f"Bearer {CANARIES['OPENAI_API_KEY']}"})
    call("GET", "/api/v1/openapi.json")

    # The client-credentials grant: a token minted per store, refused, minted again; and a wrong secret.
    grant_env = dict(env, SHOPIFY_ADMIN_ACCESS_TOKENS=None, SHOPIFY_ADMIN_ACCESS_TOKEN=None)
    grant_client = make_app(SHOPIFY_SHOP_URL_TEMPLATE=canary_shopify.url + "/shops/{shop}", **grant_env).test_client()
    org2_id = grant_client.post("/api/v1/admin/organizations", json={"slug": "globex"}, headers=admin).json["id"]
    org2 = {"Authorization": "Bearer " + grant_client.post(f"/api/v1/admin/organizations/{org2_id}/api-keys",
                                                            json={}, headers=admin).json["key"]}
    client = grant_client
    call("PUT", "/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "other-store"}}, headers=org2)
    call("GET", "/api/v1/shopify/products?query=tamper", headers=org2)
    canary_shopify.expire_tokens()
    call("GET", "/api/v1/shopify/products?query=tamper", headers=org2)
    call("GET", "/api/v1/shopify/products?query=tamper", headers=org2)
    assert canary_shopify.grants["other-store"] == 2
    wrong_client = make_app(SHOPIFY_SHOP_URL_TEMPLATE=canary_shopify.url + "/shops/{shop}",
                            **dict(grant_env, SHOPIFY_ADMIN_API_SECRET=WRONG_SECRET)).test_client()
    client = wrong_client
    canary_shopify.expire_tokens()  # a cached token (shared through Redis) is refused first ...
    call("POST", "/api/v1/integrations/shopify/test", headers=org2)
    call("POST", "/api/v1/integrations/shopify/test", headers=org2)  # ... then the wrong secret is
    assert '"ok":false' in seen[-1].replace(" ", "")
    assert any((r.get("form") or {}).get("client_secret") == WRONG_SECRET for r in canary_shopify.received)

    cli = app.test_cli_runner().invoke(args=["providers", "list"])
    seen.append(cli.output)

    # The test drove the paths it claims to: successes and upstream failures both happened.
    statuses = [int(s.split()[0]) for s in seen[:-1]]
    assert {200, 201, 401, 422, 429, 502, 504} <= set(statuses)
    assert any(r["endpoint"] == "token" for r in canary_shopify.received)
    assert repr(app.extensions["credentials"]).startswith("Credentials(configured=")

    with app.app_context():
        rows = db.session.execute(sa.text("SELECT * FROM audit_logs")).all()
        integrations = db.session.execute(sa.text("SELECT * FROM integrations")).all()
    captured = capfd.readouterr()
    haystacks = {
        "responses": "\n".join(seen),
        "log records": "\n".join(r.getMessage() + str(r.exc_text or "") for r in caplog.records),
        "stdout/stderr": captured.out + captured.err,
        "audit rows": "\n".join(map(str, rows)),
        "integrations": "\n".join(map(str, integrations)),
    }
    assert len(rows) > 10
    for where, text in haystacks.items():
        for canary in ALL:
            assert canary not in text, f"{canary} leaked into {where}"
