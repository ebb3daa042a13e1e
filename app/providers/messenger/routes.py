"""Messenger's routes: three-line handlers over app/providers/messenger/messages.py."""

from __future__ import annotations

from flask_smorest import Blueprint

from app.auth import org_required
from app.providers.messenger import messages
from app.providers.messenger.messages import MessengerActionSchema, MessengerMessageArgs, MessengerSenderActionArgs, MessengerSentSchema
from app.proxy import proxy_action

NAME = "messenger"

blp = Blueprint("messenger", __name__, url_prefix="/api/v1/messenger",
                description="Send Messenger messages and sender actions from the connected Page.")


@blp.route("/messages", methods=["POST"])
@blp.alt_response(200, schema=MessengerSentSchema, success=True)
@org_required
@blp.arguments(MessengerMessageArgs)
@proxy_action(NAME, "messages.send")
def send_message(integration, args):
    """Send text, an image/file by URL, quick replies or a button template to a customer (PSID).
    Free-form messages need the customer's message within 24 hours; a `tag` is allowed outside it."""
    return messages.send_message(integration.account_key, args)


@blp.route("/sender-actions", methods=["POST"])
@blp.alt_response(200, schema=MessengerActionSchema, success=True)
@org_required
@blp.arguments(MessengerSenderActionArgs)
@proxy_action(NAME, "sender_actions.send")
def send_sender_action(integration, args):
    """Mark the customer's last message seen, or show/hide the typing indicator (inside the window)."""
    return messages.send_action(integration.account_key, args)
