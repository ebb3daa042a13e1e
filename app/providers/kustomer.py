"""Kustomer: the org names its Kustomer org by subdomain (``mycompany`` of mycompany.kustomerapp.com).

Credentials: ``KUSTOMER_API_KEY`` or ``KUSTOMER_API_KEYS`` (JSON map subdomain → key).
"""

from app.providers.base import DNS_LABEL, IdentifierField, Provider
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
    # One 60 s budget per Kustomer org, shared by every key: x-ratelimit-limit/-remaining
    # (x-ratelimit-reset is read when present; Kustomer does not document it).
    rate_limit=header_signals(limit="x-ratelimit-limit", remaining="x-ratelimit-remaining",
                              reset="x-ratelimit-reset"),
)
