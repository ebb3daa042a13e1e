"""Run a WSGI app on a loopback port in a background thread (for tests, demos, benchmarks).

    with serve(ShopifyEmulator().wsgi) as server:
        requests.post(f"{server.url}/shops/demo-store/admin/api/2026-10/graphql.json", ...)

werkzeug's threaded dev server, speaking HTTP/1.1 *with* keep-alive so a pooled client reuses
connections as it would against the real provider, and without per-request log lines.

werkzeug 3 always answers ``Connection: close`` and, after each response, slurps whatever is
left on the socket (``rfile.read(10_000_000)``), which would block on — or swallow the next
request of — a kept-alive connection. ``_QuietHandler`` removes that header, hides the socket
from that slurp (``self.rfile`` points at an empty buffer while werkzeug runs; the app reads the
real stream through ``wsgi.input``), and drains an unread request body itself, bounded by
Content-Length (it closes the connection when it cannot drain).
``RunningServer.stop()`` also closes idle keep-alive connections, so a stopped server is gone
for pooled clients too.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import LimitedStream

_MAX_DRAIN = 1 << 20  # unread request bytes we are willing to discard to keep a connection


class _QuietHandler(WSGIRequestHandler):
    """HTTP/1.1 keep-alive, no access log; errors are still reported."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY a kept-alive connection
        # waits ~40 ms per response on Nagle + delayed ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        tracked = getattr(self.server, "sandbox_connections", None)
        if tracked is not None:
            with self.server.sandbox_lock:
                tracked.add(self.connection)

    def finish(self) -> None:
        tracked = getattr(self.server, "sandbox_connections", None)
        if tracked is not None:
            with self.server.sandbox_lock:
                tracked.discard(self.connection)
        super().finish()

    def make_environ(self) -> dict:
        environ = super().make_environ()
        if not environ.get("wsgi.input_terminated"):  # not chunked: bound the body by Content-Length
            try:
                length = max(int(environ.get("CONTENT_LENGTH") or 0), 0)
            except ValueError:
                length, self.close_connection = 0, True
            environ["wsgi.input"] = LimitedStream(self.rfile, length)
        self._request_body = environ["wsgi.input"]
        # Hide the socket from werkzeug's post-response slurp (see the module docstring).
        self._socket_rfile, self.rfile = self.rfile, io.BytesIO()
        return environ

    def send_header(self, keyword: str, value: str) -> None:
        # Keep the connection unless the client asked to close it (HTTP/1.0 or Connection: close).
        if keyword.lower() == "connection" and value.lower() == "close" and not self.close_connection:
            return
        super().send_header(keyword, value)

    def run_wsgi(self) -> None:
        self._request_body = None
        self._socket_rfile = self.rfile
        try:
            super().run_wsgi()
        finally:
            self.rfile = self._socket_rfile
        body = self._request_body
        if body is None or self.close_connection:
            return
        drained = 0
        try:
            while chunk := body.read(65536):
                drained += len(chunk)
                if drained > _MAX_DRAIN:
                    self.close_connection = True
                    return
        except Exception:  # a client that went away mid-body: nothing left to keep alive
            self.close_connection = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log(self, type: str, message: str, *args: Any) -> None:
        if type == "error":
            super().log(type, message, *args)


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"sandbox servers bind to loopback only, not {host!r}")


class RunningServer:
    """A server started by :func:`serve`; stop it with ``.stop()`` or a ``with`` block."""

    def __init__(self, server: BaseWSGIServer, thread: threading.Thread):
        self._server = server
        self._thread = thread
        self.host: str = server.host
        self.port: int = server.socket.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{self.port}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        with self._server.sandbox_lock:
            connections = list(self._server.sandbox_connections)
        for connection in connections:  # idle keep-alive connections would otherwise linger
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<RunningServer {self.url}>"


def serve(wsgi_app, host: str = "127.0.0.1", port: int = 0) -> RunningServer:
    """Start ``wsgi_app`` on ``host:port`` (0 = any free port) in a daemon thread."""
    _require_loopback(host)
    server = make_server(host, port, wsgi_app, threaded=True, request_handler=_QuietHandler)
    server.sandbox_connections = set()
    server.sandbox_lock = threading.Lock()
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},  # how long stop() may wait for the accept loop to notice
        name=f"sandbox:{server.port}",
        daemon=True,
    )
    thread.start()
    return RunningServer(server, thread)
