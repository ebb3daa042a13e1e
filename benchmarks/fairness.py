"""Two orgs on one provider bucket: does a flooding org starve a quiet one?

    make bench                                   # after the latency runs
    python -m benchmarks.fairness --seconds 30 --quiet-rate 10 --flood-rate 100
    python -m benchmarks.fairness --only sqlite --flood-path /healthz      # diagnosis: a flood of no work
    python -m benchmarks.fairness --redis-url redis://127.0.0.1:6379/11 --database-url postgresql://…/bench_x

Processes on loopback: the Shopify emulator (``python -m sandbox shopify``, a bucket of
``--bucket`` points refilled at ``--restore`` points/s), Switchboard under gunicorn (``--workers``
processes, gthread with ``--threads`` threads) from ``benchmarks/shared_bucket_wsgi.py``, which
declares one quota scope for Shopify and sends every store's calls to ``demo-store`` (see that
module: Shopify's buckets are per store and a store has one org, so sharing one bucket between
two orgs needs this rig — it is what every org does on a platform service's one key), and **one
load-generator process per org** (``python -m benchmarks.fairness drive``), so that the flood's
own client work never delays the quiet org's client (one GIL per generator).

Two phases, each ``--seconds`` long, requests sent at a fixed arrival rate (open loop: request
*i* is due at ``start + i/rate``; each generator's threads take every n-th request and sleep
until it is due, on their own keep-alive connection):

1. **alone** — the quiet org at ``--quiet-rate`` requests/s;
2. **flooded** — the same, while the flooding org sends ``--flood-rate`` requests/s to the same bucket.

Latency is measured **from the request's due time** to the end of its answer, so a request the
client could not send on time (all its threads waiting on slow answers) counts its lateness
against the server — no coordinated omission. ``late`` (due → sent) is reported apart, and so is
the server's own time for the request (gunicorn's access log, ``%(D)s``): the difference between
the client's and the server's figure is time in the accept queue and the network stack.
Also per phase: the CPU seconds each process used (``/proc/<pid>/stat``) and the load average.

Reported per phase and org: requests, success rate (200), refusals by code, p50/p99 latency.
The quiet org's figures in phase 2 against phase 1 are the result (target: success rate and
p99 within 10 %).

``--app-root PATH`` (repeatable) measures other checkouts of Switchboard (each with its own
``.venv`` if it has one, its own emulator, database and record): with two, one invocation runs
every block on both before the next block (their order alternating), so a before/after comparison
shares the machine's drift — e.g. ``--app-root ../base --app-root .``. PostgreSQL databases after
the first get ``_1``, ``_2``… appended to ``--database-url``'s name.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import requests

from benchmarks.proxy_latency import (
    ADMIN, BIN, PG_URL, PRODUCT, REDIS_URL, ROOT, TOKEN, ensure_database, free_port, percentile,
    process, reachable,
)

TICKS = os.sysconf("SC_CLK_TCK")


def _org(session, app_url: str, slug: str, store: str) -> str:
    """A new org with a key, assigned ``store`` by the admin; returns the key."""
    admin = {"Authorization": f"Bearer {ADMIN}"}
    org = session.post(f"{app_url}/api/v1/admin/organizations", json={"slug": slug}, headers=admin).json()
    key = session.post(f"{app_url}/api/v1/admin/organizations/{org['id']}/api-keys", json={}, headers=admin).json()["key"]
    done = session.put(f"{app_url}/api/v1/admin/organizations/{org['id']}/integrations/shopify", headers=admin,
                       json={"account_identifier": {"storeName": store}})
    assert done.status_code in (200, 201), done.text
    return key


# --- the load generator (its own process) ------------------------------------------------------


def drive(args) -> int:
    """Send GETs at ``--rate``/s from ``--start`` for ``--seconds`` (open loop); print one JSON
    line per request: [due offset s, late ms, latency-from-due ms, status, code]."""
    headers = {"Authorization": f"Bearer {os.environ['BENCH_DRIVE_KEY']}", "X-Bench-Org": args.name}
    total = int(args.rate * args.seconds)
    out: list = [None] * total
    lock = threading.Lock()

    def worker(first: int):
        connection = None
        for i in range(first, total, args.threads):
            due = args.start + i / args.rate
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            sent = time.time()
            status, code = 0, None
            try:
                if connection is None:
                    connection = http.client.HTTPConnection(args.host, args.port, timeout=30)
                connection.request("GET", args.path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                status = response.status
                if status != 200:
                    try:
                        problem = json.loads(body)
                        code = problem.get("code")
                        if "in progress" in problem.get("detail", ""):  # app/quota.py's in-flight cap
                            code = f"{code} (in flight)"
                    except ValueError:
                        code = None
                    if response.getheader("Retry-After") is None and status == 429:
                        code = f"{code} (no Retry-After)"
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
                    connection = None
            except (OSError, http.client.HTTPException) as exc:
                code = type(exc).__name__
                if connection is not None:
                    connection.close()
                connection = None
            done = time.time()
            with lock:
                out[i] = [round(i / args.rate, 4), round((sent - due) * 1000, 3), round((done - due) * 1000, 3),
                          status, code]

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(min(args.threads, total))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    json.dump(out, sys.stdout)
    return 0


def _pinned(cpus: str | None) -> list[str]:
    """``taskset -c CPUS`` in front of a command, or nothing (``--server-cpus`` / ``--client-cpus``)."""
    return ["taskset", "-c", cpus] if cpus else []


def _start_driver(app_port: int, path: str, key: str, name: str, rate: float, seconds: float, start: float,
                  threads: int, env: dict, cpus: str | None = None) -> subprocess.Popen:
    command = [*_pinned(cpus), str(BIN / "python"), "-m", "benchmarks.fairness", "drive", "--host", "127.0.0.1",
               "--port", str(app_port), "--path", path, "--name", name, "--rate", str(rate),
               "--seconds", str(seconds), "--start", repr(start), "--threads", str(threads)]
    return subprocess.Popen(command, env={**env, "BENCH_DRIVE_KEY": key}, cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)


# --- measuring --------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children that were reaped (gunicorn's master + worker)."""
    total = 0.0
    for child in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in found] + [g for c in found for g in _children(int(c))]


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


