"""The operator page in headless Chromium: a dead-lettered email, Replay, and it turns `succeeded`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from tests.support.browser import screenshot
from tests.support.dead_letters import order_with_dead_email
from tests.support.http_server import serve
from tests.support.orders import deliveries_of
from web import create_app

pytestmark = pytest.mark.browser
PASSWORD = "browser-test-password"


@pytest.fixture
def web_url(settings, runtime, celery_app) -> Iterator[str]:
    """The real web app on a loopback port (threaded server), replaying through the real broker."""
    configured = dataclasses.replace(settings, admin_password=PASSWORD)
    with serve(create_app({"ORDERFLOW_SETTINGS": configured, "AFTER_COMMIT": None})) as url:
        yield url


def test_replay_button_turns_a_dead_email_into_a_succeeded_one(chromium, web_url, celery_app, runtime,
                                                               worker, smtp_sink, database_url):
    placed, email_id = order_with_dead_email(celery_app, runtime, smtp_sink)  # sink healthy afterwards
    context = chromium.new_context(http_credentials={"username": "admin", "password": PASSWORD})
    try:
        page = context.new_page()
        page.goto(f"{web_url}/admin")
        letter = page.locator(f'#dead-letters tr[data-order="{placed.order_id}"]')
        assert "SMTP 550" in letter.inner_text()
        email_state = page.locator(f'#orders tr[data-order="{placed.order_id}"] '
                                   '[data-consumer="email"] .state')
        assert email_state.inner_text() == "dead"
        kind = "postgres" if database_url.startswith("postgresql") else "sqlite"
        screenshot(page, f"operator-dead-letter-{kind}")

        letter.get_by_role("button", name="Replay").click()
        page.get_by_role("status").wait_for()  # the notice after the redirect
        assert f"replayed delivery {email_id}" in page.get_by_role("status").inner_text()
        # The page refreshes itself while a delivery is in flight: no manual reload.
        page.locator(f'#orders tr[data-order="{placed.order_id}"] [data-consumer="email"] '
                     '.state-succeeded').wait_for(timeout=20000)
        assert page.locator(f'#dead-letters tr[data-order="{placed.order_id}"]').count() == 0
        screenshot(page, f"operator-after-replay-{kind}")
    finally:
        context.close()
    assert deliveries_of(runtime.session_factory, placed.event_id)["email"].state == "succeeded"
    assert len(smtp_sink.messages()) == 1
