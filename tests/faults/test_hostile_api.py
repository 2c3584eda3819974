"""Hostile input to the API: every bad request gets a 4xx JSON error naming the problem, and
nothing is written; requests generated from /openapi.json never get a 5xx."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from sqlalchemy import func, select

from config.settings import Settings
from orders.models import Order
from orders.seed import seed_products
from outbox.db import SessionFactory, make_engine, make_session_factory
from outbox.models import OutboxEvent
from tests.support.databases import fresh_database
from tests.support.orders import order_input
from web import create_app


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[tuple[str, SessionFactory]]:
    with fresh_database("sqlite", tmp_path) as url:
        engine = make_engine(url)
        session_factory = make_session_factory(engine)
        seed_products(session_factory)
        yield url, session_factory
        engine.dispose()


@pytest.fixture
def flask_app(sqlite_db):  # type: ignore[no-untyped-def]
    url, _ = sqlite_db
    # SMTP on a port nobody listens on: the in-process welcome email fails (logged), never elsewhere.
    settings = Settings(database_url=url, smtp_url="smtp://127.0.0.1:1")
    return create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None})


@pytest.fixture
def api(flask_app):  # type: ignore[no-untyped-def]
    return flask_app.test_client()


def written(session_factory: SessionFactory) -> tuple[int, int]:
    with session_factory() as session:
        return (session.scalar(select(func.count()).select_from(Order)) or 0,
                session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


def line(**fields: Any) -> dict[str, Any]:
    return order_input(lines=[{"sku": "mug", "quantity": 1, **fields}])


NESTED = "[" * 20000 + "]" * 20000

CASES = [
    # (id, body, content type, status, error code, field or text the error must name)
    ("malformed-json", "{not json", "application/json", 400, "bad_request", "not valid JSON"),
    ("invalid-utf8", b'{"customer_email": "\xff\xfe"}', "application/json", 400, "bad_request", "JSON"),
    ("deeply-nested-json", NESTED, "application/json", 400, "bad_request", "nested too deeply"),
    ("json-null", "null", "application/json", 400, "bad_request", "JSON"),
    ("json-array", "[1, 2]", "application/json", 422, "invalid_order", "body"),
    ("json-string", '"order"', "application/json", 422, "invalid_order", "body"),
    ("missing-fields", "{}", "application/json", 422, "invalid_order", "customer_email"),
    ("missing-lines", json.dumps({k: v for k, v in order_input().items() if k != "lines"}),
     "application/json", 422, "invalid_order", "lines"),
    ("empty-lines", json.dumps(order_input(lines=[])), "application/json", 422, "invalid_order", "lines"),
    ("too-many-lines", json.dumps(order_input(lines=[{"sku": f"s{i}", "quantity": 1} for i in range(51)])),
     "application/json", 422, "invalid_order", "lines"),
    ("unknown-field", json.dumps({**order_input(), "discount": 100}), "application/json", 422,
     "invalid_order", "discount"),
    ("email-wrong-type", json.dumps(order_input(customer_email=42)), "application/json", 422,
     "invalid_order", "customer_email"),
    ("email-invalid", json.dumps(order_input(customer_email="not-an-email")), "application/json", 422,
     "invalid_order", "customer_email"),
    ("lines-wrong-type", json.dumps(order_input(lines="mug")), "application/json", 422,
     "invalid_order", "lines"),
    ("quantity-as-string", json.dumps(line(quantity="2")), "application/json", 422, "invalid_order",
     "lines.0.quantity"),
    ("quantity-bool", json.dumps(line(quantity=True)), "application/json", 422, "invalid_order",
     "lines.0.quantity"),
    ("quantity-float", json.dumps(line(quantity=1.5)), "application/json", 422, "invalid_order",
     "lines.0.quantity"),
    ("quantity-nan", json.dumps(line(quantity=1)).replace('"quantity": 1', '"quantity": NaN'),
     "application/json", 422, "invalid_order", "lines.0.quantity"),
    ("quantity-zero", json.dumps(line(quantity=0)), "application/json", 422, "invalid_order",
     "lines.0.quantity"),
    ("quantity-negative", json.dumps(line(quantity=-5)), "application/json", 422, "invalid_order",
     "lines.0.quantity"),
    ("quantity-huge", json.dumps(line(quantity=10**12)), "application/json", 422, "invalid_order",
     "lines.0.quantity"),
    ("quantity-enormous", json.dumps(line(quantity=10**400)), "application/json", 422, "invalid_order",
     "lines.0.quantity"),
    ("sku-empty", json.dumps(line(sku="")), "application/json", 422, "invalid_order", "lines.0.sku"),
    ("sku-unknown", json.dumps(line(sku="ghost")), "application/json", 422, "unknown_product", "ghost"),
    ("sku-unicode-unknown", json.dumps(line(sku="mûg☕")), "application/json", 422, "unknown_product",
     "mûg☕"),
    ("duplicate-sku", json.dumps(order_input(lines=[{"sku": "mug", "quantity": 1}] * 2)),
     "application/json", 422, "invalid_order", "duplicate"),
    ("name-too-long", json.dumps(order_input(customer_name="x" * 10_000)), "application/json", 422,
     "invalid_order", "customer_name"),
    ("text-plain", json.dumps(order_input()), "text/plain", 415, "unsupported_media_type", "JSON"),
    ("form", "customer_email=a@b.example", "application/x-www-form-urlencoded", 415,
     "unsupported_media_type", "JSON"),
    ("no-content-type", json.dumps(order_input()), "", 415, "unsupported_media_type", "JSON"),
    ("ten-megabytes", "x" * (10 * 1024 * 1024), "application/json", 413, "request_entity_too_large",
     ""),
]


@pytest.mark.parametrize(("body", "content_type", "status", "code", "names"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_order_bodies_get_a_4xx_json_error_naming_the_problem_and_write_nothing(
    api, sqlite_db, body, content_type, status, code, names
):
    response = api.post("/orders", data=body, content_type=content_type or None)

    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    error = response.json["error"]
    assert error["code"] == code and error["message"]
    assert names in json.dumps(error, ensure_ascii=False)
    assert written(sqlite_db[1]) == (0, 0)


def test_unicode_names_are_stored_and_shown_as_sent(api, sqlite_db):
    name = "Zoë Ångström 李小龍 🚀 O'Brien-Müller"
    created = api.post("/orders", json=order_input(customer_name=name, customer_email="zoë@exämple.com"))

    assert created.status_code == 201, created.json
    shown = api.get(f"/orders/{created.json['order']['id']}").json["order"]
    assert shown["customer_name"] == name
    assert written(sqlite_db[1]) == (1, 1)


@pytest.mark.parametrize("order_id", ["x" * 5000, "😈", "../../etc/passwd", "1 OR 1=1", "%00"])
def test_hostile_order_ids_are_404(api, order_id):
    response = api.get(f"/orders/{order_id}")
    assert response.status_code == 404 and response.json["error"]["code"] in ("order_not_found", "not_found")


def test_openapi_description_is_served(api):
    document = api.get("/openapi.json").json
    assert document["openapi"].startswith("3.")
    assert {"/orders", "/orders/{order_id}", "/products", "/customers"} <= set(document["paths"])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid-by-schema", "invalid-by-schema"])
def test_requests_generated_from_openapi_never_get_a_server_error(flask_app, mode):
    schema = schemathesis.openapi.from_wsgi("/openapi.json", flask_app)
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        if mode is GenerationMode.NEGATIVE and operation.method != "post":
            continue  # a GET takes at most a string path parameter: no invalid value to make

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=60, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def never_5xx(case):  # type: ignore[no-untyped-def]
            response = case.call()
            statuses[response.status_code] += 1
            assert response.status_code < 500, (case.as_curl_command(), response.text[:500])
            if response.status_code >= 400:
                assert response.json()["error"]["code"], response.text[:500]

        never_5xx()
    assert statuses, "schemathesis generated no request"
