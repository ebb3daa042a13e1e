"""Added latency of the proxy: ``GET /api/v1/shopify/products/<id>`` vs calling the emulator directly.

    make bench                      # SQLite + memory, then PostgreSQL + Redis when reachable
    python -m benchmarks.proxy_latency --rounds 2000 --only sqlite
    python -m benchmarks.proxy_latency --database-url postgresql://…/bench_x --redis-url redis://…/11
    python -m benchmarks.proxy_latency --app-root /tmp/old-checkout --app-root .   # before vs after

Each configuration starts its own processes: the Shopify emulator (``python -m sandbox shopify``)
and Switchboard under gunicorn (1 worker, gthread with 4 threads; ``BENCH_WORKER`` and
``BENCH_THREADS`` change both), on loopback. One client, one request at a time, keep-alive on
both legs. Each round makes one direct call (the same GraphQL document and token Switchboard
sends) and one proxied call, in random order, so drift on a shared machine hits both sides
alike. Auth, the org rate limit, the integration lookup and the audit row (committed before the
response) are all on. Reported: p50/p99 of direct, proxied, and of the per-round difference, and
the Switchboard worker's CPU time per proxied request (user + system, all its threads, read from
``/proc``) — the figure that moves least with other load on the machine.

With several ``--app-root`` checkouts, their stacks run side by side and the rounds are
**interleaved**: every round visits each checkout once, in random order, so a change in the
machine's load hits all of them alike (PostgreSQL: one database per checkout, ``<name>``,
``<name>_2``, …; Redis: one key prefix per stack).
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

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


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU of a process, all its threads (Linux ``/proc``; ``None`` elsewhere)."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gunicorn_worker(master: int) -> int | None:
    """The pid of gunicorn's one worker (the master's child), where the requests are served."""
    try:
        with open(f"/proc/{master}/task/{master}/children") as f:
            children = f.read().split()
    except OSError:
        return None
    return int(children[0]) if len(children) == 1 else None


@dataclass
class Stack:
    """One running configuration: its emulator, its Switchboard, and the two calls to time."""

    label: str
    direct: Callable[[], float]
    proxied: Callable[[], float]
    check: Callable[[], None]
    worker: int | None
    directs: list[float] = field(default_factory=list)
    proxieds: list[float] = field(default_factory=list)
    cpu: float | None = None

    def round(self, rng: random.Random) -> None:
        if rng.random() < 0.5:
            d, p = self.direct(), self.proxied()
        else:
            p, d = self.proxied(), self.direct()
        self.directs.append(d)
        self.proxieds.append(p)

    def result(self) -> dict:
        diffs = [p - d for p, d in zip(self.proxieds, self.directs)]
        return {
            "label": self.label,
            "rounds": len(diffs),
            "direct_p50": statistics.median(self.directs), "direct_p99": percentile(self.directs, 0.99),
            "proxied_p50": statistics.median(self.proxieds), "proxied_p99": percentile(self.proxieds, 0.99),
            "added_p50": statistics.median(diffs), "added_p99": percentile(diffs, 0.99),
            "cpu_ms": None if self.cpu is None else self.cpu / len(diffs) * 1000,
        }


@contextmanager
def stack(label: str, database_url: str, redis_url: str | None, root: Path = ROOT, prefix: str = "switchboard"):
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
        "RATELIMIT_KEY_PREFIX": prefix,  # stacks sharing one Redis keep their limits and budgets apart
        "SANDBOX": "true",  # the provider is the emulator: one-step connect
        "LOG_LEVEL": "WARNING",
        "FLASK_APP": "wsgi.py",
    })
    if redis_url:
        env["REDIS_URL"] = redis_url
    if database_url.startswith("postgresql"):
        fresh_database(database_url)  # whatever revision another checkout left it at
    subprocess.run([str(BIN / "flask"), "db", "upgrade"], env=env, cwd=root, check=True, capture_output=True)

    emulator = [str(BIN / "python"), "-m", "sandbox", "shopify", "--port", str(shopify_port)]
    worker = os.environ.get("BENCH_WORKER", "gthread")
    server = [str(BIN / "gunicorn"), "-w", "1", "-k", worker, "--threads", os.environ.get("BENCH_THREADS", "4"),
              "-b", f"127.0.0.1:{app_port}", "--keep-alive", "30", "wsgi:app"]
    with process(emulator, env, shopify_url + "/__sandbox__/received"), \
            process(server, env, app_url + "/healthz", cwd=root) as gunicorn:
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

        def check() -> None:
            audited = session.get(f"{app_url}/api/v1/audit-logs?action=proxy.request&limit=1",
                                  headers=org_headers).json()
            assert audited["data"], "no audit rows were written"

        yield Stack(label, direct, proxied, check, gunicorn_worker(gunicorn.pid))


def measure(stacks: list[Stack], rounds: int, warmup: int) -> list[dict]:
    """Warm every stack up, then ``rounds`` rounds, each visiting every stack once in random order."""
    rng = random.Random(42)
    for s in stacks:
        for _ in range(warmup):
            s.direct()
            s.proxied()
    started = {id(s): cpu_seconds(s.worker) for s in stacks}
    for _ in range(rounds):
        for s in rng.sample(stacks, len(stacks)):
            s.round(rng)
    for s in stacks:
        before, after = started[id(s)], cpu_seconds(s.worker)
        s.cpu = after - before if before is not None and after is not None else None
        s.check()
    return [s.result() for s in stacks]


def ensure_database(url: str = PG_URL) -> None:
    """Create the database if it is missing (benchmarks/fairness.py and webhook_ingest.py use it)."""
    import psycopg

    server, name = url.rsplit("/", 1)
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"not a plain database name: {name!r}")
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def fresh_database(url: str) -> None:
    """Drop and create the benchmark's database (its name must say ``bench``: nothing else is dropped)."""
    import psycopg

    server, name = url.rsplit("/", 1)
    if not name.replace("_", "").isalnum() or "bench" not in name:
        raise SystemExit(f"not a benchmark database name (plain, containing 'bench'): {name!r}")
    with psycopg.connect(server + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
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
    parser.add_argument("--database-url", default=PG_URL,
                        help="PostgreSQL database of the second configuration (dropped and created again; "
                             "its name must contain 'bench'; more checkouts get <name>_2, …)")
    parser.add_argument("--redis-url", default=REDIS_URL, help="Redis of the second configuration")
    parser.add_argument("--app-root", type=Path, action="append",
                        help="run Switchboard from this checkout (repeat to compare, interleaved; default: this one)")
    args = parser.parse_args()
    results = []
    roots = [root.resolve() for root in args.app_root or [ROOT]]
    names = [root.name for root in roots]
    tag = (lambda i: f" [{names[i]}]") if len(roots) > 1 else (lambda i: "")
    run_id = int(time.time())
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp, ExitStack() as stacks:
            running = [stacks.enter_context(stack("SQLite + memory" + tag(i), f"sqlite:///{tmp}/bench{i}.db", None, root))
                       for i, root in enumerate(roots)]
            results += measure(running, args.rounds, args.warmup)
    if args.only in (None, "postgres"):
        if reachable("127.0.0.1", 5432) and reachable("127.0.0.1", 6379):
            with ExitStack() as stacks:
                running = [stacks.enter_context(stack(
                    "PostgreSQL + Redis" + tag(i), args.database_url + (f"_{i + 1}" if i else ""), args.redis_url,
                    root, prefix=f"bench{run_id}-{i}")) for i, root in enumerate(roots)]
                results += measure(running, args.rounds, args.warmup)
        else:
            print("PostgreSQL or Redis not reachable on 127.0.0.1: skipped that configuration")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{args.rounds} rounds after {args.warmup} warm-up rounds; milliseconds; load average after: {load}\n")
    print("| configuration | direct p50 | direct p99 | proxied p50 | proxied p99 | added p50 | added p99 | server CPU/request |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        cpu = "—" if r["cpu_ms"] is None else f"{r['cpu_ms']:.2f}"
        print(f"| {r['label']} | {r['direct_p50']:.2f} | {r['direct_p99']:.2f} | {r['proxied_p50']:.2f} | "
              f"{r['proxied_p99']:.2f} | {r['added_p50']:.2f} | {r['added_p99']:.2f} | {cpu} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
