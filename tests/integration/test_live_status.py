"""Live delivery status: a real HTTP client reads GET /orders/<id>/events from the stream server
(live/, on a real socket), fed by the real Redis pub/sub and database."""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
from urllib.parse import urlsplit

import pytest

from devtools.ports import free_port
from orders.queries import get_order
from tasks import runtime as runtime_module
from tasks.relay import relay_once
from tests.support.http_server import serve
from tests.support.orders import deliveries_of, place
from tests.support.sse import SseItem, open_stream, read_until_end
from tests.support.stream_server import serve_streams
from tests.support.waiting import wait_until
from web import create_app

# An order's stream ends once its whole chain is final: order.created's three deliveries, then
# order.reserved -> shipping, shipment.booked -> fulfilment, order.shipped -> customer_mail.
CHAIN = {"email": "succeeded", "inventory": "succeeded", "analytics": "succeeded", "shipping": "succeeded",
         "fulfilment": "succeeded", "customer_mail": "succeeded"}


def relay_both(celery_app, runtime) -> None:
    """One pass of both services' relays (no relay process runs in these tests)."""
    for service in ("orders", "shipping"):
        relay_once(celery_app, runtime, grace_seconds=0, service=service)


def chain_done(celery_app, runtime, order_id: str) -> bool:
    relay_both(celery_app, runtime)
    order = get_order(runtime.session_factory, order_id)
    states = [d["state"] for e in order["events"] for d in e["deliveries"].values()]
    return order["status"] == "shipped" and len(order["events"]) == 4 and set(states) == {"succeeded"}


@pytest.fixture
def live_settings(settings):
    return dataclasses.replace(settings, sse_keepalive_seconds=0.5)


@pytest.fixture
def base_url(live_settings, runtime):
    with serve_streams(live_settings) as url:
        yield url


def email_changes(items: list[SseItem]) -> list[tuple[str, int]]:
    return [(i.data["state"], i.data["attempts"]) for i in items
            if i.kind == "message" and i.data["consumer"] == "email"]


@pytest.mark.both_brokers
def test_stream_shows_email_retrying_twice_then_succeeded_in_order(
    base_url, celery_app, runtime, worker, smtp_sink, use_policies
):
    use_policies({"email": {"max_retries": 4, "backoff_base": 0.3, "backoff_max": 1.0, "jitter": False}})
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = 2, 451
    placed = place(runtime.session_factory)

    collected: list[SseItem] = []
    reader = threading.Thread(target=read_until_end, kwargs={
        "url": f"{base_url}/orders/{placed.order_id}/events", "timeout": 30, "into": collected})
    reader.start()
    # The stream shows the current state (3 x pending) before anything is delivered.
    wait_until(lambda: len(collected) >= 3, timeout=10, message="the stream's first items")
    relay_once(celery_app, runtime, grace_seconds=0)
    # The chain goes on once the confirmation is out (the sink's two failures are its own).
    wait_until(lambda: getattr(deliveries_of(runtime.session_factory, placed.event_id).get("email"), "state",
                               None) == "succeeded")
    wait_until(lambda: relay_both(celery_app, runtime) or not reader.is_alive(), timeout=40, interval=0.1,
               message="the stream ended")
    reader.join(timeout=10)

    assert not reader.is_alive()
    assert collected[-1].kind == "end"
    changes = email_changes(collected)
    assert changes[0] == ("pending", 0)  # the current state comes first
    assert [c for c in changes if c[0] in ("retrying", "succeeded", "dead")] == [
        ("retrying", 1), ("retrying", 2), ("succeeded", 3)]
    finals = {i.data["consumer"]: i.data["state"] for i in collected if i.kind == "message"}
    # It ends at the end of the chain: a hop that looks final asks the database, which shows
    # the next event (live/stream.py), instead of ending between two hops.
    assert finals == CHAIN
    assert sum(b"is confirmed" in m for m in smtp_sink.messages()) == 1


def test_stream_starts_with_current_state_and_sends_keepalives(base_url, runtime):
    placed = place(runtime.session_factory)  # nothing delivers it: the stream stays open

    conn, stream = open_stream(f"{base_url}/orders/{placed.order_id}/events", timeout=10)
    try:
        assert stream.status == 200
        assert stream.content_type.startswith("text/event-stream")
        first = [next(stream.items) for _ in range(3)]
        comment = next(stream.items)
    finally:
        conn.close()
    assert {(i.data["consumer"], i.data["state"]) for i in first} == {
        ("email", "pending"), ("inventory", "pending"), ("analytics", "pending")}
    assert comment.kind == "comment" and comment.data == "keep-alive"


