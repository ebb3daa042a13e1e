"""A cache of short-lived provider tokens with single-flight refresh.

``get_or_mint(key, mint)`` returns a cached token, or calls ``mint()`` → ``(token, ttl_seconds)``
— once, even when many threads (or, with Redis, many processes) ask at the same moment: the
others wait for the first and then read what it stored. Tokens are kept until ``margin`` seconds
before they expire (or half their life, for short-lived ones). Memory for one process; Redis (``REDIS_URL``) when several share it.

``invalidate(key, token)`` drops a token the provider refused — only if it is still the cached
one, so that many callers refused with the same stale token cause one new grant, not one each
(the first caller's fresh token is not dropped by the others).
"""

from __future__ import annotations

import threading
import time
from typing import Callable

Mint = Callable[[], tuple[str, float]]


class MemoryTokenCache:
    def __init__(self, margin: float = 300.0):
        self.margin = margin
        self._values: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _fresh(self, key: str) -> str | None:
        entry = self._values.get(key)
        if entry and entry[1] > time.monotonic():
            return entry[0]
        return None

    def get_or_mint(self, key: str, mint: Mint) -> str:
        token = self._fresh(key)
        if token is not None:
            return token
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            token = self._fresh(key)  # someone else may have minted while we waited
            if token is not None:
                return token
            token, ttl = mint()
            self._values[key] = (token, time.monotonic() + ttl - min(self.margin, ttl / 2))
            return token

    def invalidate(self, key: str, token: str | None = None) -> None:
        with self._guard:
            entry = self._values.get(key)
            if entry is not None and (token is None or entry[0] == token):
                del self._values[key]


class RedisTokenCache:
    def __init__(self, client, margin: float = 300.0, prefix: str = "switchboard:token:",
                 wait: float = 15.0):
        self.client = client
        self.margin = margin
        self.prefix = prefix
        self.wait = wait  # how long a caller waits for another process's refresh

    def get_or_mint(self, key: str, mint: Mint) -> str:
        name = self.prefix + key
        token = self.client.get(name)
        if token is not None:
            return token.decode()
        # A Redis lock makes the refresh single-flight across processes; it expires by itself
        # if its holder dies.
        with self.client.lock(name + ":lock", timeout=30, blocking_timeout=self.wait):
            token = self.client.get(name)
            if token is not None:
                return token.decode()
            token, ttl = mint()
            keep = int(ttl - min(self.margin, ttl / 2))
            if keep > 0:
                self.client.set(name, token, ex=keep)
            return token

    # Compare-and-delete in one step, so a token another process just minted is never dropped.
    _DROP_IF = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def invalidate(self, key: str, token: str | None = None) -> None:
        if token is None:
            self.client.delete(self.prefix + key)
        else:
            self.client.eval(self._DROP_IF, 1, self.prefix + key, token)
