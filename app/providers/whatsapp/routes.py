"""WhatsApp's routes: three-line handlers over app/providers/whatsapp/messages.py."""

from __future__ import annotations

from flask_smorest import Blueprint

from app.auth import org_required
from app.providers.whatsapp import messages
from app.providers.whatsapp.messages import WhatsAppMessageArgs, WhatsAppSentSchema
from app.proxy import proxy_action

NAME = "whatsapp"

blp = Blueprint("whatsapp", __name__, url_prefix="/api/v1/whatsapp",
                description="Send WhatsApp messages from the connected number (through Twilio).")


@blp.route("/messages", methods=["POST"])
@blp.alt_response(201, schema=WhatsAppSentSchema, success=True)
@org_required
@blp.arguments(WhatsAppMessageArgs)
@proxy_action(NAME, "messages.send")
def send_message(integration, args):
    """Send text, media by URL, or an approved template (`content_sid` + `content_variables`).
    Free-form messages need the customer's message within 24 hours; templates are allowed outside it."""
    return messages.send_message(integration.account_key, args), 201
