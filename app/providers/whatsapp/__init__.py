"""WhatsApp via Twilio: the org names its WhatsApp business number in E.164; chatbots send from it.

Credentials: ``TWILIO_ACCOUNT_SID`` + ``TWILIO_AUTH_TOKEN``; ``TWILIO_WHATSAPP_NUMBER`` is the
platform's default sender (``whatsapp:+14155238886``) and is not a secret. Hosts:
``TWILIO_API_URL``, ``TWILIO_MESSAGING_URL``; status callbacks go to ``PUBLIC_BASE_URL``.

The package: ``client`` (auth, calls, error mapping), ``messages`` (request shapes and the send
rules, 24-hour window included), ``routes`` (the blueprint).
"""

from app.errors import UpstreamAuthFailed
from app.providers.base import E164, AccountCheckFailed, IdentifierField, Provider
from app.providers.whatsapp.client import NAME, client
from app.providers.whatsapp.routes import blp
from config import CredentialSpec


def verify(number: str | None) -> None:
    """The number is an ONLINE WhatsApp sender of the operator's Twilio account (Senders API;
    IncomingPhoneNumbers cannot say whether a number is on WhatsApp)."""
    try:
        senders = client().whatsapp_senders(number)
    except UpstreamAuthFailed as exc:
        raise AccountCheckFailed(f"The platform's Twilio credentials were refused: {exc.detail}") from None
    mine = [s for s in senders if s.get("sender_id") == f"whatsapp:{number}"]
    if not mine:
        raise AccountCheckFailed(f"{number} is not a WhatsApp sender of the platform's Twilio account.")
    if not any(s.get("status") == "ONLINE" for s in mine):
        raise AccountCheckFailed(f"{number} is a WhatsApp sender of the platform's Twilio account but not ONLINE.")


provider = Provider(
    name=NAME,
    title="WhatsApp (Twilio)",
    identifier=IdentifierField(
        name="phoneNumber",
        pattern=E164,
        description="the WhatsApp business number in E.164, e.g. +14155550123",
        example="+14155550123",
        max_length=16,
    ),
    credentials=CredentialSpec(
        alternatives=(("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN"),),
        optional=("TWILIO_WHATSAPP_NUMBER",),
        public=("TWILIO_ACCOUNT_SID", "TWILIO_WHATSAPP_NUMBER"),
    ),
    docs_url="https://www.twilio.com/docs/whatsapp/api",
    actions=["POST /api/v1/whatsapp/messages"],
    blueprint=blp,
    verify=verify,
    # Twilio limits concurrent REST requests per account (429, error 20429): every number of the
    # platform's one Twilio account shares one budget and one breaker.
    quota_scope=lambda _number: "account",
)
