"""The whole chain through a real worker, with the shipping service on a database of its own:
placed -> reserved -> shipped (two mails), and 00000 -> cancelled (refund, stock back, one mail)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from orders.models import Order
from outbox.clock import utcnow
from outbox.models import Delivery, OutboxEvent
from shipping.models import Shipment
from tasks.relay import relay_once
from tasks.republisher import reconcile_once
from tests.support.orders import address, place, stock
from tests.support.waiting import wait_until


@pytest.fixture
def settings(settings, shipping_url):  # the integration settings, shipping on its own database
    return replace(settings, shipping_database_url=shipping_url)


def order_of(runtime, order_id: str) -> Order:
    with runtime.session_factory() as session:
        order = session.get(Order, order_id, options=[selectinload(Order.lines)])
    assert order is not None
    return order


def pumped(celery_app, runtime, order_id: str, wanted: str) -> bool:
    """One pass of both services' relays; whether the order reached `wanted`."""
    for service in ("orders", "shipping"):
        relay_once(celery_app, runtime, grace_seconds=0, service=service)
    return order_of(runtime, order_id).status == wanted


def mails_sent(celery_app, runtime, smtp_sink, count: int) -> bool:
    """Relay what the last hop wrote (order.shipped / order.cancelled), then count the mails:
    a pass that published something is not yet a mail sent."""
    relay_once(celery_app, runtime, grace_seconds=0)
    return len(smtp_sink.messages()) >= count


def test_an_order_is_booked_by_the_shipping_service_in_its_own_database_and_ships(
    celery_app, runtime, worker, smtp_sink
):
    placed = place(runtime.session_factory)
    wait_until(lambda: pumped(celery_app, runtime, placed.order_id, "shipped"), interval=0.1,
               message="shipped")
    wait_until(lambda: mails_sent(celery_app, runtime, smtp_sink, 2), interval=0.1, message="both mails sent")

    order = order_of(runtime, placed.order_id)
    ship_db = runtime.sessions("shipping")
    with ship_db() as session:
        [shipment] = session.scalars(select(Shipment)).all()
        [booked] = session.scalars(select(OutboxEvent)).all()  # the shipping outbox: its event only
        [record] = session.scalars(select(Delivery)).all()  # and its consumer's record
    assert (shipment.order_id, shipment.status) == (placed.order_id, "booked")
    assert order.tracking_number == shipment.tracking_number
    assert booked.event_type == "shipment.booked" and record.consumer == "shipping"
    with runtime.session_factory() as session:  # nothing of shipping's in the orders database
        assert session.scalars(select(Delivery).where(Delivery.consumer == "shipping")).all() == []
    subjects = sorted(" ".join(str(message_from_bytes(m)["Subject"]).split())
                      for m in smtp_sink.messages())
    assert subjects == [f"Your order {placed.order_id} has shipped",
                        f"Your order {placed.order_id} is confirmed"]


def test_postcode_00000_is_compensated_refund_stock_and_cancelled(celery_app, runtime, worker, smtp_sink):
    before = stock(runtime.session_factory, "poster")
    placed = place(runtime.session_factory, lines=[{"sku": "poster", "quantity": 4}],
                   shipping_address=address(postcode="00000"))
    wait_until(lambda: pumped(celery_app, runtime, placed.order_id, "cancelled"), interval=0.1,
               message="cancelled")
    wait_until(lambda: mails_sent(celery_app, runtime, smtp_sink, 2), interval=0.1, message="both mails sent")

    order = order_of(runtime, placed.order_id)
    assert order.refund_id == "re_" + placed.payment_id.removeprefix("pay_") and order.refunded_at
    assert stock(runtime.session_factory, "poster") == before
    assert [line.fulfilment for line in order.lines] == ["released"]
    cancelled = [m for m in map(message_from_bytes, smtp_sink.messages())
                 if " ".join(str(m["Subject"]).split()).endswith("is cancelled")]
    assert len(cancelled) == 1 and "00000" in cancelled[0].get_payload(decode=True).decode()


def test_a_message_lost_between_the_two_databases_is_resent_by_the_reconciler(
    celery_app, runtime, worker, smtp_sink
):
    # order.reserved is written in the orders database and its consumer (shipping) records its
    # deliveries in its own: the orders relay's reconciler must read the shipping records to
    # see that this delivery never happened, or the order stays `reserved` for good.
    placed = place(runtime.session_factory)
    relay_once(celery_app, runtime, grace_seconds=0)  # order.created only: nothing else yet

    def reserved_event() -> str | None:
        with runtime.session_factory() as session:
            return session.scalar(select(OutboxEvent.id).where(
                OutboxEvent.aggregate_id == placed.order_id, OutboxEvent.event_type == "order.reserved"))

    event_id = wait_until(reserved_event, message="inventory wrote order.reserved")
    lost_at = utcnow() - timedelta(seconds=runtime.settings.reconcile_after_seconds + 60)
    with runtime.session_factory.begin() as session:  # published, as far as the outbox knows; never sent
        session.execute(update(OutboxEvent).where(OutboxEvent.id == event_id).values(published_at=lost_at))

    assert reconcile_once(celery_app, runtime) == 1
    wait_until(lambda: pumped(celery_app, runtime, placed.order_id, "shipped"), interval=0.1,
               message="shipped after the reconciler resent order.reserved")
    with runtime.sessions("shipping")() as session:
        assert len(session.scalars(select(Shipment)).all()) == 1
    assert reconcile_once(celery_app, runtime) == 0  # delivered: nothing overdue any more
