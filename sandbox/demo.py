"""``make run``: Switchboard on its embedded defaults, with the sandbox standing in for providers.

0. Takes ``HOST``:``PORT`` (127.0.0.1:5000) first: when another program holds it, the demo stops
   before it touches the database, so a running demo keeps its working key.
1. Migrates the database (SQLite in ``instance/`` unless ``DATABASE_URL`` says otherwise).
2. When no Shopify credentials are set, starts the Shopify emulator on loopback and points
   Switchboard at it with sandbox tokens (real credentials in the environment win).
3. Creates the ``demo`` org, issues it a fresh key (older demo keys are revoked) and prints
   ready-to-paste ``curl`` lines.
4. Serves on the address taken in step 0.

Everything it sets (the emulator's credentials, ``SANDBOX``, a made-up ``ADMIN_API_KEY``) lives in
this process's environment only: ``flask`` commands in another shell read their own.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import socket

import sqlalchemy as sa

SANDBOX_TOKENS = {"demo-store": "shpat_sandbox_demo_store", "other-store": "shpat_sandbox_other_store"}
SHOPIFY_VARS = ("SHOPIFY_ADMIN_ACCESS_TOKEN", "SHOPIFY_ADMIN_ACCESS_TOKENS", "SHOPIFY_ADMIN_API_KEY")


def listen(host: str, port: str) -> socket.socket:
    """Bind HOST:PORT now and keep it, or stop with a message naming both (nothing else done yet)."""
    from werkzeug.serving import select_address_family

    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"PORT must be a port number (1-65535), got {port!r}")
    try:
        sock = socket.socket(select_address_family(host, int(port)), socket.SOCK_STREAM)
    except OSError as exc:
        raise SystemExit(f"HOST={host!r} is not an address to listen on: {exc.strerror}") from None
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as werkzeug's own server does
    try:
        sock.bind((host, int(port)))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise SystemExit(
            f"Cannot listen on HOST={host} PORT={port}: {exc.strerror}. Another `make run` (or another "
            f"program) may be using it; stop it or pick another address, e.g. `PORT=5001 make run`. "
            f"Nothing was changed (the database and existing demo keys are untouched)."
        ) from None
    sock.set_inheritable(True)
    return sock


def main() -> None:
    env = dict(os.environ)
    host, port = env.get("HOST", "127.0.0.1"), env.get("PORT", "5000").strip()
    listener = listen(host, port)
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
                     f"(stores: demo-store, other-store), for this process only — `flask` commands "
                     f"in another shell see that shell's environment.")
    klaviyo_server = None
    if not any(env.get(name) for name in ("KLAVIYO_PRIVATE_API_KEY", "KLAVIYO_PRIVATE_API_KEYS")):
        from sandbox.klaviyo import SANDBOX_KEYS, KlaviyoEmulator
        from sandbox.server import serve

        klaviyo_server = serve(KlaviyoEmulator().wsgi, port=int(env.get("SANDBOX_KLAVIYO_PORT", "0")))
        env.update(KLAVIYO_PRIVATE_API_KEYS=json.dumps(SANDBOX_KEYS), KLAVIYO_BASE_URL=klaviyo_server.url,
                   SANDBOX="true")
        notes.append(f"No Klaviyo key set: the Klaviyo emulator runs at {klaviyo_server.url} "
                     f"(company ids: {', '.join(SANDBOX_KEYS)}).")
    if not env.get("ADMIN_API_KEY"):
        env["ADMIN_API_KEY"] = "swbd_admin_" + secrets.token_urlsafe(24)
        notes.append(f"No ADMIN_API_KEY set: this run's admin key is {env['ADMIN_API_KEY']} "
                     f"(a new one every run; set ADMIN_API_KEY to keep one).")

    from flask_migrate import upgrade

    from app import create_app, services
    from app.extensions import db
    from app.models import ApiKey, Organization
    from config import BASE_DIR

    app = create_app(env)
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
        "Klaviyo (connect with PUT /api/v1/integrations/klaviyo {\"account_identifier\": {\"companyId\": \"AbC123\"}}):",
        f"  curl -X POST {base}/api/v1/klaviyo/events {auth} -H 'Content-Type: application/json' -d "
        + shlex.quote('{"metric": "Viewed Product", "email": "ada@example.com", "properties": {"sku": "MUG-1"}}'),
        "",
    ]), flush=True)
    from werkzeug.serving import make_server

    try:
        server = make_server(host, int(port), app, threaded=True, fd=listener.fileno())
        print(f"Serving on {base} (Ctrl+C to stop)", flush=True)
        server.serve_forever()
    finally:
        listener.close()
        if emulator_server is not None:
            emulator_server.stop()
        if klaviyo_server is not None:
            klaviyo_server.stop()


if __name__ == "__main__":
    main()
