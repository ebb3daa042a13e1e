"""A dependency that stops answering costs a request a bounded 503, never a hang.

Every stall here is real: a loopback server that accepts and never answers, a private
``redis-server`` that is SIGSTOPped, PostgreSQL backends (this app's own, found by
``application_name``) that are SIGSTOPped, and a relay in front of a real Redis that stops
forwarding. Timeouts are set to about a second; the bounds asserted are generous (10 s) because
the machine is shared. Each request runs in a thread so that a missing bound fails the test
instead of hanging the suite.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import psycopg
import pytest
import redis
import sqlalchemy as sa

from app import create_app, keys
from app.extensions import db
from sandbox.server import serve
from tests.conftest import base_env, org_headers

BOUND = 10.0  # seconds; the configured timeouts are ~1 s


def answer_within(seconds: float, call):
    """Run ``call()`` (a test-client request) in a thread; its result, or fail after ``seconds``."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as exc:  # pragma: no cover - reported below
            outcome["error"] = exc

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"no answer within {seconds} s: the stall was not bounded"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"], time.monotonic() - started


class _Loopback:
    """A TCP listener on loopback with an accept loop; subclasses decide what a connection does."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.closed = threading.Event()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def _accept_loop(self):
        while not self.closed.is_set():
            try:
                conn, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(None)
            self.sockets.append(conn)
            self.handle(conn)

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self):
        self.closed.set()
        self.listener.close()
        for conn in self.sockets:
            try:
                conn.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SilentServer(_Loopback):
    """Accepts connections and never sends a byte: a server stuck, or the far side of a partition."""

    def handle(self, conn):
        pass  # keep it open, read nothing, answer nothing


class RedisRelay(_Loopback):
    """Forwards bytes to a real Redis until ``stall()`` (then it swallows them: silence) or
    ``drop()`` (then every connection is cut, and new ones are cut at once)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.stalled = threading.Event()
        self.dropped = threading.Event()
        super().__init__()

    def handle(self, conn):
        if self.dropped.is_set():
            conn.close()
            return
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        self.sockets.append(upstream)
        for src, dst in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src, dst):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            if not self.stalled.is_set():
                try:
                    dst.sendall(data)
                except OSError:
                    return

    def stall(self):
        self.stalled.set()

    def drop(self):
        self.dropped.set()
        for conn in self.sockets:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


@pytest.fixture
def private_redis():
    """A redis-server of our own on a free port (we may stop it); skipped when not installed."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not on PATH")
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port, socket_timeout=1)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("private redis-server did not start")
        client.close()
        yield process, port
    finally:
        process.send_signal(signal.SIGCONT)
        process.kill()
        process.wait(10)


def _well_formed_key_headers() -> dict:
    return {"Authorization": f"Bearer {keys.generate()}"}


# --- PostgreSQL -----------------------------------------------------------------------------------


def test_silent_postgres_answers_503_within_the_timeout():
    """A PostgreSQL address that accepts and never answers: /readyz and an org call get 503 fast."""
    with SilentServer() as silent:
        env = base_env(f"postgresql://switchboard@127.0.0.1:{silent.port}/switchboard", None)
        env["DATABASE_TIMEOUT"] = "1"
        app = create_app(env, TESTING=True)
        client = app.test_client()
        try:
            ready, elapsed = answer_within(BOUND, lambda: client.get("/readyz"))
            assert ready.status_code == 503
            assert ready.json["checks"]["database"] == "unavailable"

            response, elapsed = answer_within(
                BOUND, lambda: client.get("/api/v1/integrations", headers=_well_formed_key_headers()))
            assert response.status_code == 503
            assert response.json["code"] == "database_unavailable"
        finally:
            with app.app_context():
                db.engine.dispose()
                app.extensions["autocommit_engine"].dispose()


def test_database_timeout_is_validated():
    with pytest.raises(Exception, match="DATABASE_TIMEOUT"):
        create_app(base_env("sqlite://", None) | {"DATABASE_TIMEOUT": "soon"})
    with pytest.raises(Exception, match="REDIS_TIMEOUT"):
        create_app(base_env("sqlite://", None) | {"REDIS_TIMEOUT": "0"})


def _postgres_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgresql://", "postgres://")):
        pytest.skip("needs DATABASE_URL pointing at PostgreSQL")
    return url


def _backends(url: str, application_name: str) -> list[int]:
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return [pid for (pid,) in rows]


def test_stopped_postgres_backends_answer_503_within_the_timeout_then_recover(make_app):
    """SIGSTOP the backends that serve this app's pooled connections: a stuck server, for real."""
    url = _postgres_url()
    name = f"sbstall-{uuid.uuid4().hex[:8]}"
    separator = "&" if "?" in url else "?"
    app = make_app(DATABASE_URL=f"{url}{separator}application_name={name}", DATABASE_TIMEOUT="1")
    client = app.test_client()
    headers = org_headers(client)
    assert client.get("/api/v1/integrations", headers=headers).status_code == 200
    assert client.get("/readyz").status_code == 200

    stopped = _backends(url, name)
    assert stopped, "the app's connections should be pooled and visible in pg_stat_activity"
    try:
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)

        ready, _ = answer_within(BOUND, lambda: client.get("/readyz"))
        assert ready.status_code == 503
        response, _ = answer_within(BOUND, lambda: client.get("/api/v1/integrations", headers=headers))
        assert response.status_code == 503
        assert response.json["code"] == "database_unavailable"
    finally:
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    # The stuck connections were closed and dropped from the pool: fresh ones serve, no restart.
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/v1/integrations", headers=headers).status_code == 200
    assert not set(_backends(url, name)) & set(stopped)


