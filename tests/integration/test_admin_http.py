"""The operator HTTP surface: /admin/api (JSON), the /admin page and /metrics, over a real worker."""

from __future__ import annotations

import base64
import dataclasses
import re

import pytest

from tasks.relay import relay_once
from tests.support.dead_letters import order_with_dead_email
from tests.support.orders import all_final, deliveries_of, place
from tests.support.waiting import wait_until
from web import create_app

PASSWORD = "s3cret-for-tests"
LOGIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}


@pytest.fixture
def client(settings, runtime):
    configured = dataclasses.replace(settings, admin_password=PASSWORD, flower_url="http://flower.test")
    return create_app({"ORDERFLOW_SETTINGS": configured, "AFTER_COMMIT": None}).test_client()


def test_operator_endpoints_need_the_password(client, settings, runtime):
    wrong = {"Authorization": "Basic " + base64.b64encode(b"admin:guess").decode()}
    for path in ("/admin", "/admin/api/dead-letters"):
        for headers in ({}, wrong):
            response = client.get(path, headers=headers)
            assert response.status_code == 401, path
            assert response.headers["WWW-Authenticate"].startswith("Basic")
        assert client.get(path, headers=LOGIN).status_code == 200
    unset = create_app({"ORDERFLOW_SETTINGS": settings, "AFTER_COMMIT": None}).test_client()
    disabled = unset.get("/admin/api/dead-letters", headers=LOGIN)
    assert disabled.status_code == 503 and "ORDERFLOW_ADMIN_PASSWORD" in disabled.json["error"]["message"]


def test_api_lists_shows_replays_and_refuses(client, celery_app, runtime, worker, executions, smtp_sink):
    placed, email_id = order_with_dead_email(celery_app, runtime, smtp_sink)
    inventory_id = deliveries_of(runtime.session_factory, placed.event_id)["inventory"].id

    [listed] = client.get("/admin/api/dead-letters?consumer=email&error=550&since=1h",
                          headers=LOGIN).json["dead_letters"]
    assert (listed["id"], listed["order_id"]) == (email_id, placed.order_id)
    shown = client.get(f"/admin/api/dead-letters/{placed.event_id}:email", headers=LOGIN).json["dead_letter"]
    assert shown["payload"]["order_id"] == placed.order_id and "550" in shown["errors"][0]["error"]
    bad = client.get("/admin/api/dead-letters?since=soon", headers=LOGIN)
    assert bad.status_code == 422 and bad.json["error"]["code"] == "invalid_argument"
    assert client.get("/admin/api/dead-letters/9999", headers=LOGIN).status_code == 404

    refused = client.post(f"/admin/api/dead-letters/{inventory_id}/replay", json={}, headers=LOGIN)
    assert refused.status_code == 409 and "already succeeded" in refused.json["error"]["message"]
    runs = len(executions.runs)
    replayed = client.post(f"/admin/api/dead-letters/{email_id}/replay",
                           json={"by": "grace", "reason": "mailbox fixed"}, headers=LOGIN)
    assert replayed.status_code == 202, replayed.json
    assert replayed.json["replayed"]["task_id"] == f"{placed.event_id}:email"
    wait_until(lambda: deliveries_of(runtime.session_factory, placed.event_id)["email"].state == "succeeded")
    assert executions.runs[runs:] == [("orders.email.send_confirmation", "email")]
    [action] = client.get(f"/admin/api/dead-letters/{email_id}", headers=LOGIN).json["dead_letter"]["actions"]
    assert (action["actor"], action["reason"]) == ("grace (web)", "mailbox fixed")


def test_api_bulk_replay_and_discard(client, celery_app, runtime, worker, smtp_sink):
    first, first_id = order_with_dead_email(celery_app, runtime, smtp_sink)
    second, _ = order_with_dead_email(celery_app, runtime, smtp_sink)

    no_reason = client.post(f"/admin/api/dead-letters/{first_id}/discard", json={}, headers=LOGIN)
    assert no_reason.status_code == 422
    assert client.post(f"/admin/api/dead-letters/{first_id}/discard", json={"reason": "test order"},
                       headers=LOGIN).json["discarded"]["state"] == "discarded"
    assert client.post("/admin/api/dead-letters/replay", json={}, headers=LOGIN).status_code == 422
    bulk = client.post("/admin/api/dead-letters/replay", json={"consumer": "email", "since": "1h"},
                       headers=LOGIN)
    assert bulk.status_code == 202 and len(bulk.json["replayed"]) == 1
    wait_until(lambda: deliveries_of(runtime.session_factory, second.event_id)["email"].state == "succeeded")
    assert deliveries_of(runtime.session_factory, first.event_id)["email"].state == "discarded"


def test_page_shows_orders_and_dead_letters_and_replays_from_a_form(client, celery_app, runtime, worker,
                                                                    smtp_sink):
    placed, email_id = order_with_dead_email(celery_app, runtime, smtp_sink)

    page = client.get("/admin", headers=LOGIN).get_data(as_text=True)
    assert placed.order_id in page and "SMTP 550" in page
    assert f'href="http://flower.test/task/{placed.event_id}:email"' in page
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)

    assert client.post(f"/admin/dead-letters/{email_id}/replay", headers=LOGIN).status_code == 403
    cross_site = client.post(f"/admin/dead-letters/{email_id}/replay", data={"csrf_token": token},
                             headers={**LOGIN, "Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    done = client.post(f"/admin/dead-letters/{email_id}/replay", data={"csrf_token": token}, headers=LOGIN)
    assert done.status_code == 302 and "replayed" in done.headers["Location"]
    wait_until(lambda: deliveries_of(runtime.session_factory, placed.event_id)["email"].state == "succeeded")
    page = client.get("/admin", headers=LOGIN).get_data(as_text=True)
    assert "No dead letters." in page and "state-succeeded" in page


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


def test_metrics_count_deliveries_dead_letters_retries_and_outbox_lag(client, celery_app, runtime, worker,
                                                                      smtp_sink, use_policies):
    use_policies({"email": {"max_retries": 1, "backoff_base": 0.1, "backoff_max": 0.2}})
    order_with_dead_email(celery_app, runtime, smtp_sink)  # 550: dead at once
    smtp_sink.handler.fail_first, smtp_sink.handler.fail_code = -1, 451  # 451: 1 retry, then dead
    retried = place(runtime.session_factory)
    relay_once(celery_app, runtime, grace_seconds=0)
    wait_until(lambda: all_final(runtime.session_factory, retried.event_id))
    place(runtime.session_factory)  # not relayed: waits in the outbox

    response = client.get("/metrics")  # open, like Flower's: counts only
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert metric(text, 'orderflow_dead_letters{consumer="email"}') == 2
    assert metric(text, 'orderflow_deliveries{consumer="inventory",state="succeeded"}') == 2
    assert metric(text, 'orderflow_delivery_retries_total{consumer="email"}') == 1
    assert metric(text, 'orderflow_delivery_retries_total{consumer="inventory"}') == 0
    # the order not relayed, and the order.reserved inventory wrote for each of the other two
    # (one database for both services here: SHIPPING_DATABASE_URL is the orders one)
    assert metric(text, 'orderflow_outbox_unpublished{service="orders+shipping"}') == 3
    assert 0 < metric(text, 'orderflow_outbox_lag_seconds{service="orders+shipping"}') < 60
    assert metric(text, 'orderflow_database_up{service="orders+shipping"}') == 1
