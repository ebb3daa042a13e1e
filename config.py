"""Switchboard configuration: one class read from the environment, and the credential registry.

Everything is read once, when ``create_app`` runs, from a mapping (``os.environ`` by default) —
never at import time — so tests build an app from a plain dict instead of patching the process
environment.

Two kinds of values live here:

* ``Config`` — ordinary settings (database, limits, timeouts). Junk is refused at start-up with a
  message that names the variable (``env_bool("X")`` raises on ``"maybe"``).
* ``Credentials`` — provider secrets. Each provider declares the variable sets it accepts
  (``app/providers/<name>.py``); the registry keeps the values wrapped in ``Secret`` so that a
  stray ``repr``/log line shows ``Secret('***')`` instead of the value. No org secret is ever stored
  in the database: the database holds account identifiers only.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

BASE_DIR = Path(__file__).resolve().parent


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable, never its value."""


class Secret:
    """A credential value that refuses to print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


# --- strict helpers ---------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of true/false/1/0/yes/no/on/off")


def env_float(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


def env_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    if not re.fullmatch(r"[0-9]+", raw.strip()):
        raise ConfigError(f"{name} must be a whole number")
    value = int(raw)
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    return value


_RATE_LIMIT = re.compile(r"[1-9][0-9]{0,8}\s*(/|per)\s*(second|minute|hour|day)", re.ASCII)


def is_rate_limit(value: str) -> bool:
    """A single ``limits`` rate string such as ``60/minute`` (what per-org overrides accept)."""
    return bool(_RATE_LIMIT.fullmatch(value.strip()))


def database_url(raw: str | None) -> str:
    """SQLAlchemy URL; ``postgresql://`` is pinned to the psycopg 3 driver we install."""
    if not raw:
        return f"sqlite:///{BASE_DIR / 'instance' / 'switchboard.db'}"
    if raw.startswith("postgres://"):
        raw = "postgresql://" + raw[len("postgres://"):]
    if raw.startswith("postgresql://"):
        raw = "postgresql+psycopg://" + raw[len("postgresql://"):]
    return raw


