"""Two orgs on one provider bucket: does a flooding org starve a quiet one?

    make bench                                   # after the latency runs
    python -m benchmarks.fairness --seconds 30 --quiet-rate 10 --flood-rate 100
    python -m benchmarks.fairness --redis-url redis://127.0.0.1:6379/11 --database-url postgresql://…/bench_x

Processes on loopback: the Shopify emulator (``python -m sandbox shopify``, a bucket of
``--bucket`` points refilled at ``--restore`` points/s) and Switchboard under gunicorn (1 worker,
gthread, 8 threads) from ``benchmarks/shared_bucket_wsgi.py``, which declares one quota scope for
Shopify and sends every store's calls to ``demo-store`` (see that module: Shopify's buckets are per
store and a store has one org, so sharing one bucket between two orgs needs this rig — it is
what every org does on a platform service's one key).

Two phases, each ``--seconds`` long, requests sent at a fixed arrival rate (open loop: a late
answer does not delay the next request):

1. **alone** — the quiet org at ``--quiet-rate`` requests/s;
2. **flooded** — the same, while the flooding org sends ``--flood-rate`` requests/s to the same bucket.

Reported per phase and org: requests, success rate (200), refusals by code, p50/p99 latency.
The quiet org's figures in phase 2 against phase 1 are the result (target: within 10 %).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import subprocess

import requests

from benchmarks.proxy_latency import (
    ADMIN, BIN, PG_URL, PRODUCT, REDIS_URL, ROOT, TOKEN, ensure_database, free_port, percentile,
    process, reachable,
)


def _org(session, app_url: str, slug: str, store: str) -> dict:
    """A new org with a key, assigned ``store`` by the admin."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    org = session.post(f"{app_url}/api/v1/admin/organizations", json={"slug": slug}, headers=admin).json()
    key = session.post(f"{app_url}/api/v1/admin/organizations/{org['id']}/api-keys", json={}, headers=admin).json()["key"]
    done = session.put(f"{app_url}/api/v1/admin/organizations/{org['id']}/integrations/shopify", headers=admin,
                       json={"account_identifier": {"storeName": store}})
    assert done.status_code in (200, 201), done.text
    return {"Authorization": f"Bearer {key}"}


def _drive(url: str, headers: dict, rate: float, seconds: float, pool: ThreadPoolExecutor, out: list) -> threading.Thread:
    """Send GETs at ``rate``/s for ``seconds`` (open loop); append (status, code, ms) to ``out``."""
    local = threading.local()

    def one():
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        started = time.perf_counter()
        try:
            response = session.get(url, headers=headers, timeout=30)
            status = response.status_code
            code = None if status == 200 else response.json().get("code")
        except requests.RequestException as exc:
            status, code = 0, type(exc).__name__
        out.append((status, code, (time.perf_counter() - started) * 1000))

    def schedule():
        start, n = time.perf_counter(), int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            pool.submit(one)

    thread = threading.Thread(target=schedule, daemon=True)
    thread.start()
    return thread


def _summary(results: list) -> dict:
    latencies = [ms for status, _, ms in results if status == 200]
    codes = Counter(code or str(status) for status, code, _ in results if status != 200)
    return {
        "requests": len(results),
        "success": len(latencies) / len(results) if results else 0.0,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": percentile(latencies, 0.99) if latencies else float("nan"),
        "refused": dict(codes),
    }


