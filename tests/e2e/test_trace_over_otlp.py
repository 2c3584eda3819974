"""One trace per order, received over OTLP/HTTP from the real processes `make run` starts.

gunicorn, the relay and the three consumer workers export to a local receiver
(devtools/otlp_receiver.py); the SMTP sink greylists the first two messages (451), so
the email is tried three times. One trace must hold the request, the publish and
every attempt, and no attribute (nor any process's log, nor /metrics) may carry the
customer's name or email address.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest

from devtools.otlp_receiver import OtlpReceiver
from devtools.trace_tree import Span, render
from tests.support.local_run import LocalRun, http_json, local_run
from tests.support.orders import order_input
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

GREYLISTED = {"SMTP_SINK_FAIL_CODE": "451", "SMTP_SINK_FAIL_FIRST": "2"}
# Short email backoff so the three attempts come round within the test (caps of about a second).
FAST_EMAIL = json.dumps({"email": {"max_retries": 4, "backoff_base": 0.3, "backoff_max": 1.0}})


def all_succeeded(system: LocalRun, order_id: str) -> dict[str, str] | None:
    _, body = http_json("GET", f"{system.web}/orders/{order_id}")
    states = {c: d["state"] for c, d in body["order"]["events"][0]["deliveries"].items()}
    return states if set(states.values()) == {"succeeded"} else None


def attempts(spans: list[Span], event_id: str) -> list[tuple[str, int, str]]:
    """The delivery attempts of `event_id` (the trace goes on with the order's follow-up events:
    order.reserved to shipping and onwards, each its own publish and deliveries)."""
    return sorted((s["attributes"]["orderflow.consumer"], s["attributes"]["orderflow.attempt"],
                   s["attributes"]["orderflow.outcome"]) for s in spans
                  if s["name"].startswith("deliver ")
                  and s["attributes"].get("orderflow.event_id") == event_id)


EXPECTED = [("analytics", 1, "succeeded"), ("email", 1, "retrying"), ("email", 2, "retrying"),
            ("email", 3, "succeeded"), ("inventory", 1, "succeeded")]


@pytest.mark.timeout(300)  # make run's start and stop, on a loaded machine
def test_an_order_with_a_greylisted_email_is_one_trace_from_the_request_to_every_attempt(tmp_path: Path):
    with OtlpReceiver(tmp_path / "traces.jsonl") as receiver, local_run(
            tmp_path, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, ORDERFLOW_RETRY_POLICIES=FAST_EMAIL,
            **GREYLISTED) as system:
        data = order_input(customer_name="Ada Secret-Name", customer_email="ada.private@example.com")
        status, created = http_json("POST", f"{system.web}/orders", data)
        assert status == 201, created
        order_id, event_id = created["order"]["id"], created["event_id"]
        try:
            wait_until(lambda: all_succeeded(system, order_id), timeout=60, interval=0.2,
                       message="every delivery succeeded")
        except AssertionError as error:
            raise AssertionError(f"{error}\n{system.output()[-5000:]}") from None

        def the_trace() -> list[Span] | None:
            for spans in receiver.traces().values():
                if any(s["attributes"].get("orderflow.order_id") == order_id for s in spans) and \
                        attempts(spans, event_id) == EXPECTED:
                    return spans
            return None

        try:  # each process exports on its own schedule (every 0.5 s)
            spans = wait_until(the_trace, timeout=20, interval=0.2, message="the order's whole trace")
        except AssertionError:
            raise AssertionError(json.dumps(receiver.traces(), indent=1)[-6000:]) from None
        with urllib.request.urlopen(f"{system.web}/metrics", timeout=10) as response:
            metrics = response.read().decode()
        logs = system.output()  # every process's log lines, as make run prints them

    print("\n".join(render(spans[0]["trace_id"], spans)))  # what `otlp_receiver show` prints
    [request] = [s for s in spans if s["name"] == "POST /orders"]
    assert request["parent_span_id"] is None and request["attributes"]["orderflow.event_id"] == event_id
    [publish] = [s for s in spans if s["name"] == "publish order.created"]
    assert publish["parent_span_id"] == request["span_id"]
    assert publish["attributes"]["orderflow.outcome"] == "published"
    of_the_order = [s for s in spans if s["attributes"].get("orderflow.event_id") == event_id]
    delivers = [s for s in of_the_order if s["name"].startswith("deliver ")]
    assert len(delivers) == len(EXPECTED) and len(of_the_order) == len(EXPECTED) + 2
    for span in delivers:
        assert span["parent_span_id"] == publish["span_id"]
        assert span["attributes"]["orderflow.event_id"] == event_id
        assert span["attributes"]["orderflow.delivery_id"] > 0
    # Every attempt of one delivery has the same record; the consumers have one each.
    assert len({s["attributes"]["orderflow.delivery_id"] for s in delivers}) == 3
    # No personal data anywhere in the trace (the whole received stream, resource included).
    received = (tmp_path / "traces.jsonl").read_text()
    for personal in ("Secret-Name", "ada.private", data["customer_name"], data["customer_email"]):
        assert personal not in received, personal
        # Nor in any process's log or a metric label.
        assert personal not in logs and personal not in metrics, personal
    assert "orderflow_" in metrics  # the page was read
