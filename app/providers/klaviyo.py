"""Klaviyo: the org names its account by company id (public API key / site id).

Credentials: ``KLAVIYO_PRIVATE_API_KEY`` (one account) or ``KLAVIYO_PRIVATE_API_KEYS`` (JSON map
company id → private key). Actions arrive in a later issue; connecting is validated now.
"""

from app.providers.base import IdentifierField, Provider
from app.quota import IETF_RATELIMIT
from config import CredentialSpec

provider = Provider(
    name="klaviyo",
    title="Klaviyo",
    identifier=IdentifierField(
        name="companyId",
        pattern=r"[A-Za-z0-9]{6}",
        description="the 6-character company id (public API key) from Klaviyo's account settings",
        example="AbC123",
        max_length=6,
    ),
    credentials=CredentialSpec(
        alternatives=(("KLAVIYO_PRIVATE_API_KEY",), ("KLAVIYO_PRIVATE_API_KEYS",)),
        json_maps=("KLAVIYO_PRIVATE_API_KEYS",),
    ),
    docs_url="https://developers.klaviyo.com/en/reference/api_overview",
    # Klaviyo sends the IETF draft's RateLimit-Limit/-Remaining/-Reset and Retry-After on 429.
    rate_limit=IETF_RATELIMIT,
)
