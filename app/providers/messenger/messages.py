"""What a chatbot sends through Messenger: the request shapes, their rules, the Graph body.

Limits (https://developers.facebook.com/docs/messenger-platform/reference/send-api/): text ≤ 2000
characters; a button template's text ≤ 640 with 1–3 buttons (title ≤ 20); ≤ 13 quick replies
(title ≤ 20, payload ≤ 1000); attachments by URL. ``messaging_type`` follows from the request:
``MESSAGE_TAG`` with a ``tag``, otherwise ``RESPONSE``.
"""

from __future__ import annotations

from flask import g
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app import messaging
from app.errors import UpstreamBadResponse
from app.providers.messenger.client import client, read
from app.proxy import note

NAME = "messenger"
PSID_PATTERN = r"^[1-9][0-9]{4,19}$"
TAGS = ("ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "HUMAN_AGENT")
ACTIONS = ("mark_seen", "typing_on", "typing_off")
MAX_TEXT, MAX_TEMPLATE_TEXT = 2000, 640


def _psid():
    return fields.String(required=True, validate=validate.Regexp(PSID_PATTERN, error="must be a numeric PSID"),
                         metadata={"description": "the customer's page-scoped id (PSID)", "pattern": PSID_PATTERN})



class QuickReplySchema(Schema):
    title = fields.String(required=True, validate=validate.Length(1, 20))
    payload = fields.String(required=True, validate=validate.Length(1, 1000))


class ButtonSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(("web_url", "postback")))
    title = fields.String(required=True, validate=validate.Length(1, 20))
    url = messaging.MediaUrl(load_default=None, metadata={"description": "for `web_url` buttons"})
    payload = fields.String(load_default=None, validate=validate.Length(1, 1000),
                            metadata={"description": "for `postback` buttons"})

    @validates_schema
    def _matching(self, data, **kwargs):
        if data["type"] == "web_url" and not data.get("url"):
            raise ValidationError("is required for a web_url button", "url")
        if data["type"] == "postback" and not data.get("payload"):
            raise ValidationError("is required for a postback button", "payload")


class AttachmentSchema(Schema):
    type = fields.String(required=True, validate=validate.OneOf(("image", "file")))
    url = messaging.MediaUrl(required=True)


class MessengerMessageArgs(Schema):
    recipient_id = _psid()
    text = fields.String(load_default=None, validate=validate.Length(1, MAX_TEXT))
    attachment = fields.Nested(AttachmentSchema, load_default=None)
    quick_replies = fields.List(fields.Nested(QuickReplySchema), load_default=None,
                                validate=validate.Length(1, 13))
    buttons = fields.List(fields.Nested(ButtonSchema), load_default=None, validate=validate.Length(1, 3),
                          metadata={"description": "sends a button template; needs `text` (≤ 640)"})
    tag = fields.String(load_default=None, validate=validate.OneOf(TAGS), metadata={
        "description": "a message tag: allowed outside the 24-hour window (HUMAN_AGENT: human replies, 7 days)"})

    @validates_schema
    def _one_kind(self, data, **kwargs):
        if (data.get("text") is None) == (data.get("attachment") is None):
            raise ValidationError("send exactly one of text and attachment", "text")
        if data.get("buttons") and data.get("text") is None:
            raise ValidationError("a button template needs text", "text")
        if data.get("buttons") and len(data["text"]) > MAX_TEMPLATE_TEXT:
            raise ValidationError(f"must be at most {MAX_TEMPLATE_TEXT} characters with buttons", "text")
        if data.get("buttons") and data.get("quick_replies"):
            raise ValidationError("cannot be combined with buttons", "quick_replies")


class MessengerSenderActionArgs(Schema):
    recipient_id = _psid()
    action = fields.String(required=True, validate=validate.OneOf(ACTIONS))


class MessengerSentSchema(Schema):
    recipient_id = fields.String()
    message_id = fields.String()


class MessengerActionSchema(Schema):
    recipient_id = fields.String()
    action = fields.String()


def graph_message(args: dict) -> dict:
    if args.get("buttons"):
        buttons = [{k: v for k, v in b.items() if v is not None} for b in args["buttons"]]
        message = {"attachment": {"type": "template", "payload": {
            "template_type": "button", "text": args["text"], "buttons": buttons}}}
    elif args.get("attachment"):
        attachment = args["attachment"]
        message = {"attachment": {"type": attachment["type"],
                                  "payload": {"url": attachment["url"], "is_reusable": False}}}
    else:
        message = {"text": args["text"]}
    if args.get("quick_replies"):
        message["quick_replies"] = [{"content_type": "text", **qr} for qr in args["quick_replies"]]
    body = {"recipient": {"id": args["recipient_id"]}, "message": message,
            "messaging_type": "MESSAGE_TAG" if args.get("tag") else "RESPONSE"}
    if args.get("tag"):
        body["tag"] = args["tag"]
    return body


def send_message(page_id: str, args: dict) -> dict:
    """Window check (unless tagged), then one send."""
    if not args.get("tag"):
        messaging.require_window(g.org.id, NAME, args["recipient_id"], exempt_by="it with a message `tag`")
    answer = client().send(page_id, graph_message(args))
    message_id = read.text(answer.get("message_id"), 200)
    if not message_id:
        raise UpstreamBadResponse(NAME, "Messenger's answer had no message_id.")
    note(message_id=message_id)
    return {"recipient_id": read.text(answer.get("recipient_id"), 200) or args["recipient_id"], "message_id": message_id}


def send_action(page_id: str, args: dict) -> dict:
    """Sender actions cannot carry a tag: they are allowed only inside the window."""
    messaging.require_window(g.org.id, NAME, args["recipient_id"],
                             exempt_by="a tagged message instead (sender actions cannot be tagged)")
    answer = client().send(page_id, {"recipient": {"id": args["recipient_id"]}, "sender_action": args["action"]})
    return {"recipient_id": read.text(answer.get("recipient_id"), 200) or args["recipient_id"], "action": args["action"]}
