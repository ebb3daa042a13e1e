"""What an operator runs: `make run`'s demo, the WSGI entry point, Vercel's routing, log redaction."""

import json
import logging
import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_demo_prints_three_curl_lines_that_work(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SHOPIFY_", "DATABASE_URL", "REDIS_URL", "ADMIN_API_KEY"))}
    env.update(PORT=str(port), DATABASE_URL=f"sqlite:///{tmp_path / 'demo.db'}", PYTHONPATH=str(ROOT))
    demo = subprocess.Popen([sys.executable, "-m", "sandbox.demo"], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines, deadline = [], time.monotonic() + 30
        while time.monotonic() < deadline and sum(line.strip().startswith("curl") for line in lines) < 3:
            lines.append(demo.stdout.readline())
        curls = [shlex.split(line.strip()) for line in lines if line.strip().startswith("curl")]
        assert len(curls) == 3, "".join(lines)
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        outputs = [subprocess.run(args + ["-s", "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=20)
                   .stdout.rsplit("\n", 1) for args in curls]
    finally:
        demo.terminate()
        demo.wait(timeout=10)
    (connected, connect_status), (products, products_status), (order, order_status) = outputs
    assert connect_status in ("200", "201") and json.loads(connected)["status"] == "connected"
    assert products_status == "200" and json.loads(products)["data"][0]["title"] == "Classic Coffee Mug"
    assert order_status == "200" and json.loads(order)["tracking_numbers"]


def test_wsgi_exposes_the_app_and_vercel_routes_everything_to_it():
    config = json.loads((ROOT / "vercel.json").read_text())
    assert config["routes"] == [{"src": "/(.*)", "dest": "wsgi.py"}]
    source = (ROOT / "wsgi.py").read_text()
    assert "app = create_app()" in source


def test_logs_redact_configured_secrets(make_app, caplog):
    secret = "shpat_secret_value_that_must_not_print"
    caplog.set_level(logging.INFO)
    app = make_app(SHOPIFY_ADMIN_ACCESS_TOKEN=secret)  # installs the filter on the handlers present
    with app.test_request_context("/"):
        logging.getLogger("switchboard.test").warning("a library put %s into a message", secret)
        try:
            raise RuntimeError(f"driver said {secret}")
        except RuntimeError:
            logging.getLogger("switchboard.test").exception("and into an exception")
    err = caplog.text
    assert "a library put *** into a message" in err
    assert "driver said ***" in err
    assert secret not in err
