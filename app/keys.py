"""API keys: ``sb_live_<random>_<checksum>``.

``random`` is 32 base62 characters from ``secrets``; ``checksum`` is CRC32 of the prefix and
random part, base62, 6 characters — so a mistyped or truncated key is refused without touching
the database (the same idea as GitHub's token checksums). Only the SHA-256 of the whole key is
stored; the first characters are kept as ``prefix`` so people can tell keys apart.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIX = "sb_live_"
_SHAPE = re.compile(r"sb_live_([0-9A-Za-z]{32})_([0-9A-Za-z]{6})", re.ASCII)


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        out.append(ALPHABET[rem])
    return "".join(reversed(out))


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32((PREFIX + random_part).encode()), 6)


def generate() -> str:
    random_part = "".join(secrets.choice(ALPHABET) for _ in range(32))
    return f"{PREFIX}{random_part}_{_checksum(random_part)}"


def well_formed(key: str) -> bool:
    """Shape and checksum only — no database."""
    match = _SHAPE.fullmatch(key)
    return bool(match) and secrets.compare_digest(_checksum(match.group(1)), match.group(2))


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[: len(PREFIX) + 6]
