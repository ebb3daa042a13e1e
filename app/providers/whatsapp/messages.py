"""What a chatbot sends on WhatsApp through Twilio: request shapes, rules, the Twilio form.

Free-form ``body`` (≤ 1600 characters, Twilio's limit) and/or one ``media_url``; or an approved
template: ``content_sid`` (``HX`` + 32 hex) with ``content_variables`` — alone, as Twilio asks
(https://www.twilio.com/docs/api/errors/63016: "Remove Body and MediaUrl when you send a content
template"). Every send carries ``StatusCallback`` = ``PUBLIC_BASE_URL`` + ``/webhooks/twilio/status``
when ``PUBLIC_BASE_URL`` is set.
"""

from __future__ import annotations

import json

from flask import current_app, g
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app import messaging
from app.errors import UpstreamBadResponse
from app.providers.base import E164
from app.providers.whatsapp.client import client, read
from app.proxy import note

NAME = "whatsapp"
STATUS_CALLBACK_PATH = "/webhooks/twilio/status"
MAX_BODY = 1600
CONTENT_SID = r"^HX[0-9a-f]{32}$"



class WhatsAppMessageArgs(Schema):
    to = fields.String(required=True, validate=validate.Regexp(f"^{E164}$", error="must be an E.164 number like +14155550123"),
                       metadata={"description": "the customer's WhatsApp number in E.164", "pattern": f"^{E164}$"})
    body = fields.String(load_default=None, validate=validate.Length(1, MAX_BODY))
    media_url = messaging.MediaUrl(load_default=None, metadata={"description": "an https URL Twilio fetches the media from"})
    content_sid = fields.String(load_default=None, validate=validate.Regexp(CONTENT_SID, error="must be a Content SID (HX…)"),
                                metadata={"description": "an approved template (Content API)", "pattern": CONTENT_SID})
    content_variables = fields.Dict(
        keys=fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_]{1,64}$")),
        values=fields.String(validate=validate.Length(max=1024)), load_default=None,
        validate=validate.Length(max=100),
        metadata={"description": "template placeholders, e.g. {\"1\": \"Ada\"}"})

    @validates_schema
    def _one_kind(self, data, **kwargs):
        if data.get("content_sid"):
            for name in ("body", "media_url"):
                if data.get(name) is not None:
                    raise ValidationError("cannot be combined with content_sid (a template carries its own)", name)
        elif data.get("content_variables") is not None:
            raise ValidationError("needs content_sid", "content_variables")
        elif data.get("body") is None and data.get("media_url") is None:
            raise ValidationError("send body, media_url or content_sid", "body")


class WhatsAppSentSchema(Schema):
    sid = fields.String()
    status = fields.String()
    to = fields.String()
    error_code = fields.Integer(allow_none=True)
    error_message = fields.String(allow_none=True)


def twilio_form(from_number: str, args: dict) -> dict:
    form = {"From": f"whatsapp:{from_number}", "To": f"whatsapp:{args['to']}"}
    if args.get("content_sid"):
        form["ContentSid"] = args["content_sid"]
        if args.get("content_variables") is not None:
            form["ContentVariables"] = json.dumps(args["content_variables"], separators=(",", ":"))
    else:
        if args.get("body") is not None:
            form["Body"] = args["body"]
        if args.get("media_url") is not None:
            form["MediaUrl"] = args["media_url"]
    public = current_app.config["PUBLIC_BASE_URL"]
    if public:
        form["StatusCallback"] = public + STATUS_CALLBACK_PATH
    return form


def send_message(number: str, args: dict) -> dict:
    """Window check (unless a template), then one send."""
    if not args.get("content_sid"):
        messaging.require_window(g.org.id, NAME, args["to"], exempt_by="an approved template (`content_sid`)")
    answer = client().send(number, twilio_form(number, args))
    sid = read.text(answer.get("sid"), 34)
    if not sid:
        raise UpstreamBadResponse(NAME, "Twilio's answer had no message sid.")
    note(message_sid=sid)
    code = read.int(answer.get("error_code"))
    return {"sid": sid, "status": read.text(answer.get("status"), 32), "to": args["to"],
            "error_code": code,
            "error_message": read.text(answer.get("error_message"), 500)}
