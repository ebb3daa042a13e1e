"""The HTTP API: flask-smorest generates /api/v1/openapi.json from the schemas that validate."""

from flask_smorest import Api

from app.api.schemas import ProblemSchema
from app.errors import http_problem


class SwitchboardApi(Api):
    # Every error, webargs' 422 included, is rendered as problem details by app/errors.py.
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):
        return http_problem(error)


def _document_identifiers(api) -> None:
    """Each provider's identifier, as a schema component built from the same declaration that
    validates it (app/providers/*.py); the connect body's ``account_identifier`` is one of them."""
    from app.api.schemas import ConnectSchema
    from app.providers import PROVIDERS

    refs = []
    for provider in PROVIDERS.values():
        name = f"{provider.name.capitalize()}Identifier"
        field = provider.identifier
        properties, required = {}, []
        if field is not None:
            # Lower-cased fields accept either case (stored lower-cased).
            pattern = field.pattern.replace("a-z", "a-zA-Z") if field.lower else field.pattern
            properties[field.name] = {"type": "string", "pattern": f"^{pattern}$",
                                      "maxLength": field.max_length, "example": field.example,
                                      "description": field.description}
            required = [field.name]
        schema = {"type": "object", "properties": properties, "additionalProperties": False,
                  "description": f"{provider.title}: " + (f"the org names its account by {field.name}"
                                                           if field else "a platform service; send {}")}
        if required:
            schema["required"] = required
        api.spec.components.schema(name, schema)
        refs.append({"$ref": f"#/components/schemas/{name}"})
    # anyOf, not oneOf: Stripe's and OpenAI's (empty) identifiers are the same shape.
    ConnectSchema._declared_fields["account_identifier"].metadata["anyOf"] = refs


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
            "adminBearer": {"type": "http", "scheme": "bearer", "description": "the platform's ADMIN_API_KEY"},
        }},
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
    })
    api = SwitchboardApi(app)  # one per app: tests build many apps
    _document_identifiers(api)
    app.register_blueprint(health.bp)
    api.register_blueprint(org.blp)
    api.register_blueprint(admin.blp)
    providers.init_app(app, api)
    for response in api.spec.components.responses.values():
        # Errors are served as application/problem+json (app/errors.py); say so.
        content = response.get("content", {})
        if "application/json" in content:
            content["application/problem+json"] = content.pop("application/json")
