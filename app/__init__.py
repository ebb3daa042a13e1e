"""Switchboard: a centralized integration proxy for commerce and messaging.

``create_app`` is the table of contents: it reads the configuration and credentials once, then
asks each subsystem to ``init_app``. No logic lives here.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Mapping

from flask import Flask, g, request

from config import Config, Credentials, environ


def create_app(env: Mapping[str, str] | None = None, **overrides) -> Flask:
    import webhooks
    from app import api, cli, messaging, deliveries, errors, idempotency, inbound, logs, proxy, quota, ratelimit
    from app.extensions import db, init_db, migrate
    from app.outbound import Outbound
    from app.providers import check_credentials, credential_specs
    from config import BASE_DIR

    env = environ() if env is None else env
    app = Flask(__name__, instance_path=str(BASE_DIR / "instance"))
    app.config.from_mapping(Config.from_env(env))
    app.config.update(overrides)
    _trust_proxies(app)

    credentials = Credentials.from_env(env, credential_specs())
    check_credentials(credentials)
    app.extensions["credentials"] = credentials
    admin_key = app.config.get("ADMIN_API_KEY")
    signing_key = app.config.get("WEBHOOK_SIGNING_KEY")
    logs.init_app(app, credentials.all_secrets() + [s.reveal() for s in (admin_key, signing_key) if s])

    init_db(app)
    migrate.init_app(app, db, directory=str(BASE_DIR / "migrations"))
    idempotency.init_app(app)  # first after_request registered: it runs last
    ratelimit.init_app(app)
    _init_shared_state(app)
    app.extensions["outbound"] = Outbound.from_config(app.config)
    quota.init_app(app)

    _init_request_context(app)
    errors.init_app(app)
    proxy.init_app(app)
    api.init_app(app)
    webhooks.init_app(app)  # /webhooks/<provider>: outside /api/v1, no key, no per-org limit
    deliveries.init_app(app)
    messaging.init_app(app)  # a stored inbound message opens the 24-hour window
    inbound.init_app(app)  # after the blueprints: it reads which endpoints take a JSON body
    cli.init_app(app)
    return app


def _trust_proxies(app: Flask) -> None:
    """Behind TRUSTED_PROXIES proxies, the client is the address the outermost of them saw.

    ProxyFix takes the n-th address from the right of X-Forwarded-For (what our own proxies
    appended), so a client cannot spoof its address by sending the header itself. With 0 the
    headers are ignored. Host is not taken from X-Forwarded-Host: balancers pass Host through.
    """
    hops = app.config["TRUSTED_PROXIES"]
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=0, x_port=0, x_prefix=0)


def _init_shared_state(app: Flask) -> None:
    from app.tokens import MemoryTokenCache, RedisTokenCache

    if app.config["REDIS_URL"]:
        import redis

        # The same bounded timeouts as the limiter's storage (config.redis_client_options).
        client = redis.Redis.from_url(app.config["REDIS_URL"], **app.config["REDIS_OPTIONS"])
        app.extensions["redis"] = client
        app.extensions["token_cache"] = RedisTokenCache(client, wait=app.config["HTTP_DEADLINE"])
    else:
        app.extensions["token_cache"] = MemoryTokenCache()


REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}", re.ASCII)


def _init_request_context(app: Flask) -> None:
    @app.before_request
    def start():
        g.started = time.perf_counter()
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        # The body limit, control characters in the URL and JSON bounds: app/inbound.py.

    @app.after_request
    def tag(response):
        response.headers["X-Request-ID"] = g.get("request_id", "")
        return response
