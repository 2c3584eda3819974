"""The two delivery modes side by side.

in_process (customer signup -> welcome email): runs with no broker at all, in
the request, and is lost if the process dies between the commit and the call.
durable (order -> confirmation email): goes through the outbox, so the relay
delivers it even when the process that committed died at once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import textwrap

from sqlalchemy import func, select

from config.settings import PROJECT_ROOT
from devtools.ports import free_port
from orders.models import Customer
from outbox.models import OutboxEvent
from tasks.relay import relay_once
from tests.support.orders import all_final, order_input
from tests.support.waiting import wait_until
from web import create_app

# Commits through the real use case, then dies where the after-commit callbacks would run.
CRASH_AFTER_COMMIT = textwrap.dedent("""
    import os, sys
    from orders.customers import sign_up_customer
    from outbox.db import make_engine, make_session_factory
    from orders.payments import SimulatedGateway
    from orders.place_order import place_order

    sessions = make_session_factory(make_engine(os.environ["DATABASE_URL"]))
    def die(event):
        print(event.id, flush=True)
        os._exit(3)
    if sys.argv[1] == "signup":
        sign_up_customer(session_factory=sessions, data={"email": sys.argv[2]}, after_commit=die)
    else:
        place_order(session_factory=sessions, gateway=SimulatedGateway(), data={
            "customer_email": sys.argv[2], "card_token": "tok_visa",
            "lines": [{"sku": "mug", "quantity": 1}],
            "shipping_address": {"line1": "1 Rue Lepic", "city": "Paris", "postcode": "75018",
                                 "country": "FR"}}, after_commit=die)
""")


def crash_after_commit(database_url: str, use_case: str, email: str) -> str:
    """Run `use_case` in a process that dies right after its commit; returns the event id."""
    done = subprocess.run([sys.executable, "-c", CRASH_AFTER_COMMIT, use_case, email],
                          cwd=PROJECT_ROOT, env={**os.environ, "DATABASE_URL": database_url},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr
    return done.stdout.strip()


def no_broker_app(settings):
    """The API with its broker and pub/sub pointed at a port where nothing listens."""
    nowhere = dataclasses.replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    return create_app({"ORDERFLOW_SETTINGS": nowhere, "AFTER_COMMIT": None}).test_client()


def test_signup_sends_the_welcome_email_in_process_with_no_broker(settings, runtime, smtp_sink):
    response = no_broker_app(settings).post("/customers", json={"email": "Grace@Example.com",
                                                                 "name": "Grace"})

    assert response.status_code == 201, response.json
    assert response.json["customer"]["email"] == "grace@example.com"
    # In-process: the mail is sent before the response returns, no worker involved.
    [mail] = smtp_sink.messages()
    assert b"Subject: Welcome to orderflow" in mail and b"To: Grace <grace@example.com>" in mail


def test_a_failing_in_process_subscriber_is_logged_and_never_breaks_the_request(
    settings, runtime, smtp_sink, caplog
):
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = -1, 550
    caplog.set_level(logging.ERROR, logger="outbox.in_process")

    response = no_broker_app(settings).post("/customers", json={"email": "linus@example.com"})

    assert response.status_code == 201
    with runtime.session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Customer)) == 1
    assert smtp_sink.messages() == []
    assert "welcome" in caplog.text and "SMTP 550" in caplog.text


def test_signup_errors_are_json(settings, runtime, smtp_sink):
    api = no_broker_app(settings)
    assert api.post("/customers", json={"email": "twice@example.com"}).status_code == 201
    again = api.post("/customers", json={"email": "TWICE@example.com"})
    assert again.status_code == 409 and again.json["error"]["code"] == "customer_exists"
    invalid = api.post("/customers", json={"email": "not-an-email"})
    assert invalid.status_code == 422 and invalid.json["error"]["details"][0]["field"] == "email"
    assert len(smtp_sink.messages()) == 1


def test_process_dies_after_commit_in_process_is_lost_durable_is_delivered(
    settings, celery_app, runtime, worker, smtp_sink
):
    signup_event = crash_after_commit(settings.database_url, "signup", "lost@example.com")
    order_event = crash_after_commit(settings.database_url, "order", "kept@example.com")

    # Both processes committed: the customer and the order exist, with their events.
    with runtime.session_factory() as session:
        assert session.get(OutboxEvent, signup_event) is not None
        assert session.get(OutboxEvent, order_event) is not None
    # The relay picks up the outbox: the durable subscribers get the order...
    relay_once(celery_app, runtime, grace_seconds=0)
    wait_until(lambda: all_final(runtime.session_factory, order_event))
    [mail] = smtp_sink.messages()
    # ...and nothing ever sends the welcome mail: in-process delivery died with the process.
    assert b"To: kept@example.com" in mail and b"lost@example.com" not in mail
    with runtime.session_factory() as session:
        assert session.get(OutboxEvent, signup_event).published_at is not None  # no durable subscriber


def test_order_through_the_api_runs_in_process_and_durable_paths_together(
    settings, runtime, smtp_sink
):
    # Placing an order has no in-process subscriber: nothing is sent in the request.
    response = no_broker_app(settings).post("/orders", json=order_input())
    assert response.status_code == 201
    assert smtp_sink.messages() == []
    deliveries = response.json["order"]["events"][0]["deliveries"]
    assert set(deliveries) == {"email", "inventory", "analytics"}  # durable ones only
