"""``make run``'s round trip: a customer message in, delivered to the demo org's endpoint, a reply out.

::

    Messenger emulator ──X-Hub-Signature-256──▶ /webhooks/messenger       (stored, outbox row,
    Twilio emulator ──X-Twilio-Signature over PUBLIC_BASE_URL──▶ /webhooks/twilio/whatsapp  window opens)
      ─▶ delivery worker thread (deliveries.run_batch, as `flask deliveries run`)
      ─▶ Receiver (loopback thread; verifies with standardwebhooks, prints one line)
    chatbot ──POST /api/v1/messenger/messages──▶ Messenger emulator (inside the 24-hour window)
    chatbot ──POST /api/v1/whatsapp/messages──▶ Twilio emulator ──signed status callbacks──▶
      /webhooks/twilio/status (sent, delivered) ─▶ … ─▶ Receiver

Each channel's round trip runs when its emulator does (real credentials in the environment
replace the emulator, and then the demo cannot play the customer).

Only the demo uses this. Production runs ``flask deliveries run`` (or the admin cron endpoint) as
its own process; the demo's worker is a thread in the serving process so one command shows it all.
"""

from __future__ import annotations

import collections
import json
import logging
import secrets
import threading

from flask import Flask, Response, request
from standardwebhooks import Webhook, WebhookVerificationError

from sandbox.server import RunningServer, serve

PAGE = "104512345678901"  # sandbox.__main__.DEFAULT_MESSENGER_PAGES' Page
PSID = "7001002003004005"  # the demo customer
WHATSAPP_NUMBER = "+14155550100"  # sandbox.__main__.DEFAULT_TWILIO_SENDERS' sender
WHATSAPP_CUSTOMER = "+14155550199"  # the demo customer on WhatsApp

log = logging.getLogger("switchboard.demo")


def configure(env: dict, base: str) -> None:
    """What the round trip needs, for this process only; values the operator set win."""
    if not env.get("WEBHOOK_SIGNING_KEY"):
        env["WEBHOOK_SIGNING_KEY"] = secrets.token_urlsafe(32)  # per run: the demo endpoint's secret changes too
    env.setdefault("MESSENGER_VERIFY_TOKEN", "sandbox-verify-" + secrets.token_urlsafe(12))
    env.setdefault("PUBLIC_BASE_URL", base)  # Twilio signs the URL it calls: this one


class Receiver:
    """The demo org's endpoint: verifies each delivery (Standard Webhooks), prints it, keeps the last few."""

    def __init__(self, keep: int = 10):
        self.secret: str | None = None
        self.received: collections.deque = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self.wsgi = self._build()

    def _build(self) -> Flask:
        app = Flask(__name__)

        @app.post("/hooks")
        def hook():
            body = request.get_data()
            try:
                event = Webhook(self.secret).verify(body, dict(request.headers))
            except (WebhookVerificationError, TypeError, ValueError) as exc:
                print(f"[receiver] REJECTED a delivery: {exc}", flush=True)
                return Response("bad signature", status=400)
            text = _message_text(event)
            print(f"[receiver] verified {event['type']} {event['id']}"
                  + (f" from {text[0]}: {text[1]!r}" if text else _status_text(event)), flush=True)
            with self._lock:
                self.received.append({"webhook-id": request.headers.get("webhook-id"), "verified": True,
                                      "event": event})
            return Response(status=204)

        @app.get("/hooks")
        def last():
            with self._lock:
                return {"received": list(self.received)}

        return app


def _message_text(event: dict) -> tuple[str, str] | None:
    data = event.get("data") or {}
    if event.get("type") == "whatsapp.message":  # Twilio's form, as posted
        return str(data.get("From", "")).removeprefix("whatsapp:"), str(data.get("Body", ""))
    for entry in data.get("entry", []) or []:
        for item in entry.get("messaging", []) or []:
            if isinstance(item.get("message"), dict) and "text" in item["message"]:
                return item["sender"]["id"], item["message"]["text"]
    return None


def _status_text(event: dict) -> str:
    data = event.get("data") or {}
    if event.get("type") == "whatsapp.message.status":
        return f" ({data.get('MessageSid')} {data.get('MessageStatus')})"
    return ""


class Worker(threading.Thread):
    """The delivery worker as a thread: the same bounded batches ``flask deliveries run`` takes."""

    def __init__(self, app, batch: int = 20, idle: float = 0.5):
        super().__init__(name="demo-deliveries", daemon=True)
        self.app, self.batch, self.idle = app, batch, idle
        self.stopping = threading.Event()

    def run(self) -> None:
        from app import deliveries

        while not self.stopping.is_set():
            try:
                with self.app.app_context():
                    counts = deliveries.run_batch(self.batch)
            except Exception:  # noqa: BLE001 - a demo worker logs and keeps going, as the CLI's would be restarted
                log.exception("demo delivery worker: batch failed")
                counts = {"claimed": 0}
            if counts["claimed"] < self.batch:
                self.stopping.wait(self.idle)