def test_migrations_connection_is_not_bounded_by_the_request_timeout(make_app):
    """Migrations lift statement_timeout on their own connection (an index build may be long)."""
    _postgres_url()
    app = make_app(DATABASE_TIMEOUT="1")
    with app.app_context():
        from app.extensions import lift_database_timeouts

        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1s"
            lift_database_timeouts(conn)
            conn.exec_driver_sql("SELECT pg_sleep(2.5)")  # past both the server and client bounds
            conn.invalidate()
        with db.engine.connect() as conn:  # the pool hands out bounded connections again
            assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "1s"
            with pytest.raises(sa.exc.OperationalError):
                conn.exec_driver_sql("SELECT pg_sleep(2.5)")


# --- Redis ----------------------------------------------------------------------------------------


def test_silent_redis_answers_503_within_the_timeout(make_app):
    with SilentServer() as silent:
        app = make_app(REDIS_URL=f"redis://127.0.0.1:{silent.port}/0", REDIS_TIMEOUT="1")
        client = app.test_client()
        headers = org_headers(client)  # admin calls do not touch Redis

        response, _ = answer_within(BOUND, lambda: client.get("/api/v1/integrations", headers=headers))
        assert response.status_code == 503
        assert response.json["code"] == "shared_state_unavailable"

        bad_key, _ = answer_within(BOUND, lambda: client.get("/api/v1/integrations",
                                                             headers=_well_formed_key_headers()))
        assert bad_key.status_code == 503  # the auth-failure audit cap lives in Redis too

        ready, _ = answer_within(BOUND, lambda: client.get("/readyz"))
        assert ready.status_code == 503
        assert ready.json["checks"]["redis"] == "unavailable"


def test_stopped_redis_answers_503_within_the_timeout_then_recovers(make_app, private_redis):
    process, port = private_redis
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{port}/0", REDIS_TIMEOUT="1")
    client = app.test_client()
    headers = org_headers(client)
    assert client.get("/api/v1/integrations", headers=headers).status_code == 200

    process.send_signal(signal.SIGSTOP)
    try:
        response, _ = answer_within(BOUND, lambda: client.get("/api/v1/integrations", headers=headers))
        assert response.status_code == 503
        assert response.json["code"] == "shared_state_unavailable"
        ready, _ = answer_within(BOUND, lambda: client.get("/readyz"))
        assert ready.status_code == 503
    finally:
        process.send_signal(signal.SIGCONT)

    assert client.get("/api/v1/integrations", headers=headers).status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("failure", ["stall", "drop"])
def test_redis_failing_after_the_provider_call_cannot_contradict_the_audit_row(
        make_app, private_redis, shopify, audit_rows, failure):
    """Redis goes silent (or away) while Shopify is answering: the status sent is the status
    audited. (It used to be read for the rate-limit headers after the audit row: 500 vs 200.)"""
    _, port = private_redis
    relay = RedisRelay(port)
    armed = threading.Event()

    def fail_redis_then_answer(environ, start_response):
        if armed.is_set() and environ["PATH_INFO"].endswith("/graphql.json"):
            getattr(relay, failure)()
        return shopify.wsgi(environ, start_response)

    with relay, serve(fail_redis_then_answer) as upstream:
        app = make_app(REDIS_URL=f"redis://127.0.0.1:{relay.port}/0", REDIS_TIMEOUT="1",
                       SHOPIFY_SHOP_URL_TEMPLATE=upstream.url + "/shops/{shop}")
        client = app.test_client()
        headers = org_headers(client)
        connected = client.put("/api/v1/integrations/shopify", headers=headers,
                               json={"account_identifier": {"storeName": "demo-store"}})
        assert connected.status_code == 201, connected.json

        armed.set()
        response, _ = answer_within(BOUND, lambda: client.get("/api/v1/shopify/products", headers=headers))

        audited = audit_rows(action="proxy.request")
        assert len(audited) == 1
        assert response.status_code == audited[0].status_code
        assert response.status_code == 200  # the rate-limit headers were read before the call
        assert response.headers["X-RateLimit-Remaining"].isdigit()
        assert relay.stalled.is_set() or relay.dropped.is_set()
