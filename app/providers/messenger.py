"""Facebook Messenger: the org names its Facebook Page by Page id.

Credentials: ``MESSENGER_PAGE_ACCESS_TOKEN`` (one Page) or ``MESSENGER_PAGE_ACCESS_TOKENS`` (JSON
map Page id → token), with ``MESSENGER_APP_SECRET`` (webhook signatures, appsecret_proof);
``MESSENGER_APP_ID`` and ``MESSENGER_VERIFY_TOKEN`` (webhook subscription) are read when set.
"""

from app.providers.base import IdentifierField, Provider
from config import CredentialSpec

provider = Provider(
    name="messenger",
    title="Facebook Messenger",
    identifier=IdentifierField(
        name="pageId",
        pattern=r"[1-9][0-9]{4,19}",
        description="the numeric Facebook Page id",
        example="104512345678901",
        max_length=20,
    ),
    credentials=CredentialSpec(
        alternatives=(
            ("MESSENGER_PAGE_ACCESS_TOKEN", "MESSENGER_APP_SECRET"),
            ("MESSENGER_PAGE_ACCESS_TOKENS", "MESSENGER_APP_SECRET"),
        ),
        json_maps=("MESSENGER_PAGE_ACCESS_TOKENS",),
        optional=("MESSENGER_APP_ID", "MESSENGER_VERIFY_TOKEN"),
        public=("MESSENGER_APP_ID",),
    ),
    docs_url="https://developers.facebook.com/docs/messenger-platform",
)
