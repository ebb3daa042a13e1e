"""``make run``: Switchboard on its embedded defaults, with the sandbox standing in for providers.

1. Migrates the database (SQLite in ``instance/`` unless ``DATABASE_URL`` says otherwise).
2. When no Shopify credentials are set, starts the Shopify emulator on loopback and points
   Switchboard at it with sandbox tokens (real credentials in the environment win).
3. Creates the ``demo`` org, issues it a fresh key (older demo keys are revoked) and prints
   ready-to-paste ``curl`` lines.
4. Serves on ``HOST``:``PORT`` (127.0.0.1:5000).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex

import sqlalchemy as sa

SANDBOX_TOKENS = {"demo-store": "shpat_sandbox_demo_store", "other-store": "shpat_sandbox_other_store"}
SHOPIFY_VARS = ("SHOPIFY_ADMIN_ACCESS_TOKEN", "SHOPIFY_ADMIN_ACCESS_TOKENS", "SHOPIFY_ADMIN_API_KEY")


def main() -> None:
    env = dict(os.environ)
    notes = []
    emulator_server = None
    if not any(env.get(name) for name in SHOPIFY_VARS):
        from sandbox.server import serve
        from sandbox.shopify import ShopifyEmulator

        emulator_server = serve(ShopifyEmulator(access_tokens=SANDBOX_TOKENS).wsgi,
                                port=int(env.get("SANDBOX_SHOPIFY_PORT", "0")))
        env["SHOPIFY_ADMIN_ACCESS_TOKENS"] = json.dumps(SANDBOX_TOKENS)
        env["SHOPIFY_SHOP_URL_TEMPLATE"] = emulator_server.url + "/shops/{shop}"
        env["SANDBOX"] = "true"
        notes.append(f"No Shopify credentials set: the Shopify emulator runs at {emulator_server.url} "
                     f"(stores: demo-store, other-store).")
    if not env.get("ADMIN_API_KEY"):
        env["ADMIN_API_KEY"] = "sb_admin_" + secrets.token_urlsafe(24)
        notes.append(f"No ADMIN_API_KEY set: this run's admin key is {env['ADMIN_API_KEY']}")

    from flask_migrate import upgrade

    from app import create_app, services
    from app.extensions import db
    from app.models import ApiKey, Organization
    from config import BASE_DIR

    app = create_app(env)
    host, port = env.get("HOST", "127.0.0.1"), int(env.get("PORT", "5000"))
    base = f"http://{host}:{port}"
    with app.app_context():
        upgrade(directory=str(BASE_DIR / "migrations"))
        org = db.session.execute(sa.select(Organization).where(Organization.slug == "demo")).scalar_one_or_none()
        if org is None:
            org = services.create_org("demo", "Demo organization", actor="system")
        for old in db.session.execute(sa.select(ApiKey).where(
                ApiKey.organization_id == org.id, ApiKey.name == "demo", ApiKey.revoked_at.is_(None))).scalars():
            services.revoke_key(str(old.id), actor="system")
        _, key = services.issue_key(org, "demo", actor="system")

    auth = f"-H {shlex.quote('Authorization: Bearer ' + key)}"
    body = shlex.quote(json.dumps({"account_identifier": {"storeName": "demo-store"}}))
    print("\n".join([
        "",
        "Switchboard is starting.",
        *[f"  * {n}" for n in notes],
        f"  * Demo org 'demo', API key (shown once): {key}",
        f"  * API docs: {base}/api/v1/docs",
        "",
        "Connect the store:",
        f"  curl -X PUT {base}/api/v1/integrations/shopify {auth} -H 'Content-Type: application/json' -d {body}",
        "Search products:",
        f"  curl '{base}/api/v1/shopify/products?query=mug' {auth}",
        "Track an order:",
        f"  curl '{base}/api/v1/shopify/orders/%231001' {auth}",
        "",
    ]), flush=True)
    try:
        app.run(host=host, port=port, threaded=True, use_reloader=False)
    finally:
        if emulator_server is not None:
            emulator_server.stop()


if __name__ == "__main__":
    main()