def test_stream_of_a_finished_order_ends_at_once(base_url, celery_app, runtime, worker):
    placed = place(runtime.session_factory)
    wait_until(lambda: chain_done(celery_app, runtime, placed.order_id), interval=0.1)

    items = read_until_end(f"{base_url}/orders/{placed.order_id}/events", timeout=10)

    assert [i.kind for i in items] == ["message"] * 6 + ["end"]
    assert {i.data["consumer"]: i.data["state"] for i in items[:6]} == CHAIN


def test_unknown_order_stream_is_a_json_404(base_url):
    conn, stream = open_stream(f"{base_url}/orders/nope/events", timeout=10)
    conn.close()
    assert stream.status == 404 and stream.content_type == "application/json"


def test_without_pubsub_deliveries_still_succeed_and_the_stream_still_ends(
    live_settings, celery_app, runtime, worker
):
    # Live announcements and the stream's subscription both go to a Redis that is not there;
    # the broker (celery_app) is still the real one.
    dead_redis = f"redis://127.0.0.1:{free_port()}/0"
    no_pubsub = dataclasses.replace(live_settings, redis_url=dead_redis)
    runtime_module.configure(no_pubsub)
    placed = place(runtime.session_factory)

    with serve_streams(no_pubsub) as url:
        wait_until(lambda: chain_done(celery_app, runtime, placed.order_id), interval=0.1)
        items = read_until_end(f"{url}/orders/{placed.order_id}/events", timeout=30)

    assert items[-1].kind == "end"
    assert {i.data["consumer"]: i.data["state"] for i in items if i.kind == "message"} == CHAIN


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", parts.path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_api_sends_stream_clients_to_the_stream_server(live_settings, runtime):
    placed = place(runtime.session_factory)
    settings = dataclasses.replace(live_settings, stream_public_url="http://streams.example:8001")
    with serve(create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None})) as api:
        status, headers, _ = get(f"{api}/orders/{placed.order_id}/events")
        missing, missing_headers, body = get(f"{api}/orders/nope/events")
        _, _, page = get(f"{api}/orders/{placed.order_id}/page")

    assert status == 307
    assert headers["Location"] == f"http://streams.example:8001/orders/{placed.order_id}/events"
    assert missing == 404 and json.loads(body)["error"]["code"] == "order_not_found"
    assert f"http://streams.example:8001/orders/{placed.order_id}/events".encode() in page


def test_beyond_the_caps_the_answer_is_json_with_retry_after(live_settings, runtime):
    placed = place(runtime.session_factory)  # nothing delivers it: the streams stay open
    url = f"/orders/{placed.order_id}/events"
    per_client = dataclasses.replace(live_settings, stream_max_per_client=2)
    with serve_streams(per_client) as streams:
        held = [open_stream(streams + url, timeout=10) for _ in range(2)]
        try:
            assert [s.status for _c, s in held] == [200, 200]
            status, headers, body = get(streams + url)
        finally:
            for conn, _s in held:
                conn.close()
        # A closed stream frees its slot at once (not at its next keep-alive).
        wait_until(lambda: get(f"{streams}/healthz")[2] and
                   json.loads(get(f"{streams}/healthz")[2])["open_streams"] == 0, timeout=5)
        again = open_stream(streams + url, timeout=10)
        again[0].close()
    assert status == 429 and headers["Retry-After"] == "10"
    assert json.loads(body)["error"]["code"] == "too_many_streams_from_client"
    assert again[1].status == 200

    full = dataclasses.replace(live_settings, stream_max_open=1)
    with serve_streams(full) as streams:
        conn, first = open_stream(streams + url, timeout=10)
        try:
            status, headers, body = get(streams + url)
        finally:
            conn.close()
    assert first.status == 200
    assert status == 503 and headers["Retry-After"] == "5"
    assert json.loads(body)["error"]["code"] == "too_many_streams"


def test_a_reconnecting_client_gets_the_current_state_from_the_database(
    base_url, celery_app, runtime, worker
):
    placed = place(runtime.session_factory)
    conn, stream = open_stream(f"{base_url}/orders/{placed.order_id}/events", timeout=10)
    first = [next(stream.items) for _ in range(3)]
    conn.close()  # the client drops off; meanwhile everything is delivered
    wait_until(lambda: chain_done(celery_app, runtime, placed.order_id), interval=0.1)

    status, _, body = get(f"{base_url}/orders/{placed.order_id}/events", headers={"Last-Event-ID": "3"})

    assert {i.data["state"] for i in first} == {"pending"}
    assert status == 200
    text = body.decode()
    assert text.count('"state": "succeeded"') == 6 and text.rstrip().endswith('data: {"final": true}')
