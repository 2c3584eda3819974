"""One trace per order (OpenTelemetry SDK, in-memory exporter; real Redis, database and worker).

POST /orders starts the trace; the relay's publish and every delivery attempt (a retried
email: two attempts) are spans of it, with consumer, attempt, outcome and delivery id;
no customer name or address in any attribute; a dead letter shows its trace id.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from outbox import dead_letters, tracing
from outbox.models import OutboxEvent
from tasks.relay import relay_once
from tests.support.orders import all_final, order_input
from tests.support.waiting import wait_until
from web import create_app


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use_provider(provider)
    yield exporter
    tracing.use_provider(None)


def test_an_order_is_one_trace_from_the_request_to_every_attempt(spans, settings, runtime, celery_app,
                                                                 worker, smtp_sink):
    sf = runtime.session_factory
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = 1, 451  # greylists the first mail
    api = create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None}).test_client()
    data = order_input(customer_name="Ada Secret-Name")
    response = api.post("/orders", json=data)
    assert response.status_code == 201
    event_id = response.json["event_id"]
    with sf() as session:
        stored = session.get(OutboxEvent, event_id).trace_context
    assert stored and stored.startswith("00-")

    relay_once(celery_app, runtime, grace_seconds=0)
    wait_until(lambda: all_final(sf, event_id), message="all three deliveries final")
    request = next(s for s in spans.get_finished_spans() if s.name == "POST /orders")
    trace_id = request.context.trace_id
    wait_until(lambda: len([s for s in spans.get_finished_spans() if s.name.startswith("deliver ")]) >= 4,
               message="four attempt spans")

    mine = [s for s in spans.get_finished_spans() if s.context.trace_id == trace_id]
    publish = [s for s in mine if s.name == "publish order.created"]
    assert len(publish) == 1 and publish[0].parent.span_id == request.context.span_id
    attempts = sorted((s.attributes["orderflow.consumer"], s.attributes["orderflow.attempt"],
                       s.attributes["orderflow.outcome"]) for s in mine if s.name.startswith("deliver "))
    assert attempts == [("analytics", 1, "succeeded"), ("email", 1, "retrying"), ("email", 2, "succeeded"),
                        ("inventory", 1, "succeeded")]
    for span in mine:
        if span.name.startswith("deliver "):
            assert span.parent.span_id == publish[0].context.span_id
            assert span.attributes["orderflow.delivery_id"] > 0
        values = " ".join(str(v) for v in span.attributes.values())
        assert data["customer_email"] not in values and "Secret-Name" not in values


def test_a_dead_letter_shows_its_trace_id(spans, settings, runtime, celery_app, worker, smtp_sink):
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = -1, 550  # every mail refused: dead
    api = create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None}).test_client()
    event_id = api.post("/orders", json=order_input()).json["event_id"]
    relay_once(celery_app, runtime, grace_seconds=0)
    wait_until(lambda: all_final(runtime.session_factory, event_id), message="final")

    request = next(s for s in spans.get_finished_spans() if s.name == "POST /orders")
    letter = dead_letters.show_dead_letter(runtime.session_factory, f"{event_id}:email")
    assert letter["state"] == "dead"
    assert letter["trace_id"] == format(request.context.trace_id, "032x")
