"""The HTTP API: flask-smorest generates /api/v1/openapi.json from the schemas that validate."""

from flask_smorest import Api

from app.api.schemas import ProblemSchema
from app.errors import http_problem


class SwitchboardApi(Api):
    # Every error, webargs' 422 included, is rendered as problem details by app/errors.py.
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):
        return http_problem(error)


def init_app(app) -> None:
    from app import providers
    from app.api import admin, health, org

    app.config.setdefault("API_TITLE", "Switchboard")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api/v1")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("OPENAPI_REDOC_PATH", "/docs")
    app.config.setdefault("OPENAPI_REDOC_URL", "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js")
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": "Centralized integration proxy for commerce and messaging."},
        "components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "org API key (sb_live_…)"},
            "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }},
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
    })
    api = SwitchboardApi(app)  # one per app: tests build many apps
    app.register_blueprint(health.bp)
    api.register_blueprint(org.blp)
    api.register_blueprint(admin.blp)
    providers.init_app(app, api)
