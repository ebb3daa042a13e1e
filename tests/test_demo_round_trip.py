"""`make run`'s round trip, as a reader would do it: start the demo, paste its round-trip curl lines.

A customer message fired by the Messenger emulator reaches /webhooks/messenger, the demo's worker
thread delivers it to the demo's receiver (which verifies it with standardwebhooks and prints a
line), and the reply goes out through the Messenger emulator inside the window the message opened.
Then the same on WhatsApp: the Twilio emulator signs over PUBLIC_BASE_URL, the reply goes out
through /api/v1/whatsapp/messages and Twilio's status callbacks come back and are delivered too.
"""

import json
import os
import queue
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

from tests.test_deploy import free_port

ROOT = Path(__file__).resolve().parent.parent
CLEARED = ("SHOPIFY_", "KUSTOMER_", "KLAVIYO_", "MESSENGER_", "TWILIO_", "DATABASE_URL", "REDIS_URL",
           "ADMIN_API_KEY", "HOST", "WEBHOOK_", "PUBLIC_BASE_URL", "SANDBOX")


def _lines(stream, into: queue.Queue) -> None:
    for line in stream:
        into.put(line)


def _wait_for(lines: queue.Queue, seen: list, predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if any(predicate(line) for line in seen):
            return True
        try:
            seen.append(lines.get(timeout=0.2))
        except queue.Empty:
            pass
    return any(predicate(line) for line in seen)


def _curl(args: list) -> tuple[int, dict]:
    done = subprocess.run(args + ["-s", "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=20)
    body, status = done.stdout.rsplit("\n", 1)
    return int(status), json.loads(body)


def test_make_run_round_trips_on_messenger_and_whatsapp_in_delivered_reply_out(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEARED)}
    env.update(PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'demo.db'}", PYTHONPATH=str(ROOT))
    demo = subprocess.Popen([sys.executable, "-m", "sandbox.demo"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines, seen = queue.Queue(), []
    threading.Thread(target=_lines, args=(demo.stdout, lines), daemon=True).start()
    try:
        assert _wait_for(lines, seen, lambda line: line.startswith("Serving on"), 60), "".join(seen)
        start = next(i for i, line in enumerate(seen) if line.startswith("Round trip (Messenger)"))
        fire, events, reply, wa_fire, wa_events, wa_reply = [
            shlex.split(line.strip()) for line in seen[start:] if line.strip().startswith("curl")][:6]
        messenger_url = re.search(r"Messenger emulator runs at (\S+) ", "".join(seen)).group(1)
        twilio_url = re.search(r"Twilio emulator runs at (\S+) ", "".join(seen)).group(1)
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)

        # 1. The customer writes: Switchboard acknowledged the signed webhook.
        status, fired = _curl(fire)
        assert status == 200 and fired["status"] == 200 and fired["body"] == "EVENT_RECEIVED", fired

        # The receiver verified the delivery with standardwebhooks (it prints only what verifies).
        assert _wait_for(lines, seen, lambda line: line.startswith("[receiver] verified messenger.message"), 30), \
            "".join(seen)
        assert "Where is my order?" in next(line for line in seen if line.startswith("[receiver] verified"))
        assert not any("REJECTED" in line for line in seen)

        # 2. The event is listed with its delivery done.
        status, page = _curl(events)
        assert status == 200
        [event] = page["data"]
        assert event["type"] == "messenger.message" and event["delivery"]["status"] == "delivered"
        assert event["data"]["entry"][0]["messaging"][0]["message"]["mid"] == fired["mid"]

        # 3. The reply is accepted inside the window and the emulator got the send.
        status, sent = _curl(reply)
        assert status == 200 and sent["message_id"], sent
        received = requests.get(f"{messenger_url}/__sandbox__/received", timeout=5).json()["received"]
        sends = [r for r in received if r["endpoint"] == "messages"]
        assert len(sends) == 1 and sends[0]["page"] == "104512345678901"

        # WhatsApp. 1. The customer writes: the Twilio emulator signs over PUBLIC_BASE_URL's URL,
        # Switchboard verifies it with the twilio package's validator and answers empty TwiML.
        status, fired = _curl(wa_fire)
        assert status == 200 and fired["status"] == 200 and "<Response>" in fired["body"], fired
        assert _wait_for(lines, seen, lambda line: line.startswith("[receiver] verified whatsapp.message "), 30), \
            "".join(seen)
        assert "from +14155550199: 'Where is my order?'" in next(
            line for line in seen if line.startswith("[receiver] verified whatsapp.message "))

        # 2. Listed, delivered.
        status, page = _curl(wa_events)
        assert status == 200
        [event] = page["data"]
        assert event["type"] == "whatsapp.message" and event["delivery"]["status"] == "delivered"
        assert event["data"]["MessageSid"] == fired["sid"]

        # 3. The reply goes out inside the window; Twilio's signed status callbacks come back to
        # /webhooks/twilio/status and are delivered to the receiver as well.
        status, sent = _curl(wa_reply)
        assert status == 201 and sent["sid"] and sent["to"] == "+14155550199", sent
        assert _wait_for(lines, seen, lambda line: line.startswith("[receiver] verified whatsapp.message.status")
                         and f"{sent['sid']} delivered" in line, 30), "".join(seen)
        twilio = requests.get(f"{twilio_url}/__sandbox__/received", timeout=5).json()
        [send] = [r for r in twilio["received"] if r["endpoint"] == "messages" and r["method"] == "POST"]
        assert send["form"]["To"] == "whatsapp:+14155550199" and send["form"]["From"] == "whatsapp:+14155550100"
        assert send["form"]["StatusCallback"] == f"http://127.0.0.1:{port}/webhooks/twilio/status"
        assert not any("REJECTED" in line for line in seen)
    finally:
        demo.terminate()
        try:
            demo.wait(timeout=10)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(timeout=10)
