"""Klaviyo actions under ``/api/v1/klaviyo/``: parse, call, return (Switchboard's own JSON)."""

from __future__ import annotations

import math
import re
import uuid

from flask import g, request
from flask_smorest import Blueprint
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app import pagination
from app.auth import org_required
from app.errors import NotFound, ValidationFailed
from app.providers.base import E164
from app.providers.klaviyo import mapping, shapes
from app.providers.klaviyo.client import NAME, client
from app.proxy import proxy_action

blp = Blueprint("klaviyo", __name__, url_prefix="/api/v1/klaviyo",
                description="Klaviyo: subscribe to lists with consent, track events, upsert profiles; "
                            "read lists, segments and campaigns.")

LIST_ID = re.compile(r"[A-Za-z0-9]{1,64}", re.ASCII)
PRINTABLE = r"^[\x20-\x7e]+$"
CURSOR = {"description": "`next_cursor` of the previous page (opaque)", "pattern": pagination.CURSOR_PATTERN}


def _full(pattern: str):
    """A regex check on the whole value (``$`` alone would let a trailing newline through)."""
    return validate.Regexp(re.compile(pattern.rstrip("$") + r"\Z"))


def _ascii_email(value: str) -> None:
    if not value.isascii():
        raise ValidationError("must be an ASCII email address")


def _finite(value: float) -> None:
    if not math.isfinite(value):
        raise ValidationError("must be a finite number")


def _email():
    return fields.Email(load_default=None, validate=[validate.Length(max=254), _ascii_email],
                        metadata={"description": "email address", "maxLength": 254})


def _phone():
    return fields.String(load_default=None, validate=_full(f"^{E164}$"),
                         metadata={"description": "phone number in E.164 form, e.g. +15005550006",
                                   "pattern": f"^{E164}$"})


def _external_id():
    return fields.String(load_default=None, validate=[validate.Length(min=1, max=64), _full(PRINTABLE)],
                         metadata={"description": "your system's id for the person", "pattern": PRINTABLE})


class _Identity(Schema):
    identifiers = ("email", "phone_number", "external_id")

    @validates_schema
    def _one_identifier(self, data, **kwargs):
        if not any(data.get(name) for name in self.identifiers):
            raise ValidationError(f"give at least one of {', '.join(self.identifiers)}", self.identifiers[0])


class SubscribeArgs(_Identity):
    identifiers = ("email", "phone_number")
    email = _email()
    phone_number = _phone()
    consent = fields.Boolean(required=True, metadata={"enum": [True],
        "description": "must be `true`: the person explicitly agreed to receive marketing on each channel given"})
    historical_import = fields.Boolean(load_default=False, metadata={
        "description": "consent was collected earlier (no double opt-in message is sent)"})

    @validates_schema
    def _consented(self, data, **kwargs):
        if data.get("consent") is not True:
            raise ValidationError("must be true: subscribing needs the person's explicit consent", "consent")


class EventArgs(_Identity):
    metric = fields.String(required=True, validate=[validate.Length(min=1, max=128), _full(PRINTABLE)],
                           metadata={"description": "the metric (event name) that triggers flows, e.g. `Viewed Product`",
                                     "pattern": PRINTABLE})
    email = _email()
    phone_number = _phone()
    external_id = _external_id()
    properties = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=200)), load_default=dict,
                             validate=validate.Length(max=400), metadata={"description": "event properties"})
    value = fields.Float(load_default=None, allow_nan=False, validate=_finite,
                         metadata={"description": "monetary value of the event"})
    value_currency = fields.String(load_default=None, validate=_full(r"^[A-Z]{3}$"),
                                   metadata={"description": "ISO 4217 code", "pattern": r"^[A-Z]{3}$"})
    time = fields.AwareDateTime(load_default=None, metadata={"description": "when it happened (default: now)"})


class ProfileArgs(_Identity):
    email = _email()
    phone_number = _phone()
    external_id = _external_id()
    first_name = fields.String(load_default=None, validate=validate.Length(max=100))
    last_name = fields.String(load_default=None, validate=validate.Length(max=100))
    organization = fields.String(load_default=None, validate=validate.Length(max=200))
    title = fields.String(load_default=None, validate=validate.Length(max=200))
    properties = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=200)), load_default=None,
                             validate=validate.Length(max=400), metadata={"description": "custom properties"})


def _page_args(max_size: int, default: int):
    class PageArgs(Schema):
        limit = fields.Integer(load_default=default, validate=validate.Range(min=1, max=max_size),
                               metadata={"description": f"items per page (Klaviyo serves at most {max_size})"})
        cursor = fields.String(load_default=None, validate=_full(pagination.CURSOR_PATTERN), metadata=CURSOR)
    return PageArgs


ListPageArgs = _page_args(10, 10)


class CampaignPageArgs(_page_args(100, 50)):
    channel = fields.String(required=True, validate=validate.OneOf(["email", "sms"]),
                            metadata={"description": "which campaigns: `email` or `sms` (Klaviyo requires one)"})


class AcceptedSchema(Schema):
    status = fields.String(metadata={"description": "`accepted`: Klaviyo queued it (202)"})


class SubscribedSchema(AcceptedSchema):
    list_id = fields.String()
    email = fields.String(allow_none=True)
    phone_number = fields.String(allow_none=True)


class EventAcceptedSchema(AcceptedSchema):
    metric = fields.String()
    unique_id = fields.String(metadata={"description": "the event's id at Klaviyo; a repeat with it counts once"})


class ProfileSchema(Schema):
    id = fields.String()
    created = fields.Boolean(metadata={"description": "true when Klaviyo created the profile, false when updated"})
    email = fields.String(allow_none=True)
    phone_number = fields.String(allow_none=True)
    external_id = fields.String(allow_none=True)
    first_name = fields.String(allow_none=True)
    last_name = fields.String(allow_none=True)


class ListSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    opt_in_process = fields.String(allow_none=True)
    created = fields.String(allow_none=True)
    updated = fields.String(allow_none=True)


class SegmentSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    is_active = fields.Boolean(allow_none=True)
    is_processing = fields.Boolean(allow_none=True)
    created = fields.String(allow_none=True)
    updated = fields.String(allow_none=True)


class CampaignSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    status = fields.String(allow_none=True)
    channel = fields.String()
    archived = fields.Boolean(allow_none=True)
    created_at = fields.String(allow_none=True)
    updated_at = fields.String(allow_none=True)
    scheduled_at = fields.String(allow_none=True)
    send_time = fields.String(allow_none=True)


def _page_schema(item):
    return type(f"{item.__name__[:-6]}PageSchema", (Schema,), {
        "data": fields.List(fields.Nested(item)),
        "next_cursor": fields.String(allow_none=True, metadata={
            "description": "pass as `cursor` for the next page; null on the last page"}),
    })


ListPageSchema, SegmentPageSchema, CampaignPageSchema = map(_page_schema, (ListSchema, SegmentSchema, CampaignSchema))


def _list_id(value: str) -> str:
    if not LIST_ID.fullmatch(value):
        raise ValidationFailed("list_id", "must be a Klaviyo list id (1-64 letters and digits)")
    return value


def _page_params(kind: str, limit: int, cursor: str | None) -> dict:
    params = {"page[size]": limit}
    if cursor:
        params["page[cursor]"] = pagination.decode(kind, cursor)
    return params


@blp.route("/lists/<path:list_id>/subscriptions", methods=["POST"])
@blp.response(202, SubscribedSchema)
@org_required
@blp.arguments(SubscribeArgs)
@proxy_action(NAME, "lists.subscribe")
def subscribe(integration, args, list_id):
    """Subscribe an email and/or phone to a list for marketing, with the person's explicit consent."""
    body = shapes.subscribe_job(_list_id(list_id), args)
    client().call(integration.account_key, "POST", "/api/profile-subscription-bulk-create-jobs", body=body,
                  idempotent=False, fields=shapes.SUBSCRIBE_FIELDS,
                  not_found=NotFound(f"No list {list_id} in this Klaviyo account.", code="list_not_found"))
    return {"status": "accepted", "list_id": list_id, "email": args["email"], "phone_number": args["phone_number"]}


@blp.route("/events", methods=["POST"])
@blp.response(202, EventAcceptedSchema)
@org_required
@blp.arguments(EventArgs)
@proxy_action(NAME, "events.create")
def track_event(integration, args):
    """Track an event; its metric triggers flows. Send `Idempotency-Key`: a re-sent event counts once."""
    unique_id = shapes.event_unique_id(g.org.id, request.headers.get("Idempotency-Key"), uuid.uuid4().hex)
    # The unique_id makes the write idempotent at Klaviyo, so the outbound layer may re-send it.
    client().call(integration.account_key, "POST", "/api/events", body=shapes.event(args, unique_id),
                  idempotent=True, fields=shapes.EVENT_FIELDS)
    return {"status": "accepted", "metric": args["metric"], "unique_id": unique_id}


@blp.route("/profiles", methods=["POST"])
@blp.response(200, ProfileSchema, description="the profile was updated")
@blp.alt_response(201, schema=ProfileSchema, description="the profile was created", success=True)
@org_required
@blp.arguments(ProfileArgs)
@proxy_action(NAME, "profiles.upsert")
def upsert_profile(integration, args):
    """Create or update a profile (matched by email, phone or external id)."""
    status, document = client().call(integration.account_key, "POST", "/api/profile-import",
                                     body=shapes.profile_import(args), idempotent=True,
                                     fields=shapes.PROFILE_POINTERS)
    return mapping.profile_out(document, created=status == 201), 201 if status == 201 else 200


@blp.route("/lists")
@blp.response(200, ListPageSchema)
@org_required
@blp.arguments(ListPageArgs, location="query", as_kwargs=True)
@proxy_action(NAME, "lists.list")
def list_lists(integration, limit, cursor):
    """The account's lists."""
    _, document = client().call(integration.account_key, "GET", "/api/lists",
                                params=_page_params("klaviyo-lists", limit, cursor), idempotent=True)
    return mapping.page_out(document, "klaviyo-lists", mapping.list_out)


@blp.route("/segments")
@blp.response(200, SegmentPageSchema)
@org_required
@blp.arguments(ListPageArgs, location="query", as_kwargs=True)
@proxy_action(NAME, "segments.list")
def list_segments(integration, limit, cursor):
    """The account's segments."""
    _, document = client().call(integration.account_key, "GET", "/api/segments",
                                params=_page_params("klaviyo-segments", limit, cursor), idempotent=True)
    return mapping.page_out(document, "klaviyo-segments", mapping.segment_out)


@blp.route("/campaigns")
@blp.response(200, CampaignPageSchema)
@org_required
@blp.arguments(CampaignPageArgs, location="query", as_kwargs=True)
@proxy_action(NAME, "campaigns.list")
def list_campaigns(integration, limit, cursor, channel):
    """The account's campaigns of one channel (email or SMS)."""
    kind = "klaviyo-campaigns"
    params = {"filter": f"equals(messages.channel,'{channel}')", **_page_params(kind, limit, cursor)}
    _, document = client().call(integration.account_key, "GET", "/api/campaigns", params=params, idempotent=True)
    return mapping.page_out(document, kind, lambda node: mapping.campaign_out(node, channel))
