"""Klaviyo's request documents (JSON:API), built from Switchboard's validated input.

Shapes follow Klaviyo's OpenAPI description, revision 2026-07-15 (``../shared/data``;
tests/test_klaviyo_conformance.py validates every body against it).
"""

from __future__ import annotations

import hashlib


def event_unique_id(org_id, idempotency_key: str | None, fallback: str) -> str:
    """Klaviyo records an event once per (profile, metric, ``unique_id``). Derived from the org and
    the caller's ``Idempotency-Key``, a re-sent call (our retry, or the caller's after the key
    expired) counts once; the org is in the digest so two orgs' keys never collide."""
    if not idempotency_key:
        return fallback
    digest = hashlib.sha256(f"switchboard-klaviyo-event\0{org_id}\0{idempotency_key}".encode()).hexdigest()
    return f"sb-{digest[:40]}"


def _profile_identity(args: dict) -> dict:
    return {name: args[name] for name in ("email", "phone_number", "external_id") if args.get(name)}


def subscribe_job(list_id: str, args: dict) -> dict:
    profile: dict = {"subscriptions": {}}
    if args.get("email"):
        profile["email"] = args["email"]
        profile["subscriptions"]["email"] = {"marketing": {"consent": "SUBSCRIBED"}}
    if args.get("phone_number"):
        profile["phone_number"] = args["phone_number"]
        profile["subscriptions"]["sms"] = {"marketing": {"consent": "SUBSCRIBED"}}
    attributes = {"profiles": {"data": [{"type": "profile", "attributes": profile}]}}
    if args.get("historical_import"):
        attributes["historical_import"] = True
    return {"data": {
        "type": "profile-subscription-bulk-create-job",
        "attributes": attributes,
        "relationships": {"list": {"data": {"type": "list", "id": list_id}}},
    }}


def event(args: dict, unique_id: str) -> dict:
    attributes = {
        "properties": args.get("properties") or {},
        "metric": {"data": {"type": "metric", "attributes": {"name": args["metric"]}}},
        "profile": {"data": {"type": "profile", "attributes": _profile_identity(args)}},
        "unique_id": unique_id,
    }
    if args.get("time") is not None:
        attributes["time"] = args["time"].isoformat()
    if args.get("value") is not None:
        attributes["value"] = args["value"]
    if args.get("value_currency"):
        attributes["value_currency"] = args["value_currency"]
    return {"data": {"type": "event", "attributes": attributes}}


PROFILE_FIELDS = ("first_name", "last_name", "organization", "title", "properties")


def profile_import(args: dict) -> dict:
    attributes = _profile_identity(args)
    attributes.update({name: args[name] for name in PROFILE_FIELDS if args.get(name) is not None})
    return {"data": {"type": "profile", "attributes": attributes}}


# JSON pointers of those bodies → the caller's fields (Klaviyo's 400 names the pointer).
SUBSCRIBE_FIELDS = {"/data/attributes/profiles/data/0/attributes/email": "email",
                    "/data/attributes/profiles/data/0/attributes/phone_number": "phone_number"}
EVENT_FIELDS = {"/data/attributes/profile/data/attributes/email": "email",
                "/data/attributes/profile/data/attributes/phone_number": "phone_number",
                "/data/attributes/metric/data/attributes/name": "metric"}
PROFILE_POINTERS = {"/data/attributes/email": "email", "/data/attributes/phone_number": "phone_number"}
