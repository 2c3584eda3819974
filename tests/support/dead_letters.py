"""An order whose confirmation email dead-letters (the SMTP server rejects it with 550)."""

from __future__ import annotations

from celery import Celery

from devtools.smtp_sink import SmtpSink
from orders.place_order import PlacedOrder
from tasks.relay import relay_once
from tasks.runtime import Runtime
from tests.support.orders import all_final, deliveries_of, place
from tests.support.waiting import wait_until


def order_with_dead_email(
    celery_app: Celery, runtime: Runtime, smtp_sink: SmtpSink
) -> tuple[PlacedOrder, int]:
    """Place and deliver an order while SMTP rejects mail; returns it and the email delivery id."""
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = -1, 550
    placed = place(runtime.session_factory)
    relay_once(celery_app, runtime, grace_seconds=0)
    final = wait_until(lambda: all_final(runtime.session_factory, placed.event_id),
                       message="deliveries final")
    assert final == {"email": "dead", "inventory": "succeeded", "analytics": "succeeded"}
    smtp_sink.handler.fail_first = 0  # healthy again from now on
    return placed, deliveries_of(runtime.session_factory, placed.event_id)["email"].id
