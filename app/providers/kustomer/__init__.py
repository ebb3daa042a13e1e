"""Kustomer: the org names its Kustomer org by subdomain (``mycompany`` of mycompany.kustomerapp.com).

Credentials: ``KUSTOMER_API_KEY`` or ``KUSTOMER_API_KEYS`` (JSON map subdomain → key); the key
decides the org at Kustomer. ``KUSTOMER_URL_TEMPLATE`` (default ``https://api.kustomerapp.com``)
lets the sandbox stand in. The parts, as every provider package has them:

    client.py   which key serves a subdomain, the outbound calls, what answers mean, verify
    shapes.py   Switchboard's request and response schemas
    mapping.py  Kustomer's JSON:API answers → those shapes
    routes.py   the actions under /api/v1/kustomer/
"""

from app.providers.base import DNS_LABEL, IdentifierField, Provider
from app.providers.kustomer.client import verify
from app.providers.kustomer.routes import blp
from app.quota import header_signals
from config import CredentialSpec

provider = Provider(
    name="kustomer",
    title="Kustomer",
    identifier=IdentifierField(
        name="subdomain",
        pattern=DNS_LABEL,
        description="one DNS label, e.g. 'mycompany' from mycompany.kustomerapp.com",
        example="mycompany",
        lower=True,
        max_length=63,
    ),
    credentials=CredentialSpec(
        alternatives=(("KUSTOMER_API_KEY",), ("KUSTOMER_API_KEYS",)),
        json_maps=("KUSTOMER_API_KEYS",),
    ),
    docs_url="https://developer.kustomer.com/kustomer-api-docs",
    actions=["GET /api/v1/kustomer/customers", "GET /api/v1/kustomer/customers/{customer_id}/conversations",
             "POST /api/v1/kustomer/conversations", "POST /api/v1/kustomer/conversations/{conversation_id}/notes"],
    blueprint=blp,
    verify=verify,
    # One 60 s budget per Kustomer org, shared by every key: x-ratelimit-limit/-remaining
    # (x-ratelimit-reset is read when present; Kustomer does not document it).
    rate_limit=header_signals(limit="x-ratelimit-limit", remaining="x-ratelimit-remaining",
                              reset="x-ratelimit-reset"),
)
