"""Klaviyo: the org names its account by company id (the 6-character public API key).

Credentials: ``KLAVIYO_PRIVATE_API_KEY`` (one account) or ``KLAVIYO_PRIVATE_API_KEYS`` (JSON map
company id → private key). Connecting verifies that the key's account is the named company id
(``GET /api/accounts``). The package, as every provider's::

    __init__.py   the declaration (this)
    client.py     credentials, the outbound call, error mapping, verification
    shapes.py     Klaviyo's JSON:API request documents
    mapping.py    Klaviyo's answers → Switchboard's JSON
    routes.py     the actions under /api/v1/klaviyo/
"""

from app.providers.base import IdentifierField, Provider
from app.providers.klaviyo.client import NAME, verify
from app.providers.klaviyo.routes import blp
from app.quota import IETF_RATELIMIT
from config import CredentialSpec

provider = Provider(
    name=NAME,
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
    actions=["POST /api/v1/klaviyo/lists/{list_id}/subscriptions", "POST /api/v1/klaviyo/events",
             "POST /api/v1/klaviyo/profiles", "GET /api/v1/klaviyo/lists", "GET /api/v1/klaviyo/segments",
             "GET /api/v1/klaviyo/campaigns"],
    blueprint=blp,
    verify=verify,
    # Klaviyo sends the IETF draft's RateLimit-Limit/-Remaining/-Reset and Retry-After on 429.
    rate_limit=IETF_RATELIMIT,
)
