"""The Kustomer actions: thin handlers over the client and the mapping."""

from __future__ import annotations

from flask import g
from flask import request as incoming
from flask_smorest import Blueprint

from app import pagination
from app.auth import org_required
from app.errors import UpstreamBadResponse, UpstreamError, UpstreamTimeout, ValidationFailed
from app.providers.kustomer import mapping
from app.providers.kustomer.client import client, found, payload, segment
from app.providers.kustomer.shapes import (
    PAGE_DEFAULT,
    ConversationListArgs,
    ConversationPageSchema,
    CustomerLookupArgs,
    KustomerCustomerSchema,
    NoteBody,
    NoteSchema,
    TicketBody,
    TicketSchema,
    external_id,
)
from app.proxy import note, proxy_action

NAME = "kustomer"
APP_NAME = "switchboard"  # the ``app`` Kustomer records on messages Switchboard records

blp = Blueprint("kustomer", __name__, url_prefix="/api/v1/kustomer",
                description="Kustomer customers, conversation history, tickets and internal notes.")


def object_id(field: str, value: str) -> str:
    """A Kustomer id from the path: 24 hex digits, or 422 before anything is sent."""
    if len(value) > 64 or not mapping.OBJECT_ID.fullmatch(value):
        raise ValidationFailed(field, "must be a Kustomer id (24 hexadecimal digits)")
    return value


@blp.route("/customers")
@blp.alt_response(200, schema=KustomerCustomerSchema, success=True)
@org_required
@blp.arguments(CustomerLookupArgs, location="query", as_kwargs=True)
@proxy_action(NAME, "customers.lookup")
def lookup_customer(integration, email, phone):
    """One customer of the connected Kustomer org, by email or by E.164 phone."""
    selector = f"email={segment(email)}" if email else f"phone={segment(phone)}"
    response = client().call(integration.account_key, "GET", f"/v1/customers/{selector}")
    return mapping.customer_out(found(response, "customer", "customer_not_found"))


@blp.route("/customers/<path:customer_id>/conversations")
@blp.alt_response(200, schema=ConversationPageSchema, success=True)
@org_required
@blp.arguments(ConversationListArgs, location="query", as_kwargs=True)
@proxy_action(NAME, "conversations.list")
def list_conversations(integration, customer_id, limit, cursor):
    """A customer's conversations (history), newest first, in pages."""
    object_id("customer_id", customer_id)
    page, size = 1, limit or PAGE_DEFAULT
    if cursor:
        owner, _, rest = pagination.decode("kustomer-conversations", cursor).partition(":")
        page_text, _, size_text = rest.partition(":")
        if (owner != customer_id or not page_text.isdigit() or not size_text.isdigit()
                or not 1 < int(page_text) <= 10_000 or not 1 <= int(size_text) <= 100):
            raise ValidationFailed("cursor", "is not a cursor from this list (send the previous page's "
                                             "next_cursor)", code="invalid_cursor")
        page, size = int(page_text), int(size_text)
    response = client().call(integration.account_key, "GET", f"/v1/customers/{segment(customer_id)}/conversations",
                             query={"page": page, "pageSize": size})
    if response.status_code == 404:
        found(response, "customer", "customer_not_found")
    items, more = mapping.conversations_page(payload(response))
    next_cursor = pagination.encode("kustomer-conversations", f"{customer_id}:{page + 1}:{size}") if more else None
    return {"data": items, "next_cursor": next_cursor}


@blp.route("/conversations", methods=["POST"])
@blp.alt_response(201, schema=TicketSchema, success=True)
@org_required
@blp.arguments(TicketBody)
@proxy_action(NAME, "conversations.create")
def create_ticket(integration, body):
    """Open a conversation ("ticket") for a customer and record the customer's first message.

    Two Kustomer writes, each carrying an ``externalId`` derived from ``Idempotency-Key``, so a
    re-sent create counts once at Kustomer (a duplicate is answered 409, and the existing
    conversation is read back). Once the conversation exists the answer is 201 whatever happens
    to the message (``first_message_status``), so a retry never opens a second ticket.
    """
    kustomer, account = client(), integration.account_key
    key = incoming.headers.get("Idempotency-Key")
    conversation_xid = external_id(g.org.id, key, "conversation")
    body_out = {"customer": body["customer_id"], "name": body["subject"], "status": "open",
                "externalId": conversation_xid}
    if body["priority"] is not None:
        body_out["priority"] = body["priority"]
    response = kustomer.call(account, "POST", "/v1/conversations", json=body_out, idempotent=True, conflict=True)
    if response.status_code == 404:
        found(response, "customer", "customer_not_found")
    if response.status_code == 409:  # created by an earlier send whose answer was lost
        node = _existing_conversation(account, body["customer_id"], conversation_xid)
    else:
        node = found(response, "conversation", "conversation_not_found")
    conversation = mapping.conversation_out(node)
    note(conversation_id=conversation["id"])
    message, status = None, "recorded"
    try:
        created = kustomer.call(account, "POST", f"/v1/conversations/{segment(conversation['id'])}/messages", json={
            "channel": body["channel"], "app": APP_NAME, "direction": "in",
            "preview": body["message"][:200], "body": body["message"],
            "externalId": external_id(g.org.id, key, "message")}, idempotent=True, conflict=True)
        if created.status_code == 404:
            raise UpstreamBadResponse(NAME, "Kustomer lost the conversation it just created.")
        if created.status_code != 409:  # 409: recorded by an earlier send
            message = mapping.message_out(found(created, "message", "conversation_not_found"))
    except UpstreamTimeout as exc:
        status = "unknown"
        note(first_message_error=exc.code)
    except UpstreamError as exc:
        status = "unknown" if exc.code == "upstream_outcome_unknown" else "not_recorded"
        note(first_message_error=exc.code)
    return {"conversation": conversation, "first_message": message, "first_message_status": status}, 201


def _existing_conversation(account: str, customer_id: str, xid: str) -> dict:
    """The conversation Kustomer already holds under ``externalId`` ``xid``: the customer's newest
    conversations are read (one page of 100; it was created moments ago)."""
    response = client().call(account, "GET", f"/v1/customers/{segment(customer_id)}/conversations",
                             query={"page": 1, "pageSize": 100})
    for node in mapping.conversations_nodes(payload(response)) if response.status_code != 404 else ():
        if mapping.external_id_of(node) == xid:
            return node
    raise UpstreamBadResponse(NAME, "Kustomer reported the conversation as existing but did not list it.")


@blp.route("/conversations/<path:conversation_id>/notes", methods=["POST"])
@blp.alt_response(201, schema=NoteSchema, success=True)
@org_required
@blp.arguments(NoteBody)
@proxy_action(NAME, "notes.create")
def add_note(integration, body, conversation_id):
    """Add an internal note (visible to agents only) to a conversation."""
    object_id("conversation_id", conversation_id)
    response = client().call(integration.account_key, "POST", f"/v1/conversations/{segment(conversation_id)}/notes",
                             json={"body": body["body"]})
    return mapping.note_out(found(response, "conversation", "conversation_not_found")), 201
