"""``make run``: Switchboard on its embedded defaults, with the sandbox standing in for providers.

0. Takes ``HOST``:``PORT`` (127.0.0.1:5000) first: when another program holds it, the demo stops
   before it touches the database, so a running demo keeps its working key.
1. Migrates the database (SQLite in ``instance/`` unless ``DATABASE_URL`` says otherwise).
2. When no Shopify (Messenger, Twilio) credentials are set, starts that emulator on loopback and points
   Switchboard at it with sandbox tokens (real credentials in the environment win).
3. Creates the ``demo`` org, issues it a fresh key (older demo keys are revoked) and prints
   ready-to-paste ``curl`` lines.
4. With the Messenger and/or Twilio emulator running, sets up the round trip
   (``sandbox/round_trip.py``): a per-run ``WEBHOOK_SIGNING_KEY``, ``MESSENGER_VERIFY_TOKEN`` and
   ``PUBLIC_BASE_URL`` (this demo's base URL unless set; Twilio signs it), the demo Page and
   WhatsApp sender connected, a receiver on loopback as the demo org's endpoint and a delivery
   worker thread; prints each channel's round-trip ``curl`` lines (in, delivered, reply out).
5. Serves on the address taken in step 0.

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

from sandbox import round_trip

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


def _start_messaging_emulators(env: dict, notes: list) -> list:
    """Messenger and Twilio emulators, each only when its credentials are not set."""
    from sandbox.__main__ import (DEFAULT_MESSENGER_APP_SECRET, DEFAULT_MESSENGER_PAGES, DEFAULT_TWILIO_ACCOUNT_SID,
                                  DEFAULT_TWILIO_AUTH_TOKEN, DEFAULT_TWILIO_SENDERS)
    from sandbox.server import serve

    started = []
    if not any(env.get(n) for n in ("MESSENGER_PAGE_ACCESS_TOKEN", "MESSENGER_PAGE_ACCESS_TOKENS")):
        from sandbox.messenger import MessengerEmulator

        server = serve(MessengerEmulator(DEFAULT_MESSENGER_PAGES, DEFAULT_MESSENGER_APP_SECRET).wsgi,
                       port=int(env.get("SANDBOX_MESSENGER_PORT", "0")))
        started.append(server)
        env.update(MESSENGER_PAGE_ACCESS_TOKENS=json.dumps(DEFAULT_MESSENGER_PAGES),
                   MESSENGER_APP_SECRET=DEFAULT_MESSENGER_APP_SECRET, MESSENGER_GRAPH_URL=server.url, SANDBOX="true")
        notes.append(f"No Messenger credentials set: the Messenger emulator runs at {server.url} "
                     f"(Page {next(iter(DEFAULT_MESSENGER_PAGES))}; fire a customer message with "
                     f"POST {server.url}/__sandbox__/inbound).")
    if not env.get("TWILIO_ACCOUNT_SID"):
        from sandbox.twilio import TwilioEmulator

        server = serve(TwilioEmulator(DEFAULT_TWILIO_ACCOUNT_SID, DEFAULT_TWILIO_AUTH_TOKEN, DEFAULT_TWILIO_SENDERS).wsgi,
                       port=int(env.get("SANDBOX_TWILIO_PORT", "0")))
        started.append(server)
        env.update(TWILIO_ACCOUNT_SID=DEFAULT_TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN=DEFAULT_TWILIO_AUTH_TOKEN,
                   TWILIO_API_URL=server.url, TWILIO_MESSAGING_URL=server.url, SANDBOX="true")
        notes.append(f"No Twilio credentials set: the Twilio emulator runs at {server.url} "
                     f"(WhatsApp sender {next(iter(DEFAULT_TWILIO_SENDERS))}; fire a customer message with "
                     f"POST {server.url}/__sandbox__/inbound).")
    return started


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
    kustomer_server = None
    if not any(env.get(name) for name in ("KUSTOMER_API_KEY", "KUSTOMER_API_KEYS")):
        from sandbox.kustomer import KustomerEmulator
        from sandbox.server import serve

        kustomer = KustomerEmulator()
        kustomer_server = serve(kustomer.wsgi, port=int(env.get("SANDBOX_KUSTOMER_PORT", "0")))
        env["KUSTOMER_API_KEYS"] = json.dumps(kustomer.keys)
        env["KUSTOMER_URL_TEMPLATE"] = kustomer_server.url
        env["SANDBOX"] = "true"
        notes.append(f"No Kustomer credentials set: the Kustomer emulator runs at {kustomer_server.url} "
                     f"(subdomains: demo, other).")
    klaviyo_server = None
    if not any(env.get(name) for name in ("KLAVIYO_PRIVATE_API_KEY", "KLAVIYO_PRIVATE_API_KEYS")):
        from sandbox.klaviyo import SANDBOX_KEYS, KlaviyoEmulator
        from sandbox.server import serve

        klaviyo_server = serve(KlaviyoEmulator().wsgi, port=int(env.get("SANDBOX_KLAVIYO_PORT", "0")))
        env.update(KLAVIYO_PRIVATE_API_KEYS=json.dumps(SANDBOX_KEYS), KLAVIYO_BASE_URL=klaviyo_server.url,
                   SANDBOX="true")
        notes.append(f"No Klaviyo key set: the Klaviyo emulator runs at {klaviyo_server.url} "
                     f"(company ids: {', '.join(SANDBOX_KEYS)}).")
    messaging_servers = _start_messaging_emulators(env, notes)
    if not env.get("ADMIN_API_KEY"):
        env["ADMIN_API_KEY"] = "swbd_admin_" + secrets.token_urlsafe(24)
        notes.append(f"No ADMIN_API_KEY set: this run's admin key is {env['ADMIN_API_KEY']} "
                     f"(a new one every run; set ADMIN_API_KEY to keep one).")

    from flask_migrate import upgrade

    from app import create_app, services
    from app.extensions import db
    from app.models import ApiKey, Organization
    from config import BASE_DIR

    base = f"http://{host}:{port}"
    # A channel's round trip needs its emulator (it plays the customer and fires the message).
    messenger_url = next((s.url for s in messaging_servers if s.url == env.get("MESSENGER_GRAPH_URL")), None)
    twilio_url = next((s.url for s in messaging_servers if s.url == env.get("TWILIO_API_URL")), None)
    channels = [c for c, url in (("messenger", messenger_url), ("whatsapp", twilio_url)) if url]
    if channels:
        round_trip.configure(env, base)
    app = create_app(env)
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
    receiver_server = worker = None
    round_trip_lines = []
    if channels:
        receiver_server, _, worker = round_trip.start(app, key, notes, channels)
        round_trip_lines = round_trip.curl_lines(base, auth, receiver_server.url, messenger_url=messenger_url,
                                                 twilio_url=twilio_url, public_base=env["PUBLIC_BASE_URL"])
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
        "Connect Kustomer, then look up a customer:",
        f"  curl -X PUT {base}/api/v1/integrations/kustomer {auth} -H 'Content-Type: application/json' "
        f"-d '{{\"account_identifier\": {{\"subdomain\": \"demo\"}}}}' && "
        f"curl '{base}/api/v1/kustomer/customers?email=ada@example.com' {auth}",
        "Klaviyo (connect with PUT /api/v1/integrations/klaviyo {\"account_identifier\": {\"companyId\": \"AbC123\"}}):",
        f"  curl -X POST {base}/api/v1/klaviyo/events {auth} -H 'Content-Type: application/json' -d "
        + shlex.quote('{"metric": "Viewed Product", "email": "ada@example.com", "properties": {"sku": "MUG-1"}}'),
        *round_trip_lines,
        "",
    ]), flush=True)
    from werkzeug.serving import make_server

    try:
        server = make_server(host, int(port), app, threaded=True, fd=listener.fileno())
        print(f"Serving on {base} (Ctrl+C to stop)", flush=True)
        server.serve_forever()
    finally:
        listener.close()
        if worker is not None:
            worker.stopping.set()
            worker.join(timeout=5)
        if receiver_server is not None:
            receiver_server.stop()
        if emulator_server is not None:
            emulator_server.stop()
        if kustomer_server is not None:
            kustomer_server.stop()
        for running in messaging_servers:
            running.stop()
        if klaviyo_server is not None:
            klaviyo_server.stop()


if __name__ == "__main__":
    main()
