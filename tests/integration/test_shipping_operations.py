"""The operator's tools reach the shipping service's database too: its dead letters are listed,
counted, grouped and replayed (one by one, in bulk, by group), its consumer paused and resumed,
from /admin/api, the /admin page, /metrics and the command line. Real worker, two databases."""

from __future__ import annotations

import base64
import dataclasses
import re

import pytest
from sqlalchemy import select

from cli.main import main
from outbox import consumer_control
from outbox.models import ConsumerState, Delivery, OutboxEvent
from tasks import runtime as runtime_module
from tasks.relay import relay_once
from tests.support.orders import address, place
from tests.support.waiting import wait_until
from web import create_app

PASSWORD = "s3cret-for-tests"
LOGIN = {"Authorization": "Basic " + base64.b64encode(f"admin:{PASSWORD}".encode()).decode()}
# 99999: the carrier is away (for this many calls per booking), until the test brings it back.
AWAY = 1_000_000


@pytest.fixture
def settings(settings, shipping_url):  # shipping on a database of its own; a carrier away for a while
    # (the breaker would hold the replays after 5 failures in a row: here they must die)
    return dataclasses.replace(settings, shipping_database_url=shipping_url,
                               carrier_unavailable_attempts=AWAY, breaker_failures=1000)


@pytest.fixture
def client(settings, runtime):
    configured = dataclasses.replace(settings, admin_password=PASSWORD)
    return create_app({"ORDERFLOW_SETTINGS": configured, "AFTER_COMMIT": None}).test_client()


