"""Server CPU per refused request: what one call of a flood costs Switchboard once the provider
account's budget refuses it (429 ``upstream_rate_limited``, nothing sent).

    python -m benchmarks.refusal_cpu                                        # this checkout
    python -m benchmarks.refusal_cpu --app-root ../base --app-root .        # before/after, interleaved

The rig is ``benchmarks/fairness.py``'s (gunicorn, one worker, the Shopify emulator) with a
bucket of 60 points refilled at 1 point/s: the first product lookup (it asks for 59) is served,
then the org's calls are refused. One client thread sends ``--requests`` lookups in a row on one
keep-alive connection; the result is the gunicorn process tree's CPU time (``/proc``, user +
system) over that round divided by the requests — CPU, not latency, so it holds on a busy
machine. ``--rounds`` rounds per checkout, the checkouts' rounds interleaved; the median is
reported, with the share of answers that were 429, and as a floor the same figure for
``GET /healthz`` (gunicorn, Flask and the access log around a view that does nothing).
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchmarks.fairness import URL_PATH, _cpu_seconds, start_rig
from benchmarks.proxy_latency import PG_URL, REDIS_URL, ROOT, reachable


def _round(rig, requests: int, path: str = URL_PATH) -> tuple[float, float]:
    """(CPU µs per request, share answered 429) for ``requests`` calls of the flooding org."""
    connection = http.client.HTTPConnection("127.0.0.1", rig.app_port, timeout=30)
    headers = {"Authorization": f"Bearer {rig.flooder}", "X-Bench-Org": "flood"}
    refused = 0
    before = _cpu_seconds(rig.app.pid)
    for _ in range(requests):
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        refused += response.status == 429
    used = _cpu_seconds(rig.app.pid) - before
    connection.close()
    return used / requests * 1e6, refused / requests


def run(label: str, database_url: str, redis_url: str | None, args) -> list[tuple[str, list, list]]:
    roots = [Path(r).resolve() for r in args.app_root] or [ROOT]
    rig_args = argparse.Namespace(bucket=60, restore=1, org_limit="1000000/minute", app_env=[], workers=1,
                                  threads=8)
    with ExitStack() as stack:
        rigs = []
        for n, root in enumerate(roots):
            url = database_url if n == 0 or not database_url.startswith("postgresql") else f"{database_url}_{n}"
            if url.startswith("sqlite:///"):
                url = url.replace("bench.db", f"bench{n}.db")
            name = label if len(roots) == 1 else f"{label} [{root.name}]"
            rigs.append(start_rig(stack, name, root, url, redis_url, rig_args))
        figures = {rig.label: ([], [], []) for rig in rigs}
        for n in range(args.rounds):
            for rig in (rigs if n % 2 == 0 else rigs[::-1]):
                cpu, refused = _round(rig, args.requests)
                figures[rig.label][0].append(cpu)
                figures[rig.label][1].append(refused)
                figures[rig.label][2].append(_round(rig, args.requests, "/healthz")[0])
                time.sleep(0.2)
    return [(name, *lists) for name, lists in figures.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="refused requests per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--app-root", action="append", default=[], metavar="PATH",
                        help="a Switchboard checkout to measure (repeatable; default: this one)")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--database-url", default=PG_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    args = parser.parse_args()
    results = []
    if args.only in (None, "sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            results += run("SQLite + memory", f"sqlite:///{tmp}/bench.db", None, args)
    if args.only in (None, "postgres"):
        if reachable("127.0.0.1", 5432) and reachable("127.0.0.1", 6379):
            results += run("PostgreSQL + Redis", args.database_url, args.redis_url, args)
        else:
            print("PostgreSQL or Redis not reachable on 127.0.0.1: skipped that configuration")
    print(f"\nserver CPU per refused request: {args.rounds} rounds × {args.requests} requests, one keep-alive "
          "connection, gunicorn 1 worker\n")
    print("| configuration | CPU µs per refused request (median) | rounds | answered 429 "
          "| floor: CPU µs per GET /healthz (median) |")
    print("|---|---|---|---|---|")
    for name, cpu, refused, floor in results:
        print(f"| {name} | **{statistics.median(cpu):.0f}** | {', '.join(f'{c:.0f}' for c in cpu)} | "
              f"{min(refused):.1%}–{max(refused):.1%} | {statistics.median(floor):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
