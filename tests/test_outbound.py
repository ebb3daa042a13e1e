"""The outbound layer against a real server: host check, idempotency, deadline, redirects."""

import pytest

from app.errors import UpstreamBadResponse, UpstreamRateLimited, UpstreamTimeout, UpstreamUnreachable
from app.outbound import Outbound, Target, check_url
from tests.conftest import SHOPIFY_TOKENS


@pytest.fixture
def outbound():
    return Outbound(connect_timeout=1, read_timeout=1, deadline=3, max_retries=2, pool_size=2)


def graphql_url(shopify, shop="demo-store"):
    return f"{shopify.url}/shops/{shop}/admin/api/2026-10/graphql.json"


def call(outbound, shopify, *, idempotent=True, url=None):
    return outbound.call(
        "shopify", "POST", url or graphql_url(shopify), expected=Target.of(shopify.url),
        headers={"X-Shopify-Access-Token": SHOPIFY_TOKENS["demo-store"]},
        json={"query": "query { shop { name } }"}, idempotent=idempotent,
    )


SMUGGLING_NAMES = ["evil.com#", "evil.com/", "x@evil.com", "x.myshopify.com.evil.com", "evil.com:443", "127.0.0.1"]


@pytest.mark.parametrize("store", SMUGGLING_NAMES)
def test_the_client_refuses_a_store_name_that_is_not_one_label(make_app, store):
    # Validation refuses these names at connect time; the client refuses them again on its own.
    app = make_app(SHOPIFY_SHOP_URL_TEMPLATE="https://{shop}.myshopify.com")
    with app.app_context():
        from app.providers.shopify import client

        with pytest.raises(UpstreamBadResponse):
            client().base_url(store)
        url, expected = client().base_url("demo-store")
        check_url(url + "/admin/api/2026-10/graphql.json", expected, "shopify")


@pytest.mark.parametrize("store", ["evil.com#", "evil.com/", "x@evil.com", "evil.com:443"])
def test_the_url_check_alone_refuses_a_name_that_moves_the_host(store):
    # Without the label check, the template would send the token to evil.com: the parser sees it.
    url = "https://{shop}.myshopify.com".format(shop=store) + "/admin/api/2026-10/graphql.json"
    with pytest.raises(UpstreamBadResponse):
        check_url(url, Target("https", f"{store}.myshopify.com", None), "shopify")


@pytest.mark.parametrize("url", ["https://evil.com#.myshopify.com/x", "https://x@evil.com.myshopify.com/x",
                                 "https://evil.com/.myshopify.com/x", "https://evil.com:443.myshopify.com/x",
                                 "https://demo-store.myshopify.com:8443/x", "http://demo-store.myshopify.com/x"])
def test_url_check_uses_the_clients_parser(url):
    with pytest.raises(UpstreamBadResponse):
        check_url(url, Target("https", "demo-store.myshopify.com", None), "shopify")


def test_call_to_an_unexpected_host_sends_nothing(outbound, shopify):
    with pytest.raises(UpstreamBadResponse):
        outbound.call("shopify", "POST", graphql_url(shopify), expected=Target("http", "127.0.0.2", None),
                      headers={}, json={}, idempotent=True)
    assert shopify.received == []


def test_non_idempotent_call_is_not_retried_after_a_server_error(outbound, shopify):
    shopify.inject("http_500", times=3)
    with pytest.raises(UpstreamBadResponse):
        call(outbound, shopify, idempotent=False)
    assert len(shopify.received) == 1


def test_non_idempotent_call_is_not_resent_after_a_read_timeout(outbound, shopify):
    shopify.inject("slow", times=3, seconds=1.5)
    with pytest.raises(UpstreamTimeout):
        call(outbound, shopify, idempotent=False)
    assert len(shopify.received) == 1


def test_idempotent_call_is_retried_up_to_the_limit(outbound, shopify):
    shopify.inject("http_503", times=5)
    with pytest.raises(UpstreamBadResponse):
        call(outbound, shopify)
    assert len(shopify.received) == 3


def test_retry_after_longer_than_the_deadline_is_not_waited_for(outbound, shopify):
    shopify.inject("http_429", times=5, retry_after=10)
    with pytest.raises(UpstreamRateLimited) as raised:
        call(outbound, shopify)
    assert raised.value.headers["Retry-After"] == "10"
    assert len(shopify.received) == 1


def test_short_retry_after_is_honoured(outbound, shopify):
    shopify.inject("http_429", times=1, retry_after=1)
    outcome = call(outbound, shopify)
    assert outcome.response.status_code == 200 and outcome.attempts == 2
    first, second = shopify.received
    assert second["at"] - first["at"] >= 0.95


def test_refused_connection_is_unreachable(outbound):
    with pytest.raises(UpstreamUnreachable):
        outbound.call("shopify", "POST", "http://127.0.0.1:9/x", expected=Target("http", "127.0.0.1", 9),
                      headers={}, json={}, idempotent=False)


def test_redirect_is_not_followed(outbound, shopify):
    shopify.inject("redirect", times=1, location=graphql_url(shopify, "other-store"))
    with pytest.raises(UpstreamBadResponse):
        call(outbound, shopify)
    assert [r["shop"] for r in shopify.received] == ["demo-store"]


def test_a_server_that_drips_its_answer_does_not_outlast_the_deadline(outbound, shopify):
    # Each byte arrives within the 1 s read timeout; the whole answer would take ~12 s.
    shopify.inject("drip", times=1, seconds=0.5)
    import time

    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        call(outbound, shopify, idempotent=False)
    assert time.monotonic() - started < 3 + 1  # the 3 s deadline, plus one read's slack