_ACCESS = re.compile(r"^(\S+) (\d{3}) (\d+)$")


def _server_times(log: Path, offset: int) -> tuple[dict, int]:
    """Server-side milliseconds per org and status from gunicorn's access log since ``offset``."""
    times: dict = defaultdict(list)
    with open(log) as f:
        f.seek(offset)
        for line in f:
            match = _ACCESS.match(line.strip())
            if match:
                times[(match[1], int(match[2]))].append(int(match[3]) / 1000)
        return times, f.tell()


def _summary(results: list, server: dict, name: str) -> dict:
    latencies = [r[2] for r in results if r[3] == 200]
    late = [r[1] for r in results]
    codes = Counter(r[4] or str(r[3]) for r in results if r[3] != 200)
    served = server.get((name, 200), [])
    refused = [ms for (org, status), values in server.items() if org == name and status != 200 for ms in values]
    return {
        "requests": len(results),
        "success": len(latencies) / len(results) if results else 0.0,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": percentile(latencies, 0.99) if latencies else float("nan"),
        "late_p99": percentile(late, 0.99) if late else float("nan"),
        "server_p50": statistics.median(served) if served else float("nan"),
        "server_p99": percentile(served, 0.99) if served else float("nan"),
        "refused_server_p50": statistics.median(refused) if refused else float("nan"),
        "refused": dict(codes),
        # when, in its block, each of the slowest 1 % of served requests was due (seconds)
        "tail_due": sorted(r[0] for r in sorted((r for r in results if r[3] == 200), key=lambda r: -r[2])
                           [:max(1, len(latencies) // 100)]) if latencies else [],
    }


@dataclass
class Rig:
    """One Switchboard checkout under gunicorn, its own Shopify emulator (its own bucket), its own
    database, two orgs: what one configuration's blocks run against."""

    label: str
    env: dict
    app_port: int
    app: subprocess.Popen
    emulator: subprocess.Popen
    quiet: str
    flooder: str
    access: Path
    offset: int = 0


def _python_bin(root: Path) -> Path:
    """The checkout's own virtualenv when it has one (``--app-root``), else this interpreter's."""
    own = root / ".venv" / "bin"
    return own if (own / "gunicorn").exists() else BIN


def start_rig(stack: ExitStack, label: str, root: Path, database_url: str, redis_url: str | None, args) -> Rig:
    """Start the emulator and Switchboard from ``root`` (migrated, warmed up, two orgs)."""
    bin_ = _python_bin(root)
    shopify_port, app_port = free_port(), free_port()
    shopify_url = f"http://127.0.0.1:{shopify_port}"
    app_url = f"http://127.0.0.1:{app_port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({
        "PYTHONPATH": str(root),
        "SANDBOX_SHOPIFY_TOKENS": json.dumps({"demo-store": TOKEN}),
        "SANDBOX_SHOPIFY_BUCKET_SIZE": str(args.bucket),
        "SANDBOX_SHOPIFY_RESTORE_RATE": str(args.restore),
        "DATABASE_URL": database_url,
        "ADMIN_API_KEY": ADMIN,
        "SHOPIFY_ADMIN_ACCESS_TOKEN": TOKEN,
        "BENCH_SHOPIFY_URL": shopify_url,
        "ORG_RATE_LIMIT": args.org_limit,
        "RATELIMIT_KEY_PREFIX": f"bench-{uuid.uuid4().hex[:8]}",  # a fresh record per run
        "SANDBOX": "true",
        "LOG_LEVEL": "WARNING",
        "FLASK_APP": "benchmarks/shared_bucket_wsgi.py",
    })
    env.update(dict(item.split("=", 1) for item in args.app_env))
    workers = int(env.get("BENCH_PROCESSES", args.workers))  # a --variant may set it
    if redis_url:
        env["REDIS_URL"] = redis_url
    if database_url.startswith("postgresql"):
        ensure_database(database_url)
        subprocess.run([str(bin_ / "flask"), "db", "downgrade", "base"], env=env, cwd=root, check=True,
                       capture_output=True)
    subprocess.run([str(bin_ / "flask"), "db", "upgrade"], env=env, cwd=root, check=True, capture_output=True)
    access = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fairness-"))) / "access.log"
    access.touch()
    emulator = [*_pinned(args.client_cpus), str(bin_ / "python"), "-m", "sandbox", "shopify", "--port", str(shopify_port)]
    server = [*_pinned(args.server_cpus), str(bin_ / "gunicorn"), "-w", str(workers), "-k", "gthread", "--threads", str(args.threads),
              "-b", f"127.0.0.1:{app_port}", "--keep-alive", "30", "--access-logfile", str(access),
              "--access-logformat", "%({x-bench-org}i)s %(s)s %(D)s", "benchmarks.shared_bucket_wsgi:app"]
    emu = stack.enter_context(process(emulator, env, shopify_url + "/__sandbox__/received", cwd=root))
    app = stack.enter_context(process(server, env, app_url + "/healthz", cwd=root))
    session = requests.Session()
    stamp = uuid.uuid4().hex[:6]
    quiet = _org(session, app_url, f"quiet-{stamp}", f"quiet-{stamp}")
    flooder = _org(session, app_url, f"flood-{stamp}", f"flood-{stamp}")
    for key in (quiet, flooder):  # warm-up: every worker's caches, both orgs
        for _ in range(4 * workers):
            session.get(app_url + URL_PATH, headers={"Authorization": f"Bearer {key}"})
    rig = Rig(label, {**env, "PYTHONPATH": str(ROOT)}, app_port, app, emu, quiet, flooder, access)
    rig.offset = _server_times(access, 0)[1]
    return rig


URL_PATH = f"/api/v1/shopify/products/{PRODUCT}"
PHASES = ("alone", "flooded", "neighbour")


def run(label: str, database_url: str, redis_url: str | None, args) -> list[dict]:
    """One configuration, for every ``--app-root`` (one rig each), blocks interleaved across
    them: block *b* runs on every rig before block *b + 1* starts (the rigs' order alternates)."""
    roots = [Path(r).resolve() for r in args.app_root] or [ROOT]
    flood_path = args.flood_path or URL_PATH
    with ExitStack() as stack:
        rigs = []
        for n, root in enumerate(roots):
            url = database_url if n == 0 or not database_url.startswith("postgresql") else f"{database_url}_{n}"
            if url.startswith("sqlite:///"):
                url = url.replace("bench.db", f"bench{n}.db")
            name = label if len(roots) == 1 else f"{label} [{root.name}]"
            rigs.append(start_rig(stack, name, root, url, redis_url, args))
        time.sleep(2 + args.bucket / args.restore)  # a full bucket to start
        raw: dict = defaultdict(lambda: defaultdict(list))  # rig -> (condition, org) -> results
        server: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))  # rig -> condition -> times
        cpu: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
        loads: dict = defaultdict(list)
        served: dict = {}  # rig -> the flood's served calls per second in its last flooded block
        conditions = PHASES if args.neighbour else PHASES[:2]
        for block in range(len(conditions) * args.blocks):
            phase, round_ = conditions[block % len(conditions)], block // len(conditions)
            for rig in (rigs if round_ % 2 == 0 else rigs[::-1]):
                before = {"server": _cpu_seconds(rig.app.pid), "emulator": _cpu_seconds(rig.emulator.pid)}
                loads[rig.label].append(_load())
                start = time.time() + 2.0  # the generators' own start-up is over by then
                drivers = {"quiet": _start_driver(rig.app_port, URL_PATH, rig.quiet, "quiet", args.quiet_rate,
                                                  args.block_seconds, start, 8, rig.env, args.client_cpus)}
                if phase == "flooded":
                    drivers["flood"] = _start_driver(rig.app_port, flood_path, rig.flooder, "flood", args.flood_rate,
                                                     args.block_seconds, start, args.flood_threads, rig.env,
                                                     args.client_cpus)
                elif phase == "neighbour" and served.get(rig.label):
                    # the same org, sending only what its flood got served (to the flood's own path):
                    # the served load without the refused excess
                    drivers["flood"] = _start_driver(rig.app_port, flood_path, rig.flooder, "flood", served[rig.label],
                                                     args.block_seconds, start, 8, rig.env, args.client_cpus)
                mine = raw[rig.label]
                for name, driver in drivers.items():
                    results_ = json.loads(driver.communicate()[0])
                    mine[(phase, name)] += results_
                    if phase == "flooded" and name == "flood":
                        served[rig.label] = round(sum(r[3] == 200 for r in results_) / args.block_seconds, 1)
                    if phase == "alone":  # the noise floor: alone against alone, odd rounds vs even
                        mine[(f"alone-{round_ % 2}", name)] += results_
                times, rig.offset = _server_times(rig.access, rig.offset)
                for key, values in times.items():
                    server[rig.label][phase][key] += values
                elapsed = time.time() - start
                for name, pid in (("server", rig.app.pid), ("emulator", rig.emulator.pid)):
                    cpu[rig.label][phase][name] += (_cpu_seconds(pid) - before[name]) / elapsed / args.blocks
                time.sleep(args.gap)  # the last answers, not counted in the next block
    results = []
    for rig in rigs:
        phases: dict = {}
        loads[rig.label].append(_load())
        for (phase, name), results_ in raw[rig.label].items():
            phases.setdefault(phase, {})[name] = _summary(results_, server[rig.label][phase.split("-")[0]], name)
        for phase in PHASES:
            if phase in phases:
                phases[phase]["cpu"] = {k: round(v, 2) for k, v in cpu[rig.label][phase].items()}
        phases["load"] = loads[rig.label]
        results.append({"label": rig.label, **phases})
    return results


