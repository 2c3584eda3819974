"""The order page in headless Chromium: its statuses change live while the deliveries run."""

from __future__ import annotations

import dataclasses
import os
import shutil

import pytest

from tasks.relay import relay_once
from tests.support.http_server import serve
from tests.support.orders import place
from web import create_app

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def browser_page():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: no Chromium at {CHROMIUM}")
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser.new_page()
        finally:
            browser.close()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the browser is what is tested
def test_order_page_shows_email_retrying_then_succeeded_live(
    browser_page, settings, celery_app, runtime, worker, smtp_sink, use_policies
):
    from playwright.sync_api import expect

    use_policies({"email": {"max_retries": 4, "backoff_base": 1.5, "backoff_max": 2.0, "jitter": False}})
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = 1, 451
    placed = place(runtime.session_factory)
    app = create_app({"ORDERFLOW_SETTINGS": dataclasses.replace(settings, sse_keepalive_seconds=1.0),
                      "AFTER_COMMIT": None})

    with serve(app) as url:
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
        expect(browser_page.locator("#stream-state")).to_have_text("all final", timeout=5_000)
