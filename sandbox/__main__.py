"""Run a sandbox emulator standalone: ``python -m sandbox shopify --port 8801``.

Shopify reads, from the environment:
  SANDBOX_SHOPIFY_TOKENS         JSON map shop -> static Admin API token
  SANDBOX_SHOPIFY_CLIENT_ID      client id for the client-credentials grant
  SANDBOX_SHOPIFY_CLIENT_SECRET  its secret
  SANDBOX_SHOPIFY_BUCKET_SIZE    cost bucket size (default 2000, as Shopify's Standard plan)
  SANDBOX_SHOPIFY_RESTORE_RATE   points restored per second (default 100; Plus is 1000)
Defaults (printed at start) are fixed, obviously fake values for the demo shops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from werkzeug.serving import run_simple

from .server import _QuietHandler, _require_loopback
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


EMULATORS = {"shopify": _shopify_from_env, "klaviyo": _klaviyo_from_env}


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
