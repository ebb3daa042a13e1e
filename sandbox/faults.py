"""Fault injection for the emulators: ``check`` (every emulator's ``inject``), and the queue and
common answers the Messenger and Twilio emulators share (Shopify, Klaviyo and Kustomer keep their
own queues, matched on their own fields).

A fault is served instead of (or, for ``slow``, before) the normal answer on the next ``times``
matching requests. Kinds common to both: ``http_500``, ``http_502``, ``http_503``, ``slow``
(``seconds``), ``drop`` (close the socket: the outcome of a send is unknown), ``garbage`` (HTML),
``redirect`` (302 to ``location``, by default another host), ``respond`` (``body``/``status``:
exactly this text). Each emulator adds its own rate-limit answer.
"""

from __future__ import annotations

import socket
import threading
import time

from flask import Response, request

COMMON = frozenset({"http_500", "http_502", "http_503", "slow", "drop", "garbage", "redirect", "respond"})


def check(kind: str, kinds: frozenset[str], times: int, params: dict) -> None:
    """Refuse a fault an emulator could not serve: unknown kind, missing parameter, no times."""
    if kind not in kinds:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(kinds)}")
    if kind == "slow" and "seconds" not in params:
        raise ValueError("the 'slow' fault needs seconds=")
    if kind == "respond" and not isinstance(params.get("body"), str):
        raise ValueError("the 'respond' fault needs body= (the exact text to serve)")
    if int(times) < 1:
        raise ValueError("times must be at least 1")


class FaultQueue:
    def __init__(self, kinds: frozenset[str]):
        self.kinds = COMMON | kinds
        self._faults: list[dict] = []
        self._lock = threading.Lock()

    def add(self, kind: str, times: int = 1, account: str | None = None, endpoint: str | None = None,
            **params) -> None:
        check(kind, self.kinds, times, params)
        with self._lock:
            self._faults.append({"kind": kind, "times": int(times), "account": account, "endpoint": endpoint,
                                 "params": params})

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, account: str | None, endpoint: str | None) -> dict | None:
        with self._lock:
            for fault in self._faults:
                if fault["account"] not in (None, account) or fault["endpoint"] not in (None, endpoint):
                    continue
                fault["times"] -= 1
                if fault["times"] <= 0:
                    self._faults.remove(fault)
                return fault
        return None


def serve_common(fault: dict, error_500: str, error_503: str) -> Response | None:
    """The answer for a common fault kind (``None``: answer normally, after ``slow``)."""
    params = fault["params"]
    match fault["kind"]:
        case "http_500":
            return Response(error_500, status=500, content_type="application/json")
        case "http_502":  # what a load balancer in front of the provider answers
            return Response("<html><body>502 Bad Gateway</body></html>", status=502, content_type="text/html")
        case "http_503":
            return Response(error_503, status=503, content_type="application/json")
        case "redirect":
            response = Response("", status=302)
            response.headers["Location"] = params.get("location", "http://127.0.0.1:9/elsewhere")
            return response
        case "respond":
            return Response(params["body"], status=int(params.get("status", 200)), content_type="application/json")
        case "garbage":
            return Response("<html><body>Bad gateway</body></html>", status=200, content_type="text/html")
        case "slow":
            time.sleep(float(params["seconds"]))
            return None
        case "drop":
            sock = request.environ.get("werkzeug.socket")
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return Response("", status=500)
    return None


class RateWindow:
    """At most ``limit`` calls per ``per`` seconds per key (a sliding log; 0 = unlimited)."""

    def __init__(self, limit: int, per: float = 1.0):
        self.limit, self.per = limit, per
        self._calls: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        if not self.limit:
            return True
        now = time.monotonic()
        with self._lock:
            calls = [t for t in self._calls.get(key, []) if now - t < self.per]
            if len(calls) >= self.limit:
                self._calls[key] = calls
                return False
            calls.append(now)
            self._calls[key] = calls
            return True

    def used(self, key: str) -> int:
        """Calls counted for ``key`` in the current window."""
        now = time.monotonic()
        with self._lock:
            return sum(1 for t in self._calls.get(key, []) if now - t < self.per)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
