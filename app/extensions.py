"""Extension objects, created unbound here and bound to the app in ``create_app``."""

import os

import sqlalchemy as sa
from flask import Flask, current_app
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


def _no_default_key() -> str:  # every limit we declare names its own key function
    return ""


# Limits are declared per view (see app/ratelimit.py); there are no global default limits.
limiter = Limiter(key_func=_no_default_key, default_limits=[])


def autocommit(statement, params: dict | None = None):
    """Run one statement that stands alone, in autocommit; return its first row (or None).

    The proxy hot path (key lookup, integration lookup, the audit row) needs no multi-statement
    transaction; on PostgreSQL, autocommit saves the BEGIN and COMMIT round trips and each INSERT
    is durable when this returns. The connection goes back to the pool at once, so a request
    never holds two (this one and the session's) while it waits on a provider. Changes that must
    be atomic with their audit row (connect, disconnect, admin actions) use ``db.session``.
    """
    with current_app.extensions["autocommit_engine"].connect() as conn:
        result = conn.execute(statement, params or {})
        return result.first() if result.returns_rows else None


def init_db(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        # Create the database file's directory (instance/ by default) and nothing else: a URL
        # elsewhere (/tmp) must not need a writable checkout.
        directory = os.path.dirname(sa.engine.make_url(uri).database or "")
        if directory and not os.path.isdir(directory):
            os.makedirs(directory, exist_ok=True)
    db.init_app(app)
    with app.app_context():
        # A second, small pool whose connections are autocommit for life: no isolation level set
        # and reset on every checkout, no rollback on return.
        autocommit_engine = app.extensions["autocommit_engine"] = sa.create_engine(
            db.engine.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None,
            **app.config["SQLALCHEMY_ENGINE_OPTIONS"],
        )
        if uri.startswith("sqlite"):
            sa.event.listen(db.engine, "connect", _sqlite_pragmas)
            sa.event.listen(autocommit_engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers run beside the writer; NORMAL syncs at checkpoints: a committed audit row
    # survives a crash of the process (not necessarily of the machine) — see docs/decisions.md.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
