"""WhatsApp via Twilio: the org names its WhatsApp business number in E.164.

Credentials: ``TWILIO_ACCOUNT_SID`` + ``TWILIO_AUTH_TOKEN``; ``TWILIO_WHATSAPP_NUMBER`` is the
platform's default sender (``whatsapp:+14155238886``) and is not a secret.
"""

from app.providers.base import E164, IdentifierField, Provider
from config import CredentialSpec

provider = Provider(
    name="whatsapp",
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
)