class Config:
    """Flask settings. ``Config.from_env(env)`` returns the mapping handed to ``app.config``."""

    @staticmethod
    def from_env(env: Mapping[str, str]) -> dict:
        db_url = database_url(env.get("DATABASE_URL"))
        redis_url = env.get("REDIS_URL") or None
        serverless = env_bool(env, "VERCEL", False)
        if serverless:
            _check_serverless(db_url, redis_url)
        default_limit = env.get("ORG_RATE_LIMIT", "60/minute")
        if not is_rate_limit(default_limit):
            raise ConfigError("ORG_RATE_LIMIT must look like '60/minute'")
        admin_key = env.get("ADMIN_API_KEY") or None
        sandbox = env_bool(env, "SANDBOX", False)
        if admin_key is not None and len(admin_key) < 24:
            raise ConfigError("ADMIN_API_KEY must be at least 24 characters long")

        # No pool_pre_ping: it costs a round trip per request. A connection found dead after a
        # database restart fails that one request with 503 and is dropped from the pool.
        database_timeout = env_float(env, "DATABASE_TIMEOUT", 5.0, minimum=0.1)
        engine_options: dict = (
            {} if db_url.startswith("sqlite") else postgres_engine_options(db_url, database_timeout)
        )
        redis_timeout = env_float(env, "REDIS_TIMEOUT", 2.0, minimum=0.05)
        redis_options = redis_client_options(redis_timeout) if redis_url else {}

        return {
            "SQLALCHEMY_DATABASE_URI": db_url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options,
            "SQLALCHEMY_TRACK_MODIFICATIONS": False,
            # Every wait on PostgreSQL ends within about this long (see postgres_engine_options).
            "DATABASE_TIMEOUT": database_timeout,
            "REDIS_URL": redis_url,
            # The app's own Redis client and the limiter's storage share these timeouts.
            "REDIS_TIMEOUT": redis_timeout,
            "REDIS_OPTIONS": redis_options,
            # Per-org limits (app/ratelimit.py): memory for one process, Redis when several share them.
            "RATELIMIT_STORAGE_URI": redis_url or "swept-memory://",  # app/ratelimit.py
            "RATELIMIT_STORAGE_OPTIONS": dict(redis_options),  # handed to redis.from_url by limits
            "RATELIMIT_KEY_PREFIX": env.get("RATELIMIT_KEY_PREFIX", "switchboard"),
            "ORG_RATE_LIMIT": default_limit,
            "AUTH_FAILURE_AUDIT_LIMIT": _parsed_limit(env, "AUTH_FAILURE_AUDIT_LIMIT", "60/minute"),
            "ADMIN_API_KEY": Secret(admin_key) if admin_key else None,
            "MAX_CONTENT_LENGTH": env_int(env, "MAX_CONTENT_LENGTH", 1024 * 1024, minimum=1024),
            # How many proxies in front of us append to X-Forwarded-For / -Proto (a load balancer,
            # Vercel's edge). 0: the headers are ignored and the peer address is the client.
            "TRUSTED_PROXIES": env_int(env, "TRUSTED_PROXIES", 0),
            "SERVERLESS": serverless,
            # Sandbox mode: the providers are the local emulators (``make run`` sets it when it
            # starts them). Test-mode keys and the one-step demo connect exist only here.
            "SANDBOX": sandbox,
            # Naming an account is not owning it (design §6 rule 9): outside the sandbox a new
            # connection waits for an admin unless the admin assigned the account beforehand.
            "CONNECT_REQUIRES_APPROVAL": env_bool(env, "CONNECT_REQUIRES_APPROVAL", not sandbox),
            # How long an Idempotency-Key and its saved answer are kept (Stripe: 24 hours).
            "IDEMPOTENCY_KEY_TTL": env_int(env, "IDEMPOTENCY_KEY_TTL", 24 * 3600, minimum=1),
            # Outbound HTTP: every provider call goes through app/outbound.py with these.
            "HTTP_CONNECT_TIMEOUT": env_float(env, "HTTP_CONNECT_TIMEOUT", 3.05, minimum=0.01),
            "HTTP_READ_TIMEOUT": env_float(env, "HTTP_READ_TIMEOUT", 10.0, minimum=0.01),
            "HTTP_DEADLINE": env_float(env, "HTTP_DEADLINE", 15.0, minimum=0.05),
            "HTTP_MAX_RETRIES": env_int(env, "HTTP_MAX_RETRIES", 2),
            "HTTP_POOL_SIZE": env_int(env, "HTTP_POOL_SIZE", 20, minimum=1),
            # The circuit breaker per provider account (app/quota.py): this many consecutive
            # timeouts or 5xx open it for BREAKER_RESET seconds, then one trial call decides.
            "BREAKER_FAILURES": env_int(env, "BREAKER_FAILURES", 5, minimum=1),
            "BREAKER_RESET": env_float(env, "BREAKER_RESET", 30.0, minimum=0.1),
            # One org's calls to one provider account waiting on the provider at once, per
            # process (app/quota.py): the rest of the server's threads stay for other orgs. 0: off.
            "UPSTREAM_ORG_CONCURRENCY": env_int(env, "UPSTREAM_ORG_CONCURRENCY", 4),
            # Shopify: the GraphQL Admin API version is pinned; the URL template is data so the
            # sandbox can stand in for https://{shop}.myshopify.com.
            "SHOPIFY_API_VERSION": _api_version(env.get("SHOPIFY_API_VERSION", "2026-10")),
            "SHOPIFY_SHOP_URL_TEMPLATE": env.get(
                "SHOPIFY_SHOP_URL_TEMPLATE", "https://{shop}.myshopify.com"
            ),
            # Kustomer: one host for every org (the key decides the org); EU orgs use
            # https://api.prod2.kustomerapp.com. May name {subdomain}; data so the sandbox can stand in.
            "KUSTOMER_URL_TEMPLATE": env.get("KUSTOMER_URL_TEMPLATE", "https://api.kustomerapp.com"),
            # Messenger: the Graph API version is pinned; the base URL is data so the sandbox can
            # stand in for https://graph.facebook.com.
            "MESSENGER_GRAPH_URL": _base_url(env, "MESSENGER_GRAPH_URL", "https://graph.facebook.com"),
            "MESSENGER_GRAPH_VERSION": _graph_version(env.get("MESSENGER_GRAPH_VERSION", "v26.0")),
            # Twilio: the REST API (messages) and the Messaging API (WhatsApp senders) are two hosts.
            "TWILIO_API_URL": _base_url(env, "TWILIO_API_URL", "https://api.twilio.com"),
            "TWILIO_MESSAGING_URL": _base_url(env, "TWILIO_MESSAGING_URL", "https://messaging.twilio.com"),
            # Klaviyo: the base URL is data so the sandbox can stand in for https://a.klaviyo.com.
            # The API revision is not a setting: the mapping reads that revision's shapes
            # (app/providers/klaviyo/client.py: REVISION).
            "KLAVIYO_BASE_URL": _base_url(env, "KLAVIYO_BASE_URL", "https://a.klaviyo.com"),
            "LOG_LEVEL": env.get("LOG_LEVEL", "INFO").upper(),
            "OPENAPI_REQUIRED": True,
            **webhook_settings(env),
        }


