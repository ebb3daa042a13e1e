"""The Klaviyo emulator answers as Klaviyo does: the official SDK parses every answer for the calls
Switchboard makes, and our request bodies and the emulator's answers validate against Klaviyo's
own OpenAPI description (revision 2026-07-15, ../shared/data). Switchboard, the emulator, the
SDK and the description name one revision (docs/decisions.md)."""

import gzip
import json
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import KLAVIYO_KEYS
from tests.test_klaviyo import LIST, event_body

SPEC_PATH = Path("/work/shared/data/klaviyo-openapi-2026-07-15.json.gz")
if not SPEC_PATH.exists():
    SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "data" / SPEC_PATH.name


@pytest.fixture(scope="module")
def spec():
    if not SPEC_PATH.exists():
        pytest.skip("Klaviyo's OpenAPI description is not available")
    return json.load(gzip.open(SPEC_PATH))


def _nullable(node):
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema (``null`` allowed), and ``oneOf`` as ``anyOf``."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    # oneOf as anyOf: Klaviyo's unions overlap (email, SMS and push send options are one shape).
    node = {("anyOf" if key == "oneOf" else key): _nullable(value) for key, value in node.items()}
    if node.pop("nullable", False):
        return {"anyOf": [node, {"type": "null"}]}
    return node


def _schema(spec, node):
    return {**_nullable(node), "components": _nullable(spec["components"])}


def _request_schema(spec, path):
    return _schema(spec, spec["paths"][path]["post"]["requestBody"]["content"]["application/vnd.api+json"]["schema"])


def _response_schema(spec, path, method, status):
    content = spec["paths"][path][method]["responses"][status].get("content")
    return _schema(spec, content["application/vnd.api+json"]["schema"]) if content else None


def test_sdk_parses_every_answer_switchboard_relies_on(klaviyo):
    from klaviyo_api import KlaviyoAPI

    api = KlaviyoAPI(KLAVIYO_KEYS["AbC123"], max_retries=0, test_host=klaviyo.url)
    account = api.Accounts.get_accounts()
    assert account.data[0].attributes.public_api_key == "AbC123"
    lists = api.Lists.get_lists()
    assert len(lists.data) == 10 and lists.links.next
    assert api.Segments.get_segments().data[0].attributes.is_active is True
    for channel, name in (("email", "Spring sale"), ("sms", "Flash sale text")):
        # Switchboard's call, made by the SDK: the channel filter Klaviyo requires.
        campaigns = api.Campaigns.get_campaigns(filter=f"equals(messages.channel,'{channel}')")
        assert campaigns.data[0].type == "campaign" and campaigns.data[0].attributes.name == name
    assert api.Profiles.create_or_update_profile(
        {"data": {"type": "profile", "attributes": {"email": "ada@example.com"}}}).data.id
    api.Events.create_event({"data": {"type": "event", "attributes": {
        "properties": {}, "metric": {"data": {"type": "metric", "attributes": {"name": "M"}}},
        "profile": {"data": {"type": "profile", "attributes": {"email": "ada@example.com"}}}}}})
    api.Profiles.bulk_subscribe_profiles({"data": {"type": "profile-subscription-bulk-create-job", "attributes": {
        "profiles": {"data": [{"type": "profile", "attributes": {"email": "ada@example.com", "subscriptions": {
            "email": {"marketing": {"consent": "SUBSCRIBED"}}}}}]}},
        "relationships": {"list": {"data": {"type": "list", "id": LIST}}}}})
    assert len(klaviyo.events["AbC123"]) == 1


def test_switchboard_the_emulator_the_sdk_and_the_description_name_one_revision(spec):
    from klaviyo_api.wrapper import KlaviyoAPI

    from app.providers.klaviyo.client import REVISION
    from sandbox.klaviyo import REVISION as EMULATED

    assert REVISION == EMULATED == KlaviyoAPI._REVISION == SPEC_PATH.name.removeprefix(
        "klaviyo-openapi-").removesuffix(".json.gz")
    assert spec["info"]["version"] == REVISION


def test_the_emulator_refuses_a_revision_it_does_not_emulate(klaviyo):
    import requests

    answer = requests.get(klaviyo.url + "/api/campaigns", timeout=5, params={"filter": "equals(messages.channel,'email')"},
                          headers={"Authorization": f"Klaviyo-API-Key {KLAVIYO_KEYS['AbC123']}",
                                   "revision": "2026-10-15"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["source"] == {"parameter": "revision"}


def test_switchboards_bodies_and_the_emulators_answers_follow_the_openapi(client, org, klaviyo, spec):
    _, headers = org
    assert client.put("/api/v1/integrations/klaviyo", json={"account_identifier": {"companyId": "AbC123"}},
                      headers=headers).status_code == 201
    assert client.post(f"/api/v1/klaviyo/lists/{LIST}/subscriptions", headers=headers,
                       json={"email": "ada@example.com", "phone_number": "+15005550006", "consent": True}).status_code == 202
    assert client.post("/api/v1/klaviyo/events", headers=headers,
                       json=event_body(value=3.5, time="2026-01-02T03:04:05+00:00")).status_code == 202
    assert client.post("/api/v1/klaviyo/profiles", headers=headers,
                       json={"email": "ada@example.com", "first_name": "Ada", "properties": {"vip": True}}).status_code == 201
    for path in ("lists", "segments"):
        assert client.get(f"/api/v1/klaviyo/{path}", headers=headers).status_code == 200
    assert client.get("/api/v1/klaviyo/campaigns?channel=email", headers=headers).status_code == 200

    for call in klaviyo.received:
        if call["method"] == "POST":
            jsonschema.validate(call["json"], _request_schema(spec, call["path"]))
    # Replay each call straight to the emulator and validate its answer against the description.
    import requests
    for call in list(klaviyo.received):  # a snapshot: the replays are recorded too
        url = klaviyo.url + call["path"] + ("?" + call["query"] if call["query"] else "")
        sent_headers = {k: v for k, v in call["headers"].items() if k in ("authorization", "revision", "content-type")}
        response = requests.request(call["method"], url, headers=sent_headers,
                                    data=json.dumps(call["json"]) if call["json"] is not None else None, timeout=5)
        status = str(response.status_code)
        assert status in spec["paths"][call["path"]][call["method"].lower()]["responses"], call["path"]
        schema = _response_schema(spec, call["path"], call["method"].lower(), status)
        if schema is None:
            assert response.content == b""
        else:
            jsonschema.validate(response.json(), schema)
        assert "RateLimit-Remaining" in response.headers


def test_the_emulators_errors_follow_klaviyos_error_shape(klaviyo, spec):
    import requests

    schema = _schema(spec, spec["components"]["responses"]["ClientError"]["content"]["application/vnd.api+json"]["schema"])
    unauthenticated = requests.get(klaviyo.url + "/api/lists", headers={"revision": "2026-07-15"}, timeout=5)
    assert unauthenticated.status_code == 401
    jsonschema.validate(unauthenticated.json(), schema)
    klaviyo.inject("http_429", retry_after=3)
    throttled = requests.get(klaviyo.url + "/api/lists", timeout=5, headers={
        "Authorization": f"Klaviyo-API-Key {KLAVIYO_KEYS['AbC123']}", "revision": "2026-07-15"})
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "3"
    assert "RateLimit-Remaining" not in throttled.headers
    jsonschema.validate(throttled.json(), schema)