@pytest.fixture
def orderflow(database_url, shipping_url, monkeypatch, capsys):
    """The command line as an operator runs it: (exit code, stdout, stderr)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("SHIPPING_DATABASE_URL", shipping_url)

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def shipping_delivery(runtime, order_id: str) -> Delivery | None:
    """The shipping consumer's record of the order's `order.reserved` (in the shipping database)."""
    with runtime.session_factory() as session:
        event_id = session.scalar(select(OutboxEvent.id).where(
            OutboxEvent.aggregate_id == order_id, OutboxEvent.event_type == "order.reserved"))
    if event_id is None:
        return None
    with runtime.sessions("shipping")() as session:
        return session.scalar(select(Delivery).where(Delivery.event_id == event_id,
                                                     Delivery.consumer == "shipping"))


def until_shipping_is(celery_app, runtime, order_ids: list[str], state: str) -> None:
    def reached() -> bool:
        relay_once(celery_app, runtime, grace_seconds=0)
        found = [shipping_delivery(runtime, order_id) for order_id in order_ids]
        return all(d is not None and d.state == state for d in found)

    wait_until(reached, interval=0.1, message=f"shipping deliveries {state}")


def metric(text: str, name: str, labels: str) -> float:
    found = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} ([0-9.e+-]+)$", text, re.MULTILINE)
    assert found, f"{name}{{{labels}}} not in /metrics"
    return float(found.group(1))


def test_shipping_letters_are_listed_counted_and_replayed_from_every_tool(
    celery_app, runtime, worker, smtp_sink, use_policies, client, orderflow
):
    use_policies({"shipping": {"max_retries": 1, "backoff_base": 0.1, "backoff_max": 0.2}})
    orders = [place(runtime.session_factory, shipping_address=address(postcode="99999")).order_id
              for _ in range(2)]
    until_shipping_is(celery_app, runtime, orders, "dead")

    # Listed from the shipping database, with its order (the event is in the orders database).
    listed = client.get("/admin/api/dead-letters", headers=LOGIN).json["dead_letters"]
    assert sorted((d["service"], d["consumer"], d["order_id"]) for d in listed) == sorted(
        ("shipping", "shipping", order_id) for order_id in orders)
    page = client.get("/admin", headers=LOGIN).get_data(as_text=True)
    assert page.count('data-service="shipping"') == 2
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "orderflow_dead_letters", 'consumer="shipping"') == 2
    assert metric(text, "orderflow_database_up", 'service="shipping"') == 1
    assert metric(text, "orderflow_outbox_unpublished", 'service="shipping"') == 0
    code, out, _ = orderflow("dead-letters", "list", "--consumer", "shipping")
    rows = [line.split() for line in out.strip().splitlines()[1:-1]]
    assert code == 0 and [row[1:3] for row in rows] == [["shipping", "shipping"]] * 2
    assert out.strip().endswith("2 dead deliveries")
    one = shipping_delivery(runtime, orders[0])
    assert one is not None
    shown = client.get(f"/admin/api/dead-letters/{one.id}?service=shipping", headers=LOGIN).json
    assert shown["dead_letter"]["event_type"] == "order.reserved"
    assert shown["dead_letter"]["payload"]["order_id"] == orders[0]

    # Bulk replay by consumer: both go again, and die again (the carrier is still away).
    replayed = client.post("/admin/api/dead-letters/replay", headers=LOGIN,
                           json={"consumer": "shipping", "reason": "carrier back?"})
    assert replayed.status_code == 202 and len(replayed.json["replayed"]) == 2
    wait_until(lambda: [(d.state, d.attempts) for o in orders if (d := shipping_delivery(runtime, o))]
               == [("dead", 2)] * 2, message="both died again")

    # The carrier is back. One is replayed from the operator page's button (it posts the task
    # id: a bare number is one in each database), the other by group from the command line.
    runtime_module.change_settings(dataclasses.replace(runtime_module.current().settings,
                                                       carrier_unavailable_attempts=0))
    page = client.get("/admin", headers=LOGIN).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page).group(1)  # type: ignore[union-attr]
    first = shipping_delivery(runtime, orders[0])
    assert first is not None
    [action] = re.findall(rf'action="(/admin/dead-letters/{first.event_id}[^"]*/replay)"', page)
    pressed = client.post(action, data={"csrf_token": token}, headers=LOGIN)
    assert pressed.status_code == 302 and "replayed" in pressed.headers["Location"]
    until_shipping_is(celery_app, runtime, orders[:1], "succeeded")
    code, out, _ = orderflow("dead-letters", "groups", "--consumer", "shipping")
    assert code == 0
    group = out.strip().splitlines()[1].split()
    assert group[1:4] == ["shipping", "shipping", "1"]
    code, out, err = orderflow("dead-letters", "replay-group", group[0], "--rate", "50", "--reason", "back")
    assert (code, err) == (0, "") and "1 replayed, 0 skipped" in out
    until_shipping_is(celery_app, runtime, orders, "succeeded")
    # The page's recent orders read shipping's records in its own database.
    page = client.get("/admin", headers=LOGIN).get_data(as_text=True)
    succeeded = re.findall(r'data-consumer="shipping">shipping:\s*<a class="state state-succeeded"', page)
    assert len(succeeded) == 2
    text = client.get("/metrics").get_data(as_text=True)
    assert metric(text, "orderflow_dead_letters", 'consumer="shipping"') == 0


def test_pausing_shipping_from_the_web_holds_it_in_its_own_database(client, runtime):
    paused = client.post("/admin/api/consumers/shipping/pause", headers=LOGIN,
                         json={"reason": "carrier maintenance", "by": "ada"})
    assert paused.status_code == 200 and paused.json["consumer"]["status"] == "paused"
    # Where the shipping workers read it; nothing of it in the orders database.
    assert consumer_control.read(runtime.sessions("shipping"), "shipping").paused
    with runtime.session_factory() as session:
        assert session.get(ConsumerState, "shipping") is None
    listed = {c["consumer"]: c for c in client.get("/admin/api/consumers", headers=LOGIN).json["consumers"]}
    assert listed["shipping"]["status"] == "paused" and listed["email"]["status"] == "running"
    page = client.get("/admin", headers=LOGIN).get_data(as_text=True)
    assert "carrier maintenance" in page
    assert client.post("/admin/api/consumers/shipping/resume", headers=LOGIN,
                       json={}).json["consumer"]["status"] == "running"
    assert not consumer_control.read(runtime.sessions("shipping"), "shipping").paused


def test_a_service_or_id_that_does_not_say_which_letter_is_refused_in_one_line(
    client, runtime, orderflow
):
    wrong = client.get("/admin/api/dead-letters/1?service=billing", headers=LOGIN)
    assert wrong.status_code == 422 and "unknown service 'billing'" in wrong.json["error"]["message"]
    not_a_string = client.post("/admin/api/dead-letters/1/replay", headers=LOGIN, json={"service": 3})
    assert not_a_string.status_code == 422
    mismatch = client.post("/admin/api/dead-letters/abc:shipping/discard", headers=LOGIN,
                           json={"service": "orders", "reason": "x"})
    assert mismatch.status_code == 422
    assert "'shipping' is a consumer of the shipping service" in mismatch.json["error"]["message"]
    code, out, err = orderflow("dead-letters", "replay", "--consumer", "email", "--service", "shipping")
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1
    assert "'email' is a consumer of the orders service, not of 'shipping'" in err

    # A dead letter numbered 1 in each database: a bare "1" is refused, not guessed.
    for database, consumer in ((runtime.session_factory, "email"),
                               (runtime.sessions("shipping"), "shipping")):
        with database.begin() as session:
            session.add(Delivery(id=1, event_id=f"e-{consumer}", consumer=consumer, state="dead", attempts=1))
    code, out, err = orderflow("dead-letters", "discard", "1", "--reason", "x")
    assert code != 0 and "dead letter 1 exists in orders and shipping" in err
    ambiguous = client.post("/admin/api/dead-letters/1/discard", headers=LOGIN, json={"reason": "x"})
    assert ambiguous.status_code == 422
    named = client.post("/admin/api/dead-letters/1/discard", headers=LOGIN,
                        json={"reason": "gone", "service": "shipping"})
    assert named.status_code == 200 and named.json["discarded"]["task_id"] == "e-shipping:shipping"
    # Now only orders has a dead letter 1: the bare number finds it.
    code, out, err = orderflow("dead-letters", "discard", "1", "--reason", "gone too")
    assert (code, err) == (0, "") and "e-email:email" in out


def test_metrics_say_which_database_is_down_and_leave_half_counts_out(settings, runtime):
    unreachable = dataclasses.replace(settings, shipping_database_url="postgresql://postgres@127.0.0.1:1/gone")
    text = create_app({"ORDERFLOW_SETTINGS": unreachable, "AFTER_COMMIT": None}).test_client().get(
        "/metrics").get_data(as_text=True)
    assert metric(text, "orderflow_database_up", 'service="orders"') == 1
    assert metric(text, "orderflow_database_up", 'service="shipping"') == 0
    assert metric(text, "orderflow_outbox_unpublished", 'service="orders"') == 0
    # Counted from one database only, the shipping consumer would read as 0 dead letters.
    assert "orderflow_dead_letters{" not in text