# Webhook signing secrets: one that is set but empty would make every signature check meaningless
# (an HMAC with an empty key is computable by anyone), so it refuses start-up (design §6 rule 5).
SIGNING_SECRETS = ("MESSENGER_APP_SECRET", "MESSENGER_VERIFY_TOKEN", "TWILIO_AUTH_TOKEN",
                   "SHOPIFY_ADMIN_API_SECRET", "WEBHOOK_SIGNING_KEY",
                   "SHOPIFY_ADMIN_API_SECRET_PREVIOUS")
# During a rotation the provider may still sign with the old secret: ``<name>_PREVIOUS`` is accepted
# as well, for verifying webhooks only (docs/decisions.md, "Signing-secret rotation").
ROTATING_SECRETS = ("SHOPIFY_ADMIN_API_SECRET",)


def webhook_settings(env: Mapping[str, str]) -> dict:
    """Receiving provider webhooks (``webhooks/``) and delivering to orgs (``app/deliveries.py``)."""
    for name in SIGNING_SECRETS:
        if name in env and env[name].strip() == "":
            raise ConfigError(f"{name} is set but empty: webhook signatures cannot be checked with an empty secret")
    for name in ROTATING_SECRETS:
        if env.get(f"{name}_PREVIOUS") and not (env.get(name) or "").strip():
            raise ConfigError(f"{name}_PREVIOUS is set but {name} is not: set the new secret as {name} "
                              f"and keep the old one in {name}_PREVIOUS until the provider revokes it")
    public_base_url = (env.get("PUBLIC_BASE_URL") or "").strip() or None
    if public_base_url is not None:
        public_base_url = public_base_url.rstrip("/")
        if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?", public_base_url, re.ASCII):
            raise ConfigError("PUBLIC_BASE_URL must be an http(s) URL without query or fragment, "
                              "e.g. https://switchboard.example.com")
    signing_key = env.get("WEBHOOK_SIGNING_KEY") or None
    if signing_key is not None and len(signing_key.strip()) < 32:
        raise ConfigError("WEBHOOK_SIGNING_KEY must be at least 32 characters long")
    return {
        # The URL providers call us at (Twilio signs the full URL: behind a TLS-terminating proxy
        # the request's own URL is not the one it signed).
        "PUBLIC_BASE_URL": public_base_url,
        # The server key every org endpoint's signing secret is derived from (HMAC; nothing
        # reversible is stored). Unset: orgs cannot set an endpoint (503).
        "WEBHOOK_SIGNING_KEY": Secret(signing_key.strip()) if signing_key else None,
        # One delivery attempt to an org endpoint, all included.
        "WEBHOOK_DELIVERY_TIMEOUT": env_float(env, "WEBHOOK_DELIVERY_TIMEOUT", 10.0, minimum=0.1),
    }


