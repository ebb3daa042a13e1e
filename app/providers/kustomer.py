"""Kustomer: the org names its Kustomer org by subdomain (``mycompany`` of mycompany.kustomerapp.com).

Credentials: ``KUSTOMER_API_KEY`` or ``KUSTOMER_API_KEYS`` (JSON map subdomain → key).
"""

from app.providers.base import DNS_LABEL, IdentifierField, Provider
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
)
