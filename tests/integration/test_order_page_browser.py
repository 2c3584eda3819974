"""The order page in headless Chromium: its statuses change live while the deliveries run, and
it follows the order through the chain to `shipped`."""

from __future__ import annotations

import dataclasses

import pytest

from tasks.relay import relay_once
from tests.support.browser import screenshot
from tests.support.http_server import serve
from tests.support.orders import place
from tests.support.stream_server import serve_streams
from tests.support.waiting import wait_until
from web import create_app

pytestmark = pytest.mark.browser


@pytest.fixture
def browser_page(chromium):
    """A page of the shared headless Chromium (tests/support/browser.py: skipped without it, except in CI)."""
    context = chromium.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the browser is what is tested
def test_order_page_shows_email_retrying_then_succeeded_live(
    browser_page, settings, celery_app, runtime, worker, smtp_sink, use_policies
):
    from playwright.sync_api import expect

    use_policies({"email": {"max_retries": 4, "backoff_base": 1.5, "backoff_max": 2.0, "jitter": False}})
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = 1, 451
    placed = place(runtime.session_factory)
    live_settings = dataclasses.replace(settings, sse_keepalive_seconds=1.0)

    # The page (the API's origin) reads its stream from the stream server (another origin).
    with serve_streams(live_settings) as streams, serve(create_app({
        "ORDERFLOW_SETTINGS": dataclasses.replace(live_settings, stream_public_url=streams),
        "AFTER_COMMIT": None,
    })) as url:
        browser_page.goto(f"{url}/orders/{placed.order_id}/page")
        email = browser_page.locator("#delivery-email .state")
        expect(email).to_have_text("pending")
        expect(browser_page.locator("#stream-state")).to_have_text("live")

        relay_once(celery_app, runtime, grace_seconds=0)  # the page is not reloaded from here on

        expect(email).to_have_text("retrying", timeout=10_000)
        expect(browser_page.locator("#delivery-email .error")).to_contain_text("SMTP 451")
        expect(email).to_have_text("succeeded", timeout=15_000)
        expect(browser_page.locator("#delivery-email .attempts")).to_have_text("2")
        for consumer in ("inventory", "analytics"):
            expect(browser_page.locator(f"#delivery-{consumer} .state")).to_have_text("succeeded")
        expect(browser_page.locator("#order-status")).to_have_text("reserved")

        # The chain goes on (the relay publishes each hop's event): the page grows a row per
        # hop, and the stream ends only once the order is shipped.
        def chain_done() -> bool:
            relay_once(celery_app, runtime, grace_seconds=0)
            return browser_page.locator("#stream-state").text_content() == "all final"

        wait_until(chain_done, timeout=30, interval=0.2, message="the stream followed the order to the end")
        expect(browser_page.locator("#order-status")).to_have_text("shipped")
        for consumer, event in (("shipping", "order.reserved"), ("fulfilment", "shipment.booked"),
                                ("customer_mail", "order.shipped")):
            expect(browser_page.locator(f"#delivery-{consumer} .state")).to_have_text("succeeded")
            expect(browser_page.locator(f"#delivery-{consumer} .event")).to_have_text(event)
        expect(browser_page.locator("#delivery-email .event")).to_have_text("order.created")
        screenshot(browser_page, "order-page-live")
