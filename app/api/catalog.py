"""The provider catalogue, as an org sees it and as the operator sees it.

An org learns which providers exist, what identifies an account and whether the platform has
enabled each; which environment variables the operator still has to set is the operator's
business, so only ``GET /api/v1/admin/providers`` (and ``flask providers list``) says.
The admin route is declared here, on the admin blueprint, to keep provider knowledge in one file.
"""

from flask import current_app

from app.api.admin import admin_auth, blp as admin_blp
from app.api.schemas import AdminProviderListSchema
from app.auth import admin_required
from app.providers import PROVIDERS


def provider_rows(*, operator: bool = False) -> list[dict]:
    registry = current_app.extensions["credentials"]
    rows = []
    for p in PROVIDERS.values():
        row = {
            "name": p.name, "title": p.title, "kind": p.kind,
            "identifier": {"field": p.identifier.name, "description": p.identifier.description,
                           "example": p.identifier.example, "pattern": p.identifier.pattern}
            if p.identifier else None,
            "configured": registry[p.name].configured,
            "actions": p.actions, "docs_url": p.docs_url,
        }
        if operator:
            creds = registry[p.name]
            row["missing_variables"] = creds.missing()
            row["hint"] = None if creds.configured else creds.hint()
        rows.append(row)
    return rows


@admin_blp.route("/providers", methods=["GET"])
@admin_blp.response(200, AdminProviderListSchema)
@admin_auth
@admin_required
def list_providers():
    """Every provider with what the operator must still set to enable it."""
    return {"data": provider_rows(operator=True), "next_cursor": None}
