"""The HTTP API: flask-smorest generates /api/v1/openapi.json from the schemas that validate,
and app/api/contract.py makes it exact (statuses, headers, required fields, operation ids)."""

from flask import Blueprint, abort, send_from_directory
from flask_smorest import Api

from app.api.schemas import ProblemSchema
from app.errors import http_problem


class SwitchboardApi(Api):
    # Every error, webargs' 422 included, is rendered as problem details by app/errors.py.
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error):
        return http_problem(error)

    def _init_spec(self, *, extra_plugins=None, **kwargs):
        from app.api.contract import OperationIds

        super()._init_spec(extra_plugins=[*(extra_plugins or ()), OperationIds()], **kwargs)
        generated, finished = self.spec.to_dict, []

        def to_dict():
            # Served (and printed by ``flask openapi``) as finished by the contract pass, once:
            # every blueprint is registered before the first request.
            if not finished:
                from app.api.contract import finish

                finished.append(finish(generated()))
            return finished[0]

        self.spec.to_dict = to_dict


# The docs page's viewer (Swagger UI) is served from the pinned ``swagger-ui-bundle`` package,
# not a CDN: the page works offline and shows what this version of the document says.
DOCS_ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
               "favicon-32x32.png", "favicon-16x16.png")
docs_assets = Blueprint("docs_assets", __name__, url_prefix="/api/v1/docs/assets")


@docs_assets.get("/<filename>")
def docs_asset(filename):
    from swagger_ui_bundle import swagger_ui_path

    if filename not in DOCS_ASSETS:
        abort(404)
    return send_from_directory(str(swagger_ui_path), filename, max_age=86400)


def _document_identifiers(api) -> None:
    """Each provider's identifier, as a schema component built from the same declaration that
    validates it (app/providers/*.py); the connect body's ``account_identifier`` is one of them."""
    from app.api.schemas import ApproveSchema, ConnectSchema, ReviewSchema
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
    # The admin's review names the account the same way (app/services._reviewed_key).
    for schema in (ApproveSchema, ReviewSchema):
        schema._declared_fields["account_identifier"].metadata["anyOf"] = refs


def init_app(app) -> None:
    from app import providers
    from app.api import admin, catalog, events, health, org  # noqa: F401 (catalog, events add admin routes)

    app.config.setdefault("API_TITLE", "Switchboard")
    app.config.setdefault("API_VERSION", "v1")
    app.config.setdefault("OPENAPI_VERSION", "3.0.3")
    app.config.setdefault("OPENAPI_URL_PREFIX", "/api/v1")
    app.config.setdefault("OPENAPI_JSON_PATH", "openapi.json")
    app.config.setdefault("OPENAPI_SWAGGER_UI_PATH", "/docs")
    app.config.setdefault("OPENAPI_SWAGGER_UI_URL", "/api/v1/docs/assets/")
    # validatorUrl: Swagger UI would otherwise fetch a badge from validator.swagger.io.
    app.config.setdefault("OPENAPI_SWAGGER_UI_CONFIG", {"validatorUrl": None})
    app.config.setdefault("API_SPEC_OPTIONS", {
        "info": {"description": "Centralized integration proxy for commerce and messaging."},
        "components": {"securitySchemes": {
            "bearerAuth": {"type": "http", "scheme": "bearer", "description": "org API key (swbd_live_…; swbd_test_… on a sandbox server)"},
            "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                             "description": "org API key, as an alternative to the Authorization header"},
            "adminBearer": {"type": "http", "scheme": "bearer", "description": "the platform's ADMIN_API_KEY"},
        }},
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
    })
    api = SwitchboardApi(app)  # one per app: tests build many apps
    _document_identifiers(api)
    app.register_blueprint(health.bp)
    app.register_blueprint(docs_assets)
    api.register_blueprint(org.blp)
    api.register_blueprint(events.blp)
    api.register_blueprint(admin.blp)
    providers.init_app(app, api)
    for response in api.spec.components.responses.values():
        # Errors are served as application/problem+json (app/errors.py); say so.
        content = response.get("content", {})
        if "application/json" in content:
            content["application/problem+json"] = content.pop("application/json")
