"""Switchboard's request and response shapes for Kustomer (flask-smorest schemas).

Every query and body field is validated here, before any call: ASCII-only emails of at most 254
characters, E.164 phones, Kustomer ids (24 hex digits), bounded texts, cursors of the one
pagination convention. Path ids are checked by ``routes.object_id``.
"""

from __future__ import annotations

import hashlib
import uuid

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app import pagination
from app.providers.base import E164

OBJECT_ID_PATTERN = r"^[0-9a-f]{24}$"
EMAIL = r"^[A-Za-z0-9.!#$%&'*+=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$"
PAGE_MAX, PAGE_DEFAULT = 100, 25


def external_id(org_id, idempotency_key: str | None, kind: str) -> str:
    """The ``externalId`` a created conversation or message carries, so that a re-sent create
    (our retry within one request, or the caller's retry with the same ``Idempotency-Key`` after
    the saved answer expired) counts once at Kustomer. Derived from the org and the key like
    Klaviyo's event ``unique_id`` (two orgs' keys never collide); without a key, random — our own
    retries of this one request still dedupe."""
    if not idempotency_key:
        return f"sb-{uuid.uuid4().hex}"
    digest = hashlib.sha256(f"switchboard-kustomer-{kind}\0{org_id}\0{idempotency_key}".encode()).hexdigest()
    return f"sb-{digest[:40]}"


class CustomerLookupArgs(Schema):
    email = fields.String(load_default=None, validate=[validate.Length(max=254), validate.Regexp(EMAIL)],
                          metadata={"description": "the customer's email (exact match, ASCII)", "maxLength": 254,
                                    "pattern": EMAIL})
    phone = fields.String(load_default=None, validate=validate.Regexp(f"^{E164}$"), metadata={
        "description": "the customer's phone in E.164, e.g. `+14155550101` (send `%2B` for `+`)",
        "pattern": f"^{E164}$"})

    @validates_schema
    def _one(self, data, **kwargs):
        if (data.get("email") is None) == (data.get("phone") is None):
            raise ValidationError("give exactly one of email or phone", field_name="email")


class ConversationListArgs(Schema):
    limit = fields.Integer(load_default=None, validate=validate.Range(min=1, max=PAGE_MAX), metadata={
        "description": f"conversations per page, default {PAGE_DEFAULT} (ignored with a cursor: the page "
                       "size travels in it)"})
    cursor = fields.String(load_default=None, validate=validate.Regexp(pagination.CURSOR_PATTERN), metadata={
        "description": "`next_cursor` of the previous page (opaque)", "pattern": pagination.CURSOR_PATTERN})


class TicketBody(Schema):
    customer_id = fields.String(required=True, validate=validate.Regexp(OBJECT_ID_PATTERN), metadata={
        "description": "the Kustomer customer id (from the customer lookup)", "pattern": OBJECT_ID_PATTERN})
    subject = fields.String(required=True, validate=validate.Length(min=1, max=256),
                            metadata={"description": "the conversation's name"})
    message = fields.String(required=True, validate=validate.Length(min=1, max=10_000), metadata={
        "description": "the customer's first message, recorded inbound on the conversation"})
    channel = fields.String(load_default="chat", validate=validate.OneOf(["chat", "email", "sms"]),
                            metadata={"description": "the channel the first message is recorded on"})
    priority = fields.Integer(load_default=None, validate=validate.Range(min=1, max=5),
                              metadata={"description": "1 (lowest) to 5 (urgent); Kustomer's default is 3"})


class NoteBody(Schema):
    body = fields.String(required=True, validate=validate.Length(min=1, max=10_000),
                         metadata={"description": "the internal note (agents only; never sent to the customer)"})


class KustomerCustomerSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    emails = fields.List(fields.String())
    phones = fields.List(fields.String())
    external_id = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class ConversationSchema(Schema):
    id = fields.String()
    customer_id = fields.String(allow_none=True)
    subject = fields.String(allow_none=True)
    status = fields.String(allow_none=True, metadata={"description": "open, snoozed or done"})
    priority = fields.Integer(allow_none=True)
    channels = fields.List(fields.String(allow_none=True))
    message_count = fields.Integer(allow_none=True)
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)


class ConversationPageSchema(Schema):
    data = fields.List(fields.Nested(ConversationSchema))
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "pass as `cursor` for the next page; null on the last page"})


class MessageSchema(Schema):
    id = fields.String()
    channel = fields.String(allow_none=True)
    direction = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)


class TicketSchema(Schema):
    conversation = fields.Nested(ConversationSchema)
    first_message = fields.Nested(MessageSchema, allow_none=True)
    first_message_status = fields.String(validate=validate.OneOf(["recorded", "not_recorded", "unknown"]), metadata={
        "description": "`recorded`; `not_recorded` (Kustomer refused it: add it as a note or retry with a "
                       "new Idempotency-Key); `unknown` (no answer in time: check the conversation first)",
        "enum": ["recorded", "not_recorded", "unknown"]})


class NoteSchema(Schema):
    id = fields.String()
    conversation_id = fields.String(allow_none=True)
    body = fields.String(allow_none=True)
    created_at = fields.String(allow_none=True)
