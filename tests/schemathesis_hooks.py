"""Schemathesis hooks for tests/test_contract.py (loaded through ``SCHEMATHESIS_HOOKS``).

``Idempotency-Key`` means "a fresh random value per request; reuse it only to retry that same
request" (README, Stripe's semantics). Hypothesis draws minimal strings (``0``) again and again,
for different bodies — which the server must refuse (422 ``idempotency_key_reused``). So a
*valid* generated key is replaced by a fresh UUID, as a real client sends; an invalid one is left
as drawn, so the negative checks still see the server refuse it.
"""

import re
import uuid

import schemathesis

_VALID = re.compile(r"[\x21-\x7e]{1,255}")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and _VALID.fullmatch(key):
        headers["Idempotency-Key"] = str(uuid.uuid4())
        case.headers = headers
