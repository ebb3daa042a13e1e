"""Events and webhook delivery: the org's endpoint, its events (poll or receive), redelivery;
the admin's view of every event (unattributed ones included) and the cron-callable worker."""

from flask import current_app, g
from flask_smorest import Blueprint
from marshmallow import Schema, fields, validate

from app import deliveries
from app.api.admin import admin_auth, blp as admin_blp
from app.api.schemas import PageQuerySchema, _next_cursor
from app.auth import admin_required, org_required

blp = Blueprint("events", __name__, url_prefix="/api/v1", description="Inbound events and their delivery.")


class EndpointInSchema(Schema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048), metadata={
        "description": "where events are POSTed: https (http only on a sandbox server), a public address",
        "example": "https://bot.example.com/switchboard/events"})


class EndpointSchema(Schema):
    url = fields.String()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class EndpointWithSecretSchema(EndpointSchema):
    secret = fields.String(metadata={
        "description": "the Standard Webhooks signing secret (`whsec_…`), shown only in this answer; "
                       "every PUT makes a new one"})


class DeliverySchema(Schema):
    status = fields.String(metadata={"description": "pending, delivering, delivered, dead or no_endpoint"})
    attempts = fields.Integer()
    next_attempt_at = fields.DateTime(allow_none=True)
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    delivered_at = fields.DateTime(allow_none=True)


class EventSchema(Schema):
    id = fields.UUID()
    type = fields.String(metadata={"description": "`<provider>.<topic>`, e.g. `messenger.message`, "
                                                  "`whatsapp.message.status`, `shopify.orders/create`"})
    provider = fields.String()
    topic = fields.String()
    account = fields.String(allow_none=True, metadata={"description": "the account the provider's signed content names"})
    received_at = fields.DateTime()
    data = fields.Dict(metadata={"description": "the provider's event (the org's part of it)"})
    delivery = fields.Nested(DeliverySchema, allow_none=True)


class AdminEventSchema(EventSchema):
    organization_id = fields.UUID(allow_none=True, metadata={"description": "null: no org has claimed the account"})


class EventPageSchema(Schema):
    data = fields.List(fields.Nested(EventSchema))
    next_cursor = _next_cursor()


class AdminEventPageSchema(Schema):
    data = fields.List(fields.Nested(AdminEventSchema))
    next_cursor = _next_cursor()


class AdminEventQuerySchema(PageQuerySchema):
    status = fields.String(load_default=None, validate=validate.OneOf(["attributed", "unattributed"]))
    provider = fields.String(load_default=None, validate=validate.OneOf(["messenger", "whatsapp", "shopify"]))


class RunQuerySchema(Schema):
    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100),
                           metadata={"description": "deliveries attempted in this call, 1–100"})


class RunResultSchema(Schema):
    claimed = fields.Integer()
    delivered = fields.Integer()
    retrying = fields.Integer()
    dead = fields.Integer()
    no_endpoint = fields.Integer()


@blp.route("/webhook-endpoint", methods=["GET"])
@blp.response(200, EndpointSchema)
@org_required
def get_endpoint():
    """Where this org's events are delivered (the secret is never shown again)."""
    return deliveries.get_endpoint(g.org.id)


@blp.route("/webhook-endpoint", methods=["PUT"])
@blp.response(200, EndpointWithSecretSchema)
@blp.alt_response(201, schema=EndpointWithSecretSchema, description="endpoint created")
@org_required
@blp.arguments(EndpointInSchema)
def put_endpoint(body):
    """Set or replace the endpoint; answers a new signing secret, once."""
    endpoint, secret, created = deliveries.set_endpoint(g.org.id, body["url"], actor=g.actor)
    return {"url": endpoint.url, "created_at": endpoint.created_at, "updated_at": endpoint.updated_at,
            "secret": secret}, 201 if created else 200


@blp.route("/webhook-endpoint", methods=["DELETE"])
@blp.response(204)
@org_required
def delete_endpoint():
    """Stop delivering (events are still stored and listed)."""
    deliveries.delete_endpoint(g.org.id, actor=g.actor)


@blp.route("/events")
@blp.response(200, EventPageSchema)
@org_required
@blp.arguments(PageQuerySchema, location="query", as_kwargs=True)
def list_events(**page):
    """This org's inbound events, newest first, with their delivery state."""
    rows, next_cursor = deliveries.events_page(g.org.id, **page)
    return {"data": rows, "next_cursor": next_cursor}


@blp.route("/events/<uuid:event_id>/redeliver", methods=["POST"])
@blp.response(202, EventSchema)
@org_required
def redeliver(event_id):
    """Deliver one event again, now, with a fresh set of attempts."""
    return deliveries.redeliver(g.org.id, event_id, actor=g.actor)


@admin_blp.route("/events")
@admin_blp.response(200, AdminEventPageSchema)
@admin_auth
@admin_required
@admin_blp.arguments(AdminEventQuerySchema, location="query", as_kwargs=True)
def all_events(**query):
    """Every inbound event, newest first; `status=unattributed`: accounts no org has claimed."""
    rows, next_cursor = deliveries.events_page(None, **query)
    return {"data": rows, "next_cursor": next_cursor}


@admin_blp.route("/deliveries/run", methods=["POST"])
@admin_blp.response(200, RunResultSchema)
@admin_auth
@admin_required
@admin_blp.arguments(RunQuerySchema, location="query", as_kwargs=True)
def run_deliveries(limit):
    """Attempt up to `limit` due deliveries now (a cron's call)."""
    return deliveries.run_batch(limit, budget=current_app.config["WEBHOOK_DELIVERY_TIMEOUT"] * 2)


@admin_blp.route("/deliveries/run", methods=["GET"])
@admin_blp.response(200, RunResultSchema)
@admin_auth
@admin_required
@admin_blp.arguments(RunQuerySchema, location="query", as_kwargs=True)
def run_deliveries_cron(limit):
    """The same as POST, for Vercel Cron (which only sends GET, with CRON_SECRET as bearer)."""
    return deliveries.run_batch(limit, budget=current_app.config["WEBHOOK_DELIVERY_TIMEOUT"] * 2)