def postgres_engine_options(db_url: str, timeout: float) -> dict:
    """Engine options that bound every wait on PostgreSQL to about ``timeout`` seconds.

    A server that stops answering (a partition, a stuck host, a stopped backend) must cost a
    request a 503 ``database_unavailable`` after a bounded time, never a hang. Each layer covers a
    different stall:

    * ``connect_timeout`` — libpq's (and psycopg's) bound on establishing a connection; whole
      seconds, at least 2 (libpq's own minimum).
    * ``statement_timeout`` — the server cancels a statement that runs (or waits on a lock) longer
      than ``timeout``; the connection stays usable.
    * the client-side bound (``app/extensions.BoundedConnection``) — every blocking wait on the
      socket ends after ``timeout + 1`` s, when the server itself is silent and cannot cancel
      anything; that connection is closed and dropped from the pool.
    * TCP keepalives and ``tcp_user_timeout`` — the kernel gives up on a peer that stopped
      acknowledging (a real partition), for idle pooled connections too.
    * ``pool_timeout`` — waiting for a free pooled connection is bounded as well.
    """
    from sqlalchemy.engine import make_url

    defaults: dict = {
        "connect_timeout": max(2, math.ceil(timeout)),
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
        "tcp_user_timeout": math.ceil(client_wait_timeout(timeout) * 1000),
        # Operators find Switchboard's sessions in pg_stat_activity by this name.
        "application_name": "switchboard",
    }
    # connect_args would override the URL's query: a parameter given in DATABASE_URL wins, and
    # its ``options`` (e.g. ``-csearch_path=…``) are kept, after ours so that they win too.
    query = make_url(db_url).query
    connect_args = {name: value for name, value in defaults.items() if name not in query}
    options = [f"-c statement_timeout={math.ceil(timeout * 1000)}"]
    if "options" in query:
        options.append(str(query["options"]))
    connect_args["options"] = " ".join(options)
    return {
        "pool_recycle": 1800,
        "pool_timeout": timeout,
        "connect_args": connect_args,
    }


def client_wait_timeout(timeout: float) -> float:
    """The client gives up one second after the server's own statement_timeout would have fired,
    so a slow statement is normally cancelled by the server (which keeps the connection)."""
    return timeout + 1.0


def redis_client_options(timeout: float) -> dict:
    """Options for every Redis client (ours and the limiter's): no command waits longer than
    ``timeout``. redis-py 7 retries timeouts three times with up to 10 s of backoff by default,
    which would multiply any bound; we retry once, at once, and only a broken connection (a
    restarted Redis), never a silent one."""
    from redis.backoff import NoBackoff
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.retry import Retry

    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
    }


def _check_serverless(db_url: str, redis_url: str | None) -> None:
    """On a serverless platform (Vercel sets ``VERCEL=1``) every instance is disposable, its
    filesystem read-only but for a private ``/tmp``: a SQLite file would crash at start-up or
    vanish with the instance, in-memory limits would be per instance. Refuse to start instead."""
    if db_url.startswith("sqlite"):
        raise ConfigError("DATABASE_URL must be set to a PostgreSQL URL on a serverless platform "
                          "(VERCEL is set): the filesystem is read-only and instances share no files")
    if not redis_url:
        raise ConfigError("REDIS_URL must be set on a serverless platform (VERCEL is set): rate "
                          "limits and the token cache must be shared by every instance")


def _parsed_limit(env: Mapping[str, str], name: str, default: str):
    from limits import parse

    value = env.get(name, default)
    if not is_rate_limit(value):
        raise ConfigError(f"{name} must look like '60/minute'")
    return parse(value)


def _graph_version(value: str) -> str:
    if not re.fullmatch(r"v[1-9][0-9]?\.0", value):
        raise ConfigError("MESSENGER_GRAPH_VERSION must be a Graph API version such as v26.0")
    return value


def _base_url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    """An http(s) origin (optionally with a path), without a trailing slash."""
    raw = (env.get(name) or "").strip() or default
    if raw is None:
        return None
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/-]*)?", raw):
        raise ConfigError(f"{name} must be an http(s) URL such as https://example.com")
    return raw.rstrip("/")


def _api_version(value: str) -> str:
    if not re.fullmatch(r"20[0-9]{2}-(01|04|07|10)", value):
        raise ConfigError("SHOPIFY_API_VERSION must be a quarterly version such as 2026-10")
    return value


