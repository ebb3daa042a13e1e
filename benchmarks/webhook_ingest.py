"""Webhook ingestion: signed Messenger deliveries at a fixed arrival rate, acknowledged and delivered.

    make bench                                          # SQLite, then PostgreSQL + Redis when reachable
    python -m benchmarks.webhook_ingest --rate 200 --seconds 10 --only sqlite
    python -m benchmarks.webhook_ingest --idle 0.05     # the delivery worker looks every 50 ms when idle
    python -m benchmarks.webhook_ingest --app-root /tmp/old-checkout   # the same run against other code

Each configuration starts its own processes on loopback: the Messenger emulator (``python -m
sandbox messenger``, the Graph API the connect checks the Page token against), Switchboard under
gunicorn (1 worker, gthread with 4 threads, as ``proxy_latency``; ``BENCH_WORKER`` and
``BENCH_THREADS`` change both, ``BENCH_PROCESSES`` the worker count) and the delivery worker ``flask deliveries run`` (``--workers``
processes), as production runs it. An org is created over the admin API, connects the Page through
the emulator and sets its webhook endpoint to a small receiver in this process, which records when
each delivery arrives (no signature check: the receiver stays cheap).

The load is open-loop: request *i* is due at ``start + i / rate``; ``--clients`` threads each take
every n-th request and sleep until it is due, so a slow answer does not lower the offered rate
(threads only fall behind when every one of them is waiting). Each delivery is a distinct signed
``messages`` webhook (unique ``mid``). Reported: answers that were 2xx per second of sending, the
time to acknowledge (from when the request was due, so client lateness counts against
Switchboard), non-2xx and failed requests, and the delay from the acknowledgement to the event's
arrival at the org endpoint; and the CPU time (user + system, from /proc) that Switchboard's
gunicorn processes spent per offered delivery and the delivery workers per delivered one — on a
shared machine a steadier figure than the latencies, which count time spent waiting for a core.
``--app-root`` runs the same measurement against another checkout (older code whose worker has
no ``--concurrency`` is started without it). Bounded: ``rate × seconds`` requests, then at most ``--drain`` seconds
of waiting for deliveries.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
import urllib3

from benchmarks.proxy_latency import (BIN, PG_SERVER, ROOT, ensure_database, free_port, percentile, process,
                                      reachable)

ADMIN = "bench-admin-key-0123456789abcdef"
PAGE = "104512345678901"
PAGE_TOKEN = "EAAG-bench-page-token"
APP_SECRET = "bench-messenger-app-secret"
SIGNING_KEY = "bench-webhook-signing-key-0123456789abcdef"
PG_URL = os.environ.get("BENCH_WEBHOOK_DATABASE_URL", PG_SERVER + "/bench_webhooks")
REDIS_URL = os.environ.get("BENCH_WEBHOOK_REDIS_URL", "redis://127.0.0.1:6379/15")
WARM = 10**9  # the warm-up delivery's mid number
MID = re.compile(rb'"mid":\s*"(m_bench_[0-9]+)"')


class Arrivals:
    """The org endpoint: records the first arrival time of each mid."""

    def __init__(self):
        self.at: dict[str, float] = {}
        self.posts = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.expected = 0
        arrivals = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per answer, no Nagle: otherwise delayed ACKs add ~40 ms per keep-alive POST.
            disable_nagle_algorithm = True
            wbufsize = 65536

            def do_POST(self):  # noqa: N802 (http.server's naming)
                now = time.perf_counter()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with arrivals.lock:
                    arrivals.posts += 1
                    for mid in MID.findall(body):
                        arrivals.at.setdefault(mid.decode(), now)
                    if arrivals.expected and len(arrivals.at) >= arrivals.expected:
                        arrivals.done.set()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of process group ``pgid``
    (gunicorn's master and workers; a worker process): a less noisy figure than latency on a
    shared machine, as it does not count time spent waiting for a core."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state, ppid, pgrp, …, utime (12), stime (13)
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def body_for(i: int) -> bytes:
    now_ms = int(time.time() * 1000)
    entry = {"id": PAGE, "time": now_ms, "messaging": [{
        "sender": {"id": str(7_000_000 + i % 500)}, "recipient": {"id": PAGE}, "timestamp": now_ms,
        "message": {"mid": f"m_bench_{i}", "text": f"hello {i}"}}]}
    return json.dumps({"object": "page", "entry": [entry]}, separators=(",", ":")).encode()


def signed(body: bytes) -> dict:
    return {"Content-Type": "application/json", "User-Agent": "facebookexternalua",
            "X-Hub-Signature-256": "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()}


def offer_load(url: str, rate: float, seconds: float, clients: int) -> dict:
    """Open-loop load; returns per-request (due, sent, acked, status) keyed by mid."""
    total = int(rate * seconds)
    results: dict[str, tuple] = {}
    lock = threading.Lock()
    start = time.perf_counter() + 0.5

    def client(k: int) -> None:
        pool = urllib3.HTTPConnectionPool("127.0.0.1", int(url.split(":")[2].split("/")[0]), maxsize=1,
                                          timeout=urllib3.Timeout(connect=5, read=10), retries=False)
        path = "/" + url.split("/", 3)[3]
        for i in range(k, total, clients):
            body = body_for(i)
            headers = signed(body)
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            sent = time.perf_counter()
            try:
                status = pool.urlopen("POST", path, body=body, headers=headers, redirect=False).status
            except urllib3.exceptions.HTTPError:
                status = None
            acked = time.perf_counter()
            with lock:
                results[f"m_bench_{i}"] = (due, sent, acked, status)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    return results


def run(label: str, database_url: str, redis_url: str | None, args, root: Path = ROOT) -> dict:
    emulator_port, app_port = free_port(), free_port()
    graph_url = f"http://127.0.0.1:{emulator_port}"
    app_url = f"http://127.0.0.1:{app_port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "PYTHONPATH": str(root),
        "SANDBOX_MESSENGER_PAGE_TOKENS": json.dumps({PAGE: PAGE_TOKEN}),
        "SANDBOX_MESSENGER_APP_SECRET": APP_SECRET,
        "DATABASE_URL": database_url,
        "ADMIN_API_KEY": ADMIN,
        "MESSENGER_PAGE_ACCESS_TOKENS": json.dumps({PAGE: PAGE_TOKEN}),
        "MESSENGER_APP_SECRET": APP_SECRET,
        "MESSENGER_VERIFY_TOKEN": "bench-verify-token",
        "MESSENGER_GRAPH_URL": graph_url,
        "WEBHOOK_SIGNING_KEY": SIGNING_KEY,
        "ORG_RATE_LIMIT": "1000000/minute",
        "SANDBOX": "true",  # the emulator as the Graph API, and a loopback org endpoint
        "LOG_LEVEL": "WARNING",
        "FLASK_APP": "wsgi.py",
    })
    if redis_url:
        env["REDIS_URL"] = redis_url
    if database_url.startswith("postgresql"):
        ensure_database(database_url)
        subprocess.run([str(BIN / "flask"), "db", "downgrade", "base"], env=env, cwd=root, check=True,
                       capture_output=True)
    subprocess.run([str(BIN / "flask"), "db", "upgrade"], env=env, cwd=root, check=True, capture_output=True)

    emulator = [str(BIN / "python"), "-m", "sandbox", "messenger", "--port", str(emulator_port)]
    server = [str(BIN / "gunicorn"), "-w", os.environ.get("BENCH_PROCESSES", "1"), "-k", os.environ.get("BENCH_WORKER", "gthread"),
              "--threads", os.environ.get("BENCH_THREADS", "4"), "-b", f"127.0.0.1:{app_port}",
              "--keep-alive", "30", "wsgi:app"]
    worker = [str(BIN / "flask"), "deliveries", "run", "--idle", str(args.idle)]
    if "--concurrency" in (root / "app" / "deliveries.py").read_text():  # older code: one at a time
        worker += ["--concurrency", str(args.concurrency)]
    with ExitStack() as stack:
        receiver = stack.enter_context(Arrivals())
        stack.enter_context(process(emulator, env, graph_url + "/__sandbox__/received", cwd=root))
        gunicorn = stack.enter_context(process(server, env, app_url + "/healthz", cwd=root))
        admin = {"Authorization": f"Bearer {ADMIN}"}
        session = requests.Session()
        org = session.post(f"{app_url}/api/v1/admin/organizations", json={"slug": f"bench-{int(time.time())}"},
                           headers=admin).json()
        key = session.post(f"{app_url}/api/v1/admin/organizations/{org['id']}/api-keys", json={},
                           headers=admin).json()["key"]
        org_headers = {"Authorization": f"Bearer {key}"}
        connected = session.put(f"{app_url}/api/v1/integrations/messenger", headers=org_headers,
                                json={"account_identifier": {"pageId": PAGE}})
        assert connected.status_code in (200, 201), connected.text
        endpoint = session.put(f"{app_url}/api/v1/webhook-endpoint", headers=org_headers,
                               json={"url": receiver.url})
        assert endpoint.status_code in (200, 201), endpoint.text
        # The delivery workers (probe: Switchboard itself, already up).
        workers = [stack.enter_context(process(worker, env, app_url + "/healthz", cwd=root))
                   for _ in range(args.workers)]
        # Warm-up: one delivery all the way through (the worker has started and polls).
        warm = body_for(WARM)
        answer = session.post(app_url + "/webhooks/messenger", data=warm, headers=signed(warm))
        assert answer.status_code == 200, answer.text
        deadline = time.monotonic() + (30 if args.workers else 0)
        while f"m_bench_{WARM}" not in receiver.at and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not args.workers or f"m_bench_{WARM}" in receiver.at, "the warm-up delivery never reached the endpoint"
        with open("/proc/loadavg") as f:
            load_before = f.read().split()[:3]
        receiver.expected = int(args.rate * args.seconds) + 1
        cpu_before = group_cpu(gunicorn.pid), sum(group_cpu(w.pid) for w in workers)
        results = offer_load(app_url + "/webhooks/messenger", args.rate, args.seconds, args.clients)
        receiver.done.wait(args.drain if args.workers else 0)
        drained = time.perf_counter()
        cpu_after = group_cpu(gunicorn.pid), sum(group_cpu(w.pid) for w in workers)
        with open("/proc/loadavg") as f:
            load_after = f.read().split()[:3]
        with receiver.lock:
            arrived = dict(receiver.at)
            posts = receiver.posts

    ok = {mid: r for mid, r in results.items() if r[3] is not None and 200 <= r[3] < 300}
    acks = [(r[2] - r[0]) * 1000 for r in ok.values()]
    lateness = [(r[1] - r[0]) * 1000 for r in results.values()]
    delays = [(arrived[mid] - r[2]) * 1000 for mid, r in ok.items() if mid in arrived]
    first_due = min(r[0] for r in results.values())
    last_ack = max(r[2] for r in results.values())
    return {
        "label": label, "offered": len(results), "ok": len(ok),
        "non2xx": sum(1 for r in results.values() if r[3] is not None and not 200 <= r[3] < 300),
        "failed": sum(1 for r in results.values() if r[3] is None),
        "accepted_per_s": len(ok) / (last_ack - first_due),
        "ack_p50": percentile(acks, 0.5), "ack_p99": percentile(acks, 0.99), "ack_max": max(acks),
        "late_p99": percentile(lateness, 0.99),
        "arrived": len(delays), "posts": posts,
        "delay_p50": percentile(delays, 0.5) if delays else float("nan"),
        "delay_p99": percentile(delays, 0.99) if delays else float("nan"),
        "drain_s": (max(arrived.values()) - last_ack) if arrived else float("nan"),
        "load": f"{' '.join(load_before)} → {' '.join(load_after)}",
        "waited_s": drained - last_ack,
        "server_cpu_ms": (cpu_after[0] - cpu_before[0]) * 1000 / max(1, len(results)),
        "worker_cpu_ms": (cpu_after[1] - cpu_before[1]) * 1000 / max(1, len(delays)) if delays else float("nan"),
        "root": str(root),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="deliveries per second offered")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of sending")
    parser.add_argument("--clients", type=int, default=16, help="client threads (open loop)")
    parser.add_argument("--workers", type=int, default=1, help="`flask deliveries run` processes")
    parser.add_argument("--concurrency", type=int, default=8, help="the worker's --concurrency (its default)")
    parser.add_argument("--idle", type=float, default=0.25, help="the worker's --idle (its default: 0.25 s)")
    parser.add_argument("--drain", type=float, default=60.0, help="at most this long waiting for deliveries")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--database-url", default=PG_URL, help="PostgreSQL database of the second run")
    parser.add_argument("--redis-url", default=REDIS_URL, help="Redis of the second run")
    parser.add_argument("--app-root", type=Path, action="append",
                        help="a checkout to measure instead of this one (repeat to compare several)")
    args = parser.parse_args()
    results = []
    for root in args.app_root or [ROOT]:
        tag = "" if not args.app_root else f" [{root.name}]"
        if args.only in (None, "sqlite"):
            with tempfile.TemporaryDirectory() as tmp:
                results.append(run("SQLite + memory" + tag, f"sqlite:///{tmp}/bench.db", None, args, root))
        if args.only in (None, "postgres"):
            if reachable("127.0.0.1", 5432) and reachable("127.0.0.1", 6379):
                results.append(run("PostgreSQL + Redis" + tag, args.database_url, args.redis_url, args, root))
            else:
                print("PostgreSQL or Redis not reachable on 127.0.0.1: skipped that configuration")
    print(f"\nwebhook ingestion: {args.rate:g}/s offered for {args.seconds:g} s by {args.clients} client threads; "
          f"{args.workers} delivery worker(s), --concurrency {args.concurrency} --idle {args.idle:g}; milliseconds\n")
    print("| configuration | offered | 2xx | non-2xx | failed | accepted/s | ack p50 | ack p99 | ack max "
          "| client late p99 | delivered | ack→endpoint p50 | ack→endpoint p99 | last arrival after last ack (s) "
          "| server CPU ms/delivery | worker CPU ms/delivery | load avg before → after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['label']} | {r['offered']} | {r['ok']} | {r['non2xx']} | {r['failed']} | "
              f"{r['accepted_per_s']:.0f} | {r['ack_p50']:.1f} | {r['ack_p99']:.1f} | {r['ack_max']:.0f} | "
              f"{r['late_p99']:.1f} | {r['arrived']} | {r['delay_p50']:.0f} | {r['delay_p99']:.0f} | "
              f"{r['drain_s']:.1f} | {r['server_cpu_ms']:.2f} | {r['worker_cpu_ms']:.2f} | {r['load']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
