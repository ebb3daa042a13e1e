"""API keys: ``swbd_live_<random>_<checksum>`` (and ``swbd_test_…`` in sandbox mode).

``random`` is 32 base62 characters from ``secrets``; ``checksum`` is CRC32 of the prefix and
random part, base62, 6 characters — so a mistyped or truncated key is refused without touching
the database (the same idea as GitHub's token checksums). Only the SHA-256 of the whole key is
stored; the first characters are kept as ``prefix`` so people can tell keys apart.

The prefix says what the key is, for people and for secret scanners (README: the regular
expression). ``swbd_test_`` keys are issued by a server in sandbox mode and refused by any other
(app/auth.py). ``sb_live_`` keys, issued before the prefix changed (``sb_`` is another product's),
are accepted with the same checksum design and never issued again.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
LIVE_PREFIX = "swbd_live_"
TEST_PREFIX = "swbd_test_"
LEGACY_PREFIX = "sb_live_"
PREFIX = LIVE_PREFIX
PREFIXES = (LIVE_PREFIX, TEST_PREFIX, LEGACY_PREFIX)
_MODES = {LIVE_PREFIX: "live", TEST_PREFIX: "test", LEGACY_PREFIX: "live"}
_SHAPE = re.compile(r"(swbd_live_|swbd_test_|sb_live_)([0-9A-Za-z]{32})_([0-9A-Za-z]{6})", re.ASCII)
# What secret scanners should match (README): current keys, then the accepted legacy ones.
SCAN_PATTERN = r"\b(?:swbd_(?:live|test)|sb_live)_[0-9A-Za-z]{32}_[0-9A-Za-z]{6}\b"


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        out.append(ALPHABET[rem])
    return "".join(reversed(out))


def _checksum(prefix: str, random_part: str) -> str:
    return _base62(zlib.crc32((prefix + random_part).encode()), 6)


def generate(test: bool = False) -> str:
    prefix = TEST_PREFIX if test else LIVE_PREFIX
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(32))
    return f"{prefix}{random_part}_{_checksum(prefix, random_part)}"


def mode(key: str) -> str | None:
    """``"live"`` or ``"test"`` for a well-formed key (shape and checksum, no database), else None."""
    match = _SHAPE.fullmatch(key)
    if not match or not secrets.compare_digest(_checksum(match.group(1), match.group(2)), match.group(3)):
        return None
    return _MODES[match.group(1)]


def well_formed(key: str) -> bool:
    """Shape and checksum only — no database."""
    return mode(key) is not None


def looks_like_key(text: str) -> bool:
    """Whether ``text`` contains something shaped like one of our prefixes (query-string check)."""
    return any(prefix in text for prefix in PREFIXES)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    prefix = next((p for p in PREFIXES if key.startswith(p)), "")
    return key[: len(prefix) + 6]
