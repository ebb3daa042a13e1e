"""Added latency of the proxy: ``GET /api/v1/shopify/products/<id>`` vs calling the emulator directly.

    make bench                      # SQLite + memory, then PostgreSQL + Redis when reachable
    python -m benchmarks.proxy_latency --rounds 2000 --only sqlite
    python -m benchmarks.proxy_latency --database-url postgresql://…/bench_x --redis-url redis://…/11
    python -m benchmarks.proxy_latency --app-root /tmp/old-checkout   # the same run against other code

Each configuration starts its own processes: the Shopify emulator (``python -m sandbox shopify``)
and Switchboard under gunicorn (1 worker, gthread with 4 threads; ``BENCH_WORKER`` and
``BENCH_THREADS`` change both), on loopback. One client, one request at a
time, keep-alive on both legs. Each round makes one direct call (the same GraphQL document and
token Switchboard sends) and one proxied call, in random order, so drift on a shared machine
hits both sides alike. Auth, the org rate limit, the integration lookup and the audit row (committed
before the response) are all on. Reported: p50/p99 of direct, proxied, and of the per-round
difference.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TOKEN = "shpat_bench_demo_store"
ADMIN = "bench-admin-key-0123456789abcdef"
PRODUCT = "8915061031187"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
# Its own database: the test database stays untouched. BENCH_DATABASE_URL / BENCH_REDIS_URL (or
# --database-url / --redis-url) move a run elsewhere, e.g. beside other people's runs.
PG_URL = os.environ.get("BENCH_DATABASE_URL", PG_SERVER + "/switchboard_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def process(args: list[str], env: dict, probe: str, cwd: Path = ROOT):
    proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_until_up(probe)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run(label: str, database_url: str, redis_url: str | None, rounds: int, warmup: int,
        root: Path = ROOT) -> dict:
    shopify_port, app_port = free_port(), free_port()
    shopify_url = f"http://127.0.0.1:{shopify_port}"
    app_url = f"http://127.0.0.1:{app_port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "PYTHONPATH": str(root),
        "SANDBOX_SHOPIFY_TOKENS": json.dumps({"demo-store": TOKEN}),
        # Both legs share one cost bucket; at Shopify's Standard 100 points/s a product lookup
        # (59 points) would throttle after a few dozen rounds. Latency, not throttling, is measured.
        "SANDBOX_SHOPIFY_BUCKET_SIZE": "100000000",
        "SANDBOX_SHOPIFY_RESTORE_RATE": "100000000",
        "DATABASE_URL": database_url,
        "ADMIN_API_KEY": ADMIN,
        "SHOPIFY_ADMIN_ACCESS_TOKENS": json.dumps({"demo-store": TOKEN}),
        "SHOPIFY_SHOP_URL_TEMPLATE": shopify_url + "/shops/{shop}",
        "ORG_RATE_LIMIT": "1000000/minute",
        "SANDBOX": "true",  # the provider is the emulator: one-step connect
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

    emulator = [str(BIN / "python"), "-m", "sandbox", "shopify", "--port", str(shopify_port)]
    worker = os.environ.get("BENCH_WORKER", "gthread")
    server = [str(BIN / "gunicorn"), "-w", "1", "-k", worker, "--threads", os.environ.get("BENCH_THREADS", "4"), "-b", f"127.0.0.1:{app_port}",
              "--keep-alive", "30", "wsgi:app"]
    with process(emulator, env, shopify_url + "/__sandbox__/received"), \
            process(server, env, app_url + "/healthz", cwd=root):
        admin = {"Authorization": f"Bearer {ADMIN}"}
        session = requests.Session()
        org = session.post(f"{app_url}/api/v1/admin/organizations", json={"slug": f"bench-{int(time.time())}"},
                           headers=admin).json()
        key = session.post(f"{app_url}/api/v1/admin/organizations/{org['id']}/api-keys", json={},
                           headers=admin).json()["key"]
        org_headers = {"Authorization": f"Bearer {key}"}
        connected = session.put(f"{app_url}/api/v1/integrations/shopify", headers=org_headers,
                                json={"account_identifier": {"storeName": "demo-store"}})
        assert connected.status_code in (200, 201), connected.text

        from app.providers.shopify import GET_PRODUCT

        direct_url = f"{shopify_url}/shops/demo-store/admin/api/2026-10/graphql.json"
        direct_body = {"query": GET_PRODUCT, "variables": {"id": f"gid://shopify/Product/{PRODUCT}"}}
        direct_headers = {"X-Shopify-Access-Token": TOKEN, "Accept": "application/json"}
        proxied_url = f"{app_url}/api/v1/shopify/products/{PRODUCT}"
        direct_session, proxy_session = requests.Session(), requests.Session()

        def direct() -> float:
            started = time.perf_counter()
            response = direct_session.post(direct_url, json=direct_body, headers=direct_headers)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200 and response.json()["data"]["product"], response.text[:200]
            return elapsed * 1000

        def proxied() -> float:
            started = time.perf_counter()
            response = proxy_session.get(proxied_url, headers=org_headers)
            elapsed = time.perf_counter() - started
            assert response.status_code == 200, response.text[:200]
            return elapsed * 1000

        for _ in range(warmup):
            direct()
            proxied()
        directs, proxieds, diffs = [], [], []
        rng = random.Random(42)
        for _ in range(rounds):
            if rng.random() < 0.5:
                d = direct()
                p = proxied()
            else:
                p = proxied()
                d = direct()
            directs.append(d)
            proxieds.append(p)
            diffs.append(p - d)
        audited = session.get(f"{app_url}/api/v1/audit-logs?action=proxy.request&limit=1", headers=org_headers).json()
        assert audited["data"], "no audit rows were written"

    return {
        "label": label,
        "rounds": rounds,
        "direct_p50": statistics.median(directs), "direct_p99": percentile(directs, 0.99),
        "proxied_p50": statistics.median(proxieds), "proxied_p99": percentile(proxieds, 0.99),
        "added_p50": statistics.median(diffs), "added_p99": percentile(diffs, 0.99),
    }


def ensure_database(url: str = PG_URL) -> None:
    import psycopg

    server, name = url.rsplit("/", 1)
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"not a plain database name: {name!r}")
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--database-url", default=PG_URL, help="PostgreSQL database of the second run")
    parser.add_argument("--redis-url", default=REDIS_URL, help="Redis of the second run")
    parser.add_argument("--app-root", type=Path, action="append",
                        help="run Switchboard from this checkout (repeat to compare; default: this one)")
    args = parser.parse_args()
    results = []
    roots = args.app_root or [ROOT]
    tag = (lambda root: f" [{root.name}]") if len(roots) > 1 else (lambda root: "")
    if args.only in (None, "sqlite"):
        for root in roots:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(run("SQLite + memory" + tag(root), f"sqlite:///{tmp}/bench.db", None,
                                   args.rounds, args.warmup, root))
    if args.only in (None, "postgres"):
        if reachable("127.0.0.1", 5432) and reachable("127.0.0.1", 6379):
            for root in roots:
                results.append(run("PostgreSQL + Redis" + tag(root), args.database_url, args.redis_url,
                                   args.rounds, args.warmup, root))
        else:
            print("PostgreSQL or Redis not reachable on 127.0.0.1: skipped that configuration")
    print(f"\n{args.rounds} rounds after {args.warmup} warm-up rounds; milliseconds\n")
    print("| configuration | direct p50 | direct p99 | proxied p50 | proxied p99 | added p50 | added p99 |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['label']} | {r['direct_p50']:.2f} | {r['direct_p99']:.2f} | {r['proxied_p50']:.2f} | "
              f"{r['proxied_p99']:.2f} | {r['added_p50']:.2f} | {r['added_p99']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
