"""examples/flask_app.py: a Flask view places an order that orderflow's worker delivers."""

from __future__ import annotations

import importlib.util

import pytest

from config.settings import PROJECT_ROOT
from orders.payments import CARD_DECLINED
from tasks.relay import relay_once
from tests.support.bad_requests import BAD_ORDER_REQUESTS
from tests.support.orders import all_final, order_input
from tests.support.waiting import wait_until
from web import create_app


@pytest.fixture
def flask_example():
    spec = importlib.util.spec_from_file_location("flask_app", PROJECT_ROOT / "examples" / "flask_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checkout_view_order_is_delivered_by_the_orderflow_worker(
    flask_example, settings, celery_app, runtime, worker, redis_url
):
    app = flask_example.create_app({"ORDERFLOW_SETTINGS": settings, "CELERY": {"broker_url": redis_url}})
    assert app.extensions["celery"] is celery_app  # one Celery app: orderflow's

    response = app.test_client().post("/checkout", json=order_input())
    assert response.status_code == 201
    order_id = response.json["order_id"]
    relay_once(celery_app, runtime, grace_seconds=0)  # in case the fast path has not sent it yet

    [event] = app.test_client().get(f"/orders/{order_id}").json["order"]["events"]
    assert wait_until(lambda: all_final(runtime.session_factory, event["event_id"])) == {
        "email": "succeeded", "inventory": "succeeded", "analytics": "succeeded"}


def test_checkout_view_maps_orderflow_errors(flask_example, settings, runtime, redis_url):
    app = flask_example.create_app({"ORDERFLOW_SETTINGS": settings, "CELERY": {"broker_url": redis_url}})
    response = app.test_client().post("/checkout", json=order_input(card_token=CARD_DECLINED))
    assert response.status_code == 402 and response.json["error"]["code"] == "payment_declined"


@pytest.mark.parametrize(("case", "body", "content_type"), BAD_ORDER_REQUESTS,
                         ids=[case for case, _, _ in BAD_ORDER_REQUESTS])
def test_checkout_answers_bad_input_exactly_like_the_api(flask_example, settings, runtime, redis_url,
                                                         case, body, content_type):
    example = flask_example.create_app({"ORDERFLOW_SETTINGS": settings, "CELERY": {"broker_url": redis_url}})
    api = create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None})

    got = example.test_client().post("/checkout", data=body, content_type=content_type)
    expected = api.test_client().post("/orders", data=body, content_type=content_type)

    assert 400 <= expected.status_code < 500
    assert (got.status_code, got.json) == (expected.status_code, expected.json)
    assert set(got.json) == {"error"} and {"code", "message"} <= set(got.json["error"])
