"""Events that cause events: inventory's effect writes order.reserved / order.backordered to
the outbox in its own transaction; the relay publishes them; a backordered order gets one
"some items are delayed" mail, however often each message is delivered."""

from __future__ import annotations

from email import message_from_bytes

from sqlalchemy import select, update

from orders.models import Order
from outbox.models import OutboxEvent
from tasks.publisher import publish_events
from tasks.relay import relay_once
from tests.support.orders import all_final, outbox_event, place, stock
from tests.support.waiting import wait_until


def events_of(session_factory, order_id: str) -> list[OutboxEvent]:
    with session_factory() as session:
        return list(session.scalars(select(OutboxEvent).where(OutboxEvent.aggregate_id == order_id)
                                    .order_by(OutboxEvent.created_at)))


def status(session_factory, order_id: str) -> str:
    with session_factory() as session:
        return session.get(Order, order_id).status  # type: ignore[union-attr]


def relay_until_quiet(celery_app, runtime) -> None:
    while relay_once(celery_app, runtime, grace_seconds=0):
        pass


def test_a_reserved_order_writes_order_reserved_once_with_its_address(celery_app, runtime, worker):
    placed = place(runtime.session_factory, lines=[{"sku": "mug", "quantity": 2}])
    relay_until_quiet(celery_app, runtime)
    wait_until(lambda: all_final(runtime.session_factory, placed.event_id))

    assert status(runtime.session_factory, placed.order_id) == "reserved"
    [created, reserved] = events_of(runtime.session_factory, placed.order_id)
    assert (created.event_type, reserved.event_type) == ("order.created", "order.reserved")
    assert reserved.payload["shipping_address"] == placed.shipping_address
    assert reserved.payload["lines"] == [{"sku": "mug", "quantity": 2, "fulfilment": "reserved"}]
    assert reserved.payload["event_id"] == reserved.id and reserved.published_at is None
    relay_until_quiet(celery_app, runtime)
    assert outbox_event(runtime.session_factory, reserved.id).published_at is not None


def test_an_order_placed_before_addresses_is_reserved_and_not_sent_to_shipping(celery_app, runtime,
                                                                             worker):
    # Placed before migration 0008 (address columns null), its order.created handled after the
    # upgrade: stock taken and `reserved` as usual, but no order.reserved: nowhere to ship to.
    placed = place(runtime.session_factory, lines=[{"sku": "mug", "quantity": 1}])
    with runtime.session_factory.begin() as session:
        session.execute(update(Order).where(Order.id == placed.order_id).values(
            ship_line1=None, ship_city=None, ship_postcode=None, ship_country=None))
    relay_until_quiet(celery_app, runtime)
    wait_until(lambda: all_final(runtime.session_factory, placed.event_id))

    assert status(runtime.session_factory, placed.order_id) == "reserved"
    assert [e.event_type for e in events_of(runtime.session_factory, placed.order_id)] == ["order.created"]


def test_a_backordered_order_gets_one_delay_mail_however_often_each_hop_is_delivered(
    celery_app, runtime, worker, smtp_sink
):
    before = stock(runtime.session_factory, "poster")
    placed = place(runtime.session_factory, lines=[{"sku": "poster", "quantity": before + 1},
                                                   {"sku": "mug", "quantity": 1}])
    created = outbox_event(runtime.session_factory, placed.event_id)
    publish_events(celery_app, [created])
    publish_events(celery_app, [created])  # inventory's message twice: one effect, one event
    wait_until(lambda: all_final(runtime.session_factory, placed.event_id))
    wait_until(lambda: len(events_of(runtime.session_factory, placed.order_id)) == 2)
    backordered = events_of(runtime.session_factory, placed.order_id)[1]
    assert backordered.event_type == "order.backordered"
    assert status(runtime.session_factory, placed.order_id) == "backordered"

    publish_events(celery_app, [backordered])
    publish_events(celery_app, [backordered])  # the mail's message twice: one mail
    wait_until(lambda: all_final(runtime.session_factory, backordered.id, consumers=1))
    relay_until_quiet(celery_app, runtime)  # and the relay's own copy of both events
    wait_until(lambda: len(smtp_sink.messages()) >= 2, message="confirmation and delay mail")

    assert stock(runtime.session_factory, "poster") == before  # nothing taken for the poster
    assert len(events_of(runtime.session_factory, placed.order_id)) == 2
    delayed = [m for m in map(message_from_bytes, smtp_sink.messages())
               if " ".join(str(m["Subject"]).split()).endswith("are delayed")]
    assert len(delayed) == 1
    body = delayed[0].get_payload(decode=True).decode()
    assert f"{before + 1} x poster" in body and "1 x mug" not in body
    assert len(smtp_sink.messages()) == 2
