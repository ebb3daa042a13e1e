"""Fixtures: the app's test client in front, real sandbox emulators (HTTP on loopback) behind.

The suite runs on the embedded defaults (SQLite file, in-memory limits) unless ``DATABASE_URL`` /
``REDIS_URL`` point at PostgreSQL / Redis — ``.ci/run`` runs it both ways. The schema is built once
per session with ``create_all`` (migrations have their own test) and emptied after every test.
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from sandbox.server import serve
from sandbox.kustomer import KustomerEmulator
from sandbox.klaviyo import KlaviyoEmulator
from sandbox.shopify import ShopifyEmulator

ADMIN_KEY = "test-admin-key-0123456789abcdef"
SHOPIFY_TOKENS = {"demo-store": "shpat_test_demo_store_token", "other-store": "shpat_test_other_store_token"}
SHOPIFY_CLIENT_ID = "test-client-id"
SHOPIFY_CLIENT_SECRET = "test-client-secret-value"


@pytest.fixture(scope="session")
def shopify():
    """One Shopify emulator for the session; reset before every test."""
    emulator = ShopifyEmulator(
        access_tokens=dict(SHOPIFY_TOKENS),
        client_id=SHOPIFY_CLIENT_ID,
        client_secret=SHOPIFY_CLIENT_SECRET,
    )
    with serve(emulator.wsgi) as server:
        emulator.url = server.url
        yield emulator


@pytest.fixture(scope="session")
def kustomer():
    """One Kustomer emulator for the session (orgs ``demo`` and ``other``); reset before every test."""
    emulator = KustomerEmulator()
    with serve(emulator.wsgi) as server:
        emulator.url = server.url
        yield emulator


@pytest.fixture(autouse=True)
def _reset_kustomer(request):
    if "kustomer" in request.fixturenames:
        request.getfixturevalue("kustomer").reset()
    yield


@pytest.fixture(autouse=True)
def _reset_shopify(request):
    if "shopify" in request.fixturenames:
        request.getfixturevalue("shopify").reset()
    yield


KLAVIYO_KEYS = {"AbC123": "pk_test_abc123_0123456789abcdef", "XyZ789": "pk_test_xyz789_0123456789abcdef"}
KLAVIYO = {"url": None}  # the session emulator's URL, once started (base_env reads it)


@pytest.fixture(scope="session", autouse=True)
def klaviyo():
    """One Klaviyo emulator for the session (every app points at it); reset before every test."""
    emulator = KlaviyoEmulator(keys=dict(KLAVIYO_KEYS))
    with serve(emulator.wsgi) as server:
        emulator.url = KLAVIYO["url"] = server.url
        yield emulator
    KLAVIYO["url"] = None


@pytest.fixture(autouse=True)
def _reset_klaviyo(request):
    if "klaviyo" in request.fixturenames:
        request.getfixturevalue("klaviyo").reset()
    yield


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    return os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


def base_env(database_url: str, shopify_url: str | None, kustomer=None) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "ADMIN_API_KEY": ADMIN_KEY,
        # A fresh key prefix per app keeps Redis-backed limits of one test out of the next.
        "RATELIMIT_KEY_PREFIX": f"sbtest-{uuid.uuid4().hex[:8]}",
        "ORG_RATE_LIMIT": "1000/minute",
        "HTTP_CONNECT_TIMEOUT": "1",
        "HTTP_READ_TIMEOUT": "1",
        "HTTP_DEADLINE": "3",
        "LOG_LEVEL": "INFO",
        # The providers are the emulators: this is the sandbox (one-step connects, unless a test
        # asks for CONNECT_REQUIRES_APPROVAL or removes SANDBOX).
        "SANDBOX": "true",
    }
    if os.environ.get("REDIS_URL"):
        env["REDIS_URL"] = os.environ["REDIS_URL"]
    if KLAVIYO["url"]:
        env["KLAVIYO_PRIVATE_API_KEYS"] = json.dumps(KLAVIYO_KEYS)
        env["KLAVIYO_BASE_URL"] = KLAVIYO["url"]
    if shopify_url:
        env["SHOPIFY_ADMIN_ACCESS_TOKENS"] = json.dumps(SHOPIFY_TOKENS)
        env["SHOPIFY_SHOP_URL_TEMPLATE"] = shopify_url + "/shops/{shop}"
    if kustomer is not None:
        env["KUSTOMER_API_KEYS"] = json.dumps(kustomer.keys)
        env["KUSTOMER_URL_TEMPLATE"] = kustomer.url
    return env


@pytest.fixture(scope="session")
def _schema(database_url):
    """Build the schema once (an app with no providers is enough)."""
    app = create_app(base_env(database_url, None))
    with app.app_context():
        db.drop_all()
        db.create_all()
        db.engine.dispose()
    yield


@pytest.fixture
def make_app(database_url, _schema, shopify, kustomer):
    """Build an app from the test environment plus overrides (``None`` removes a variable)."""
    built = []

    def factory(**env_overrides):
        env = base_env(database_url, shopify.url, kustomer)
        for name, value in env_overrides.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        app = create_app(env, TESTING=True)
        built.append(app)
        return app

    yield factory
    for app in built:
        with app.app_context():
            db.session.remove()
            _empty_tables()
            db.engine.dispose()
            app.extensions["autocommit_engine"].dispose()
        redis_client = app.extensions.get("redis")
        if redis_client is not None and app.config["REDIS_URL"] == os.environ.get("REDIS_URL"):
            for key in redis_client.scan_iter("switchboard:token:*"):
                redis_client.delete(key)


def _empty_tables():
    with db.engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin():
    return {"Authorization": f"Bearer {ADMIN_KEY}"}


def org_headers(client, slug: str = "acme", **fields) -> dict:
    """Create an org and a key through the admin API of ``client``'s app; the key's headers."""
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    created = client.post("/api/v1/admin/organizations", json={"slug": slug, **fields}, headers=admin)
    assert created.status_code == 201, created.json
    issued = client.post(f"/api/v1/admin/organizations/{created.json['id']}/api-keys", json={}, headers=admin)
    assert issued.status_code == 201, issued.json
    return {"Authorization": f"Bearer {issued.json['key']}"}


@pytest.fixture
def new_org(client, admin):
    """Create an org through the admin API; returns (org dict, headers with a fresh key)."""

    def factory(slug: str | None = None, **fields):
        slug = slug or f"org-{uuid.uuid4().hex[:8]}"
        response = client.post("/api/v1/admin/organizations", json={"slug": slug, **fields}, headers=admin)
        assert response.status_code == 201, response.json
        org = response.json
        issued = client.post(f"/api/v1/admin/organizations/{org['id']}/api-keys", json={"name": "bot"}, headers=admin)
        assert issued.status_code == 201, issued.json
        return org, {"Authorization": f"Bearer {issued.json['key']}"}

    return factory


@pytest.fixture
def org(new_org):
    return new_org("acme")


@pytest.fixture
def connected(client, org):
    """``acme`` with demo-store connected."""
    _, headers = org
    response = client.put("/api/v1/integrations/shopify", json={"account_identifier": {"storeName": "demo-store"}},
                          headers=headers)
    assert response.status_code == 201, response.json
    return headers


@pytest.fixture
def audit_rows(app):
    """Read audit rows straight from the database (to check what the API does not show)."""
    from app.models import AuditLog

    def read(**filters):
        with app.app_context():
            query = sa.select(AuditLog).order_by(AuditLog.id)
            for name, value in filters.items():
                query = query.where(getattr(AuditLog, name) == value)
            return list(db.session.execute(query).scalars())

    return read


# --- Messenger and Twilio (WhatsApp) emulators ---------------------------------------------------

MESSENGER_PAGES = {"104512345678901": "EAAG-sandbox-page-token-demo", "204512345678902": "EAAG-sandbox-page-token-other"}
MESSENGER_APP_SECRET = "test-messenger-app-secret"
TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "test-twilio-auth-token-0123456789"
TWILIO_SENDERS = {"+14155550100": "ONLINE", "+14155550101": "ONLINE", "+14155550199": "OFFLINE"}


@pytest.fixture(scope="session")
def messenger():
    """One Messenger (Graph API) emulator for the session; reset before every test that uses it."""
    from sandbox.messenger import MessengerEmulator

    emulator = MessengerEmulator(page_tokens={p: t for p, t in MESSENGER_PAGES.items()},
                                 app_secret=MESSENGER_APP_SECRET)
    with serve(emulator.wsgi) as server:
        emulator.url = server.url
        yield emulator


@pytest.fixture(scope="session")
def twilio():
    """One Twilio emulator (REST API and Messaging API) for the session; reset before every test."""
    from sandbox.twilio import TwilioEmulator

    emulator = TwilioEmulator(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN, senders=dict(TWILIO_SENDERS))
    with serve(emulator.wsgi) as server:
        emulator.url = server.url
        yield emulator


@pytest.fixture(autouse=True)
def _reset_messaging(request):
    for name in ("messenger", "twilio"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()
    yield


def messenger_env(emulator) -> dict[str, str]:
    return {"MESSENGER_PAGE_ACCESS_TOKENS": json.dumps(MESSENGER_PAGES),
            "MESSENGER_APP_SECRET": MESSENGER_APP_SECRET, "MESSENGER_GRAPH_URL": emulator.url}


def twilio_env(emulator) -> dict[str, str]:
    return {"TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "TWILIO_API_URL": emulator.url, "TWILIO_MESSAGING_URL": emulator.url,
            # Nothing listens on port 9: the emulator's status callbacks are refused at once.
            "PUBLIC_BASE_URL": "http://127.0.0.1:9"}


class Clock:
    """A clock the test moves by hand (``frozen.now += …``): a guard's or a note's moment passes
    without waiting."""

    def __init__(self, now: float | None = None):
        self.now = time.time() if now is None else now

    def __call__(self):
        return self.now


@pytest.fixture
def frozen():
    return Clock()
