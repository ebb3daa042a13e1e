"""Shared by tests/test_webhooks_*.py: the test secrets, signers, claims, a loopback receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from app.extensions import db
from app.models import Integration

MESSENGER_SECRET = "test-messenger-app-secret-4f1c"
VERIFY_TOKEN = "test-verify-token-77aa"
TWILIO_TOKEN = "test-twilio-auth-token-9d2e"
SHOPIFY_SECRET = "test-shopify-client-secret-0b3d"
SIGNING_KEY = "test-webhook-signing-key-0123456789abcdef"
PUBLIC_BASE_URL = "https://switchboard.example.test"

ENV = {
    "MESSENGER_PAGE_ACCESS_TOKEN": "test-page-token-abc",
    "MESSENGER_APP_SECRET": MESSENGER_SECRET,
    "MESSENGER_VERIFY_TOKEN": VERIFY_TOKEN,
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    "SHOPIFY_ADMIN_API_SECRET": SHOPIFY_SECRET,
    "WEBHOOK_SIGNING_KEY": SIGNING_KEY,
    "WEBHOOK_DELIVERY_TIMEOUT": "1",
}

PAGE_A, PAGE_B = "104512345678901", "104512345678902"


def messenger_body(page: str = PAGE_A, text: str = "hello", mid: str | None = None, psid: str = "7001") -> bytes:
    entry = {"id": page, "time": 1767225600000, "messaging": [{
        "sender": {"id": psid}, "recipient": {"id": page}, "timestamp": 1767225600000,
        "message": {"mid": mid or f"m_{uuid.uuid4().hex}", "text": text}}]}
    return json.dumps({"object": "page", "entry": [entry]}).encode()


def messenger_headers(body: bytes, secret: str = MESSENGER_SECRET) -> dict:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def twilio_post(client, path: str, params: dict, token: str = TWILIO_TOKEN, url: str | None = None):
    signature = RequestValidator(token).compute_signature(url or PUBLIC_BASE_URL + path, params)
    return client.post(path, data=urlencode(params), headers={
        "X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})


def shopify_headers(body: bytes, shop: str = "demo-store", webhook_id: str | None = None,
                    secret: str = SHOPIFY_SECRET, topic: str = "orders/create") -> dict:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {"X-Shopify-Hmac-Sha256": digest, "X-Shopify-Topic": topic, "Content-Type": "application/json",
            "X-Shopify-Shop-Domain": f"{shop}.myshopify.com", "X-Shopify-API-Version": "2026-10",
            "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()), "X-Shopify-Event-Id": "ev-1"}


def claim(app, org_id: str, provider: str, account_key: str, status: str = "connected") -> None:
    """The claim as an approved connection leaves it (the sending side verifies connects)."""
    identifier = {"messenger": "pageId", "whatsapp": "phoneNumber", "shopify": "storeName"}[provider]
    with app.app_context():
        db.session.add(Integration(organization_id=uuid.UUID(org_id), provider=provider, status=status,
                                   account_identifier={identifier: account_key}, account_key=account_key))
        db.session.commit()


class Receiver:
    """A loopback endpoint that records what it is sent; ``mode`` picks its answer."""

    def __init__(self):
        self.requests: list[dict] = []
        self.mode = "ok"
        self.lock = threading.Lock()

    def wsgi(self, environ, start_response):
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        with self.lock:
            self.requests.append({"path": environ["PATH_INFO"], "body": body, "headers": headers})
        if self.mode == "slow":
            time.sleep(3)
        status, extra = {"ok": ("200 OK", []), "500": ("500 Internal Server Error", []), "410": ("410 Gone", []),
                         "redirect": ("307 Temporary Redirect", [("Location", "/elsewhere")]),
                         "slow": ("200 OK", [])}[self.mode]
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", "2")] + extra)
        return [b"ok"]