def run(label: str, database_url: str, redis_url: str | None, args) -> dict:
    shopify_port, app_port = free_port(), free_port()
    shopify_url = f"http://127.0.0.1:{shopify_port}"
    app_url = f"http://127.0.0.1:{app_port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "PYTHONPATH": str(ROOT),
        "SANDBOX_SHOPIFY_TOKENS": json.dumps({"demo-store": TOKEN}),
        "SANDBOX_SHOPIFY_BUCKET_SIZE": str(args.bucket),
        "SANDBOX_SHOPIFY_RESTORE_RATE": str(args.restore),
        "DATABASE_URL": database_url,
        "ADMIN_API_KEY": ADMIN,
        "SHOPIFY_ADMIN_ACCESS_TOKEN": TOKEN,
        "BENCH_SHOPIFY_URL": shopify_url,
        "ORG_RATE_LIMIT": "1000000/minute",  # the org limit would hide the provider budget
        "RATELIMIT_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",  # a fresh record per run
        "SANDBOX": "true",
        "LOG_LEVEL": "WARNING",
        "FLASK_APP": "benchmarks/shared_bucket_wsgi.py",
    })
    if redis_url:
        env["REDIS_URL"] = redis_url
    if database_url.startswith("postgresql"):
        ensure_database(database_url)
        subprocess.run([str(BIN / "flask"), "db", "downgrade", "base"], env=env, cwd=ROOT, check=True, capture_output=True)
    subprocess.run([str(BIN / "flask"), "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    emulator = [str(BIN / "python"), "-m", "sandbox", "shopify", "--port", str(shopify_port)]
    server = [str(BIN / "gunicorn"), "-w", "1", "-k", "gthread", "--threads", "8", "-b", f"127.0.0.1:{app_port}",
              "--keep-alive", "30", "benchmarks.shared_bucket_wsgi:app"]
    url = f"{app_url}/api/v1/shopify/products/{PRODUCT}"
    phases = {}
    with process(emulator, env, shopify_url + "/__sandbox__/received"), process(server, env, app_url + "/healthz"):
        session = requests.Session()
        stamp = uuid.uuid4().hex[:6]
        quiet = _org(session, app_url, f"quiet-{stamp}", f"quiet-{stamp}")
        flooder = _org(session, app_url, f"flood-{stamp}", f"flood-{stamp}")
        with ThreadPoolExecutor(max_workers=64) as pool:
            for _ in range(int(args.quiet_rate * 2)):  # warm-up: connections, caches
                session.get(url, headers=quiet)
            time.sleep(args.bucket / args.restore)  # a full bucket to start each phase
            alone: list = []
            _drive(url, quiet, args.quiet_rate, args.seconds, pool, alone).join()
            time.sleep(2 + args.bucket / args.restore)
            flooded_quiet, flood = [], []
            threads = [_drive(url, quiet, args.quiet_rate, args.seconds, pool, flooded_quiet),
                       _drive(url, flooder, args.flood_rate, args.seconds, pool, flood)]
            for thread in threads:
                thread.join()
        time.sleep(2)  # the last answers
        phases = {"alone": _summary(alone), "flooded": _summary(flooded_quiet), "flood": _summary(flood)}
    return {"label": label, **phases}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--quiet-rate", type=float, default=10)
    parser.add_argument("--flood-rate", type=float, default=100)
    parser.add_argument("--bucket", type=int, default=2000)
    parser.add_argument("--restore", type=int, default=200)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--database-url", default=PG_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args()
    results = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run("SQLite + memory", f"sqlite:///{tmp}/bench.db", None, args))
    if args.only in (None, "postgres"):
        if reachable("127.0.0.1", 5432) and reachable("127.0.0.1", 6379):
            results.append(run("PostgreSQL + Redis", args.database_url, args.redis_url, args))
        else:
            print("PostgreSQL or Redis not reachable on 127.0.0.1: skipped that configuration")
    print(f"\nfairness: {args.seconds:g} s per phase, quiet {args.quiet_rate:g}/s, flood {args.flood_rate:g}/s, "
          f"bucket {args.bucket} points refilled {args.restore}/s; latency of served requests in ms\n")
    print("| configuration | phase | org | requests | success | p50 | p99 | refused |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for phase, org in (("alone", "quiet"), ("flooded", "quiet"), ("flood", "flooding")):
            s = r[phase]
            name = "flooded" if phase == "flood" else phase
            print(f"| {r['label']} | {name} | {org} | {s['requests']} | {s['success']:.1%} | {s['p50']:.2f} | "
                  f"{s['p99']:.2f} | {json.dumps(s['refused'])} |")
        a, f = r["alone"], r["flooded"]
        print(f"| {r['label']} | quiet: flooded vs alone | | | {f['success'] - a['success']:+.1%} | "
              f"{f['p50'] / a['p50']:.2f}× | {f['p99'] / a['p99']:.2f}× | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
