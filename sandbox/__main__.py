"""Run a sandbox emulator standalone: ``python -m sandbox shopify --port 8801``.

Shopify reads, from the environment:
  SANDBOX_SHOPIFY_TOKENS         JSON map shop -> static Admin API token
  SANDBOX_SHOPIFY_CLIENT_ID      client id for the client-credentials grant
  SANDBOX_SHOPIFY_CLIENT_SECRET  its secret
  SANDBOX_SHOPIFY_BUCKET_SIZE    cost bucket size (default 2000, as Shopify's Standard plan)
  SANDBOX_SHOPIFY_RESTORE_RATE   points restored per second (default 100; Plus is 1000)
Kustomer (``python -m sandbox kustomer``) serves orgs ``demo`` and ``other`` with fixed keys;
  SANDBOX_KUSTOMER_RATE_LIMIT    requests per 60 s window per org (default 300, the Professional plan)
Messenger (``python -m sandbox messenger``) reads SANDBOX_MESSENGER_PAGE_TOKENS (JSON Page id ->
token) and SANDBOX_MESSENGER_APP_SECRET; Twilio (``python -m sandbox twilio``) reads
SANDBOX_TWILIO_ACCOUNT_SID, SANDBOX_TWILIO_AUTH_TOKEN and SANDBOX_TWILIO_SENDERS (JSON E.164 ->
status). Defaults (printed at start) are fixed, obviously fake values for the demo accounts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from werkzeug.serving import run_simple

from .server import _QuietHandler, _require_loopback
from .kustomer import KustomerEmulator
from .shopify import ShopifyEmulator, load_demo_data

DEFAULT_SHOPIFY_CLIENT_ID = "sandbox-shopify-client-id"
DEFAULT_SHOPIFY_CLIENT_SECRET = "sandbox-shopify-client-secret"


def _shopify_from_env() -> tuple[ShopifyEmulator, list[str]]:
    shops = sorted(load_demo_data()["shops"])
    raw_tokens = os.environ.get("SANDBOX_SHOPIFY_TOKENS")
    try:
        if raw_tokens:
            tokens = json.loads(raw_tokens)
        else:
            tokens = {shop: f"shpat_sandbox_{shop.replace('-', '_')}" for shop in shops}
    except ValueError as exc:
        raise SystemExit(f"SANDBOX_SHOPIFY_TOKENS is not valid JSON: {exc}") from exc
    if not isinstance(tokens, dict) or not all(isinstance(v, str) for v in tokens.values()):
        raise SystemExit("SANDBOX_SHOPIFY_TOKENS must be a JSON object mapping shop name to token")
    client_id = os.environ.get("SANDBOX_SHOPIFY_CLIENT_ID", DEFAULT_SHOPIFY_CLIENT_ID)
    client_secret = os.environ.get("SANDBOX_SHOPIFY_CLIENT_SECRET", DEFAULT_SHOPIFY_CLIENT_SECRET)
    try:
        bucket_size = int(os.environ.get("SANDBOX_SHOPIFY_BUCKET_SIZE", "2000"))
        restore_rate = int(os.environ.get("SANDBOX_SHOPIFY_RESTORE_RATE", "100"))
    except ValueError as exc:
        raise SystemExit("SANDBOX_SHOPIFY_BUCKET_SIZE and SANDBOX_SHOPIFY_RESTORE_RATE must be whole numbers") from exc
    emulator = ShopifyEmulator(access_tokens=tokens, client_id=client_id, client_secret=client_secret,
                               bucket_size=bucket_size, restore_rate=restore_rate)
    lines = [
        f"shops:          {', '.join(emulator.shops)}",
        *(f"token {shop:<11} {token}" for shop, token in sorted(tokens.items())),
        f"client id:      {client_id}",
        f"client secret:  {client_secret}",
        f"cost bucket:    {bucket_size} points, restoring {restore_rate}/s",
        "GraphQL:        POST /shops/<shop>/admin/api/2026-10/graphql.json",
        "grant:          POST /shops/<shop>/admin/oauth/access_token",
        "controls:       /__sandbox__/faults, /__sandbox__/reset, /__sandbox__/received",
    ]
    return emulator, lines


def _kustomer_from_env() -> tuple[KustomerEmulator, list[str]]:
    try:
        rate_limit = int(os.environ.get("SANDBOX_KUSTOMER_RATE_LIMIT", "300"))
    except ValueError as exc:
        raise SystemExit("SANDBOX_KUSTOMER_RATE_LIMIT must be a whole number") from exc
    emulator = KustomerEmulator(rate_limit=rate_limit)
    lines = [
        *(f"key {org:<8} {key}" for org, key in sorted(emulator.keys.items())),
        f"rate limit:     {rate_limit} requests per 60 s per org",
        "API:            /v1/... with Authorization: Bearer <key> (the key decides the org)",
        "controls:       /__sandbox__/faults, /__sandbox__/reset, /__sandbox__/received",
    ]
    return emulator, lines



# The demo accounts of the messaging emulators (sandbox/demo.py uses the same values).
DEFAULT_MESSENGER_PAGES = {"104512345678901": "EAAG-sandbox-demo-page-token"}
DEFAULT_MESSENGER_APP_SECRET = "sandbox-messenger-app-secret"
DEFAULT_TWILIO_ACCOUNT_SID = "AC" + "5a" * 16
DEFAULT_TWILIO_AUTH_TOKEN = "sandbox-twilio-auth-token"
DEFAULT_TWILIO_SENDERS = {"+14155550100": "ONLINE"}


def _json_env(name: str, default: dict) -> dict:
    raw = os.environ.get(name)
    if not raw:
        return dict(default)
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise SystemExit(f"{name} must be a JSON object of strings")
    return value


def _messenger_from_env():
    from .messenger import MessengerEmulator

    pages = _json_env("SANDBOX_MESSENGER_PAGE_TOKENS", DEFAULT_MESSENGER_PAGES)
    secret = os.environ.get("SANDBOX_MESSENGER_APP_SECRET", DEFAULT_MESSENGER_APP_SECRET)
    lines = [*(f"page {page} token {token}" for page, token in sorted(pages.items())),
             f"app secret:     {secret}",
             "send:           POST /v26.0/<page>/messages (Bearer token + appsecret_proof)",
             "controls:       /__sandbox__/inbound {url,page,psid,text}, /__sandbox__/delivery, "
             "/__sandbox__/window, /__sandbox__/faults, /__sandbox__/reset, /__sandbox__/received"]
    return MessengerEmulator(page_tokens=pages, app_secret=secret), lines


def _twilio_from_env():
    from .twilio import TwilioEmulator

    sid = os.environ.get("SANDBOX_TWILIO_ACCOUNT_SID", DEFAULT_TWILIO_ACCOUNT_SID)
    token = os.environ.get("SANDBOX_TWILIO_AUTH_TOKEN", DEFAULT_TWILIO_AUTH_TOKEN)
    senders = _json_env("SANDBOX_TWILIO_SENDERS", DEFAULT_TWILIO_SENDERS)
    lines = [f"account sid:    {sid}", f"auth token:     {token}",
             f"senders:        {', '.join(f'{n} ({s})' for n, s in sorted(senders.items()))}",
             "send:           POST /2010-04-01/Accounts/<sid>/Messages.json; senders: GET /v2/Channels/Senders",
             "controls:       /__sandbox__/inbound {url,to,from,body}, /__sandbox__/status, "
             "/__sandbox__/window, /__sandbox__/faults, /__sandbox__/reset, /__sandbox__/received"]
    return TwilioEmulator(sid, token, senders), lines


def _klaviyo_from_env():
    """Klaviyo reads SANDBOX_KLAVIYO_KEYS (JSON company id -> private key); defaults are printed."""
    from .klaviyo import SANDBOX_KEYS, KlaviyoEmulator

    try:
        keys = json.loads(os.environ["SANDBOX_KLAVIYO_KEYS"]) if os.environ.get("SANDBOX_KLAVIYO_KEYS") else SANDBOX_KEYS
    except ValueError as exc:
        raise SystemExit(f"SANDBOX_KLAVIYO_KEYS is not valid JSON: {exc}") from exc
    emulator = KlaviyoEmulator(keys=keys)
    lines = [*(f"company {cid}: key {key}" for cid, key in sorted(keys.items())),
             "API:            /api/accounts, /api/lists, /api/segments, /api/campaigns, /api/events, ...",
             "controls:       /__sandbox__/faults, /__sandbox__/reset, /__sandbox__/received"]
    return emulator, lines


EMULATORS = {"shopify": _shopify_from_env, "klaviyo": _klaviyo_from_env, "kustomer": _kustomer_from_env,
             "messenger": _messenger_from_env, "twilio": _twilio_from_env}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description="Run a sandbox provider emulator.")
    parser.add_argument("provider", choices=sorted(EMULATORS))
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8801)
    args = parser.parse_args(argv)
    _require_loopback(args.host)

    emulator, lines = EMULATORS[args.provider]()
    print(f"sandbox {args.provider} emulator on http://{args.host}:{args.port}", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)
    run_simple(args.host, args.port, emulator.wsgi, threaded=True, request_handler=_QuietHandler)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
