"""The JSON API over a real database: status codes, error shape, nothing written on errors."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from config.settings import Settings
from orders.models import Order
from orders.payments import CARD_DECLINED, CARD_TIMEOUT
from outbox.models import OutboxEvent
from tests.support.orders import order_input
from web import create_app


@pytest.fixture
def api(settings, runtime):
    return create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None}).test_client()


def rows(session_factory, model) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(model))


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["code"] == code and error["message"]
    return error


def test_post_order_201_then_get_shows_pending_deliveries(api):
    created = api.post("/orders", json=order_input(lines=[{"sku": "poster", "quantity": 2}]))

    assert created.status_code == 201
    order = created.json["order"]
    assert created.headers["Location"] == f"/orders/{order['id']}"
    assert order["total_cents"] == 3600
    shown = api.get(f"/orders/{order['id']}").json["order"]
    assert (shown["status"], order["status"]) == ("placed", "placed")
    assert shown["shipping_address"] == order["shipping_address"] == order_input()["shipping_address"]
    [event] = shown["events"]
    assert event["event_id"] == created.json["event_id"]
    assert {c: d["state"] for c, d in event["deliveries"].items()} == {
        "email": "pending", "inventory": "pending", "analytics": "pending"}


def test_post_order_answers_what_get_shows_without_reading_it_back(api):
    engine = api.application.extensions["orderflow"].session_factory.kw["bind"]
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        created = api.post("/orders", json=order_input(lines=[{"sku": "tee", "quantity": 1},
                                                              {"sku": "mug", "quantity": 3}]))
    finally:
        event.remove(engine, "before_cursor_execute", record)

    assert created.status_code == 201, created.json
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT") and "pg_notify" not in s]
    assert len(reads) == 1 and "FROM products" in reads[0], reads  # the prices, nothing after
    shown = api.get(created.headers["Location"]).json["order"]
    assert created.json["order"] == shown
    assert [line["sku"] for line in shown["lines"]] == ["tee", "mug"]


def test_products_list_current_stock(api):
    products = {p["sku"]: p for p in api.get("/products").json["products"]}
    assert products["mug"]["stock"] == 100 and products["mug"]["price_cents"] == 1200


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        ("{not json", "application/json", 400, "bad_request"),
        ('"a string"', "application/json", 422, "invalid_order"),
        ('{"customer_email": "a@b.example"}', "application/json", 422, "invalid_order"),
        ("customer_email=a@b.example", "application/x-www-form-urlencoded", 415,
         "unsupported_media_type"),
    ],
)
def test_bad_bodies_get_json_errors_and_write_nothing(api, session_factory, body, content_type,
                                                      status, code):
    response = api.post("/orders", data=body, content_type=content_type)
    assert_error(response, status, code)
    assert rows(session_factory, Order) == 0 and rows(session_factory, OutboxEvent) == 0


def test_invalid_fields_are_named(api):
    error = assert_error(api.post("/orders", json=order_input(lines=[{"sku": "mug", "quantity": -1}])),
                         422, "invalid_order")
    assert error["details"][0]["field"] == "lines.0.quantity"


def test_unknown_product_is_422(api, session_factory):
    error = assert_error(api.post("/orders", json=order_input(lines=[{"sku": "ghost", "quantity": 1}])),
                         422, "unknown_product")
    assert "ghost" in error["message"]
    assert rows(session_factory, Order) == 0


def test_declined_card_is_402_and_writes_nothing(api, session_factory):
    assert_error(api.post("/orders", json=order_input(card_token=CARD_DECLINED)), 402,
                 "payment_declined")
    assert rows(session_factory, Order) == 0 and rows(session_factory, OutboxEvent) == 0


def test_gateway_timeout_is_503_and_writes_nothing(api, session_factory):
    assert_error(api.post("/orders", json=order_input(card_token=CARD_TIMEOUT)), 503,
                 "payment_unavailable")
    assert rows(session_factory, Order) == 0


def test_unknown_order_is_404(api):
    assert_error(api.get("/orders/does-not-exist"), 404, "order_not_found")


def test_huge_body_is_413(api):
    response = api.post("/orders", data="x" * (2 * 1024 * 1024), content_type="application/json")
    assert_error(response, 413, "request_entity_too_large")


def test_unknown_route_and_method_are_json(api):
    assert_error(api.get("/nope"), 404, "not_found")
    assert_error(api.delete("/products"), 405, "method_not_allowed")


def test_database_down_is_503(redis_url):
    down = Settings(database_url="postgresql+psycopg://nobody@127.0.0.1:1/none", redis_url=redis_url)
    api = create_app({"ORDERFLOW_SETTINGS": down, "AFTER_COMMIT": None}).test_client()
    assert_error(api.get("/products"), 503, "database_unavailable")
    assert_error(api.post("/orders", json=order_input()), 503, "database_unavailable")