def main() -> int:
    if sys.argv[1:2] == ["drive"]:
        parser = argparse.ArgumentParser()
        for name, kind in (("host", str), ("port", int), ("path", str), ("name", str), ("rate", float),
                           ("seconds", float), ("start", float), ("threads", int)):
            parser.add_argument(f"--{name}", type=kind, required=True)
        return drive(parser.parse_args(sys.argv[2:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=6, help="alone/flooded block pairs, interleaved")
    parser.add_argument("--block-seconds", type=float, default=10)
    parser.add_argument("--gap", type=float, default=2.0, help="seconds between blocks")
    parser.add_argument("--quiet-rate", type=float, default=10)
    parser.add_argument("--flood-rate", type=float, default=100)
    parser.add_argument("--flood-threads", type=int, default=32)
    parser.add_argument("--flood-path", help="the flood's path (default: the same product lookup)")
    parser.add_argument("--neighbour", action=argparse.BooleanOptionalAction, default=True,
                        help="a third condition per round: the other org sending only what its flood got "
                             "served in the round's flooded block (the served load without the excess)")
    parser.add_argument("--server-cpus", metavar="CPUS", help="pin gunicorn to these CPUs (taskset -c), e.g. 1")
    parser.add_argument("--client-cpus", metavar="CPUS",
                        help="pin the load generators and the emulator to these CPUs, e.g. 0")
    parser.add_argument("--bucket", type=int, default=2000)
    parser.add_argument("--restore", type=int, default=200)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("BENCH_PROCESSES", 1)))
    parser.add_argument("--threads", type=int, default=int(os.environ.get("BENCH_THREADS", 8)))
    parser.add_argument("--org-limit", default="1000000/minute",
                        help="ORG_RATE_LIMIT (default out of the way, so the provider budget is what acts)")
    parser.add_argument("--app-env", action="append", default=[], metavar="NAME=VALUE",
                        help="an extra setting for Switchboard (repeatable)")
    parser.add_argument("--variant", action="append", default=[], metavar="LABEL:NAME=VALUE,…",
                        help="also run with these settings, in the same invocation (repeatable)")
    parser.add_argument("--app-root", action="append", default=[], metavar="PATH",
                        help="measure the Switchboard checkout at PATH (its own .venv if it has one); "
                             "repeat it to compare checkouts, blocks interleaved (default: this one)")
    parser.add_argument("--only", choices=["sqlite", "postgres"])
    parser.add_argument("--database-url", default=PG_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--json", help="also write the raw figures to this file")
    args = parser.parse_args()
    results = []
    base_env, variants = list(args.app_env), [("", [])]
    for variant in args.variant:
        label, _, settings = variant.partition(":")
        variants.append((f" [{label}]", [item for item in settings.split(",") if item]))
    for suffix, settings in variants:
        args.app_env = base_env + settings
        if args.only in (None, "sqlite"):
            with tempfile.TemporaryDirectory() as tmp:
                results += run("SQLite + memory" + suffix, f"sqlite:///{tmp}/bench.db", None, args)
        if args.only in (None, "postgres"):
            if reachable("127.0.0.1", 5432) and reachable("127.0.0.1", 6379):
                results += run("PostgreSQL + Redis" + suffix, args.database_url, args.redis_url, args)
            else:
                print("PostgreSQL or Redis not reachable on 127.0.0.1: skipped that configuration")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    blocks = f"{args.block_seconds:g} s alone, {args.block_seconds:g} s flooded"
    if args.neighbour:
        blocks += f", {args.block_seconds:g} s neighbour"
    pinned = f"; server on CPU {args.server_cpus}" if args.server_cpus else ""
    if args.client_cpus:
        pinned += f", load generators and emulator on CPU {args.client_cpus}"
    print(f"\nfairness: {args.blocks} × ({blocks}), "
          f"interleaved{pinned}; quiet {args.quiet_rate:g}/s, flood {args.flood_rate:g}/s to "
          f"{args.flood_path or 'the same product'}, bucket {args.bucket} points refilled {args.restore}/s, "
          f"gunicorn {args.workers}×{args.threads} threads; ms from due time (client) and in the server\n")
    print("| configuration | phase | org | requests | success | p50 | p99 | late p99 | server p50 | server p99 "
          "| refused (server p50 of refusals) | CPU/s server, emulator |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        for phase in PHASES:
            for org in ("quiet", "flood"):
                s = r.get(phase, {}).get(org)
                if s is None:
                    continue
                refused = json.dumps(s["refused"]) if s["refused"] else "—"
                if s["refused"]:
                    refused += f" ({s['refused_server_p50']:.2f})"
                cpu = r[phase]["cpu"]
                print(f"| {r['label']} | {phase} | {org} | {s['requests']} | {s['success']:.1%} | {s['p50']:.2f} | "
                      f"{s['p99']:.2f} | {s['late_p99']:.2f} | {s['server_p50']:.2f} | {s['server_p99']:.2f} | "
                      f"{refused} | {cpu['server']}, {cpu['emulator']} |")
        for test, base in (("flooded", "alone"), ("neighbour", "alone"), ("flooded", "neighbour")):
            if "quiet" not in r.get(test, {}) or "quiet" not in r.get(base, {}):
                continue
            f, a = r[test]["quiet"], r[base]["quiet"]
            print(f"| {r['label']} | **quiet: {test} vs {base}** | | | {f['success'] - a['success']:+.1%} | "
                  f"{f['p50'] / a['p50']:.2f}× | **{f['p99'] / a['p99']:.2f}×** | | {f['server_p50'] / a['server_p50']:.2f}× "
                  f"| {f['server_p99'] / a['server_p99']:.2f}× | | |")
        if "alone-1" in r:  # two rounds at least
            a0, a1 = r["alone-0"]["quiet"], r["alone-1"]["quiet"]
            print(f"| {r['label']} | noise floor: alone (odd rounds) vs alone (even) | | | "
                  f"{a1['success'] - a0['success']:+.1%} | {a1['p50'] / a0['p50']:.2f}× | {a1['p99'] / a0['p99']:.2f}× "
                  f"| | | | | |")
    for r in results:
        for phase in PHASES[1:]:
            if "quiet" in r.get(phase, {}):
                due = ", ".join(f"{t:.1f}" for t in r[phase]["quiet"]["tail_due"])
                print(f"\n{r['label']}: the quiet org's slowest 1 % in the {phase} blocks were due {due} s into their block")
    for r in results:
        extra = (r["flooded"]["cpu"]["server"] - r["alone"]["cpu"]["server"]) / args.flood_rate * 1e6
        print(f"\n{r['label']}: the flood's server CPU, (flooded − alone) ÷ flood rate: {extra:.0f} µs per request")
    for r in results:
        print(f"\n{r['label']}: load average (1/5/15 min) before each block and at the end: "
              + "; ".join(r["load"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