def _base_url(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default).rstrip("/")
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-\[\]:]+", value):
        raise ConfigError(f"{name} must be a scheme and host (and port) only, such as {default}")
    return value


# --- credentials ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialSpec:
    """What a provider accepts from the environment.

    ``alternatives``: lists of variables; the provider is configured when every variable of at
    least one list is set. ``json_maps``: variables holding a JSON object (identifier → secret).
    ``optional``: read when present (e.g. ``OPENAI_ORG_ID``). ``public``: values that are not
    secrets (a sender number) and may be shown.
    """

    alternatives: tuple[tuple[str, ...], ...]
    json_maps: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    public: tuple[str, ...] = ()

    def variables(self) -> list[str]:
        seen: list[str] = []
        for group in self.alternatives:
            for name in group:
                if name not in seen:
                    seen.append(name)
        return seen + [n for n in self.optional if n not in seen]


@dataclass
class ProviderCredentials:
    provider: str
    spec: CredentialSpec
    values: dict[str, Secret] = field(default_factory=dict)
    maps: dict[str, dict[str, Secret]] = field(default_factory=dict)

    @property
    def configured(self) -> bool:
        return any(all(name in self.values for name in group) for group in self.spec.alternatives)

    def missing(self) -> list[str]:
        """The variables of the first alternative that would configure the provider."""
        if self.configured:
            return []
        return [n for n in self.spec.alternatives[0] if n not in self.values]

    def hint(self) -> str:
        options = [" + ".join(group) for group in self.spec.alternatives]
        return "set " + " or ".join(options)

    def get(self, name: str) -> Secret | None:
        return self.values.get(name)

    def map(self, name: str) -> dict[str, Secret]:
        return self.maps.get(name, {})

    def all_secrets(self) -> Iterable[str]:
        for name, secret in self.values.items():
            if name not in self.spec.public:
                yield secret.reveal()
        for mapping in self.maps.values():
            for secret in mapping.values():
                yield secret.reveal()


class Credentials:
    """The registry: provider name → ``ProviderCredentials``, built once at start-up."""

    def __init__(self, entries: dict[str, ProviderCredentials]):
        self._entries = entries

    @classmethod
    def from_env(cls, env: Mapping[str, str], specs: Mapping[str, CredentialSpec]) -> "Credentials":
        entries = {}
        for provider, spec in specs.items():
            entry = ProviderCredentials(provider=provider, spec=spec)
            for name in spec.variables():
                raw = env.get(name)
                if raw is None or raw.strip() == "":
                    continue
                raw = raw.strip()
                if name not in spec.json_maps:
                    _check_secret_text(name, raw)
                if name in spec.json_maps:
                    entry.maps[name] = _secret_map(name, raw)
                entry.values[name] = Secret(raw)
            entries[provider] = entry
        return cls(entries)

    def __getitem__(self, provider: str) -> ProviderCredentials:
        return self._entries[provider]

    def __repr__(self) -> str:
        configured = sorted(name for name, e in self._entries.items() if e.configured)
        return f"Credentials(configured={configured})"

    def all_secrets(self) -> list[str]:
        return [s for entry in self._entries.values() for s in entry.all_secrets()]


def _check_secret_text(name: str, value: str) -> None:
    """Credentials travel in HTTP headers: printable ASCII, no whitespace. Anything else would fail
    later inside a request — with the value quoted in the exception — so it fails here, unquoted."""
    if not value or not all(33 <= ord(ch) <= 126 for ch in value):
        raise ConfigError(f"{name} must be printable ASCII without spaces or line breaks")


def _secret_map(name: str, raw: str) -> dict[str, Secret]:
    try:
        data = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a JSON object mapping account identifiers to secrets") from None
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in data.items()
    ):
        raise ConfigError(f"{name} must be a JSON object mapping account identifiers to secrets")
    if not data:
        raise ConfigError(f"{name} must name at least one account")
    for value in data.values():
        _check_secret_text(name, value.strip())
    return {k.strip(): Secret(v.strip()) for k, v in data.items()}


def environ() -> Mapping[str, str]:
    return os.environ
