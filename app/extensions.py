"""Extension objects, created unbound here and bound to the app in ``create_app``."""

import os

import psycopg
import sqlalchemy as sa
from flask import Flask, current_app
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


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
        elif db.engine.dialect.driver == "psycopg":
            from config import client_wait_timeout

            wait_timeout = client_wait_timeout(app.config["DATABASE_TIMEOUT"])
            for engine in (db.engine, autocommit_engine):
                sa.event.listen(engine, "do_connect", _bounded_connect(wait_timeout))


class BoundedConnection(psycopg.Connection):
    """A psycopg connection whose every blocking wait on the server ends within ``wait_timeout``.

    libpq's ``connect_timeout`` bounds only the connection attempt and the server's
    ``statement_timeout`` needs a server that is still running; a partition or a stuck server
    would otherwise hold a request for as long as the stall lasts. psycopg routes every wait on
    the socket (execute, fetch, commit, rollback) through ``Connection.wait``, which accepts a
    total ``timeout``; this applies ours when the caller gives none.

    On expiry the protocol state is unknown (a query may be half sent, a result half read), so
    the connection is closed: SQLAlchemy's psycopg dialect then sees ``connection.closed``,
    treats the error as a disconnect and invalidates the pooled record — the next request gets
    a fresh connection, no restart needed. The caller sees ``psycopg.OperationalError``, which
    SQLAlchemy wraps and ``app/errors.py`` answers with 503 ``database_unavailable``.
    """

    wait_timeout: float | None = None

    def wait(self, gen, interval=psycopg.connection._WAIT_INTERVAL, timeout=None):
        if timeout is not None or self.wait_timeout is None:
            return super().wait(gen, interval, timeout)  # a caller's own bound is its business
        try:
            return super().wait(gen, interval, self.wait_timeout)
        except psycopg.errors._WaitTimeout:
            self.close()
            raise psycopg.OperationalError(
                f"the database did not answer within {self.wait_timeout:g} s; connection closed"
            ) from None


def _bounded_connect(wait_timeout: float):
    def connect(_dialect, _record, cargs, cparams):
        connection = BoundedConnection.connect(*cargs, **cparams)
        connection.wait_timeout = wait_timeout
        return connection

    return connect


def lift_database_timeouts(connection: sa.Connection) -> None:
    """Let this one connection wait as long as its statements need (migrations: an index build
    on a large table is legitimate). The caller must discard the connection afterwards
    (``connection.invalidate()``) so that it never serves a request unbounded."""
    if connection.dialect.name != "postgresql":
        return
    connection.exec_driver_sql("SET statement_timeout = 0")  # for the session, not the transaction
    connection.commit()
    dbapi_connection = connection.connection.dbapi_connection
    if isinstance(dbapi_connection, BoundedConnection):
        dbapi_connection.wait_timeout = None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets readers run beside the writer; NORMAL syncs at checkpoints: a committed audit row
    # survives a crash of the process (not necessarily of the machine) — see docs/decisions.md.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
