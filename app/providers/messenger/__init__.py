"""Facebook Messenger: the org names its Facebook Page by Page id; chatbots send from that Page.

Credentials: ``MESSENGER_PAGE_ACCESS_TOKEN`` (one Page) or ``MESSENGER_PAGE_ACCESS_TOKENS`` (JSON
map Page id → token), with ``MESSENGER_APP_SECRET`` (webhook signatures, appsecret_proof);
``MESSENGER_APP_ID`` and ``MESSENGER_VERIFY_TOKEN`` (webhook subscription) are read when set.
Graph API: ``MESSENGER_GRAPH_URL`` + ``MESSENGER_GRAPH_VERSION`` (pinned, v26.0).

The package: ``client`` (token, appsecret_proof, Graph calls, error mapping), ``messages``
(request shapes and the send rules, 24-hour window included), ``routes`` (the blueprint).
"""

from app.errors import UpstreamAuthFailed
from app.providers.base import AccountCheckFailed, IdentifierField, Provider
from app.providers.messenger.client import NAME, client, graph_signals
from app.providers.messenger.routes import blp
from config import CredentialSpec


def verify(page_id: str | None) -> None:
    """The platform holds a token for the Page, and Graph says that token's Page is this one."""
    try:
        me = client().me(page_id)
    except UpstreamAuthFailed as exc:
        raise AccountCheckFailed(f"The platform's Messenger credentials do not reach Page {page_id}: {exc.detail}") from None
    if me.get("id") != page_id:
        raise AccountCheckFailed(f"The platform's token for Page {page_id} belongs to another Page.")


provider = Provider(
    name=NAME,
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
    actions=["POST /api/v1/messenger/messages", "POST /api/v1/messenger/sender-actions"],
    blueprint=blp,
    verify=verify,
    # Graph's usage headers and throttling codes; the budget is per Page (Page tokens are under
    # Business Use Case limits, counted per Page).
    rate_limit=graph_signals,
)
