"""Extension objects, created unbound here and bound to the app in ``create_app``."""

from flask import Flask, g
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


def autocommit_connection():
    """This request's autocommit connection, for single statements that stand alone.

    The proxy hot path (key lookup, integration lookup, the audit row) needs no multi-statement
    transaction; on PostgreSQL, autocommit saves the BEGIN and COMMIT round trips and each INSERT
    is durable when it returns. Changes that must be atomic with their audit row (connect,
    disconnect, admin actions) use ``db.session`` instead.
    """
    conn = g.get("_autocommit_conn")
    if conn is None:
        conn = g._autocommit_conn = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    return conn


def _close_autocommit(_exc=None) -> None:
    conn = g.pop("_autocommit_conn", None)
    if conn is not None:
        conn.close()


def init_db(app: Flask) -> None:
    db.init_app(app)
    app.teardown_appcontext(_close_autocommit)
