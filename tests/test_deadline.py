"""HTTP_DEADLINE is a deadline: hostile loopback servers cannot hold a call past it.

Each server below is real (a TCP socket on loopback) and stops by itself: it stops dripping when
the client goes away or the test ends, waits at most ten seconds, and its accept loop ends after
fifteen.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from tests.conftest import SHOPIFY_CLIENT_ID, SHOPIFY_CLIENT_SECRET, org_headers

MUG = "8915061031187"
DEADLINE = 1.0
BOUND = 4.0  # the deadline plus a generous margin for a shared, busy machine
READ_TIMEOUT = "2"
PAUSE = 0.5  # between two dripped bytes: each read ends well within the read timeout

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\nX-Padding: " + b"p" * 40


def drip_headers(conn, stop):
    """The status line and headers, one byte at a time (each read ends within the read timeout)."""
    for i in range(len(HEAD)):
        conn.sendall(HEAD[i:i + 1])
        if stop.wait(PAUSE):
            return


def drip_body(conn, stop):
    """Headers at once, then the body one byte at a time."""
    body = b'{"data":{"shop":null},"padding":"' + b"x" * 60 + b'"}'
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n")
    for i in range(len(body)):
        conn.sendall(body[i:i + 1])
        if stop.wait(PAUSE):
            return


def silent(conn, stop):
    """Accept, read the request, never answer."""
    stop.wait(10)


class HostileServer:
    def __init__(self, script):
        self.script = script
        self.stop = threading.Event()
        self.accepted = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        ends = time.monotonic() + 15
        with self.listener:
            while not self.stop.is_set() and time.monotonic() < ends:
                try:
                    conn, _ = self.listener.accept()
                except OSError:
                    continue
                self.accepted += 1
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            conn.settimeout(2)
            try:
                received = b""
                while b"\r\n\r\n" not in received and len(received) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    received += chunk
                self.script(conn, self.stop)
            except OSError:
                return  # the client gave up: that is the point

    def close(self):
        self.stop.set()


@pytest.fixture(params=[drip_headers, drip_body, silent], ids=["drip-headers", "drip-body", "silent"])
def hostile(request):
    server = HostileServer(request.param)
    yield server
    server.close()


def _connected_headers(make_app):
    """An org with demo-store connected through the emulator (the claim lives in the shared database)."""
    client = make_app().test_client()
    headers = org_headers(client)
    assert client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                      headers=headers).status_code == 201
    return headers


def _timed(client, path, headers):
    started = time.monotonic()
    response = client.get(path, headers=headers)
    return response, time.monotonic() - started


def test_a_proxy_call_ends_at_the_deadline_whatever_the_server_does(make_app, hostile):
    headers = _connected_headers(make_app)
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=hostile.url + "/shops/{shop}", HTTP_DEADLINE=str(DEADLINE),
                   HTTP_READ_TIMEOUT=READ_TIMEOUT)
    response, elapsed = _timed(app.test_client(), f"/api/v1/shopify/products/{MUG}", headers)
    assert response.status_code == 504, response.json
    assert response.json["code"] == "upstream_timeout"
    assert elapsed < BOUND


def test_the_token_grant_ends_at_the_deadline_whatever_the_server_does(make_app, hostile):
    headers = _connected_headers(make_app)
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE=hostile.url + "/shops/{shop}", HTTP_DEADLINE=str(DEADLINE),
                   HTTP_READ_TIMEOUT=READ_TIMEOUT, SHOPIFY_ADMIN_ACCESS_TOKENS=None,
                   SHOPIFY_ADMIN_API_KEY=SHOPIFY_CLIENT_ID, SHOPIFY_ADMIN_API_SECRET=SHOPIFY_CLIENT_SECRET)
    response, elapsed = _timed(app.test_client(), f"/api/v1/shopify/products/{MUG}", headers)
    assert response.status_code == 504, response.json
    assert response.json["code"] == "upstream_timeout"
    assert elapsed < BOUND  # the grant and the query share one deadline


def test_the_pool_works_normally_after_a_call_was_cut_off(make_app, shopify):
    # The watchdog shuts down only the socket of a call that is still running: calls that end in
    # time, before and after one that is cut off, are untouched.
    app = make_app(HTTP_DEADLINE=str(DEADLINE), HTTP_READ_TIMEOUT=READ_TIMEOUT)
    client = app.test_client()
    headers = org_headers(client)
    assert client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                      headers=headers).status_code == 201
    assert client.get(f"/api/v1/shopify/products/{MUG}", headers=headers).status_code == 200
    shopify.inject("drip", times=1, seconds=0.3)
    response, elapsed = _timed(client, f"/api/v1/shopify/products/{MUG}", headers)
    assert response.status_code == 504 and elapsed < BOUND
    time.sleep(DEADLINE)  # let every deadline registered so far pass
    for _ in range(3):
        assert client.get(f"/api/v1/shopify/products/{MUG}", headers=headers).status_code == 200