def start(app, key: str, notes: list, channels=("messenger", "whatsapp")) -> tuple[RunningServer, Receiver, Worker]:
    """Connect the demo Page and/or WhatsApp sender (``channels``: those whose emulator runs),
    start the receiver, make it the org's endpoint, start the worker. Goes through the API (the
    app's own test client) as the org would."""
    receiver = Receiver()
    server = serve(receiver.wsgi)
    client, auth = app.test_client(), {"Authorization": f"Bearer {key}"}
    accounts = {"messenger": {"pageId": PAGE}, "whatsapp": {"phoneNumber": WHATSAPP_NUMBER}}
    for provider, identifier in ((c, accounts[c]) for c in channels):
        answer = client.put(f"/api/v1/integrations/{provider}", json={"account_identifier": identifier}, headers=auth)
        if answer.status_code not in (200, 201):
            notes.append(f"Could not connect {provider} for the demo org ({answer.status_code} "
                         f"{(answer.json or {}).get('code')}); connect it with PUT /api/v1/integrations/{provider}.")
    answer = client.put("/api/v1/webhook-endpoint", json={"url": server.url + "/hooks"}, headers=auth)
    if answer.status_code not in (200, 201):
        server.stop()
        raise SystemExit(f"Could not set the demo org's webhook endpoint: {answer.status_code} {answer.get_data(True)}")
    receiver.secret = answer.json["secret"]
    worker = Worker(app)
    worker.start()
    notes.append(f"The demo org's webhook endpoint is a receiver at {server.url}/hooks (it verifies each "
                 f"delivery with standardwebhooks and prints it; GET it for the last few); a delivery "
                 f"worker thread runs in this process (production: `flask deliveries run`).")
    return server, receiver, worker


def curl_lines(base: str, auth: str, receiver_url: str, *, messenger_url: str | None = None,
               twilio_url: str | None = None, public_base: str | None = None) -> list[str]:
    """The round trip's curl lines: Messenger's (when its emulator runs), then WhatsApp's."""
    lines = []
    if messenger_url:
        inbound = json.dumps({"url": f"{base}/webhooks/messenger", "page": PAGE, "psid": PSID,
                              "text": "Where is my order?"})
        reply = json.dumps({"recipient_id": PSID, "text": "It shipped yesterday."})
        lines += [
            "Round trip (Messenger): 1. a customer writes — the emulator signs it and posts it to Switchboard",
            f"  curl -X POST {messenger_url}/__sandbox__/inbound -H 'Content-Type: application/json' -d '{inbound}'",
            "2. the event, and its delivery to the demo org's endpoint (the receiver prints a line above)",
            f"  curl '{base}/api/v1/events?provider=messenger&limit=1' {auth}",
            "3. the chatbot replies, inside the 24-hour window the message opened",
            f"  curl -X POST {base}/api/v1/messenger/messages {auth} -H 'Content-Type: application/json' -d '{reply}'",
        ]
    if twilio_url:
        # Twilio calls (and signs) the URL configured in its console: PUBLIC_BASE_URL's.
        inbound = json.dumps({"url": f"{public_base or base}/webhooks/twilio/whatsapp", "to": WHATSAPP_NUMBER,
                              "from": WHATSAPP_CUSTOMER, "body": "Where is my order?"})
        reply = json.dumps({"to": WHATSAPP_CUSTOMER, "body": "It shipped yesterday."})
        lines += [
            "Round trip (WhatsApp): 1. a customer writes — the Twilio emulator signs it (X-Twilio-Signature "
            "over PUBLIC_BASE_URL) and posts it",
            f"  curl -X POST {twilio_url}/__sandbox__/inbound -H 'Content-Type: application/json' -d '{inbound}'",
            "2. the event, and its delivery to the demo org's endpoint",
            f"  curl '{base}/api/v1/events?provider=whatsapp&limit=1' {auth}",
            "3. the chatbot replies; Twilio's signed status callbacks (sent, delivered) come back and are "
            "delivered too",
            f"  curl -X POST {base}/api/v1/whatsapp/messages {auth} -H 'Content-Type: application/json' -d '{reply}'",
        ]
    if lines:
        lines.append(f"   (what the receiver got: curl {receiver_url}/hooks)")
    return lines
