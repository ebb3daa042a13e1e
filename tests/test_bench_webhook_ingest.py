"""Smoke: the webhook ingestion benchmark imports and builds signed, distinct deliveries (it is run by `make bench`, not here)."""

import hashlib
import hmac
import json

from benchmarks import webhook_ingest


def test_deliveries_are_signed_and_distinct():
    first, second = webhook_ingest.body_for(1), webhook_ingest.body_for(2)
    assert first != second and json.loads(first)["entry"][0]["id"] == webhook_ingest.PAGE
    expected = hmac.new(webhook_ingest.APP_SECRET.encode(), first, hashlib.sha256).hexdigest()
    assert webhook_ingest.signed(first)["X-Hub-Signature-256"] == f"sha256={expected}"
    assert webhook_ingest.MID.findall(first) == [b"m_bench_1"]
