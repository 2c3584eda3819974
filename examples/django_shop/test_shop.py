"""The example Django shop: orderflow's place_order from a view, and delay_on_commit from a model change."""

from __future__ import annotations

import pytest
import redis
from django.test import Client
from shop.models import Feedback

from orders.payments import CARD_DECLINED
from tasks.relay import relay_once
from tests.support.bad_requests import BAD_ORDER_REQUESTS
from tests.support.orders import all_final, order_input
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db


def queued(redis_url: str, queue: str) -> int:
    return int(redis.Redis.from_url(redis_url).llen(queue))


def test_order_view_places_an_order_through_the_outbox(orderflow):
    response = Client().post("/orders/", order_input(), content_type="application/json")

    assert response.status_code == 201, response.content
    shown = Client().get(f"/orders/{response.json()['order_id']}/").json()["order"]
    [event] = shown["events"]
    assert event["event_id"] == response.json()["event_id"]
    assert set(event["deliveries"]) == {"email", "inventory", "analytics"}


def test_order_view_declined_card_is_402_and_writes_nothing(orderflow):
    response = Client().post("/orders/", order_input(card_token=CARD_DECLINED),
                             content_type="application/json")

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "payment_declined"
    assert Client().get("/orders/nope/").status_code == 404


def test_feedback_enqueues_its_task_only_when_the_transaction_commits(
    orderflow, redis_url, django_capture_on_commit_callbacks
):
    from tests.support.redis_server import flush

    flush(redis_url)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = Client().post("/feedback/", {"email": "joan@example.com", "message": "Lovely mug"},
                                 content_type="application/json")
        assert response.status_code == 201
        assert Feedback.objects.filter(email="joan@example.com").exists()

    assert len(callbacks) == 1
    assert queued(redis_url, "notifications") == 0  # not sent while the transaction was open
    callbacks[0]()  # what Django runs at commit
    assert queued(redis_url, "notifications") == 1


def test_feedback_rolled_back_enqueues_nothing(orderflow, redis_url, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = Client().post("/feedback/", {"email": ""}, content_type="application/json")
    assert response.status_code == 422 and callbacks == []


def test_with_a_real_worker_both_views_side_effects_happen(
    orderflow, celery_app, runtime, worker, smtp_sink, django_capture_on_commit_callbacks
):
    placed = Client().post("/orders/", order_input(customer_email="ada@example.com"),
                           content_type="application/json").json()
    with django_capture_on_commit_callbacks(execute=True):
        Client().post("/feedback/", {"email": "joan@example.com", "message": "More mugs"},
                      content_type="application/json")
    relay_once(celery_app, runtime, grace_seconds=0)  # whatever the fast path did not send

    final = wait_until(lambda: all_final(runtime.session_factory, placed["event_id"]))
    assert final == {"email": "succeeded", "inventory": "succeeded", "analytics": "succeeded"}
    mails = wait_until(lambda: len(smtp_sink.messages()) == 2 and smtp_sink.messages())
    subjects = sorted(m.split(b"Subject: ")[1].split(b"\n")[0].strip() for m in mails)
    assert subjects == [b"Thanks for your feedback", f"Your order {placed['order_id']} is confirmed".encode()]


@pytest.mark.parametrize(("case", "body", "content_type"), BAD_ORDER_REQUESTS,
                         ids=[case for case, _, _ in BAD_ORDER_REQUESTS])
def test_order_view_answers_bad_input_exactly_like_the_api(orderflow, settings, case, body, content_type):
    from web import create_app

    api = create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None})
    expected = api.test_client().post("/orders", data=body, content_type=content_type)

    got = Client().post("/orders/", body, content_type=content_type)

    assert 400 <= expected.status_code < 500
    assert (got.status_code, got.json()) == (expected.status_code, expected.json)
