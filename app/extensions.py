"""Extension objects, created unbound here and bound to the app in ``create_app``."""

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
